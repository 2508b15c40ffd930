"""Linear mixed model: repeated measures per patient, without counting a patient many times.

`statsmodels` MixedLM with a random intercept (and by default a random slope on time) per
group. A fit is only reported as good when an optimizer says it converged, the likelihood is
finite and the standard errors exist. Several optimizers are tried and the best likelihood is
kept, because on real data the default one sometimes stops early; when none converges the
result says so (``converged_ == False``) and a `ConvergenceWarning` is raised. A fit at the edge
of the parameter space (random effects perfectly correlated, or a variance at 0) is a maximum
but not one the data pin down: it is flagged (``singular_``, ``singular_reason_``) and a
:class:`SingularFitWarning` says so.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ._design import TIME_TRANSFORMS, Design, complete_rows, curve_rhs, panel_rows, require_columns, time_term
from ._tidy import Coefficients, interval, tidy_table

if TYPE_CHECKING:
    from ._grouped_mixedlm import GroupedMixedLM

OPTIMIZERS = ("lbfgs", "bfgs", "cg", "powell")
# the verified-maximum check (see _best_fit): likelihood a further Newton step may still gain,
# and the smallest eigenvalue of the scaled negative Hessian of the variance parameters
NEWTON_DECREMENT = 1e-6
MIN_CURVATURE = 1e-6
# a random effect whose variance, on the data's scale, is below this share of the residual
# variance, or a correlation matrix of the random effects with an eigenvalue below it, is "at 0"
BOUNDARY_TOL = 1e-6


class SingularFitWarning(UserWarning):
    """A mixed model's maximum lies on the boundary: the data cannot support its random effects."""


