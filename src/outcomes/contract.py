"""The raw-data contract v1 as data: files, columns, aliases, vocabularies, metric registry.

Everything that reads, writes, simulates or validates raw data takes its names from here,
so the contract is stated once. docs/data-contract.md is its human-readable form.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import pandas as pd

CONTRACT_VERSION = "1"

# --- files -----------------------------------------------------------------
REQUIRED_TABLES = ("patients", "sessions", "photo_metrics")
OPTIONAL_TABLES = ("assessments", "adverse_events")
TABLES = REQUIRED_TABLES + OPTIONAL_TABLES
SUFFIXES = (".csv", ".csv.gz", ".parquet", ".xlsx")  # searched in this order
# photo_metrics may come as several files, `photo_metrics.<suffix>` and `photo_metrics.<source>.<suffix>`
# (an instrument's export, `outcomes photos`' output, ...): all are read; a row's `source` is its
# cell, else the file's name part, else this
SOURCED_TABLES = ("photo_metrics",)
DEFAULT_SOURCE = "export"
# A cell is missing when it is empty or, trimmed, one of these texts in any letter case ("-" is
# not: it is a value, and unknown where a value is expected).
MISSING_TEXTS = ("NA", "N/A", "NaN", "null", "None", "#N/A")


def missing_text_spellings() -> list[str]:
    """"" and every letter-case spelling of MISSING_TEXTS (for readers that match exactly)."""
    spellings = {""}
    for token in MISSING_TEXTS:
        spellings |= {"".join(chars) for chars in product(*({c.lower(), c.upper()} for c in token))}
    return sorted(spellings)


@dataclass(frozen=True)
class Column:
    name: str
    required: bool = False
    aliases: tuple[str, ...] = ()


COLUMNS: dict[str, tuple[Column, ...]] = {
    "patients": (
        Column("patient_id", True, ("patient", "pid", "subject_id")),
        Column("age"),
        Column("birth_date", aliases=("dob", "date_of_birth")),
        Column("sex", aliases=("gender",)),
        Column("skin_type", aliases=("fitzpatrick", "phototype")),
        Column("concern"),
        Column("clinic_id", aliases=("clinic",)),
    ),
    "sessions": (
        Column("patient_id", True, ("patient", "pid", "subject_id")),
        Column("session_date", True, ("date", "visit_date")),
        Column("status"),
        Column("product"),
        Column("area"),
        Column("volume_ml"),
        Column("practitioner_id"),
    ),
    "photo_metrics": (
        Column("patient_id", True, ("patient", "pid", "subject_id")),
        Column("photo_id", True),
        Column("taken_at", True, ("date", "captured_at")),
        Column("metric", True),
        Column("value", True),
        Column("view"),
        Column("device"),
        Column("color_delta_e"),
        Column("head_yaw_deg"),
        Column("makeup"),
        Column("blur"),
        # written by `outcomes photos` (docs/photos.md §command); optional in any export
        Column("source"),
        Column("photo_hash"),
        Column("chart"),
        Column("clipped"),
        Column("pose_error"),
        Column("photo_error"),
    ),
    "assessments": (
        Column("patient_id", True, ("patient", "pid", "subject_id")),
        Column("assessed_at", True, ("date",)),
        Column("scale", True),
        Column("rater"),
        Column("score", True),
    ),
    "adverse_events": (
        Column("patient_id", True, ("patient", "pid", "subject_id")),
        Column("event_date", True, ("date",)),
        Column("event", True),
        Column("severity"),
    ),
}

# patients need one of these two
AGE_SOURCES = ("age", "birth_date")
AGE_RANGE = (16, 100)
VOLUME_RANGE_ML = (0.0, 20.0)  # 0 < v <= 20

# --- vocabularies -----------------------------------------------------------
SKIN_TYPES = ("I", "II", "III", "IV", "V", "VI")
SKIN_TYPE_DTYPE = pd.CategoricalDtype(list(SKIN_TYPES), ordered=True)
SEXES = ("F", "M", "X", "unknown")
CONCERNS = (
    "fine_lines", "skin_quality", "pigmentation", "acne_scars",
    "hair_loss", "cellulite", "localized_fat",
)
SESSION_STATUSES = ("completed", "cancelled", "no_show")
VIEWS = ("front", "left45", "right45", "left90", "right90")
DEFAULT_VIEW = "front"
EVENTS = ("erythema", "edema", "bruising", "pain", "nodule", "pih", "infection", "other")
# How a report names each event type (the codes above are the data's).
EVENT_NAMES = {"erythema": "erythema (redness)", "edema": "oedema (swelling)", "bruising": "bruising",
               "pain": "pain", "nodule": "nodule", "pih": "post-inflammatory hyperpigmentation",
               "infection": "infection", "other": "other"}
SEVERITIES = ("mild", "moderate", "severe")
RATERS = ("clinician", "patient")


@dataclass(frozen=True)
class Scale:
    name: str
    low: float
    high: float
    meaning: str


SCALES = {
    "gais": Scale("gais", 1, 5, "1 very much improved, 2 much improved, 3 improved, 4 no change, 5 worse"),
    "wsrs": Scale("wsrs", 1, 5, "1 absent to 5 extreme wrinkles"),
    "satisfaction": Scale("satisfaction", 0, 100, "0 not at all to 100 fully satisfied"),
}
GAIS_RESPONDER_MAX = 3  # GAIS <= 3 is "improved or better"


# --- metric registry --------------------------------------------------------
@dataclass(frozen=True)
class Metric:
    name: str
    better: str  # "lower" or "higher"
    unit: str
    low: float = 0.0
    high: float = float("inf")
    # the smallest change in improvement (percentage points) a patient would notice: the
    # plateau's "one more session adds less than this", and the least gain a plateau is claimed after
    min_important: float = 2.0
    display: str = ""  # what a reader sees ("Brown spots"); the code name is for files and parameters

    @property
    def label(self) -> str:
        """The reader's name of the metric ("Elasticity (R7)"), never the code name."""
        return self.display or self.name.replace("_", " ").capitalize()

    @property
    def sign(self) -> int:
        """+1 when higher is better, -1 when lower is better."""
        return 1 if self.better == "higher" else -1


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("wrinkles", "lower", "score", display="Wrinkles"),
        Metric("texture", "lower", "score", display="Skin texture"),
        Metric("pores", "lower", "count", display="Pores"),
        Metric("spots", "lower", "count", display="Spots"),
        Metric("brown_spots", "lower", "score", display="Brown spots"),
        Metric("red_areas", "lower", "score", display="Red areas"),
        Metric("uv_spots", "lower", "score", display="UV spots"),
        Metric("melanin_index", "lower", "AU", 0, 999, display="Melanin index"),
        Metric("erythema_index", "lower", "AU", 0, 999, display="Erythema index"),
        Metric("hydration", "higher", "AU (corneometer)", 0, 130, display="Hydration"),
        Metric("elasticity_r7", "higher", "ratio (cutometer)", 0, 1, display="Elasticity (R7, cutometer)"),
    )
}

