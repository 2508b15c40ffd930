"""The fast fitters equal the slow ones they replaced, and their derivatives are exact.

fit_ordinal: Newton–Raphson on an analytic gradient and Hessian (was: statsmodels OrderedModel,
BFGS on numerical derivatives). fit_gee: per-patient solves batched by cluster size (was:
statsmodels GEE's loop over patients). Both slow paths are still reachable (``result_``), and
are what these tests compare against.
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from outcomes.models import fit_ordinal
from outcomes.models.ordinal import _ClmTerms, _newton


def _clm_case(n=40, seed=3, n_grades=4):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    codes = np.concatenate([np.arange(n_grades), rng.integers(0, n_grades, n - n_grades)])
    params = np.array([0.7, -0.4, -1.2, 0.1, 1.5])  # beta (2), thresholds (3)
    return codes, x, n_grades, params


@pytest.mark.parametrize("link", ["logit", "probit"])
def test_ordinal_gradient_and_hessian_equal_finite_differences(link):
    codes, x, n_grades, params = _clm_case()
    terms = _ClmTerms(codes, x, n_grades, link)
    at = terms.derivatives(params)
    assert at["loglike"] == pytest.approx(terms.loglike(params), rel=1e-14)
    h = 1e-5
    eye = np.eye(len(params))
    num_grad = np.array([(terms.loglike(params + h * e) - terms.loglike(params - h * e)) / (2 * h) for e in eye])
    num_hess = np.array([(terms.derivatives(params + h * e)["gradient"] - terms.derivatives(params - h * e)["gradient"])
                         / (2 * h) for e in eye])
    np.testing.assert_allclose(at["gradient"], num_grad, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(at["hessian"], num_hess, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(terms.score_obs(params).sum(axis=0), at["gradient"], rtol=1e-12, atol=1e-12)


def _graded(n=3000, seed=0, link="logit"):
    """P(grade <= j) = F(theta_j - (-0.6 sessions + 0.4 age_c + skin effect)), 6 grades per patient."""
    rng = np.random.default_rng(seed)
    skin = rng.choice(["II", "III", "IV"], n)
    sessions = rng.integers(1, 7, n)
    age_c = rng.normal(0, 1, n)
    noise = rng.logistic(size=n) if link == "logit" else rng.normal(size=n)
    latent = -0.6 * sessions + 0.4 * age_c + pd.Series(skin).map({"II": 0.0, "III": 0.3, "IV": -0.5}).to_numpy() + noise
    grade = 1 + np.searchsorted(np.array([-3.5, -2.0, -0.5, 1.0]), latent)
    return pd.DataFrame({"score": grade, "sessions": sessions, "age_c": age_c, "skin_type": skin,
                         "pid": np.arange(n) // 6})


@pytest.mark.parametrize("link", ["logit", "probit"])
def test_ordinal_newton_converges_in_a_few_steps(link):
    m = fit_ordinal(_graded(link=link), link=link)
    assert m.converged_
    assert 2 <= m.iterations_ <= 8
    # a maximum: the gradient there is zero to rounding
    rows = m.rows_
    codes = np.searchsorted(m.grades_, rows["score"].to_numpy())
    x = m.design_.build(rows).drop(columns="Intercept").to_numpy()
    params = np.concatenate([m.fixed_["estimate"], m.thresholds_["estimate"]])
    grad = _ClmTerms(codes, x, len(m.grades_), link).derivatives(params)["gradient"]
    assert np.abs(grad).max() < 1e-6


def test_ordinal_newton_stops_unconverged_when_out_of_steps(monkeypatch):
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    from outcomes.models import ordinal

    codes, x, n_grades, _ = _clm_case(n=200)
    fit = _newton(codes, x, n_grades, "logit", max_iter=1)
    assert not fit["converged"] and fit["iterations"] == 1
    monkeypatch.setattr(ordinal, "_newton", lambda *args: _newton(*args, max_iter=1))
    with pytest.warns(ConvergenceWarning, match="did NOT converge in 1 Newton steps"):
        m = fit_ordinal(_graded())
    assert not m.converged_


@pytest.mark.parametrize("link", ["logit", "probit"])
def test_ordinal_equals_the_previous_optimiser_on_known_effects(link):
    d = _graded(link=link)
    for group in (None, "pid"):
        m = fit_ordinal(d, link=link, group=group)
        old = m.result_  # statsmodels OrderedModel, BFGS with numerical derivatives
        k = len(m.fixed_)
        old_params = np.asarray(old.params)
        old_cuts = old_params[k] + np.concatenate([[0.0], np.cumsum(np.exp(old_params[k + 1:]))])
        np.testing.assert_allclose(m.fixed_["estimate"], old_params[:k], rtol=1e-5)
        np.testing.assert_allclose(m.thresholds_["estimate"], old_cuts, rtol=1e-5)
        assert m.llf_ == pytest.approx(old.llf, rel=1e-10)
        # standard errors: statsmodels differentiates numerically, hence the looser match
        np.testing.assert_allclose(m.fixed_["std_error"], np.asarray(old.bse)[:k], rtol=1e-4)
        # and the known effects are inside the CIs
        for term, truth in {"sessions": -0.6, "age_c": 0.4, "skin_type[T.IV]": -0.5}.items():
            assert m.fixed_.loc[term, "ci_low"] <= truth <= m.fixed_.loc[term, "ci_high"], (term, group)
    clustered = m
    plain = fit_ordinal(d, link=link)
    assert (clustered.fixed_["std_error"] != plain.fixed_["std_error"]).all()


def _unbalanced_panel(n=300, seed=0):
    """Patients with 1 to 7 visits at irregular session counts: clusters of every size.

    y: random intercept (exchangeable-like); y_ar: AR(1) errors by visit, rho 0.5; count: Poisson."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 8, n)
    pid = np.repeat(np.arange(n), sizes)
    s = np.concatenate([np.sort(rng.choice(np.arange(1, 10), k, replace=False)) for k in sizes])
    age_c = np.repeat(rng.normal(0, 1, n), sizes)
    skin = np.repeat(rng.choice(["II", "III", "IV"], n), sizes)
    b = np.repeat(rng.normal(0, 2, n), sizes)
    e = rng.normal(0, 1, len(s))
    ar = e.copy()
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    for j in range(1, 7):
        rows = first[sizes > j] + j
        ar[rows] = 0.5 * ar[rows - 1] + np.sqrt(0.75) * e[rows]
    frame = pd.DataFrame({"pid": [f"p{i:04d}" for i in pid], "s": s, "age_c": age_c, "skin_type": skin,
                          "y": 2 + 1.5 * np.log1p(s) - 0.8 * age_c + b + rng.normal(0, 1, len(s)),
                          "y_ar": 2 + 1.5 * np.log1p(s) - 0.8 * age_c + ar,
                          "count": rng.poisson(np.exp(0.2 + 0.1 * s - 0.2 * age_c + b / 4)),
                          "any": (rng.random(len(s)) < 1 / (1 + np.exp(-(-1 + 0.2 * s + b / 2)))).astype(int)})
    return frame.sample(frac=1.0, random_state=1)  # rows in no particular order