class MixedModel(Coefficients):
    """outcome ~ f(time) + covariates [+ f(time):interactions], (1 + slope | group).

    Fitted attributes end in ``_``: ``fixed_`` (= ``summary``, the tidy coefficient table),
    ``random_`` (SDs and correlation of the random effects), ``converged_``, ``singular_`` and
    ``singular_reason_``, ``llf_``, ``n_obs_``, ``n_groups_``, ``attempts_``.

    Parameters
    ----------
    outcome, time, group : str
        Columns: the measured value, the time (e.g. sessions) and the patient.
    covariates : sequence of str
        Further fixed effects (categorical columns become treatment contrasts).
    random_slope, random_intercept : bool
        The patient's own slope on time and own level (at least one).
    time_transform : {"identity", "log1p", "spline"}
        Shape of the time effect.
    reml : bool
        REML (default) or maximum likelihood (to compare fixed parts by likelihood).
    interactions : sequence of str
        Covariates that change the size of the time effect.
    optimizers, spline_df
        Optimizers tried in turn; degrees of freedom of the spline.

    Examples
    --------
    >>> from outcomes import models, simulation
    >>> tables = simulation.demo_tables(n_patients=120, seed=3)
    >>> rows = models.fit_improvement(tables, "hydration", interactions=()).rows_
    >>> m = models.MixedModel("improvement_pct", "sessions", "patient_id", ["age_c"], time_transform="log1p",
    ...                       random_intercept=False).fit(rows)
    >>> m.formula
    'improvement_pct ~ np.log1p(sessions) + age_c + (0 + np.log1p(sessions) | patient_id)'
    >>> m.converged_, m.singular_, m.random_.index.tolist()
    (True, False, ['sd(np.log1p(sessions))', 'sd(Residual)'])
    """

    def __init__(
        self,
        outcome: str,
        time: str,
        group: str,
        covariates: Sequence[str] = (),
        random_slope: bool = True,
        time_transform: str = "identity",
        reml: bool = True,
        interactions: Sequence[str] = (),
        optimizers: Sequence[str] = OPTIMIZERS,
        spline_df: int = 3,
        *,
        random_intercept: bool = True,
    ) -> None:
        curve_rhs(time, time_transform, covariates, interactions, spline_df)  # checks the formula's parts
        if not optimizers:
            raise ValueError("give at least one optimizer")
        if not (random_intercept or random_slope):
            raise ValueError("a mixed model needs a random intercept or a random slope (or both)")
        self.random_intercept = random_intercept
        self.outcome = outcome
        self.time = time
        self.group = group
        self.covariates = tuple(covariates)
        self.random_slope = random_slope
        self.time_transform = time_transform
        self.reml = reml
        self.interactions = tuple(interactions)
        self.optimizers = tuple(optimizers)
        self.spline_df = spline_df

    # -- formula -------------------------------------------------------------
    @property
    def time_term(self) -> str:
        return time_term(self.time, self.time_transform, self.spline_df)

    @property
    def slope_term(self) -> str:
        """The random slope's variable: the time term itself, or log1p(time) under a spline
        (a spline has several columns; one smooth diminishing-returns slope per patient is
        what the data can carry)."""
        return time_term(self.time, "log1p" if self.time_transform == "spline" else self.time_transform)

    @property
    def rhs(self) -> str:
        return curve_rhs(self.time, self.time_transform, self.covariates, self.interactions, self.spline_df)

    @property
    def formula(self) -> str:
        slope = ("1 + " if self.random_intercept else "0 + ") + self.slope_term if self.random_slope else "1"
        return f"{self.outcome} ~ {self.rhs} + ({slope} | {self.group})"

    # -- fitting -------------------------------------------------------------
    def _rows(self, data: pd.DataFrame) -> pd.DataFrame:
        rows = panel_rows(data, self.outcome, self.time, self.group, self.covariates)
        if (rows[self.time] < 0).any() and self.time_transform != "identity":
            raise ValueError(f"{self.time!r} has negative values; {self.time_transform} needs time >= 0")
        if rows[self.group].nunique() < 2:
            raise ValueError(f"need at least two groups in {self.group!r} to fit a mixed model")
        return rows

    def fit(self, data: pd.DataFrame, start: np.ndarray | None = None) -> MixedModel:
        """Fit to ``data``. ``start``: the ``theta_`` of a fit of the same random-effect structure
        on similar data (e.g. another cross-validation fold), to start the optimizer near the
        answer; the result is verified the same way whatever the start."""
        from statsmodels.tools.sm_exceptions import ConvergenceWarning

        from ._grouped_mixedlm import GroupedMixedLM  # here, not at import: statsmodels is slow to load

        rows = self._rows(data)
        self.design_ = Design(self.rhs)
        exog = self.design_.fit(rows)
        endog = rows[self.outcome].astype(float).to_numpy()
        self.re_design_ = Design(self.slope_term if self.random_intercept else f"0 + {self.slope_term}"
                                 ) if self.random_slope else Design("1")
        exog_re = self.re_design_.fit(rows)
        exog_re.columns = (["Intercept"] if self.random_intercept else []) + (
            [self.slope_term] if self.random_slope else [])
        model = GroupedMixedLM(endog, exog, groups=rows[self.group].to_numpy(), exog_re=exog_re)
        if start is not None and np.shape(start) != (model.k_re2,):
            raise ValueError(f"start must be a theta_ of {model.k_re2} numbers, got shape {np.shape(start)}")
        # theta_ (lme4's name): packed Cholesky factor of the random-effect covariance relative to
        # the residual variance at the verified maximum (None if not converged); a warm start
        self.result_, self.attempts_, self.theta_ = _best_fit(model, self.reml, self.optimizers, start)
        res = self.result_
        self.converged_ = bool(self.attempts_["ok"].any())
        self.optimizer_ = self.attempts_.loc[self.attempts_["chosen"], "optimizer"].iloc[0]
        self.llf_ = float(res.llf)
        self.n_obs_ = int(len(rows))
        self.n_groups_ = int(rows[self.group].nunique())
        self.rows_ = rows
        k_fe = exog.shape[1]
        self.fixed_ = tidy_table(res.fe_params, res.bse_fe, terms=list(exog.columns))
        self.cov_fixed_ = pd.DataFrame(
            np.asarray(res.cov_params())[:k_fe, :k_fe], index=exog.columns, columns=exog.columns
        )
        self.random_ = _random_table(res, list(exog_re.columns))
        # between-patient covariance of the random effects and the residual variance, in the
        # outcome's units: what one patient's measurement scatters by around the mean curve
        self.cov_re_ = pd.DataFrame(np.asarray(res.cov_re, dtype=float), index=exog_re.columns,
                                    columns=exog_re.columns)
        self.residual_var_ = float(res.scale)
        self.n_params_ = len(res.params) + 1  # fixed + random-effect covariance + residual variance
        self.singular_reason_ = boundary_reason(self.cov_re_.to_numpy(), self.residual_var_,
                                                np.mean(exog_re.to_numpy() ** 2, axis=0), list(exog_re.columns))
        self.singular_ = self.singular_reason_ is not None
        if self.singular_ and self.converged_:
            warnings.warn(f"Mixed model {self.formula}: singular fit, {self.singular_reason_}. The data cannot "
                          "support these random effects; a simpler structure (e.g. random_slope=False) says the "
                          "same with fewer assumptions.", SingularFitWarning, stacklevel=2)
        if not self.converged_:
            tried = ", ".join(f"{r.optimizer} ({r.message})" for r in self.attempts_.itertuples())
            warnings.warn(
                f"Mixed model {self.formula} did NOT converge with any optimizer: {tried}. "
                "Its numbers are not trustworthy: simplify the model (e.g. random_slope=False), "
                "rescale time, or check the data.",
                ConvergenceWarning,
                stacklevel=2,
            )
        return self

    @property
    def summary(self) -> pd.DataFrame:
        """The tidy coefficient table (``fixed_``): estimate, std_error, ci_low, ci_high, p_value."""
        return self.fixed_

    def _summary_title(self) -> str:
        return f"MixedModel: {self.formula}"

    def _summary_lines(self) -> list[str]:
        state = "converged" if self.converged_ else "NOT converged"
        if self.singular_:
            state += f"; SINGULAR: {self.singular_reason_}"
        return [f"{self.n_obs_} rows, {self.n_groups_} groups ({self.group}); {'REML' if self.reml else 'ML'} "
                f"log-likelihood {self.llf_:.2f}; {state}"]

    def _summary_extra(self) -> list[tuple[str, pd.DataFrame]]:
        return [("random effects", self.random_)]

    @property
    def aic(self) -> float:
        """Akaike's criterion; only comparable between ML fits (reml=False) on the same rows."""
        return -2 * self.llf_ + 2 * self.n_params_

    @property
    def bic(self) -> float:
        return -2 * self.llf_ + np.log(self.n_obs_) * self.n_params_

    # -- predictions -------------------------------------------------------------
    def design_matrix(self, new: pd.DataFrame) -> pd.DataFrame:
        new = new.copy()
        return self.design_.build(new)

    def predict(self, new: pd.DataFrame, ci: bool = True, level: float = 0.95,
                prediction: bool = False) -> pd.DataFrame:
        """Population-average prediction (random effects at zero) for each row of ``new``.

        With ``ci=True`` adds std_error, ci_low, ci_high from the fixed effects' covariance:
        the uncertainty of the mean curve, not of one patient's value. With
        ``prediction=True`` adds pred_low, pred_high: where ``level`` of comparable patients'
        single measurements fall (the mean's uncertainty, plus the between-patient
        random-effect variance at that time, plus the residual variance).
        """
        x = self.design_matrix(new).to_numpy()
        est = x @ self.fixed_["estimate"].to_numpy()
        out = pd.DataFrame({"estimate": est}, index=new.index)
        if not (ci or prediction):
            return out
        se = np.sqrt(np.einsum("ij,jk,ik->i", x, self.cov_fixed_.to_numpy(), x))
        if ci:
            out["std_error"] = se
            out["ci_low"], out["ci_high"] = interval(est, se, level)
        if prediction:
            z = self.re_design_.build(new).to_numpy()
            between = np.einsum("ij,jk,ik->i", z, self.cov_re_.to_numpy(), z)
            out["pred_low"], out["pred_high"] = interval(est, np.sqrt(se**2 + between + self.residual_var_), level)
        return out

    def contrast(self, a: pd.DataFrame, b: pd.DataFrame, level: float = 0.95, average: bool = False,
                 labels: Sequence[str] | str | None = None) -> pd.DataFrame:
        """Difference in population mean between rows of ``a`` and ``b`` (pairwise), as a tidy
        table (estimate, std_error, ci_low, ci_high, p_value of no difference).

        With ``average=True`` the rows of each side are averaged first (one row out): e.g.
        "darker skin types, weighted as in the cohort, versus type III". ``labels`` name the
        rows (one per row; default: ``a``'s index, or "a vs b" when averaged).
        """
        xa, xb = self.design_matrix(a).to_numpy(), self.design_matrix(b).to_numpy()
        if average:
            xd, index = (xa.mean(axis=0) - xb.mean(axis=0))[None, :], ["a vs b"]
        else:
            if len(xa) != len(xb):
                raise ValueError("a and b need the same number of rows (or average=True)")
            xd, index = xa - xb, list(a.index)
        if labels is not None:
            index = [labels] if isinstance(labels, str) else list(labels)
            if len(index) != len(xd):
                raise ValueError(f"give one label per row of the contrast ({len(xd)}), got {len(index)}")
        table = tidy_table(xd @ self.fixed_["estimate"].to_numpy(),
                           np.sqrt(np.einsum("ij,jk,ik->i", xd, self.cov_fixed_.to_numpy(), xd)), terms=index,
                           level=level)
        return table.rename_axis("contrast")

    def plot(self, ax=None, **kwargs):
        """Forest plot of the fixed part: by meaning (:meth:`effects`) under a spline or
        interactions, else the coefficients (Intercept left out); ``kwargs`` go to
        :func:`outcomes.plots.coefficients`."""
        kwargs.setdefault("title", f"{self.outcome}: fixed effects (95% CI)")
        return self._forest(ax, **kwargs)

    def __repr__(self) -> str:
        state = "unfitted" if not hasattr(self, "result_") else (
            f"n={self.n_obs_}, groups={self.n_groups_}, llf={self.llf_:.2f}, converged={self.converged_}"
            + (f", SINGULAR: {self.singular_reason_}" if self.singular_ else ""))
        return f"MixedModel({self.formula}; {state})"


