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
        Column("chart"),  # yes/no: a colour chart was found in the photo (colour metrics corrected to it)
        Column("clipped"),  # 0..1: share of the skin region's pixels at 0 or 255 in any channel
        Column("pose_error"),  # >= 0: how far the face's pose is from the baseline photo's (issue 13)
        # written by `outcomes photos` (docs/photos.md §command); optional in any export
        Column("source"),
        Column("photo_hash"),
        Column("region"),  # x0,y0,x1,y1 pixels measured (blank: the automatic region); not used by clean
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
# How a report names each concern (the codes above are the data's and the parameters').
CONCERN_NAMES = {"fine_lines": "fine lines", "skin_quality": "skin quality", "pigmentation": "pigmentation",
                 "acne_scars": "acne scars", "hair_loss": "hair loss", "cellulite": "cellulite",
                 "localized_fat": "localised fat"}
assert set(CONCERN_NAMES) == set(CONCERNS)
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
SCALES_OF_MEASUREMENT = ("ratio", "interval")


@dataclass(frozen=True)
class Metric:
    name: str
    better: str  # "lower" or "higher"
    unit: str
    low: float = 0.0
    high: float = float("inf")
    # the smallest change in improvement a patient would notice, in the units improvement is
    # counted in (percentage points of the baseline on a ratio scale, the metric's own unit on an
    # interval scale): the plateau's "one more session adds less than this", and the least gain a
    # plateau is claimed after. Each metric's value and its reason: METRICS below, docs/data-contract.md §5;
    # a metric of the clinic's metrics.csv without one gets DEFAULT_MIN_IMPORTANT, with a data-quality note
    min_important: float = 5.0
    display: str = ""  # what a reader sees ("Brown spots"); the code name is for files and parameters
    # "ratio": a true zero (a count, an area, a concentration): change is compared as a percentage of
    # the baseline. "interval": no true zero, the value may cross it (CIELAB a*, ITA°): change is
    # compared as the absolute difference in the metric's own unit, never as a percentage
    scale: str = "ratio"

    @property
    def label(self) -> str:
        """The reader's name of the metric ("Elasticity (R7)"), never the code name."""
        return self.display or self.name.replace("_", " ").capitalize()

    @property
    def sign(self) -> int:
        """+1 when higher is better, -1 when lower is better."""
        return 1 if self.better == "higher" else -1

    @property
    def improvement_unit(self) -> str:
        """The unit of `improvement` (and of a difference between two improvements): "%" of the
        baseline on a ratio scale, the metric's own unit on an interval scale ("degrees")."""
        return "%" if self.scale == "ratio" else self.unit

    @property
    def points(self) -> str:
        """What a difference between two improvements is counted in, inside a sentence:
        "points" (percentage points) on a ratio scale, the metric's own unit on an interval scale."""
        return "points" if self.scale == "ratio" else self.unit

    def amount(self, value: float, decimals: int = 1) -> str:
        """An improvement in words: "12.3%" on a ratio scale, "3.1 degrees" on an interval scale."""
        return in_unit(value, self.improvement_unit, f".{decimals}f")


def in_unit(value: float, unit: str, fmt: str = ".1f") -> str:
    """`value` with the unit improvement is counted in: "12.3%" ("%": of the baseline), "3.1 degrees";
    `fmt` a format spec ("+.1f" signed, "g" shortest)."""
    return f"{value:{fmt}}%" if unit == "%" else f"{value:{fmt}} {unit}"


# min_important, the smallest change worth calling an improvement (issue 10): a change smaller
# than the metric's own visit-to-visit measurement noise cannot be told from noise, let alone
# noticed, so each threshold is at least one standard error of measurement (SEM), the
# distribution-based minimal important change (Wyrwich 2004, J Biopharm Stat 14:97-110; de Vet
# 2006, Health Qual Life Outcomes 4:54). On a ratio scale the SEM of a reading in percent of the
# reading is its within-patient coefficient of variation:
# - photo scores read off standardised photos vary 3-6% within a patient between visits: 5 points
#   (4 for the steadier brown and UV spot scores, 6 for wrinkles and red areas, which move with
#   expression, pose and colour cast);
# - instrument replicate CV is about 7% (Corneometer, Mexameter, Cutometer): 7 points;
# - pixel metrics of our own photos (spot area, line density, roughness): the same skin
#   photographed twice must agree within a CV of 5% (issue 13), so 5 points.
# On an interval scale, in the metric's own unit: a CIELAB colour difference below about 2 units
# is not visible (just-noticeable difference dE*ab about 2.3, Mahy 1994, Color Res Appl 19:105-121;
# the colour correction is checked to dE2000 <= 2), so 2 units of L*, a* or b*; ITA°
# = atan((L* - 50) / b*): a 2-unit change of L* moves it 3-5° on typical skin (L* 55-65,
# b* 12-18) and it is measured to within 3°, so 4°.
# Direction: for the colour metrics it depends on what is treated. These are the directions for
# the concerns they are listed under in CONCERN_METRICS: pigmentation is treated to lighten
# (higher L* and ITA° are better, lower b* is better), redness and post-acne erythema to calm
# (lower a* is better). A report of a colour metric for another concern reads its sign this way too.
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("wrinkles", "lower", "score", min_important=6.0, display="Wrinkles"),
        Metric("texture", "lower", "score", min_important=5.0, display="Skin texture"),
        Metric("pores", "lower", "count", min_important=5.0, display="Pores"),
        Metric("spots", "lower", "count", min_important=5.0, display="Spots"),
        Metric("brown_spots", "lower", "score", min_important=4.0, display="Brown spots"),
        Metric("red_areas", "lower", "score", min_important=6.0, display="Red areas"),
        Metric("uv_spots", "lower", "score", min_important=4.0, display="UV spots"),
        Metric("melanin_index", "lower", "AU", 0, 999, min_important=7.0, display="Melanin index"),
        Metric("erythema_index", "lower", "AU", 0, 999, min_important=7.0, display="Erythema index"),
        Metric("hydration", "higher", "AU (corneometer)", 0, 130, min_important=7.0, display="Hydration"),
        Metric("elasticity_r7", "higher", "ratio (cutometer)", 0, 1, min_important=7.0,
               display="Elasticity (R7, cutometer)"),
        # measured from the photos themselves (outcomes photos, docs/photos.md): colour of the
        # chart-corrected skin in CIELAB (D65), and pixel metrics of the skin region. Display names
        # go into markdown sentences as they are: no "*" (L*, a*, b* would start emphasis)
        Metric("cielab_l", "higher", "CIELAB units", 0, 100, min_important=2.0, display="Lightness (CIELAB L)",
               scale="interval"),
        Metric("cielab_a", "lower", "CIELAB units", -128, 128, min_important=2.0, display="Redness (CIELAB a)",
               scale="interval"),
        Metric("cielab_b", "lower", "CIELAB units", -128, 128, min_important=2.0, display="Yellowness (CIELAB b)",
               scale="interval"),
        Metric("ita", "higher", "degrees", -90, 90, min_important=4.0,
               display="Individual typology angle (ITA°)", scale="interval"),
        Metric("spot_area", "lower", "% of the skin region", 0, 100, min_important=5.0,
               display="Pigmented spot area"),
        # line density: the lines' total length ÷ the skin region's side; roughness: the RMS of the
        # fine relief of L*, in L* units (docs/photos.md, metrics); no "*" in a unit either
        Metric("line_density", "lower", "line length ÷ region side", min_important=5.0, display="Line density"),
        Metric("roughness", "lower", "CIELAB L units", min_important=5.0, display="Skin roughness"),
    )
}

