"""Sessions to response: how many sessions until a patient first shows a visible gain.

Per patient, the first session count at which improvement reaches ``threshold`` (default: the
metric's smallest important change, ``contract.METRICS[m].min_important``) is the event time. A patient who stops (or whose record ends) before reaching it is
censored at the last session count observed: we know only that response needs more than
that. Survival curves over session count (statsmodels SurvfuncRight, Kaplan-Meier) by group,
the median sessions to response with its CI, and a Cox model (PHReg, Efron ties) for age and
skin type (and any further covariates). Session counts are few and tied, so the Cox hazard
ratios are a summary, not a precise rate.

``summary`` (= ``fixed_``) is the Cox model's tidy table on the log scale (estimate = log hazard
ratio, with std_error, ci_low, ci_high, p_value, as every model's), followed by the same on the
hazard-ratio scale: ``hazard_ratio``, ``hr_ci_low``, ``hr_ci_high``. A hazard ratio above 1 means
a faster response.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..contract import DEFAULT_VIEW, SKIN_TYPE_DTYPE, in_unit, min_important
from ._design import Design, as_categories
from ._tidy import Coefficients, tidy_table
from .improvement import (AGE_BAND_DTYPE, OUTCOME, age_band, attach_columns, centred_age, improvement_unit, model_rows,
                          split_tables)

if TYPE_CHECKING:
    from statsmodels.duration.survfunc import SurvfuncRight


def first_response(rows: pd.DataFrame, threshold: float = 10.0) -> pd.DataFrame:
    """One row per patient: ``sessions`` (event or censoring count) and ``responded`` (bool).

    Rows must hold patient_id, sessions and improvement; baseline rows (sessions 0) are
    ignored. Patients without any post-baseline measurement are left out (nothing to say).

    Examples
    --------
    >>> import pandas as pd
    >>> from outcomes import models
    >>> rows = pd.DataFrame({"patient_id": ["a", "a", "a", "b", "b"], "sessions": [0, 1, 2, 0, 1],
    ...                      "improvement": [0.0, 4.0, 12.0, 0.0, 3.0]})
    >>> models.first_response(rows, threshold=10).to_dict("records")
    [{'patient_id': 'a', 'responded': True, 'sessions': 2}, {'patient_id': 'b', 'responded': False, 'sessions': 1}]
    """
    post = rows.loc[rows["sessions"] > 0, ["patient_id", "sessions", OUTCOME]].sort_values(["patient_id", "sessions"])
    hit = post[OUTCOME] >= threshold
    first_hit = post.loc[hit].groupby("patient_id")["sessions"].min()
    last_seen = post.groupby("patient_id")["sessions"].max()
    out = pd.DataFrame({"last_seen": last_seen})
    out["responded"] = out.index.isin(first_hit.index)
    out["sessions"] = first_hit.reindex(out.index).fillna(out["last_seen"]).astype(int)
    return out.drop(columns="last_seen").reset_index()


class ResponseModel(Coefficients):
    """Time (in sessions) to first reaching an improvement threshold, with censoring.

    Fitted attributes: ``curves_`` (Kaplan-Meier by group), ``medians_`` (median sessions to
    response per group; inf: not reached), ``fixed_`` (= ``summary``: the Cox model, log hazard
    ratios and hazard ratios), ``cov_fixed_``, ``data_`` (one row per patient), ``dropped_``.

    Parameters
    ----------
    metric : str
        The metric whose improvement is followed.
    threshold : float or None
        Improvement that counts as a response (percent of baseline; the metric's own unit on an
        interval scale). None: the metric's smallest important change (``contract.min_important``).
    by : str or None
        Column that splits the curves: ``age_band``, ``skin_type``, or any patient-level column
        (``clinic_id``, ``concern``, ``area``: the treated area, ``sex``, a column of the patients
        table) or session-level one (``product``, ``practitioner_id``: the value at the patient's first session;
        needs the processed tables in :meth:`fit`). None: one curve.
    covariates : sequence of str
        Further Cox covariates beyond age and skin type (the same kinds of column as ``by``).
    view, patients, include_flagged
        As for :class:`ImprovementModel`.

    Examples
    --------
    >>> from outcomes import models, simulation
    >>> tables = simulation.demo_tables(n_patients=120, seed=3)
    >>> r = models.ResponseModel("hydration", by="clinic_id").fit(tables)
    >>> r.medians_.columns.tolist()
    ['group', 'patients', 'responded', 'median_sessions', 'ci_low', 'ci_high']
    >>> r.summary.columns.tolist()[:5]
    ['estimate', 'std_error', 'ci_low', 'ci_high', 'p_value']
    """

    def __init__(self, metric: str, threshold: float | None = None, by: str | None = "skin_type", *,
                 covariates: Sequence[str] = (), view: str | None = DEFAULT_VIEW,
                 patients: pd.DataFrame | None = None, include_flagged: bool = False) -> None:
        # None: the metric's smallest important change (a response is a change a patient would
        # notice, in percent of the baseline or the metric's own unit): one number for every metric
        # would be 10 degrees of ITA° or 10 CIELAB units, far beyond what is noticed
        threshold = min_important(metric) if threshold is None else float(threshold)
        self.metric, self.threshold, self.by, self.view = metric, threshold, by, view
        self.covariates = tuple(covariates)
        self.patients, self.include_flagged = patients, include_flagged

    def fit(self, data: pd.DataFrame | Mapping[str, pd.DataFrame]) -> ResponseModel:
        """Fit to the processed tables or the outcomes table (rows as for ``fit_improvement``)."""
        outcomes, patients, sessions = split_tables(data, self.patients)
        rows, self.dropped_ = model_rows(outcomes, self.metric, self.view, self.include_flagged,
                                         keep_baseline=True, patients=patients)
        per_patient = first_response(rows, self.threshold)
        info = rows.drop_duplicates("patient_id").set_index("patient_id")[["age", "skin_type"]]
        data = per_patient.join(info, on="patient_id")
        data["age_band"] = age_band(data["age"]).to_numpy()
        data["age_c"] = centred_age(data["age"].astype(float))
        data["skin_type"] = data["skin_type"].astype(SKIN_TYPE_DTYPE)
        extra = [c for c in dict.fromkeys([*([self.by] if self.by else []), *self.covariates]) if c not in data]
        if extra:  # patient-level: the first row's value; session-level: the first session's
            first = rows.sort_values("sessions", kind="stable").drop_duplicates("patient_id").set_index("patient_id")
            probe = pd.DataFrame({"patient_id": data["patient_id"], "sessions": 1})
            for col in extra:
                if col in first:
                    data[col] = data["patient_id"].map(first[col]).to_numpy()
                else:
                    data[col] = attach_columns(probe, [col], patients, sessions)[col].to_numpy()
        self.data_ = data
        self.curves_ = self._curves(data)
        self.medians_ = self._medians(data)
        self.fixed_, self.cov_fixed_ = self._cox(data)
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

    def _cox(self, data: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        candidates = ["age_c", "skin_type", *self.covariates]
        d = as_categories(data.loc[data[candidates].notna().all(axis=1)], candidates[1:])
        terms = [t for t in candidates if d[t].nunique() > 1]
        if not terms or not d["responded"].any():  # nothing varies (or nobody responded): nothing to compare
            return tidy_table([], [], terms=[]), pd.DataFrame()
        self.design_ = Design(" + ".join(terms))
        x = self.design_.fit(d).drop(columns="Intercept")
        from statsmodels.duration.hazard_regression import PHReg

        model = PHReg(d["sessions"].to_numpy(float), x.to_numpy(), status=d["responded"].to_numpy(int), ties="efron")
        res = model.fit()
        table = tidy_table(res.params, res.bse, terms=list(x.columns))
        table["hazard_ratio"] = np.exp(table["estimate"])
        table["hr_ci_low"], table["hr_ci_high"] = np.exp(table["ci_low"]), np.exp(table["ci_high"])
        cov = pd.DataFrame(np.asarray(res.cov_params()), index=x.columns, columns=x.columns)
        return table, cov

    @property
    def summary(self) -> pd.DataFrame:
        """The Cox model: log hazard ratios (estimate ... p_value) and hazard ratios."""
        return self.fixed_

    def _threshold_text(self) -> str:
        return in_unit(self.threshold, improvement_unit(self.metric), "g")

    def _summary_title(self) -> str:
        return f"ResponseModel: sessions until {self.metric} improves by >= {self._threshold_text()}"

    def _summary_lines(self) -> list[str]:
        return [f"{len(self.data_)} patients, {int(self.data_['responded'].sum())} responded; Cox model (Efron ties), "
                "estimate = log hazard ratio (hazard_ratio > 1: faster response)"]

    def _summary_extra(self) -> list[tuple[str, pd.DataFrame]]:
        return [(f"median sessions to response by {self.by or 'nothing'} (inf: not reached)",
                 self.medians_.set_index("group"))]

    def _model_rows(self) -> pd.DataFrame:
        return as_categories(self.data_, [c for c in ("skin_type", *self.covariates) if c in self.data_])

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

    def plot(self, ax=None, **kwargs):
        """Kaplan-Meier curves by group; ``kwargs`` go to :func:`outcomes.plots.survival_curves`."""
        from .. import plots

        kwargs.setdefault("title", f"{self.metric}: sessions until improvement ≥ {self._threshold_text()}")
        return plots.survival_curves(self.curves_, ax=ax, **kwargs)

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


def fit_response(data: pd.DataFrame | Mapping[str, pd.DataFrame], metric: str, threshold: float | None = None,
                 by: str | None = "skin_type", *, covariates: Sequence[str] = (), view: str | None = DEFAULT_VIEW,
                 patients: pd.DataFrame | None = None, include_flagged: bool = False) -> ResponseModel:
    """Fit a :class:`ResponseModel` (see there): ``ResponseModel(metric, ...).fit(data)``.

    Examples
    --------
    >>> from outcomes import models, simulation
    >>> r = models.fit_response(simulation.demo_tables(n_patients=120, seed=3), "hydration", by="sex")
    >>> int(r.medians_["patients"].sum()) == len(r.data_)
    True
    """
    return ResponseModel(metric, threshold, by, covariates=covariates, view=view, patients=patients,
                         include_flagged=include_flagged).fit(data)


__all__ = ["AGE_BAND_DTYPE", "ResponseModel", "first_response", "fit_response"]
