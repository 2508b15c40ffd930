"""Ordinal model: GAIS grade versus sessions, age and skin type.

GAIS is a 1-5 grade (1 very much improved ... 3 improved, 4 no change, 5 worse), not a
number: a proportional-odds (cumulative logit) model respects that. statsmodels
OrderedModel, parametrised like R's ``ordinal::clm``::

    P(grade <= j) = F(threshold_j - x'beta)

so a positive coefficient pushes toward HIGHER grades, which on GAIS means WORSE. The
headline number is the probability of "improved or better" (GAIS <= 3) for a group.
Repeated grades of one patient are not independent: pass ``group`` to get cluster-robust
standard errors.

Fitted as ``ordinal::clm`` fits it: Newton–Raphson with step halving on the exact gradient and
Hessian of the log-likelihood, in (beta, thresholds), from the thresholds of the model without
covariates. The log-likelihood is concave in these parameters for the logit and probit links,
so a handful of Newton steps reach the maximum; the covariance is the inverse observed
information (or the cluster sandwich), with no numerical differentiation anywhere.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..contract import GAIS_RESPONDER_MAX, SKIN_TYPE_DTYPE
from ._design import Design, as_categories, complete_rows, require_columns
from ._tidy import Coefficients, interval, tidy_table

LINKS = {"logit": "logit", "probit": "probit"}


class OrdinalModel(Coefficients):
    """Cumulative link model for an ordered grade.

    Fitted attributes end in ``_``: ``fixed_`` (the coefficients, tidy; positive = toward
    higher grades), ``thresholds_`` (tidy), ``cov_fixed_``, ``converged_``, ``iterations_``,
    ``llf_``, ``n_obs_``, ``rows_``. ``summary`` is both tables in one (thresholds last).

    Examples
    --------
    >>> from outcomes import models, simulation
    >>> tables = simulation.demo_tables(n_patients=120, seed=3)
    >>> gais = models.gais_frame(tables["assessments"], tables["patients"])
    >>> o = models.OrdinalModel(covariates=("sessions", "age_c", "skin_type"), group="patient_id").fit(gais)
    >>> o.converged_, o.summary.index[-1]
    (True, 'threshold 4|5')
    """

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
        self.design_ = Design(" + ".join(self.covariates))
        exog = self.design_.fit(rows).drop(columns="Intercept")  # the thresholds play the intercept
        codes = np.searchsorted(grades, rows[self.outcome].to_numpy())
        groups = pd.factorize(rows[self.group])[0] if self.group else None
        fit = _newton(codes, exog.to_numpy(dtype=float), len(grades), self.link)
        self.converged_, self.iterations_ = fit["converged"], fit["iterations"]
        if not self.converged_:
            from statsmodels.tools.sm_exceptions import ConvergenceWarning  # the category every model warns with

            warnings.warn(f"ordinal model {self.outcome} ~ {' + '.join(self.covariates)} did NOT converge in "
                          f"{self.iterations_} Newton steps", ConvergenceWarning, stacklevel=2)
        k = exog.shape[1]
        params = fit["params"]
        info_inv = np.linalg.inv(-fit["hessian"])
        if groups is not None:  # cluster sandwich, with statsmodels' small-sample factor
            meat = _cluster_sum(fit["terms"].score_obs(params), groups)
            n, n_groups, m = len(codes), groups.max() + 1, len(params)
            cov = info_inv @ meat @ info_inv * (n_groups / (n_groups - 1) * (n - 1) / (n - m))
        else:
            cov = info_inv
        se = np.sqrt(np.diag(cov))
        self.fixed_ = tidy_table(params[:k], se[:k], terms=list(exog.columns))
        names = [f"{a}|{b}" for a, b in zip(grades[:-1], grades[1:])]
        self.thresholds_ = tidy_table(params[k:], se[k:], terms=names)
        self._cov_all = cov
        self.cov_fixed_ = pd.DataFrame(cov[:k, :k], index=exog.columns, columns=exog.columns)
        self._fit_inputs = (rows[self.outcome].to_numpy(), exog, groups)
        self.llf_ = fit["loglike"]
        self.n_obs_ = len(rows)
        self.rows_ = rows
        return self

    @property
    def result_(self):
        """statsmodels' OrderedModel fitted to the same rows (refitted on first use: slow, for
        users who want its results object; the estimates above do not come from it)."""
        if "_result" not in self.__dict__:
            endog, exog, groups = self._fit_inputs
            self._result = _statsmodels_fit(endog, exog, self.grades_, self.link, groups)
        return self._result

    @property
    def summary(self) -> pd.DataFrame:
        """Coefficients then thresholds (``threshold 1|2``, ...), one tidy table."""
        return pd.concat([self.fixed_, self.thresholds_.rename(index=lambda s: f"threshold {s}")])

    def _summary_title(self) -> str:
        return f"OrdinalModel: {self.outcome} ~ {' + '.join(self.covariates)} (cumulative {self.link})"

    def _summary_lines(self) -> list[str]:
        return [f"{self.n_obs_} rows; log-likelihood {self.llf_:.2f}; "
                f"{'converged' if self.converged_ else 'NOT converged'} in {self.iterations_} Newton steps; "
                + ("cluster-robust SEs by " + self.group if self.group else "model-based SEs"),
                "P(grade <= j) = F(threshold_j - x'b): a positive estimate means higher grades"]

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
        from scipy import special

        return special.expit(z) if self.link == "logit" else special.ndtr(z)

    def plot(self, ax=None, new: pd.DataFrame | None = None, x: str = "sessions", hue: str | None = None, **kwargs):
        """P(improved or better) against ``x`` (default sessions) for the rows of ``new``;
        ``kwargs`` go to :func:`outcomes.plots.probability_curves`."""
        from .. import plots

        if new is None:
            new = _default_grid(self.rows_, x, hue)
        table = self.responder_probability(new)
        kwargs.setdefault("ylabel", "P(GAIS ≤ 3: improved or better)")
        return plots.probability_curves(table, x=x, hue=hue, ax=ax, **kwargs)

    def __repr__(self) -> str:
        state = "unfitted" if not hasattr(self, "llf_") else f"n={self.n_obs_}, converged={self.converged_}"
        return f"OrdinalModel({self.outcome} ~ {' + '.join(self.covariates)}, {self.link}; {state})"


def _newton(codes: np.ndarray, x: np.ndarray, n_grades: int, link: str, max_iter: int = 100,
            tol: float = 1e-12) -> dict:
    """Maximum likelihood by Newton–Raphson with step halving, params ordered (beta, thresholds).

    Converged when the Newton decrement (the log-likelihood one more full step would gain) is
    below ``tol``; the log-likelihood is concave, so that is the maximum. That last (tiny) step is
    still taken, and the derivatives recomputed there, so the gradient at the answer is ~0.
    """
    n, k = x.shape
    counts = np.bincount(codes, minlength=n_grades)
    if np.any(counts == 0):
        raise ValueError(f"every grade needs at least one row; counts per grade: {counts.tolist()}")
    if k and _collinear(x):
        raise ValueError("the covariates are collinear (with each other, or constant like the thresholds)")
    from scipy import special  # here, not at import: scipy takes a tenth of a second to load

    cum = np.cumsum(counts)[:-1] / n
    start_cuts = special.logit(cum) if link == "logit" else special.ndtri(cum)
    params = np.concatenate([np.zeros(k), start_cuts])
    at = _ClmTerms(codes, x, n_grades, link)
    state = at.derivatives(params)
    for iteration in range(max_iter + 1):
        step = np.linalg.solve(-state["hessian"], state["gradient"])
        decrement = float(state["gradient"] @ step) / 2
        if 0 <= decrement <= tol:
            params = params + step
            state = at.derivatives(params)
            break
        if not decrement > tol or iteration == max_iter:  # (a NaN decrement stops too, unconverged)
            break
        t = 1.0
        slack = 1e-12 * (1 + abs(state["loglike"]))  # rounding in a sum over many rows, not a real loss
        while t > 1e-10:
            trial = at.derivatives(params + t * step)  # a full step is the rule: its derivatives are needed next
            if trial["loglike"] >= state["loglike"] - slack:
                break
            t /= 2
        if t <= 1e-10:
            break
        params, state = params + t * step, trial
    return {**state, "params": params, "iterations": iteration, "converged": 0 <= decrement <= tol, "terms": at}


def _collinear(x: np.ndarray) -> bool:
    """Is a column constant (collinear with the thresholds) or a combination of the others?"""
    sd = x.std(axis=0)
    if np.any(sd <= 1e-12 * (1 + np.abs(x).max(axis=0))):
        return True
    return bool(np.linalg.eigvalsh(np.atleast_2d(np.corrcoef(x, rowvar=False))).min() < 1e-10)


class _ClmTerms:
    """The cumulative-link log-likelihood and its exact derivatives.

    Row i with grade index y contributes log p, p = F(u) − F(l), u = θ_y − x'β, l = θ_{y−1} − x'β
    (θ_{−1} = −∞, θ_{J−1} = +∞). With the row's derivative directions du = (−x, e_y) and
    dl = (−x, e_{y−1}) in (β, θ), the gradient is du·a − dl·b (a = f(u)/p, b = f(l)/p) and the
    Hessian sums du du' h_uu + dl dl' h_ll + (du dl' + dl du') h_ul, with h_uu = f'(u)/p − a²,
    h_ll = −f'(l)/p − b², h_ul = a b. The threshold parts are sums by grade (one product with
    the grades' indicator matrix), so the cost is a few passes over the rows.
    """

    def __init__(self, codes: np.ndarray, x: np.ndarray, n_grades: int, link: str) -> None:
        from scipy import special

        self.link, self.codes, self.x, self.n_cuts = link, codes, x, n_grades - 1
        self.cdf = special.expit if link == "logit" else special.ndtr
        self.onehot = np.zeros((len(codes), n_grades))
        self.onehot[np.arange(len(codes)), codes] = 1.0

    def _bounds(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = self.x.shape[1]
        eta = self.x @ params[:k]
        ext = np.concatenate([[-np.inf], params[k:], [np.inf]])
        return ext[self.codes + 1] - eta, ext[self.codes] - eta

    def _pieces(self, params: np.ndarray) -> tuple:
        """p, a, b, f'(u)/p, f'(l)/p per row; p from survival functions in the upper tail,
        where F(u) − F(l) would cancel to nothing."""
        upper, lower = self._bounds(params)
        cdf_u, cdf_l, sf_u, sf_l = self.cdf(upper), self.cdf(lower), self.cdf(-upper), self.cdf(-lower)
        with np.errstate(invalid="ignore"):
            p = np.where(lower > 0, sf_l - sf_u, cdf_u - cdf_l)
        if self.link == "logit":  # f = F (1 − F), f' = f (1 − 2F); both 0 at ±∞
            f_u, f_l = cdf_u * sf_u, cdf_l * sf_l
            df_u, df_l = f_u * (sf_u - cdf_u), f_l * (sf_l - cdf_l)
        else:
            u0, l0 = np.where(np.isfinite(upper), upper, 0.0), np.where(np.isfinite(lower), lower, 0.0)
            f_u = np.exp(-u0 * u0 / 2) / np.sqrt(2 * np.pi) * np.isfinite(upper)
            f_l = np.exp(-l0 * l0 / 2) / np.sqrt(2 * np.pi) * np.isfinite(lower)
            df_u, df_l = -u0 * f_u, -l0 * f_l
        with np.errstate(divide="ignore", invalid="ignore"):
            return p, f_u / p, f_l / p, df_u / p, df_l / p

    def loglike(self, params: np.ndarray) -> float:
        p = self._pieces(params)[0]
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(np.sum(np.log(p))) if np.all(p > 0) else -np.inf

    def derivatives(self, params: np.ndarray) -> dict:
        p, a, b, dfu_p, dfl_p = self._pieces(params)
        if not np.all(p > 0):
            return {"loglike": -np.inf, "gradient": np.full(len(params), np.nan), "hessian": np.full((len(params),) * 2, np.nan)}
        x, k, m = self.x, self.x.shape[1], self.n_cuts
        h_uu, h_ll, h_ul = dfu_p - a * a, -dfl_p - b * b, a * b
        w_u, w_l = h_uu + h_ul, h_ll + h_ul  # β–θ_y and β–θ_{y−1} weights
        # every sum by grade in one product: columns a, b, h_uu, h_ll, h_ul, x·w_u, x·w_l
        by_grade = self.onehot.T @ np.column_stack([a, b, h_uu, h_ll, h_ul, x * w_u[:, None], x * w_l[:, None]])
        sa, sb, suu, sll, sul = by_grade[:, :5].T
        xu, xl = by_grade[:, 5:5 + k], by_grade[:, 5 + k:]
        grad = np.concatenate([-(x.T @ (a - b)), sa[:m] - sb[1:]])
        hess = np.empty((k + m, k + m))
        hess[:k, :k] = x.T @ (x * (h_uu + h_ll + 2 * h_ul)[:, None])
        hess[:k, k:] = -(xu[:m] + xl[1:]).T  # θ_j is the upper bound of grade j, the lower of grade j+1
        hess[k:, :k] = hess[:k, k:].T
        theta = np.diag(suu[:m] + sll[1:])
        theta[np.arange(1, m), np.arange(m - 1)] = sul[1:m]  # grade j+1 has u = θ_{j+1}, l = θ_j
        theta[np.arange(m - 1), np.arange(1, m)] = sul[1:m]
        hess[k:, k:] = theta
        return {"loglike": float(np.sum(np.log(p))), "gradient": grad, "hessian": hess}

    def score_obs(self, params: np.ndarray) -> np.ndarray:
        """Each row's gradient (rows × parameters), for the cluster sandwich."""
        _, a, b, _, _ = self._pieces(params)
        m = self.n_cuts
        cuts = self.onehot[:, :m] * a[:, None] - self.onehot[:, 1:] * b[:, None]
        return np.column_stack([-self.x * (a - b)[:, None], cuts])


