"""Sessions to response: how many sessions until a patient first shows a visible gain.

Per patient, the first session count at which improvement reaches ``threshold`` (default 10%)
is the event time. A patient who stops (or whose record ends) before reaching it is
censored at the last session count observed: we know only that response needs more than
that. Survival curves over session count (statsmodels SurvfuncRight, Kaplan-Meier) by group,
the median sessions to response with its CI, and a Cox model (PHReg, Efron ties) for age and
skin type. Session counts are few and tied, so the Cox hazard ratios are a summary, not a
precise rate.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..contract import DEFAULT_VIEW, SKIN_TYPE_DTYPE
from ._design import Design, as_categories
from ._tidy import tidy_table
from .improvement import AGE_BAND_DTYPE, OUTCOME, age_band, centred_age, model_rows

if TYPE_CHECKING:
    from statsmodels.duration.survfunc import SurvfuncRight


def first_response(rows: pd.DataFrame, threshold: float = 10.0) -> pd.DataFrame:
    """One row per patient: ``sessions`` (event or censoring count) and ``responded`` (bool).

    Rows must hold patient_id, sessions and improvement_pct; baseline rows (sessions 0) are
    ignored. Patients without any post-baseline measurement are left out (nothing to say).
    """
    post = rows.loc[rows["sessions"] > 0, ["patient_id", "sessions", OUTCOME]].sort_values(["patient_id", "sessions"])
    hit = post[OUTCOME] >= threshold
    first_hit = post.loc[hit].groupby("patient_id")["sessions"].min()
    last_seen = post.groupby("patient_id")["sessions"].max()
    out = pd.DataFrame({"last_seen": last_seen})
    out["responded"] = out.index.isin(first_hit.index)
    out["sessions"] = first_hit.reindex(out.index).fillna(out["last_seen"]).astype(int)
    return out.drop(columns="last_seen").reset_index()


class ResponseModel:
    """Time (in sessions) to first reaching an improvement threshold, with censoring."""

    def __init__(self, metric: str, threshold: float = 10.0, by: str | None = "skin_type",
                 view: str | None = DEFAULT_VIEW, patients: pd.DataFrame | None = None,
                 include_flagged: bool = False) -> None:
        if by not in (None, "skin_type", "age_band"):
            raise ValueError("by must be None, 'skin_type' or 'age_band'")
        self.metric, self.threshold, self.by, self.view = metric, threshold, by, view
        self.patients, self.include_flagged = patients, include_flagged

    def fit(self, outcomes: pd.DataFrame) -> ResponseModel:
        rows, self.dropped_ = model_rows(outcomes, self.metric, self.view, self.include_flagged,
                                         keep_baseline=True, patients=self.patients)
        per_patient = first_response(rows, self.threshold)
        info = rows.drop_duplicates("patient_id").set_index("patient_id")[["age", "skin_type"]]
        data = per_patient.join(info, on="patient_id")
        data["age_band"] = age_band(data["age"]).to_numpy()
        data["age_c"] = centred_age(data["age"].astype(float))
        data["skin_type"] = data["skin_type"].astype(SKIN_TYPE_DTYPE)
        self.data_ = data
        self.curves_ = self._curves(data)
        self.medians_ = self._medians(data)
        self.hazard_ratios_ = self._cox(data)
        return self

    def _groups(self, data: pd.DataFrame):
        if self.by is None:
            yield "all", data
            return
        for level, part in data.groupby(self.by, observed=True):
            yield str(level), part

    def _curves(self, data: pd.DataFrame) -> pd.DataFrame:
        from statsmodels.duration.survfunc import SurvfuncRight  # here, not at import: statsmodels is slow to load

        out = []
        for level, part in self._groups(data):
            sf = SurvfuncRight(part["sessions"].to_numpy(float), part["responded"].to_numpy(int))
            with np.errstate(invalid="ignore"):
                ci = _pointwise_ci(sf)
            out.append(pd.DataFrame({"group": level, "sessions": np.r_[0, sf.surv_times],
                                     "survival": np.r_[1.0, sf.surv_prob], "ci_low": np.r_[1.0, ci[0]],
                                     "ci_high": np.r_[1.0, ci[1]], "at_risk": np.r_[len(part), sf.n_risk],
                                     "responded": np.r_[0, sf.n_events]}))
        return pd.concat(out, ignore_index=True)

    def _medians(self, data: pd.DataFrame) -> pd.DataFrame:
        """Median = first session count where the curve reaches 0.5; its CI = where the
        pointwise band reaches 0.5 (as R's survival::survfit reports it). inf: not reached."""
        out = []
        for level, part in self._groups(data):
            c = self.curves_.loc[self.curves_["group"] == level]
            first = lambda col: float(c.loc[c[col] <= 0.5, "sessions"].min()) if (c[col] <= 0.5).any() else np.inf
            out.append({"group": level, "patients": len(part), "responded": int(part["responded"].sum()),
                        "median_sessions": first("survival"), "ci_low": first("ci_low"), "ci_high": first("ci_high")})
        return pd.DataFrame(out)

    def _cox(self, data: pd.DataFrame) -> pd.DataFrame:
        d = as_categories(data, ["skin_type"])
        terms = [t for t, varies in (("age_c", d["age_c"].nunique() > 1), ("skin_type", d["skin_type"].nunique() > 1))
                 if varies]
        if not terms or not d["responded"].any():
            return tidy_table([], [], terms=[])  # nothing varies (or nobody responded): nothing to compare
        design = Design(" + ".join(terms))
        x = design.fit(d).drop(columns="Intercept")
        from statsmodels.duration.hazard_regression import PHReg

        model = PHReg(d["sessions"].to_numpy(float), x.to_numpy(), status=d["responded"].to_numpy(int), ties="efron")
        res = model.fit()
        table = tidy_table(res.params, res.bse, terms=list(x.columns))
        table.insert(1, "hazard_ratio", np.exp(table["estimate"]))
        table["hr_ci_low"], table["hr_ci_high"] = np.exp(table["ci_low"]), np.exp(table["ci_high"])
        return table

    fixed = property(lambda self: self.hazard_ratios_)

    @property
    def summary(self) -> pd.DataFrame:
        """Median sessions to response per group (inf: median not reached)."""
        return self.medians_

    def predict(self, new: pd.DataFrame) -> pd.DataFrame:
        """Kaplan-Meier share not yet responding after each session count in ``new['sessions']``
        for the group in ``new['group']`` (or the single curve)."""
        out = []
        for _, row in new.iterrows():
            g = row.get("group", "all")
            c = self.curves_.loc[self.curves_["group"] == str(g)]
            c = c.loc[c["sessions"] <= row["sessions"]].iloc[-1]
            out.append({"survival": c["survival"], "ci_low": c["ci_low"], "ci_high": c["ci_high"]})
        return pd.DataFrame(out, index=new.index)

    def plot(self, ax=None):
        from .. import plots

        return plots.survival_curves(self.curves_, ax=ax,
                                     title=f"{self.metric}: sessions until improvement ≥ {self.threshold:g}%")

    def __repr__(self) -> str:
        if not hasattr(self, "data_"):
            return f"ResponseModel({self.metric!r}; unfitted)"
        return (f"ResponseModel({self.metric!r}, threshold={self.threshold:g}; patients={len(self.data_)}, "
                f"responded={int(self.data_['responded'].sum())})")


def _pointwise_ci(sf: SurvfuncRight, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Log-log pointwise CI for the Kaplan-Meier curve (stays inside [0, 1])."""
    from scipy import stats

    z = stats.norm.ppf(0.5 + level / 2)
    s = np.asarray(sf.surv_prob, dtype=float)
    se = np.asarray(sf.surv_prob_se, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        theta = np.log(-np.log(s))
        se_t = se / (s * np.abs(np.log(s)))
        low = np.exp(-np.exp(theta + z * se_t))
        high = np.exp(-np.exp(theta - z * se_t))
    low = np.where(np.isfinite(low), low, s)
    high = np.where(np.isfinite(high), high, s)
    return low, high


def sessions_to_response(outcomes: pd.DataFrame, metric: str, threshold: float = 10.0,
                         by: str | None = "skin_type", **kwargs) -> ResponseModel:
    """Fit a :class:`ResponseModel` (see there)."""
    return ResponseModel(metric, threshold, by, **kwargs).fit(outcomes)


__all__ = ["AGE_BAND_DTYPE", "ResponseModel", "first_response", "sessions_to_response"]
