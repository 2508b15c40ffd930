"""GEE: the population-averaged view of the same question, as a check on the mixed model.

Generalised estimating equations (statsmodels GEE) estimate the mean curve directly and
protect the standard errors with the robust (sandwich) estimator, so a wrong guess of the
within-patient correlation (exchangeable or AR(1)) costs efficiency, not validity. Unlike
the mixed model, GEE is only valid when dropout is unrelated to the outcome (MCAR); a
disagreement between the two is itself a finding worth reporting.

The scale and correlation are estimated without a degrees-of-freedom correction
(``ddof_scale=0``), as R's geepack does, so results can be checked against it. The fit is
statsmodels' GEE algorithm with the per-patient solves batched by cluster size
(``_batched_gee.py``); statsmodels' own GEE is kept behind ``result_`` as the reference.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ._batched_gee import BatchedGEE, Family
from ._design import Design, curve_rhs, panel_rows
from ._tidy import Coefficients, interval, tidy_table

COV_STRUCTS = ("exchangeable", "ar1", "independence")
FAMILIES = ("gaussian", "binomial", "poisson")


class GEEModel(Coefficients):
    """outcome ~ f(time) + covariates, clustered by group, robust standard errors.

    Fitted attributes end in ``_``: ``fixed_`` (= ``summary``, the tidy table with robust SEs),
    ``cov_fixed_``, ``converged_``, ``dependence_`` (the working correlation's parameter),
    ``scale_``, ``n_obs_``, ``n_groups_``, ``rows_``.

    Examples
    --------
    >>> from outcomes import models, simulation
    >>> tables = simulation.demo_tables(n_patients=120, seed=3)
    >>> rows = models.fit_improvement(tables, "hydration", interactions=()).rows_
    >>> g = models.GEEModel("improvement_pct", "sessions", "patient_id", ["age_c", "skin_type"],
    ...                     time_transform="log1p").fit(rows)
    >>> g.converged_, bool(g.summary.loc["np.log1p(sessions)", "estimate"] > 0)
    (True, True)
    """

    def __init__(
        self,
        outcome: str,
        time: str,
        group: str,
        covariates: Sequence[str] = (),
        cov_struct: str = "exchangeable",
        family: str = "gaussian",
        time_transform: str = "identity",
        interactions: Sequence[str] = (),
        spline_df: int = 3,
    ) -> None:
        if cov_struct not in COV_STRUCTS:
            raise ValueError(f"cov_struct must be one of {COV_STRUCTS}, got {cov_struct!r}")
        if family not in FAMILIES:
            raise ValueError(f"family must be one of {sorted(FAMILIES)}, got {family!r}")
        self.outcome, self.time, self.group = outcome, time, group
        self.covariates = tuple(covariates)
        self.cov_struct = cov_struct
        self.family = family
        self.time_transform = time_transform
        self.interactions = tuple(interactions)
        self.spline_df = spline_df
        curve_rhs(time, time_transform, covariates, interactions, spline_df)  # checks the formula's parts

    @property
    def rhs(self) -> str:
        return curve_rhs(self.time, self.time_transform, self.covariates, self.interactions, self.spline_df)

    def fit(self, data: pd.DataFrame) -> GEEModel:
        rows = panel_rows(data, self.outcome, self.time, self.group, self.covariates)
        self.design_ = Design(self.rhs)
        exog = self.design_.fit(rows)
        y = rows[self.outcome].astype(float).to_numpy()
        groups, time = rows[self.group].to_numpy(), rows[self.time].to_numpy(dtype=float)
        self._fit_inputs = (y, exog, groups, time)
        try:
            fit = BatchedGEE(y, exog.to_numpy(dtype=float), groups, time, self.family, self.cov_struct).fit()
        except np.linalg.LinAlgError as err:  # statsmodels projects such a correlation to the nearest valid one
            warnings.warn(f"GEE {self.outcome} ~ {self.rhs}: {err}; fitting with statsmodels' GEE instead",
                          RuntimeWarning, stacklevel=2)
            fit = _from_statsmodels(self.result_, self.cov_struct)
        self.converged_ = fit["converged"]
        if not self.converged_:
            from statsmodels.tools.sm_exceptions import ConvergenceWarning

            warnings.warn(f"GEE {self.outcome} ~ {self.rhs} did NOT converge (score norm {fit['score_norm']:.3g})",
                          ConvergenceWarning, stacklevel=2)
        self.fixed_ = tidy_table(fit["params"], np.sqrt(np.diag(fit["cov_robust"])), terms=list(exog.columns))
        self.cov_fixed_ = pd.DataFrame(fit["cov_robust"], index=exog.columns, columns=exog.columns)
        self.dependence_ = fit["dependence"] if self.cov_struct != "independence" else 0.0
        self.scale_ = fit["scale"]
        self.n_obs_, self.n_groups_ = len(rows), int(rows[self.group].nunique())
        self.rows_ = rows
        return self

    @property
    def result_(self):
        """statsmodels' GEE fitted to the same rows, patient by patient (refitted on first use:
        slow, for users who want its results object; the estimates above do not come from it)."""
        if "_result" not in self.__dict__:
            self._result = _statsmodels_fit(*self._fit_inputs, self.family, self.cov_struct)
        return self._result

    @property
    def summary(self) -> pd.DataFrame:
        """The tidy coefficient table (``fixed_``), robust standard errors."""
        return self.fixed_

    def _summary_title(self) -> str:
        return f"GEEModel: {self.outcome} ~ {self.rhs} ({self.family}, {self.cov_struct})"

    def _summary_lines(self) -> list[str]:
        return [f"{self.n_obs_} rows, {self.n_groups_} groups ({self.group}); "
                f"{'converged' if self.converged_ else 'NOT converged'}; working correlation {self.dependence_:.3f}, "
                f"scale {self.scale_:.3g}; robust (sandwich) standard errors"]

    def predict(self, new: pd.DataFrame, ci: bool = True, level: float = 0.95) -> pd.DataFrame:
        """Population-averaged mean (on the response scale) with a robust CI."""
        x = self.design_.build(new).to_numpy()
        eta = x @ self.fixed_["estimate"].to_numpy()
        inverse = Family(self.family).mean
        out = pd.DataFrame({"estimate": inverse(eta)}, index=new.index)
        if ci:
            se = np.sqrt(np.einsum("ij,jk,ik->i", x, self.cov_fixed_.to_numpy(), x))
            low, high = interval(eta, se, level)
            out["ci_low"], out["ci_high"] = inverse(low), inverse(high)
        return out

    def plot(self, ax=None, **kwargs):
        """Forest plot: by meaning (:meth:`effects`) under a spline or interactions, else the
        coefficients (Intercept left out); ``kwargs`` go to :func:`outcomes.plots.coefficients`."""
        kwargs.setdefault("title", f"{self.outcome}: GEE ({self.cov_struct}), robust 95% CI")
        return self._forest(ax, **kwargs)

    def __repr__(self) -> str:
        state = "unfitted" if not hasattr(self, "fixed_") else f"n={self.n_obs_}, groups={self.n_groups_}"
        return f"GEEModel({self.outcome} ~ {self.rhs}, {self.cov_struct}; {state})"


def _statsmodels_fit(y: np.ndarray, exog: pd.DataFrame, groups: np.ndarray, time: np.ndarray, family: str,
                     cov_struct: str):
    """The plain path: statsmodels GEE, one solve per patient, with the same settings."""
    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    cov = {"exchangeable": sm.cov_struct.Exchangeable(), "ar1": sm.cov_struct.Autoregressive(grid=False),
           "independence": sm.cov_struct.Independence()}[cov_struct]
    fam = {"gaussian": sm.families.Gaussian, "binomial": sm.families.Binomial, "poisson": sm.families.Poisson}[family]
    model = sm.GEE(y, exog, groups=groups, time=time[:, None], family=fam(), cov_struct=cov)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(ddof_scale=0, scale="X2" if family != "gaussian" else None)


def _from_statsmodels(res, cov_struct: str) -> dict:
    dep = float(np.atleast_1d(res.model.cov_struct.dep_params)[0]) if cov_struct != "independence" else 0.0
    return {"params": np.asarray(res.params), "cov_robust": np.asarray(res.cov_params()), "scale": float(res.scale),
            "dependence": dep, "converged": bool(res.converged), "score_norm": float(res.score_norm)}


def fit_gee(
    data: pd.DataFrame,
    outcome: str,
    time: str,
    group: str,
    covariates: Sequence[str] = (),
    cov_struct: str = "exchangeable",
    family: str = "gaussian",
    time_transform: str = "identity",
    interactions: Sequence[str] = (),
    spline_df: int = 3,
) -> GEEModel:
    """Construct and fit a :class:`GEEModel` (see there for the arguments).

    Examples
    --------
    >>> from outcomes import models, simulation
    >>> rows = models.fit_improvement(simulation.demo_tables(n_patients=120, seed=3), "hydration").rows_
    >>> g = models.fit_gee(rows, "improvement_pct", "sessions", "patient_id", ["age_c"], cov_struct="independence",
    ...                    time_transform="log1p")
    >>> g.summary.columns.tolist()
    ['estimate', 'std_error', 'ci_low', 'ci_high', 'p_value']
    """
    return GEEModel(outcome, time, group, covariates, cov_struct, family, time_transform, interactions,
                    spline_df).fit(data)