def _best_fit(model: GroupedMixedLM, reml: bool, optimizers: Sequence[str], start=None):
    """Fit, and keep the result only when the maximum is verified.

    Phase 1: optimizers in turn from ``start`` (packed Cholesky factor, e.g. the solution on
    similar data) or statsmodels' default start, until one reports success.
    Check: Newton's method on the profiled likelihood from that point, with the exact gradient
    and the Hessian. The fit is converged when Newton ends at a stationary point (Newton
    decrement < ``NEWTON_DECREMENT``: a further step would gain less likelihood than that) whose
    Hessian is negative definite (smallest eigenvalue of the scaled negative Hessian >
    ``MIN_CURVATURE``; below it the data cannot pin every variance parameter). The check is
    scale-free, unlike an optimizer's gradient tolerance, which badly scaled time units fool.
    The results are recomputed at the verified point (attempt "newton").
    Phase 2, only if that fails: the other optimizers start from the best fit so far, each
    checked the same way. A given start that leads to no verified maximum is followed by the
    whole search from the default start. If nothing is verified, the best finite fit is
    returned, marked failed.
    """
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    from ._grouped_mixedlm import off_the_boundary

    rows, fits, thetas = [], [], {}

    def attempt(name, begin, label):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                res = model.fit(reml=reml, method=name, start_params=begin)
            except (np.linalg.LinAlgError, ValueError, FloatingPointError) as exc:
                rows.append({"optimizer": name, "start": label, "llf": np.nan, "ok": False,
                             "message": f"error: {exc}"})
                fits.append(None)
                return None
        bse = np.asarray(res.bse_fe, dtype=float) if np.isfinite(res.llf) else np.array([np.nan])
        problems = [str(w.message).split("\n")[0] for w in caught if issubclass(w.category, ConvergenceWarning)]
        ok = bool(res.converged) and np.isfinite(res.llf) and np.all(np.isfinite(bse)) and np.all(bse > 0)
        message = "optimizer reports success" if ok else ("; ".join(sorted(set(problems))) or "did not converge")
        rows.append({"optimizer": name, "start": label, "llf": float(res.llf), "ok": ok, "message": message[:300]})
        fits.append(res)
        return len(fits) - 1 if ok else None

    def newton_from(chol):
        with np.errstate(all="ignore"):
            try:
                return model.newton(chol)
            except np.linalg.LinAlgError as exc:
                return {"decrement": np.inf, "curvature": np.nan, "error": str(exc)}

    def verified(i):
        """Index of the fit at the Newton-verified maximum reached from fit i, or None."""
        try:
            chol = fits[i].params_object.get_packed(use_sqrt=True, has_fe=False)
        except np.linalg.LinAlgError as exc:
            chol, check = None, {"decrement": np.inf, "curvature": np.nan, "error": str(exc)}
        if chol is not None:
            check = newton_from(chol)
            if not check["curvature"] > MIN_CURVATURE:  # a saddle on the boundary: try just inside
                retry = newton_from(off_the_boundary(chol))
                if retry["curvature"] > MIN_CURVATURE and retry["loglike"] >= fits[i].llf - NEWTON_DECREMENT:
                    check = retry
        if not (check["decrement"] < NEWTON_DECREMENT and check["curvature"] > MIN_CURVATURE):
            rows[i]["ok"] = False
            why = (check.get("error") or (f"Hessian not negative definite (curvature {check['curvature']:.2g})"
                   if not check["curvature"] > MIN_CURVATURE else f"Newton decrement {check['decrement']:.2g}"))
            rows[i]["message"] = f"{rows[i]['message']}, but not a verified maximum: {why}"
            return None
        try:
            res = model.results_at(check["chol"], reml)
            bse = np.asarray(res.bse_fe, dtype=float)
        except np.linalg.LinAlgError:
            return None
        if not (np.isfinite(res.llf) and np.all(np.isfinite(bse)) and np.all(bse > 0)):
            return None
        boundary = model.on_boundary(np.asarray(res.cov_re_unscaled, dtype=float))
        rows.append({"optimizer": "newton", "start": "best so far", "llf": float(res.llf), "ok": True,
                     "message": f"converged: Newton decrement {check['decrement']:.1e} after {check['iterations']} "
                                f"steps, Hessian negative definite (curvature {check['curvature']:.2g})"
                                + ("; on the boundary (random effects perfectly correlated or a variance at 0)"
                                   if boundary else "")})
        fits.append(res)
        thetas[len(fits) - 1] = check["chol"]
        return len(fits) - 1

    def search(begin):
        """Phase 1 from ``begin``, the check, and phase 2 if needed: a verified fit's index or None."""
        best = None
        for name in optimizers:
            best = attempt(name, begin, "default" if begin is None else "given")
            if best is not None:
                break
        if best is None:
            return None
        done = verified(best)
        for name in optimizers if done is None else ():
            if name == rows[best]["optimizer"]:
                continue
            i = attempt(name, fits[best].params_object, "best so far")
            if i is None:
                continue
            if fits[i].llf > fits[best].llf:
                best = i
            done = verified(i)
            if done is not None:
                break
        return done

    done = search(None if start is None else off_the_boundary(start))
    if done is None and start is not None:  # a given start that leads nowhere: the default one
        done = search(None)
    attempts = pd.DataFrame(rows)
    if done is None:
        attempts["ok"] = False
        finite = attempts[np.isfinite(attempts["llf"])]
        if finite.empty:
            raise RuntimeError(f"every optimizer failed outright: {attempts.to_dict('records')}")
        done = int(finite["llf"].idxmax())
    attempts["chosen"] = attempts.index == done
    return fits[done], attempts, thetas.get(done)


