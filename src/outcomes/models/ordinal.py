"""Ordinal model: GAIS grade versus sessions, age and skin type.

GAIS is a 1-5 grade (1 very much improved ... 3 improved, 4 no change, 5 worse), not a
number: a proportional-odds (cumulative logit) model respects that. statsmodels
OrderedModel, parametrised like R's ``ordinal::clm``::

    P(grade <= j) = F(threshold_j - x'beta)

so a positive coefficient pushes toward HIGHER grades, which on GAIS means WORSE. The
headline number is the probability of "improved or better" (GAIS <= 3) for a group.
Repeated grades of one patient are not independent: pass ``group`` to get cluster-robust
standard errors.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.miscmodels.ordinal_model import OrderedModel

from ..contract import GAIS_RESPONDER_MAX, SKIN_TYPE_DTYPE
from ._design import Design, as_categories, complete_rows, require_columns
from ._tidy import interval, tidy_table

LINKS = {"logit": "logit", "probit": "probit"}


class OrdinalModel:
    """Cumulative link model for an ordered grade."""

    def __init__(self, outcome: str = "score", covariates: Sequence[str] = ("sessions", "age_c", "skin_type"),
                 link: str = "logit", group: str | None = None) -> None:
        if link not in LINKS:
            raise ValueError(f"link must be one of {sorted(LINKS)}, got {link!r}")
        if not covariates:
            raise ValueError("give at least one covariate")
        self.outcome = outcome
        self.covariates = tuple(covariates)
        self.link = link
        self.group = group

    def fit(self, data: pd.DataFrame) -> OrdinalModel:
        cols = [self.outcome, *self.covariates, *([self.group] if self.group else [])]
        require_columns(data, cols)
        rows = as_categories(complete_rows(data, cols), self.covariates)
        grades = np.sort(rows[self.outcome].unique())
        if len(grades) < 2:
            raise ValueError(f"{self.outcome!r} has a single grade {grades}; nothing to model")
        self.grades_ = list(grades)
        endog = pd.Series(pd.Categorical(rows[self.outcome], categories=grades, ordered=True), index=rows.index)
        self.design_ = Design(" + ".join(self.covariates))
        exog = self.design_.fit(rows).drop(columns="Intercept")  # the thresholds play the intercept
        model = OrderedModel(endog, exog, distr=LINKS[self.link])
        fit_kw = {"method": "bfgs", "disp": False, "maxiter": 2000, "gtol": 1e-8}
        if self.group:
            codes = pd.factorize(rows[self.group])[0]
            res = model.fit(cov_type="cluster", cov_kwds={"groups": codes}, **fit_kw)
        else:
            res = model.fit(**fit_kw)
        self.result_ = res
        self.converged_ = bool(res.mle_retvals.get("converged", False))
        k = exog.shape[1]
        params = np.asarray(res.params)
        cov = np.asarray(res.cov_params())
        self.fixed_ = tidy_table(params[:k], np.sqrt(np.diag(cov)[:k]), terms=list(exog.columns))
        # thresholds: statsmodels stores the first cut and log-increments; report the cuts
        raw = params[k:]
        jac = np.zeros((len(raw), len(raw)))
        jac[:, 0] = 1.0
        for j in range(1, len(raw)):
            jac[j:, j] = np.exp(raw[j])
        cuts = raw[0] + np.concatenate([[0.0], np.cumsum(np.exp(raw[1:]))])
        cov_cuts = jac @ cov[k:, k:] @ jac.T
        names = [f"{a}|{b}" for a, b in zip(grades[:-1], grades[1:])]
        self.thresholds_ = tidy_table(cuts, np.sqrt(np.diag(cov_cuts)), terms=names)
        self._cov_all = np.block([[cov[:k, :k], cov[:k, k:] @ jac.T], [jac @ cov[k:, :k], cov_cuts]])
        self.llf_ = float(res.llf)
        self.n_obs_ = len(rows)
        self.rows_ = rows
        return self

    fixed = property(lambda self: self.fixed_)
    converged = property(lambda self: self.converged_)
    llf = property(lambda self: self.llf_)

    @property
    def summary(self) -> pd.DataFrame:
        return pd.concat([self.fixed_, self.thresholds_.rename(index=lambda s: f"threshold {s}")])

    def _x(self, new: pd.DataFrame) -> np.ndarray:
        return self.design_.build(new).drop(columns="Intercept").to_numpy()

    def predict(self, new: pd.DataFrame) -> pd.DataFrame:
        """Probability of each grade for each row of ``new``."""
        x = self._x(new)
        eta = x @ self.fixed_["estimate"].to_numpy()
        cuts = np.concatenate([[-np.inf], self.thresholds_["estimate"].to_numpy(), [np.inf]])
        cdf = self._cdf(cuts[None, :] - eta[:, None])
        return pd.DataFrame(np.diff(cdf, axis=1), columns=self.grades_, index=new.index)

    def prob_at_most(self, grade, new: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
        """P(grade <= ``grade``) per row, with a delta-method CI built on the link scale."""
        j = self.grades_.index(grade)
        if j == len(self.grades_) - 1:
            return pd.DataFrame({"estimate": 1.0, "ci_low": 1.0, "ci_high": 1.0}, index=new.index)
        x = self._x(new)
        k = x.shape[1]
        eta = self.thresholds_["estimate"].iloc[j] - x @ self.fixed_["estimate"].to_numpy()
        grad = np.zeros((len(x), k + len(self.thresholds_)))
        grad[:, :k] = -x
        grad[:, k + j] = 1.0
        se = np.sqrt(np.einsum("ij,jk,ik->i", grad, self._cov_all, grad))
        low, high = interval(eta, se, level)
        return pd.DataFrame({"estimate": self._cdf(eta), "ci_low": self._cdf(low), "ci_high": self._cdf(high)},
                            index=new.index)

    def responder_probability(self, new: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
        """P(GAIS <= 3: improved or better) for each row (group) of ``new``, with CI."""
        return pd.concat([new.reset_index(drop=True),
                          self.prob_at_most(GAIS_RESPONDER_MAX, new, level).reset_index(drop=True)], axis=1)

    def _cdf(self, z):
        return stats.logistic.cdf(z) if self.link == "logit" else stats.norm.cdf(z)

    def plot(self, ax=None, new: pd.DataFrame | None = None, x: str = "sessions", hue: str | None = None):
        """P(improved or better) against ``x`` (default sessions) for the rows of ``new``."""
        from .. import plots

        if new is None:
            new = _default_grid(self.rows_, x, hue)
        table = self.responder_probability(new)
        return plots.probability_curves(table, x=x, hue=hue, ax=ax, ylabel="P(GAIS ≤ 3: improved or better)")

    def __repr__(self) -> str:
        state = "unfitted" if not hasattr(self, "result_") else f"n={self.n_obs_}, converged={self.converged_}"
        return f"OrdinalModel({self.outcome} ~ {' + '.join(self.covariates)}, {self.link}; {state})"


def _default_grid(rows: pd.DataFrame, x: str, hue: str | None) -> pd.DataFrame:
    """x over its observed values, hue over its levels, everything else at a typical value."""
    typical = {}
    for col in rows.columns:
        s = rows[col]
        if isinstance(s.dtype, pd.CategoricalDtype):
            typical[col] = s.mode().iloc[0]
        elif pd.api.types.is_numeric_dtype(s):
            typical[col] = float(s.median())
    xs = np.sort(rows[x].unique())
    hues = list(rows[hue].cat.categories) if hue else [None]
    out = []
    for h in hues:
        for v in xs:
            row = dict(typical)
            row[x] = v
            if hue:
                row[hue] = h
            out.append(row)
    grid = pd.DataFrame(out)
    for col in rows.columns:
        if col in grid and isinstance(rows[col].dtype, pd.CategoricalDtype):
            grid[col] = pd.Categorical(grid[col], dtype=rows[col].dtype)
    return grid


def gais_frame(assessments: pd.DataFrame, patients: pd.DataFrame, rater: str | None = "clinician") -> pd.DataFrame:
    """GAIS grades with the patient's age (and age_c), skin type and sex, ready for fit_ordinal.

    Rows with a missing grade, unknown skin type or age are left out here (as in every model).
    """
    require_columns(assessments, ["patient_id", "scale", "score", "sessions"], "assessments")
    require_columns(patients, ["patient_id", "age", "skin_type"], "patients")
    g = assessments.loc[assessments["scale"] == "gais"]
    if rater is not None and "rater" in g:
        g = g.loc[g["rater"] == rater]
    cols = ["patient_id", "age", "skin_type"] + (["sex"] if "sex" in patients else [])
    g = g.drop(columns=[c for c in cols[1:] if c in g]).merge(patients[cols], on="patient_id", how="left")
    g = g.dropna(subset=["score", "age", "skin_type", "sessions"]).copy()
    g["score"] = g["score"].round().astype(int)
    g["sessions"] = g["sessions"].astype(int)
    g["age_c"] = (g["age"].astype(float) - 45.0) / 10.0
    g["skin_type"] = g["skin_type"].astype(SKIN_TYPE_DTYPE)
    return g.reset_index(drop=True)


def fit_ordinal(data: pd.DataFrame, outcome: str = "score",
                covariates: Sequence[str] = ("sessions", "age_c", "skin_type"), link: str = "logit",
                group: str | None = None) -> OrdinalModel:
    """Construct and fit an :class:`OrdinalModel`."""
    return OrdinalModel(outcome, covariates, link, group).fit(data)
