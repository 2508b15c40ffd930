"""One patient against the cohort: who is eligible, and the band their course should fall in.

A practitioner asks "is my patient doing as expected?". The answer is the cohort model's
expected curve for the patient's age and skin type with a *prediction* band (where 95% of
comparable patients' single measurements fall: the mean's uncertainty plus between-patient
and visit-to-visit variation), not the narrow confidence band of the mean.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

MIN_SESSIONS_FOR_REPORT = 2


def eligible_patients(outcomes: pd.DataFrame, metrics: Sequence[str], view: str = "front") -> list[str]:
    """Patients with known age and skin type and a measured improvement after at least two
    different session counts in one of `metrics`, sorted by id (a stable choice for `pick`)."""
    rows = outcomes.loc[
        outcomes["metric"].isin(list(metrics)) & (outcomes["view"] == view) & (outcomes["sessions"] > 0)
        & outcomes["improvement_pct"].notna() & outcomes["skin_type"].notna() & outcomes["age"].notna()
    ]
    counts = rows.groupby("patient_id")["sessions"].nunique()
    return sorted(counts.index[counts >= MIN_SESSIONS_FOR_REPORT].astype(str))


def choose_patient(outcomes: pd.DataFrame, metrics: Sequence[str], patient_id: str = "", pick: int = 0) -> str:
    """`patient_id` if given (it must exist), else the `pick`-th eligible patient."""
    if patient_id:
        if not (outcomes["patient_id"].astype(str) == patient_id).any():
            raise ValueError(f"patient {patient_id!r} has no outcome rows in this processed data")
        return patient_id
    eligible = eligible_patients(outcomes, metrics)
    if not eligible:
        raise ValueError("no patient has measurements after two or more session counts; nothing to report")
    if not 0 <= pick < len(eligible):
        raise ValueError(f"pick {pick} is out of range: {len(eligible)} eligible patients (0..{len(eligible) - 1})")
    return eligible[pick]


def expected_course(model, age: float, skin_type: str, sessions: Sequence[int] | None = None,
                    level: float = 0.95) -> pd.DataFrame:
    """Expected improvement for a patient of this age and skin type after each session count:
    `estimate` with its CI (`ci_low`, `ci_high`) and a prediction band (`pred_low`, `pred_high`)."""
    sessions = np.arange(1, model.max_sessions_ + 1) if sessions is None else np.asarray(sessions)
    frame = model.frame(sessions, age, skin_type)
    pred = model.predict(frame, ci=True, level=level)
    mixed = model.mixed_
    z = mixed.re_design_.build(frame.assign(age_c=0.0)).to_numpy()
    cov_re = np.asarray(mixed.result_.cov_re, dtype=float)
    var_between = np.einsum("ij,jk,ik->i", z, cov_re, z)
    spread = np.sqrt(pred["std_error"].to_numpy() ** 2 + var_between + float(mixed.result_.scale))
    q = stats.norm.ppf(0.5 + level / 2)
    out = frame[["sessions"]].assign(**{c: pred[c].to_numpy() for c in ("estimate", "ci_low", "ci_high")})
    out["pred_low"] = out["estimate"] - q * spread
    out["pred_high"] = out["estimate"] + q * spread
    return out.reset_index(drop=True)


def subplots(nrows: int, ncols: int, **kwargs):
    """pyplot.subplots, imported late so this module stays light."""
    import matplotlib.pyplot as plt

    return plt.subplots(nrows, ncols, **kwargs)


def plot_course(expected: pd.DataFrame, points: pd.DataFrame, ax=None, title: str | None = None):
    """The patient's measurements (dots; crosses when quality-flagged) over the expected course
    (line), its confidence band (dark grey) and prediction band (light grey). Grey-print safe."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4, 3))
    x = expected["sessions"]
    ax.fill_between(x, expected["pred_low"], expected["pred_high"], color="0.88", lw=0, label="comparable patients")
    ax.fill_between(x, expected["ci_low"], expected["ci_high"], color="0.62", lw=0, label="expected (95% CI)")
    ax.plot(x, expected["estimate"], color="0.15", lw=1.4, ls="--")
    flagged = ~points["qc_ok"].astype(bool)
    ax.plot(points.loc[~flagged, "sessions"], points.loc[~flagged, "improvement_pct"], "o-", color="black", ms=4.5,
            label="this patient")
    if flagged.any():
        ax.plot(points.loc[flagged, "sessions"], points.loc[flagged, "improvement_pct"], "x", color="black", ms=6,
                label="flagged photo")
    ax.axhline(0, color="0.4", lw=0.6)
    ax.set_xlabel("completed sessions")
    ax.set_ylabel("improvement (%)")
    if title:
        ax.set_title(title, fontsize=9)
    return ax