# the words of a boundary reason (reports turn them into plain words: reports.fitting.in_plain_words)
ZERO_VARIANCE, PERFECT_CORRELATION = "variance at 0 for", "random effects perfectly correlated"


def boundary_reason(cov_re: np.ndarray, residual_var: float, mean_square: np.ndarray,
                    names: Sequence[str], tol: float = BOUNDARY_TOL) -> str | None:
    """Why the random-effect covariance is on the boundary of its space, or None.

    A variance counts as 0 when, times the mean square of its column of Z (its size on the
    data's scale), it is below ``tol`` of the residual variance; effects count as perfectly
    correlated when their correlation matrix has an eigenvalue below ``tol``.
    """
    var = np.diag(cov_re)
    zero = [n for n, v, m in zip(names, var, mean_square) if v * m < tol * residual_var]
    if zero:
        return f"{ZERO_VARIANCE} " + ", ".join(zero)
    if len(var) > 1:
        corr = cov_re / np.sqrt(np.outer(var, var))
        if np.linalg.eigvalsh(corr).min() < tol:
            pairs = [f"corr({names[i]}, {names[j]}) = {corr[i, j]:+.3f}"
                     for i in range(len(names)) for j in range(i + 1, len(names))]
            return f"{PERFECT_CORRELATION} (" + ", ".join(pairs) + ")"
    return None


