"""MixedModel mechanics: term names, optimizer fallback and refusal, curve comparison, predictions."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from statsmodels.tools.sm_exceptions import ConvergenceWarning

import models_synthetic as ms
from outcomes.models import compare_curves, fit_mixed

SLEEP = pd.read_csv(Path(__file__).parent / "data" / "sleepstudy.csv")
# the lme4 REML answer for sleepstudy (sources quoted in test_models_reference.py)
LME4_FIXED = np.array([251.405104848485, 10.467285959595])
LME4_RANDOM = np.array([24.740448, 5.922133, 0.06555134, 25.59182])


def _in_days_units(model, per_day):
    """Fixed effects and random SDs of a fit whose time was recorded in 1/per_day days."""
    fixed = model.fixed["estimate"].to_numpy() * [1, per_day]
    rand = model.random["estimate"].to_numpy() * [1, per_day, 1, 1]
    return fixed, rand


def test_default_optimizer_stopping_short_is_caught_by_a_second_one():
    # Time in minutes: L-BFGS reports convergence, but at a point that is not the maximum
    # (its likelihood is lower); the second optimizer, started there, finds the lme4 answer.
    m = fit_mixed(SLEEP.assign(Days=SLEEP["Days"] * 1440), "Reaction", "Days", "Subject")
    first = m.attempts_.iloc[0]
    assert first["optimizer"] == "lbfgs"
    assert m.llf > first["llf"] + 0.01
    assert m.converged
    fixed, rand = _in_days_units(m, 1440)
    np.testing.assert_allclose(fixed, LME4_FIXED, rtol=1e-4)
    np.testing.assert_allclose(rand, LME4_RANDOM, rtol=1e-3)


@pytest.mark.slow
def test_default_optimizer_failing_falls_back_and_fits_correctly():
    # Time in units of 1/10,000 day: L-BFGS, BFGS and CG all fail from the default start;
    # Powell converges, the gradient optimizers polish from there and agree.
    d = SLEEP.assign(Days=SLEEP["Days"] * 10_000)
    m = fit_mixed(d, "Reaction", "Days", "Subject")
    assert not m.attempts_.iloc[0]["ok"]
    assert m.converged
    fixed, rand = _in_days_units(m, 10_000)
    np.testing.assert_allclose(fixed, LME4_FIXED, rtol=1e-4)
    np.testing.assert_allclose(rand, LME4_RANDOM, rtol=1e-3)


def test_no_optimizer_converging_is_refused_loudly():
    # Time in seconds: no optimizer reaches a confirmed maximum. The fit is flagged, never
    # passed off as good, and a ConvergenceWarning says what happened.
    d = SLEEP.assign(Days=SLEEP["Days"] * 86_400)
    with pytest.warns(ConvergenceWarning, match="did NOT converge"):
        m = fit_mixed(d, "Reaction", "Days", "Subject")
    assert m.converged is False
    assert not m.attempts_["ok"].any()


def test_single_optimizer_failure_is_flagged():
    d = SLEEP.assign(Days=SLEEP["Days"] * 86_400)
    with pytest.warns(ConvergenceWarning):
        m = fit_mixed(d, "Reaction", "Days", "Subject", optimizers=("bfgs",))
    assert not m.converged


def test_terms_named_as_the_formula_names_them():
    d = ms.cohort(60, seed=3).query("sessions > 0")
    m = fit_mixed(d, "improvement_pct", "sessions", "patient_id", covariates=("age", "skin_type"),
                  time_transform="log1p")
    assert m.fixed.index[0] == "Intercept"
    assert "np.log1p(sessions)" in m.fixed.index and "age" in m.fixed.index
    # categorical: first present level is the reference, the others are named [T.level]
    assert "skin_type[T.I]" not in m.fixed.index and "skin_type[T.III]" in m.fixed.index
    assert list(m.fixed.columns) == ["estimate", "std_error", "ci_low", "ci_high", "p_value"]
    assert list(m.random.index) == ["sd(Intercept)", "sd(np.log1p(sessions))",
                                    "corr(Intercept, np.log1p(sessions))", "sd(Residual)"]


@pytest.mark.slow
def test_compare_curves_prefers_a_curved_shape_for_diminishing_returns():
    d = ms.cohort(150, seed=5).query("sessions > 0")
    table = compare_curves(d, "improvement_pct", "sessions", "patient_id")
    assert set(table["time_transform"]) == {"identity", "log1p", "spline"}
    assert table["n_obs"].nunique() == 1  # the same rows for every shape
    assert table.loc[0, "best"] and table.loc[0, "time_transform"] != "identity"
    linear = table.set_index("time_transform").loc["identity"]
    assert linear["delta"] > 10


def test_predict_ci_and_contrast():
    d = ms.cohort(80, seed=2).query("sessions > 0")
    m = fit_mixed(d, "improvement_pct", "sessions", "patient_id", covariates=("skin_type",), time_transform="log1p")
    new = pd.DataFrame({"sessions": [1, 3], "skin_type": ["III", "III"]})
    pred = m.predict(new)
    assert (pred["ci_low"] < pred["estimate"]).all() and (pred["estimate"] < pred["ci_high"]).all()
    # estimate is x'beta by hand
    beta = m.fixed["estimate"]
    by_hand = beta["Intercept"] + beta["skin_type[T.III]"] + beta["np.log1p(sessions)"] * np.log1p(3)
    assert pred.loc[1, "estimate"] == pytest.approx(by_hand)
    same = m.contrast(new, new)
    np.testing.assert_allclose(same["estimate"], 0, atol=1e-12)
    np.testing.assert_allclose(same["std_error"], 0, atol=1e-12)
    with pytest.raises(ValueError, match="not fitted on"):
        m.predict(pd.DataFrame({"sessions": [1], "skin_type": ["VII"]}))


def test_bad_input_is_named():
    with pytest.raises(KeyError, match="sessions"):
        fit_mixed(SLEEP, "Reaction", "sessions", "Subject")
    with pytest.raises(ValueError, match="time_transform"):
        fit_mixed(SLEEP, "Reaction", "Days", "Subject", time_transform="cubic")
    with pytest.raises(ValueError, match="two groups"):
        fit_mixed(SLEEP.assign(Subject=1), "Reaction", "Days", "Subject")


def test_reml_and_ml_differ_and_aic_needs_ml():
    reml = fit_mixed(SLEEP, "Reaction", "Days", "Subject")
    ml = fit_mixed(SLEEP, "Reaction", "Days", "Subject", reml=False)
    # ML fit of the same model: lme4 prints logLik -876 / deviance 1752 for
    # lmer(..., REML = FALSE) (lme4 tests/lmer-1.Rout.save, github.com/lme4/lme4); the
    # unrounded optimum -875.9696722 is asserted in Julia MixedModels.jl's test suite
    # (test/pls.jl, "loglikelihood(fm)"). Fixed effects coincide under ML and REML here.
    assert ml.llf == pytest.approx(-875.9697, abs=1e-3)
    np.testing.assert_allclose(ml.fixed["estimate"], reml.fixed["estimate"], rtol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isfinite(ml.aic)


# random intercept and slope on log1p(sessions) with KNOWN variances, for the prediction band
BAND_SD_INT, BAND_SD_SLOPE, BAND_CORR, BAND_SD_RES = 3.0, 2.0, 0.3, 2.0
BAND_COV_RE = np.array([[BAND_SD_INT**2, BAND_CORR * BAND_SD_INT * BAND_SD_SLOPE],
                        [BAND_CORR * BAND_SD_INT * BAND_SD_SLOPE, BAND_SD_SLOPE**2]])


def _known_variance_panel(n_patients, seed):
    """y = 5 + 8 log1p(s) - age_c + b0 + b1 log1p(s) + e, (b0, b1) ~ N(0, BAND_COV_RE), e ~ N(0, 2²)."""
    rng = np.random.default_rng(seed)
    b = rng.multivariate_normal([0, 0], BAND_COV_RE, size=n_patients)
    s = np.tile(np.arange(1, 7), n_patients)
    i = np.repeat(np.arange(n_patients), 6)
    age_c = np.repeat(rng.normal(0, 1, n_patients), 6)
    y = 5 + 8 * np.log1p(s) - age_c + b[i, 0] + b[i, 1] * np.log1p(s) + rng.normal(0, BAND_SD_RES, s.size)
    return pd.DataFrame({"pid": np.char.add("p", i.astype(str)), "sessions": s, "age_c": age_c, "y": y})


def test_prediction_band_holds_95_percent_of_new_patients_measurements():
    m = fit_mixed(_known_variance_panel(300, seed=0), "y", "sessions", "pid", covariates=("age_c",),
                  time_transform="log1p")
    new = _known_variance_panel(1000, seed=100)  # patients the model never saw
    pred = m.predict(new, prediction=True)
    assert list(pred.columns) == ["estimate", "std_error", "ci_low", "ci_high", "pred_low", "pred_high"]
    inside = (pred["pred_low"] <= new["y"]) & (new["y"] <= pred["pred_high"])
    assert 0.92 <= inside.mean() <= 0.98
    assert inside.groupby(new["sessions"]).mean().between(0.90, 0.99).all()  # at every session count
    # its half-width is 1.96 x the true SD of one measurement: var(b0 + b1 log1p(s)) + residual variance
    z = np.column_stack([np.ones(len(new)), np.log1p(new["sessions"])])
    true_half = 1.959964 * np.sqrt(np.einsum("ij,jk,ik->i", z, BAND_COV_RE, z) + BAND_SD_RES**2)
    np.testing.assert_allclose((pred["pred_high"] - pred["pred_low"]) / 2, true_half, rtol=0.1)
    # the confidence band of the mean is a different thing: it holds few single measurements
    assert ((pred["ci_low"] <= new["y"]) & (new["y"] <= pred["ci_high"])).mean() < 0.3
    # no band unless asked; the CI can be left out while the band is kept
    assert "pred_low" not in m.predict(new).columns
    only = m.predict(new.iloc[:3], ci=False, prediction=True)
    assert list(only.columns) == ["estimate", "pred_low", "pred_high"]
    np.testing.assert_allclose(only["pred_low"], pred["pred_low"].iloc[:3])