def _cluster_sum(score_obs: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Σ_g s_g s_g' with s_g the sum of group g's per-row scores."""
    per_group = np.stack([np.bincount(groups, weights=col) for col in score_obs.T], axis=1)
    return per_group.T @ per_group


def _statsmodels_fit(endog: np.ndarray, exog: pd.DataFrame, grades: list, link: str, groups: np.ndarray | None):
    """The previous fitter: statsmodels OrderedModel by BFGS on numerical derivatives."""
    from statsmodels.miscmodels.ordinal_model import OrderedModel

    endog = pd.Series(pd.Categorical(endog, categories=grades, ordered=True), index=exog.index)
    model = OrderedModel(endog, exog, distr=LINKS[link])
    fit_kw = {"method": "bfgs", "disp": False, "maxiter": 2000, "gtol": 1e-8}
    if groups is not None:
        return model.fit(cov_type="cluster", cov_kwds={"groups": groups}, **fit_kw)
    return model.fit(**fit_kw)


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

    Examples
    --------
    >>> from outcomes import models, simulation
    >>> tables = simulation.demo_tables(n_patients=120, seed=3)
    >>> gais = models.gais_frame(tables["assessments"], tables["patients"])
    >>> {"score", "sessions", "age_c", "skin_type"} <= set(gais.columns), bool(gais["score"].between(1, 5).all())
    (True, True)
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
    """Construct and fit an :class:`OrdinalModel` (see there).

    Examples
    --------
    >>> from outcomes import models, simulation
    >>> tables = simulation.demo_tables(n_patients=120, seed=3)
    >>> o = models.fit_ordinal(models.gais_frame(tables["assessments"], tables["patients"]), group="patient_id")
    >>> new = o.rows_.head(2)
    >>> p = o.responder_probability(new)
    >>> bool(((p["ci_low"] <= p["estimate"]) & (p["estimate"] <= p["ci_high"])).all())
    True
    """
    return OrdinalModel(outcome, covariates, link, group).fit(data)