def _random_table(res, re_names: list[str]) -> pd.DataFrame:
    cov = np.asarray(res.cov_re, dtype=float)
    sd = np.sqrt(np.clip(np.diag(cov), 0, None))
    names, values = [], []
    for name, s in zip(re_names, sd):
        names.append(f"sd({name})")
        values.append(s)
    for i in range(len(re_names)):
        for j in range(i + 1, len(re_names)):
            names.append(f"corr({re_names[i]}, {re_names[j]})")
            values.append(cov[i, j] / (sd[i] * sd[j]) if sd[i] > 0 and sd[j] > 0 else np.nan)
    names.append("sd(Residual)")
    values.append(float(np.sqrt(res.scale)))
    return pd.DataFrame({"estimate": values}, index=pd.Index(names, name="component"))


def fit_mixed(
    data: pd.DataFrame,
    outcome: str,
    time: str,
    group: str,
    covariates: Sequence[str] = (),
    random_slope: bool = True,
    time_transform: str = "identity",
    reml: bool = True,
    interactions: Sequence[str] = (),
    optimizers: Sequence[str] = OPTIMIZERS,
    spline_df: int = 3,
    random_intercept: bool = True,
    start: np.ndarray | None = None,
) -> MixedModel:
    """Construct and fit a :class:`MixedModel` (see there for the arguments).

    Examples
    --------
    >>> from outcomes import models, simulation
    >>> rows = models.fit_improvement(simulation.demo_tables(n_patients=120, seed=3), "hydration").rows_
    >>> m = models.fit_mixed(rows, "improvement_pct", "sessions", "patient_id", ["skin_type"],
    ...                      time_transform="log1p", random_intercept=False)
    >>> m.summary.index[0], "np.log1p(sessions)" in m.summary.index
    ('Intercept', True)
    >>> bool(m.wald_test("skin_type")["df"] >= 1)
    True
    """
    return MixedModel(outcome, time, group, covariates, random_slope, time_transform, reml, interactions,
                      optimizers, spline_df, random_intercept=random_intercept).fit(data, start=start)