@pytest.mark.parametrize(("outcome", "family", "cov_struct"), [
    ("y", "gaussian", "exchangeable"), ("y", "gaussian", "independence"), ("y_ar", "gaussian", "ar1"),
    ("count", "poisson", "exchangeable"), ("count", "poisson", "ar1"), ("any", "binomial", "exchangeable"),
])
def test_gee_batched_equals_statsmodels_per_patient_loop_on_unbalanced_clusters(outcome, family, cov_struct):
    from outcomes.models import fit_gee
    from outcomes.models._batched_gee import BatchedGEE

    d = _unbalanced_panel()
    m = fit_gee(d, outcome, "s", "pid", covariates=("age_c", "skin_type"), cov_struct=cov_struct, family=family,
                time_transform="log1p")
    y, exog, groups, time = m._fit_inputs
    assert sorted(BatchedGEE(y, exog.to_numpy(), groups, time, family, cov_struct).index) == list(range(1, 8))
    old = m.result_  # statsmodels GEE: one solve per patient
    assert m.converged_ and old.converged
    # Brent's tolerance (1.5e-8) on the AR(1) parameter is the only source of difference
    tol = 1e-7 if cov_struct == "ar1" else 1e-10
    np.testing.assert_allclose(m.fixed_["estimate"], old.params, rtol=tol, atol=tol)
    np.testing.assert_allclose(m.fixed_["std_error"], old.bse, rtol=tol)
    np.testing.assert_allclose(m.cov_fixed_.to_numpy(), np.asarray(old.cov_params()), rtol=tol, atol=1e-15)
    assert m.scale_ == pytest.approx(old.scale, rel=tol)
    if cov_struct != "independence":
        assert m.dependence_ == pytest.approx(float(np.atleast_1d(old.model.cov_struct.dep_params)[0]), rel=tol)


def test_gee_falls_back_to_statsmodels_when_the_batched_solve_cannot(monkeypatch):
    from outcomes.models import _batched_gee, fit_gee

    d = _unbalanced_panel(n=120)
    fast = fit_gee(d, "y", "s", "pid", covariates=("age_c",))

    def refuse(self, *args, **kwargs):
        raise np.linalg.LinAlgError("working correlation for clusters of 3 is not positive definite")

    monkeypatch.setattr(_batched_gee.BatchedGEE, "fit", refuse)
    with pytest.warns(RuntimeWarning, match="statsmodels' GEE instead"):
        slow = fit_gee(d, "y", "s", "pid", covariates=("age_c",))
    assert slow.converged_
    np.testing.assert_allclose(slow.fixed_["estimate"], fast.fixed_["estimate"], rtol=1e-10)
    np.testing.assert_allclose(slow.fixed_["std_error"], fast.fixed_["std_error"], rtol=1e-10)


def test_importing_the_models_loads_no_heavy_library():
    # statsmodels, scikit-learn, matplotlib, seaborn and scipy's stats/optimize load when a model
    # is fitted or a figure drawn, not at import (they made `import outcomes.models` take 1.3 s)
    heavy = ("statsmodels", "sklearn", "matplotlib", "seaborn", "scipy.stats", "scipy.optimize")
    code = ("import sys, outcomes, outcomes.models; "
            f"print(sorted({{m.split('.')[0] if not m.startswith('scipy') else m for m in sys.modules}} & set({heavy!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