# The smallest important change of a metric whose own is not known (a clinic's metrics.csv without the
# column): 5 points, the middle of the registry's ratio-scale values (4 to 7: a reading's within-patient
# coefficient of variation); the metric's own unit on an interval scale, where no default can know the
# unit, so the data-quality note asks for it
DEFAULT_MIN_IMPORTANT = Metric.min_important


def min_important(metric: str) -> float:
    """The smallest important change of `metric` (METRICS); for a name the built-in registry does
    not know, DEFAULT_MIN_IMPORTANT."""
    known = METRICS.get(metric)
    return known.min_important if known is not None else DEFAULT_MIN_IMPORTANT


# the metrics `outcomes photos` measures from the photos themselves (photos.measure keys), and of
# them the colour metrics, which need a colour chart in the photo (QC flag no_chart)
PHOTO_MEASURED_METRICS = ("cielab_l", "cielab_a", "cielab_b", "ita", "spot_area", "line_density", "roughness")
COLOUR_METRICS = ("cielab_l", "cielab_a", "cielab_b", "ita")
assert all(METRICS[m].scale in SCALES_OF_MEASUREMENT for m in METRICS)
assert set(COLOUR_METRICS) <= set(PHOTO_MEASURED_METRICS) <= set(METRICS)

# What each concern is treated for: the registry metrics a cohort report of that concern shows,
# its primary metric(s) first (a capped grid keeps the first). A practitioner judges a pigmentation
# course by its spots, not by hydration; body concerns are measured with instruments only
# (corneometer, cutometer), the face metrics are read off face photos. Hair loss has no metric in
# the registry (hair density is not measured), so it gets no cohort report.
# Photo metrics measured by `outcomes photos` come after the instrument metrics of each concern, so
# the default grid (the first two of each concern) is unchanged.
CONCERN_METRICS: dict[str, tuple[str, ...]] = {
    "fine_lines": ("wrinkles", "elasticity_r7", "texture", "line_density", "roughness"),
    "skin_quality": ("hydration", "elasticity_r7", "wrinkles", "texture", "pores", "roughness", "cielab_l"),
    "pigmentation": ("brown_spots", "melanin_index", "spots", "uv_spots", "spot_area", "ita", "cielab_l",
                     "cielab_b"),
    "acne_scars": ("texture", "pores", "red_areas", "erythema_index", "cielab_a", "roughness"),
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
# exposure: more than 2% of the skin region's pixels clipped (0 or 255 in a channel). A clipped
# pixel has lost its colour and texture; on a well-exposed standardised photo only specular
# highlights clip, well under 1% of the skin, so 2% means the exposure itself was off
# (ASSUMPTION, to be checked on simulated exposures, docs/photos.md, quality)
QC_MAX_CLIPPED = 0.02
# pose against the baseline photo of the same view: photos.registration.pose_error, the largest
# displacement of a frame corner in % of the image diagonal. 10 is about 11.5 degrees of in-plane
# rotation alone (in line with QC_MAX_YAW_DIFF_DEG), a 20% change of scale alone, or a shift of
# 12.5% of a 4:3 photo's width; a repeat shot reads about 2.5 (docs/photos.md, quality)
QC_MAX_POSE_ERROR = 10.0
# a photo_metrics row with a `photo_error` (a photo `outcomes photos` could not measure) is rejected
# with this reason; rejected.csv quotes the error code as the value
PHOTO_ERROR_REASON = "photo_unreadable"

# --- processed outputs ------------------------------------------------------
OUTCOME_COLUMNS = (
    "patient_id", "metric", "view", "sessions", "days_since_baseline", "baseline", "value",
    "change", "improvement_pct", "improvement", "age", "skin_type", "sex", "concern", "area", "clinic_id",
    "qc_ok", "qc_reasons",
)
REJECTED_COLUMNS = ("table", "source_file", "source_row", "column", "value", "reason")
