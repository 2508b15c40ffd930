"""The simulator's ground truth: every effect size and rate in one place, and the formula they feed.

Numbers marked LIT come from the studies summarised in docs/simulator.md; everything else is an
ASSUMPTION, documented there too. truth.json is built from these, so models can be checked
against the values that generated the data.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from outcomes.contract import GAIS_RESPONDER_MAX, METRICS, PHOTO_MEASURED_METRICS, SCALES, SKIN_TYPES

MODEL_TEXT = (
    "improvement_pct = emax_pct[metric] * (1 - exp(-k * sessions)) * response_factor"
    " * (1 + age_slope * (age - age_ref)) * skin_type_multiplier[skin_type]"
    " * read_strength[metric][skin_type] * fade;"
    " fade = 0.5 ** (weeks_since_last_session / half_life_weeks) at visits after the course ended, else 1;"
    " response_factor ~ Normal(1, 0.5) per patient;"
    " observed value = true value * exp(Normal(0, noise_cv[metric])) * photo artefacts"
)

K = 0.55  # LIT-derived: ~70% of Emax after 2 sessions (domain.md)
AGE_REF = 45.0
AGE_SLOPE = -0.01  # relative effect per year of age above AGE_REF (domain.md suggestion)
RESPONSE_MEAN, RESPONSE_SD = 1.0, 0.5
HALF_LIFE_WEEKS = 20.0  # ASSUMPTION inside the 10-30 week range (VYC-12 fading, Hertz-Kleptow 2019)
SKIN_TYPE_MULTIPLIER = {"I": 1.0, "II": 1.0, "III": 1.0, "IV": 0.9, "V": 0.8, "VI": 0.8}  # ASSUMPTION

SEX_SHARES = {"F": 0.95, "M": 0.04, "X": 0.002, "unknown": 0.008}
AGE_MEAN, AGE_SD, AGE_MIN, AGE_MAX = 47.0, 9.0, 25, 70
SKIN_TYPE_SHARES = {"I": 0.07, "II": 0.28, "III": 0.48, "IV": 0.10, "V": 0.05, "VI": 0.02}
CONCERN_SHARES = {
    "fine_lines": 0.32, "skin_quality": 0.33, "pigmentation": 0.15, "acne_scars": 0.08,
    "hair_loss": 0.05, "cellulite": 0.04, "localized_fat": 0.03,
}
BODY_CONCERNS = ("hair_loss", "cellulite", "localized_fat")  # measured with instruments only
PLANNED_SESSIONS = {3: 0.30, 4: 0.30, 5: 0.20, 6: 0.20}
NOMINAL_INTERVAL_DAYS = {14: 0.30, 21: 0.40, 28: 0.30}
INTERVAL_SD_DAYS = 3.0
DELAY_SHARE, DELAY_FACTOR = 0.05, (1.5, 2.0)
MIN_GAP_DAYS = 7


@dataclass(frozen=True)
class MetricTruth:
    """How one metric is generated. emax_pct is the maximal mean improvement (positive = better)."""

    emax_pct: float
    level: float  # median baseline level at age 45
    level_sd: float  # between-patient log-SD of the baseline level
    noise_cv: float  # within-patient visit-to-visit noise (photo 3-6%, instruments 7%)
    decimals: int
    device: str | None  # None: read off the photos (camera of the clinic)
    source: str  # "LIT: ..." or "ASSUMPTION"


METRIC_TRUTH: dict[str, MetricTruth] = {
    "wrinkles": MetricTruth(15, 14.0, 0.35, 0.06, 2, None, "LIT: domain.md suggestion (Duteil 2023 crow's feet -10% vs saline; Grand-Vincent 2017 -43% uncontrolled)"),
    "texture": MetricTruth(12, 9.0, 0.30, 0.05, 2, None, "ASSUMPTION"),
    "pores": MetricTruth(12, 450.0, 0.30, 0.04, 0, None, "ASSUMPTION (Grand-Vincent 2017 -58% uncontrolled, discounted)"),
    "spots": MetricTruth(10, 55.0, 0.40, 0.05, 0, None, "LIT: domain.md suggestion"),
    "brown_spots": MetricTruth(10, 22.0, 0.35, 0.04, 2, None, "LIT: domain.md suggestion"),
    "red_areas": MetricTruth(5, 24.0, 0.35, 0.06, 2, None, "ASSUMPTION"),
    "uv_spots": MetricTruth(4, 18.0, 0.35, 0.03, 2, None, "ASSUMPTION"),
    "melanin_index": MetricTruth(3, 180.0, 0.15, 0.07, 0, "Mexameter MX 18", "ASSUMPTION"),
    "erythema_index": MetricTruth(4, 260.0, 0.20, 0.07, 0, "Mexameter MX 18", "ASSUMPTION"),
    "hydration": MetricTruth(30, 45.0, 0.20, 0.07, 1, "Corneometer CM 825", "LIT: Duteil 2023 +35%, domain.md +30%"),
    "elasticity_r7": MetricTruth(12, 0.45, 0.15, 0.07, 3, "Cutometer MPA 580", "LIT: domain.md +12% (Duteil 2023 firmness +27%)"),
}
PHOTO_METRICS = tuple(m for m, t in METRIC_TRUTH.items() if t.device is None)
INSTRUMENT_METRICS = tuple(m for m, t in METRIC_TRUTH.items() if t.device is not None)
BODY_METRICS = ("hydration", "elasticity_r7")
PHOTO_VIEWS = ("front", "left45", "right45")
VIEW_YAW_DEG = {"front": 0.0, "left45": 45.0, "right45": -45.0}
MELANIN_BY_SKIN_TYPE = {"I": 100.0, "II": 130.0, "III": 180.0, "IV": 260.0, "V": 380.0, "VI": 520.0}

# redness is read about half as strongly from photos of V-VI skin (domain.md); applied to the effect
REDNESS_METRICS = ("red_areas", "erythema_index")
REDNESS_READ_STRENGTH = {"V": 0.5, "VI": 0.5}

# clinics: share of patients, camera, colour-mismatch rate, missing colour card rate (ASSUMPTIONS
# inside the ranges of domain.md: mismatch 1-10%, blur 2-19%, missing card up to 10%)
CLINICS = {
    "C01": dict(share=0.35, camera="VISIA-7", color_mismatch=0.01, missing_card=0.01),
    "C02": dict(share=0.30, camera="Antera 3D", color_mismatch=0.03, missing_card=0.03),
    "C03": dict(share=0.20, camera="LifeViz Mini", color_mismatch=0.06, missing_card=0.05),
    "C04": dict(share=0.15, camera="Smartphone rig", color_mismatch=0.10, missing_card=0.10),
}
CAMERA_BLUR = {"VISIA-7": 0.02, "Antera 3D": 0.06, "LifeViz Mini": 0.11, "Smartphone rig": 0.19}
PRACTITIONERS_PER_CLINIC = 3
PRODUCTS = ("NCTF 135HA", "M-HA10", "CPM-HA20G", "vitamin cocktail")

PHOTO_PROBLEMS = {
    "makeup": 0.03,  # per visit; spots and brown spots read 30% lower, red areas 15% lower
    "pose_off": 0.05,  # per capture; yaw 8-20 deg off the view's angle; wrinkles and pores +-10-20%
    "expression": 0.04,  # per capture; wrinkles +20%; in no column
}
MAKEUP_FACTOR = {"spots": 0.70, "brown_spots": 0.70, "red_areas": 0.85}
EXPRESSION_FACTOR = {"wrinkles": 1.20}
POSE_METRICS = ("wrinkles", "pores")
BLUR_FACTOR = {"wrinkles": 0.85, "texture": 0.85, "pores": 0.85, "spots": 0.90}
COLOR_MISMATCH_SD = {"red_areas": 0.12, "brown_spots": 0.12, "spots": 0.08}

SCREENING_SHARE = 0.20  # patients with a screening photo 7-120 days before the first session
SCREENING_DAYS = (7, 120)
SCREENING_ONLY_BASELINE_SHARE = 0.40  # of screened: no photo on the first session day
SECOND_FOLLOW_UP_SHARE = 0.35
SECOND_FOLLOW_UP_WEEKS = (12, 26)
MID_COURSE_GAIS_SHARE = 0.50  # GAIS at the 3rd session visit

# adverse events per completed session (LIT: domain.md; PIH by skin type from domain.md)
AE_RATES = {"erythema": 0.80, "edema": 0.30, "bruising": 0.12, "nodule": 0.10, "infection": 0.0005}
PIH_RATES = {"I": 0.01, "II": 0.01, "III": 0.01, "IV": 0.07, "V": 0.13, "VI": 0.13}
AE_SEVERITY = {  # mild, moderate, severe (ASSUMPTION: "mostly mild, gone in 48 h", Fanian 2023)
    "erythema": (0.95, 0.045, 0.005), "edema": (0.93, 0.065, 0.005), "bruising": (0.90, 0.095, 0.005),
    "nodule": (0.80, 0.18, 0.02), "pih": (0.70, 0.27, 0.03), "infection": (0.30, 0.50, 0.20),
}
AE_LAG_DAYS = {"erythema": (0, 0), "edema": (0, 1), "bruising": (0, 2), "nodule": (2, 10),
               "pih": (10, 30), "infection": (2, 6)}

DROPOUT_TRIGGERS = ("perceived", "measured")
SHOWN_METRIC = "hydration"  # the reading a "measured" dropout trigger looks at


@dataclass(frozen=True)
class DropoutParams:
    """How strongly dropout depends on outcome (defaults: domain.md's 5%, doubled on a trigger).

    After each completed session a patient stops with probability ``base`` per interval, times
    ``factor`` once a trigger has fired: a moderate or severe adverse event so far, or no
    visible gain (perceived relative gain ``r*(1-exp(-k*n))*age_factor*skin_factor +
    Normal(0, perception_sd)`` below ``no_gain_threshold``). ``factor=1`` makes dropout ignore
    outcomes; a large factor makes poor responders leave early, so naive per-session means
    climb.

    ``trigger`` says what "no visible gain" is judged on:

    - ``"perceived"`` (default): the patient's own impression at home, the latent gain above
      plus perception noise. Nothing in the data records it, so the dropout is *not* missing at
      random: no model of the recorded data can fully correct it.
    - ``"measured"``: the hydration reading the clinic records at that visit, as improvement
      over the baseline reading (the same baseline ``outcomes clean`` picks; unrounded), below
      ``no_gain_threshold`` x Emax, from the second session on. Dropout then depends only on
      recorded data (missing at random for hydration), the case a mixed model handles. The
      tests use ``DropoutParams(factor=10, trigger="measured")`` to show naive means climbing
      while the mixed model stays on the truth.
    """

    base: float = 0.05
    factor: float = 2.0
    no_gain_threshold: float = 0.4
    perception_sd: float = 0.1
    trigger: str = "perceived"

    def __post_init__(self) -> None:
        if not 0 <= self.base <= 1 or self.factor < 0 or self.base * self.factor > 1:
            raise ValueError(f"dropout probabilities must lie in [0, 1]: base={self.base}, factor={self.factor}")
        if self.perception_sd < 0:
            raise ValueError(f"perception_sd must be >= 0, got {self.perception_sd}")
        if self.trigger not in DROPOUT_TRIGGERS:
            raise ValueError(f"trigger must be one of {DROPOUT_TRIGGERS}, got {self.trigger!r}")

    def record(self) -> dict[str, Any]:
        """truth.json["dropout"]: the values used and what they mean."""
        return {
            "base_per_interval": self.base,
            "multiplier": self.factor,
            "triggers": "a moderate or severe adverse event so far, or no visible gain so far",
            "no_visible_gain": f"perceived gain r*(1-exp(-k*n))*age_factor*skin_factor + Normal(0, {self.perception_sd:g})"
                               f" < {self.no_gain_threshold:g} (relative to Emax) after n completed sessions",
            "no_gain_threshold": self.no_gain_threshold,
            "perception_sd": self.perception_sd,
            "effect": "dropouts have no further sessions and no follow-up visit",
        } | ({} if self.trigger == "perceived" else {
            "trigger": "measured",
            "no_visible_gain": f"recorded hydration improvement over the baseline reading (unrounded) at the visit"
                               f" < {self.no_gain_threshold:g} x emax_pct, from the second session on",
        })


# GAIS from the latent relative gain g = improvement / emax (thresholds are ASSUMPTIONS)
GAIS_THRESHOLDS = (0.9, 0.6, 0.3, -0.1)  # g >= 0.9 -> 1, >= 0.6 -> 2, >= 0.3 -> 3, >= -0.1 -> 4, else 5
RATER_NOISE_P = 0.3


def gais_truth() -> dict[str, Any]:
    return {
        "coding": {"1": "very much improved", "2": "much improved", "3": "improved", "4": "no change", "5": "worse"},
        "direction": "lower is better (1 best, 5 worse)",
        "responder_max": GAIS_RESPONDER_MAX,
        "latent": "g = r * (1 - exp(-k n)) * age_factor * skin_type_multiplier * fade",
        "thresholds": {"1": GAIS_THRESHOLDS[0], "2": GAIS_THRESHOLDS[1], "3": GAIS_THRESHOLDS[2],
                       "4": GAIS_THRESHOLDS[3]},
        "rater_noise": {"probability": RATER_NOISE_P, "step": 1},
        "scale_meaning": SCALES["gais"].meaning,
    }


def base_truth(seed: int, n_patients: int, tidy: bool, dropout: DropoutParams | None = None) -> dict[str, Any]:
    """truth.json without the per-patient part and the messiness shares."""
    return {
        "seed": int(seed),
        "n_patients": int(n_patients),
        "tidy": bool(tidy),
        "synthetic": True,
        "model": MODEL_TEXT,
        "k": K,
        "age_ref": AGE_REF,
        "age_slope": AGE_SLOPE,
        "response_factor": {"distribution": "normal", "mean": RESPONSE_MEAN, "sd": RESPONSE_SD},
        "skin_type_multiplier": dict(SKIN_TYPE_MULTIPLIER),
        "half_life_weeks": HALF_LIFE_WEEKS,
        "read_strength": {m: dict(REDNESS_READ_STRENGTH) for m in REDNESS_METRICS},
        "metrics": {
            m: {"emax_pct": float(t.emax_pct), "better": METRICS[m].better, "noise_cv": t.noise_cv,
                "device": t.device or "camera", "source": t.source}
            for m, t in METRIC_TRUTH.items()
        },
        "dropout": (dropout or DropoutParams()).record(),
        "adverse_events": {"per_session": dict(AE_RATES), "pih_by_skin_type": dict(PIH_RATES),
                           "severity_mild_moderate_severe": {k: list(v) for k, v in AE_SEVERITY.items()}},
        "photo_problems": {
            **PHOTO_PROBLEMS,
            "color_mismatch_by_clinic": {c: p["color_mismatch"] for c, p in CLINICS.items()},
            "missing_color_card_by_clinic": {c: p["missing_card"] for c, p in CLINICS.items()},
            "blur_by_camera": dict(CAMERA_BLUR),
        },
        "gais": gais_truth(),
    }


def expected_improvement(truth: dict[str, Any], metric: str, sessions: Any, age: Any, skin_type: Any) -> Any:
    """True population-mean improvement_pct (response factor 1) after `sessions` completed sessions.

    For in-course visits (no fading). Vectorised: arrays broadcast; unknown skin types give NaN.
    Includes the halved reading of redness metrics on skin types V-VI (truth["read_strength"]).
    """
    m = truth["metrics"][metric]
    n = np.asarray(sessions, dtype=float)
    a = np.asarray(age, dtype=float)
    st = np.asarray(skin_type, dtype=object)
    mult_map = truth["skin_type_multiplier"]
    read_map = truth.get("read_strength", {}).get(metric, {})
    flat = st.reshape(-1)
    mult = np.array([mult_map.get(s, np.nan) if isinstance(s, str) else np.nan for s in flat]).reshape(st.shape)
    read = np.array([read_map.get(s, 1.0) if isinstance(s, str) else 1.0 for s in flat]).reshape(st.shape)
    out = (m["emax_pct"] * (1.0 - np.exp(-truth["k"] * n))
           * (1.0 + truth["age_slope"] * (a - truth["age_ref"])) * mult * read)
    return float(out) if np.ndim(out) == 0 else out


# every metric of the registry an instrument or camera system exports; the metrics measured from the
# photos themselves (contract.PHOTO_MEASURED_METRICS) come from the photo simulator
# (outcomes.photos.simulate), not from these rows
assert tuple(SKIN_TYPE_SHARES) == SKIN_TYPES and set(METRIC_TRUTH) == set(METRICS) - set(PHOTO_MEASURED_METRICS)