def lr_test(small, big) -> pd.Series:
    """Likelihood-ratio test of two nested mixed-model fits on the same rows.

    ``small`` and ``big`` are fitted :class:`MixedModel` (or :class:`ImprovementModel`) objects,
    ``small`` nested in ``big`` (the test checks the rows and the parameter counts, not the
    nesting itself). REML likelihoods are comparable only between fits with the same fixed part,
    so when the fixed parts differ and either fit is REML, both are refitted by maximum
    likelihood first (``method`` says which was used). A test of a variance component (e.g. a
    random slope) is on the boundary of its space; its chi-square p-value is conservative.

    Returns ``chi2`` (2 × the log-likelihood gain), ``df``, ``p_value``, ``method`` and both
    log-likelihoods.

    Examples
    --------
    >>> from outcomes import models, simulation
    >>> tables = simulation.demo_tables(n_patients=120, seed=3)
    >>> small = models.fit_improvement(tables, "hydration", interactions=(), random_intercept=False)
    >>> big = models.fit_improvement(tables, "hydration", interactions=(), random_intercept=False,
    ...                              covariates=["clinic_id"])
    >>> test = models.lr_test(small, big)
    >>> test["method"], int(test["df"]) == big.rows_["clinic_id"].nunique() - 1
    ('ML (refitted)', True)
    """
    import copy

    from scipy import stats

    a, b = getattr(small, "mixed_", small), getattr(big, "mixed_", big)
    if len(a.rows_) != len(b.rows_) or not a.rows_.index.sort_values().equals(b.rows_.index.sort_values()):
        raise ValueError(f"the fits use different rows ({a.n_obs_} and {b.n_obs_}); a likelihood-ratio test needs the "
                         "same rows")
    df = b.n_params_ - a.n_params_
    if df <= 0:
        raise ValueError(f"big must have more parameters than small ({b.n_params_} vs {a.n_params_}); is it nested?")
    if list(a.fixed_.index) != list(b.fixed_.index) and (a.reml or b.reml):
        a, b = (copy.copy(m) for m in (a, b))
        for m in (a, b):
            m.reml = False
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SingularFitWarning)
                m.fit(m.rows_)
        method = "ML (refitted)"
    else:
        method = "REML" if a.reml else "ML"
    stat = 2 * (b.llf_ - a.llf_)
    return pd.Series({"chi2": stat, "df": df, "p_value": float(stats.chi2.sf(max(stat, 0.0), df)), "method": method,
                      "llf_small": a.llf_, "llf_big": b.llf_}, name="lr_test")