# What each concern is treated for: the registry metrics a cohort report of that concern shows,
# its primary metric(s) first (a capped grid keeps the first). A practitioner judges a pigmentation
# course by its spots, not by hydration; body concerns are measured with instruments only
# (corneometer, cutometer), the face metrics are read off face photos. Hair loss has no metric in
# the registry (hair density is not measured), so it gets no cohort report.
CONCERN_METRICS: dict[str, tuple[str, ...]] = {
    "fine_lines": ("wrinkles", "elasticity_r7", "texture"),
    "skin_quality": ("hydration", "elasticity_r7", "wrinkles", "texture", "pores"),
    "pigmentation": ("brown_spots", "melanin_index", "spots", "uv_spots"),
    "acne_scars": ("texture", "pores", "red_areas", "erythema_index"),
    "hair_loss": (),
    "cellulite": ("elasticity_r7", "hydration"),
    "localized_fat": ("elasticity_r7", "hydration"),
}
assert set(CONCERN_METRICS) == set(CONCERNS) and all(m in METRICS for ms in CONCERN_METRICS.values() for m in ms)

# --- linking and quality rules ----------------------------------------------
BASELINE_MAX_DAYS_BEFORE_FIRST_SESSION = 90
# dates of events (sessions, photos, assessments, adverse events) before this day, or after the
# export's day, are typos (a 1900 session would anchor the patient's baseline a century early):
# such rows are rejected with reason EARLY_EVENT_REASON or LATE_EVENT_REASON
EARLIEST_EVENT_DATE = "1990-01-01"
EARLY_EVENT_REASON = "date_before_1990"
LATE_EVENT_REASON = "date_after_export"
QC_MAX_DELTA_E = 5.0
QC_MAX_YAW_DIFF_DEG = 10.0
QC_MAX_BLUR = 0.5
# a photo_metrics row with a `photo_error` (a photo `outcomes photos` could not measure) is rejected
# with this reason; rejected.csv quotes the error code as the value
PHOTO_ERROR_REASON = "photo_unreadable"

# --- processed outputs ------------------------------------------------------
OUTCOME_COLUMNS = (
    "patient_id", "metric", "view", "sessions", "days_since_baseline", "baseline", "value",
    "change", "improvement_pct", "age", "skin_type", "sex", "concern", "clinic_id",
    "qc_ok", "qc_reasons",
)
REJECTED_COLUMNS = ("table", "source_file", "source_row", "column", "value", "reason")