def compare_curves(
    data: pd.DataFrame,
    outcome: str,
    time: str,
    group: str,
    covariates: Sequence[str] = (),
    transforms: Sequence[str] = TIME_TRANSFORMS,
    criterion: str = "aic",
    random_slope: bool = True,
    interactions: Sequence[str] = (),
    optimizers: Sequence[str] = OPTIMIZERS,
    spline_df: int = 3,
) -> pd.DataFrame:
    """Pick the shape of the time effect (linear, log, spline) by an ML information criterion.

    Every shape is fitted by maximum likelihood (REML likelihoods of different fixed effects
    are not comparable) on exactly the same rows. Returns one row per shape, best first, with
    llf, n_params, aic, bic, delta (to the best), converged and singular.

    Examples
    --------
    >>> from outcomes import models, simulation
    >>> rows = models.fit_improvement(simulation.demo_tables(n_patients=120, seed=3), "hydration").rows_
    >>> table = models.compare_curves(rows, "improvement_pct", "sessions", "patient_id", random_slope=False)
    >>> sorted(table["time_transform"]), int(table["best"].sum())
    (['identity', 'log1p', 'spline'], 1)
    """
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    if criterion not in ("aic", "bic"):
        raise ValueError("criterion must be 'aic' or 'bic'")
    cols = [outcome, time, group, *covariates]
    require_columns(data, cols)
    rows = complete_rows(data, cols)
    out = []
    for transform in transforms:
        m = MixedModel(outcome, time, group, covariates, random_slope, transform, False, interactions, optimizers,
                       spline_df)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", SingularFitWarning)
            m.fit(rows)
        out.append({"time_transform": transform, "llf": m.llf_, "n_params": m.n_params_, "aic": m.aic,
                    "bic": m.bic, "converged": m.converged_, "singular": m.singular_, "n_obs": m.n_obs_})
    table = pd.DataFrame(out)
    if table["n_obs"].nunique() != 1:
        raise RuntimeError("the shapes were fitted on different rows; the comparison would be unfair")
    usable = table[table["converged"]]
    if usable.empty:
        warnings.warn("no curve shape converged; the comparison is not trustworthy", ConvergenceWarning, stacklevel=2)
        usable = table
    table["delta"] = table[criterion] - usable[criterion].min()
    table = table.sort_values(["converged", criterion], ascending=[False, True]).reset_index(drop=True)
    table["best"] = False
    table.loc[0, "best"] = True
    return table
