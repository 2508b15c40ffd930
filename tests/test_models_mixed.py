"""MixedModel mechanics: term names, optimizer fallback and refusal, curve comparison, predictions."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from statsmodels.tools.sm_exceptions import ConvergenceWarning

import models_synthetic as ms
from outcomes.models import MixedModel as MixedModelForTest
from outcomes.models import compare_curves, fit_mixed

SLEEP = pd.read_csv(Path(__file__).parent / "data" / "sleepstudy.csv")
# the lme4 REML answer for sleepstudy (sources quoted in test_models_reference.py)
LME4_FIXED = np.array([251.405104848485, 10.467285959595])
LME4_RANDOM = np.array([24.740448, 5.922133, 0.06555134, 25.59182])


def _in_days_units(model, per_day):
    """Fixed effects and random SDs of a fit whose time was recorded in 1/per_day days."""
    fixed = model.fixed_["estimate"].to_numpy() * [1, per_day]
    rand = model.random_["estimate"].to_numpy() * [1, per_day, 1, 1]
    return fixed, rand


def _inject(monkeypatch, **how):
    """Make optimizers fail on purpose, whatever this machine's floating-point path would do:
    ``lbfgs="raise"`` (an error, as a singular matrix gives), ``bfgs="stall"`` (statsmodels'
    result, marked not converged, with its ConvergenceWarning), or ``lbfgs=chol`` (stops short:
    reports success at the packed Cholesky factor ``chol``, which is not the maximum)."""
    from outcomes.models._grouped_mixedlm import GroupedMixedLM

    real = GroupedMixedLM.fit
    calls = []

    def fit(self, *args, method=None, **kwargs):
        calls.append(method)
        what = how.get(method)
        if isinstance(what, str) and what == "raise":
            raise np.linalg.LinAlgError("injected: Singular matrix")
        if what is not None and not isinstance(what, str):
            return self.results_at(np.asarray(what, dtype=float), kwargs["reml"])
        res = real(self, *args, method=method, **kwargs)
        if what == "stall":
            warnings.warn("injected: the optimizer did not converge", ConvergenceWarning)
            res.converged = False
        return res

    monkeypatch.setattr(GroupedMixedLM, "fit", fit)
    return calls


@pytest.mark.parametrize("per_day", [1, 86_400])
def test_default_optimizer_stopping_short_is_caught_by_the_newton_check(monkeypatch, per_day):
    # L-BFGS reports success at a point that is not the maximum (injected: on badly scaled time
    # units it does so on some machines). The Newton check from there (exact gradient and
    # Hessian, so scale-free) finds lme4's answer; the results are recomputed at that point.
    short = np.array([0.9, 0.02 / per_day, 0.22 / per_day])  # near, not at, the maximum
    _inject(monkeypatch, lbfgs=short)
    m = fit_mixed(SLEEP.assign(Days=SLEEP["Days"] * per_day), "Reaction", "Days", "Subject")
    first = m.attempts_.iloc[0]
    assert first["optimizer"] == "lbfgs" and first["ok"]
    assert m.llf_ > first["llf"] + 0.01
    assert m.converged_ and m.attempts_.loc[m.attempts_["chosen"], "optimizer"].item() == "newton"
    fixed, rand = _in_days_units(m, per_day)
    np.testing.assert_allclose(fixed, LME4_FIXED, rtol=1e-4)
    np.testing.assert_allclose(rand, LME4_RANDOM, rtol=1e-3)


@pytest.mark.parametrize("per_day", [1440, 10_000, 86_400, 1_000_000])
def test_badly_scaled_time_gives_the_well_scaled_answer(per_day):
    # Time in minutes, 1/10,000 day, seconds, 1/1,000,000 day: which optimizer fails or stops
    # short here depends on the machine's floating-point path (BLAS kernels); the answer must not.
    m = fit_mixed(SLEEP.assign(Days=SLEEP["Days"] * per_day), "Reaction", "Days", "Subject")
    assert m.converged_
    fixed, rand = _in_days_units(m, per_day)
    np.testing.assert_allclose(fixed, LME4_FIXED, rtol=1e-4)
    np.testing.assert_allclose(rand, LME4_RANDOM, rtol=1e-3)


def test_default_optimizer_failing_falls_back_and_fits_correctly(monkeypatch):
    # L-BFGS fails outright, BFGS and CG do not converge (all injected); Powell reports success,
    # and Newton's method from there reaches lme4's answer.
    calls = _inject(monkeypatch, lbfgs="raise", bfgs="stall", cg="stall")
    m = fit_mixed(SLEEP, "Reaction", "Days", "Subject")
    assert calls[:4] == ["lbfgs", "bfgs", "cg", "powell"]
    assert m.attempts_["optimizer"].tolist()[:4] == ["lbfgs", "bfgs", "cg", "powell"]
    assert not m.attempts_.iloc[:3]["ok"].any() and m.attempts_.iloc[3]["ok"]
    assert m.attempts_.iloc[0]["message"] == "error: injected: Singular matrix"
    assert m.attempts_.iloc[1:3]["message"].str.contains("injected: the optimizer did not converge").all()
    assert m.converged_ and m.attempts_.loc[m.attempts_["chosen"], "optimizer"].item() in ("powell", "newton")
    fixed, rand = _in_days_units(m, 1)
    np.testing.assert_allclose(fixed, LME4_FIXED, rtol=1e-4)
    np.testing.assert_allclose(rand, LME4_RANDOM, rtol=1e-3)


def test_a_maximum_that_is_not_verified_is_refused_loudly(monkeypatch):
    # One measurement per subject: between-subject and visit-to-visit variation cannot be told
    # apart, the likelihood is flat along a ridge, and an optimizer's "success" is a point on it
    # (injected for L-BFGS: whether each optimizer claims success there depends on the machine).
    # The Hessian check sees the flat direction: the fit is flagged, never passed off as good,
    # and a ConvergenceWarning says what happened.
    once = SLEEP.sample(frac=1, random_state=1).drop_duplicates("Subject")
    _inject(monkeypatch, lbfgs=[0.9, 0.02, 0.22])
    with pytest.warns(ConvergenceWarning, match="did NOT converge"):
        m = fit_mixed(once, "Reaction", "Days", "Subject")
    assert m.converged_ is False
    assert not m.attempts_["ok"].any()
    first = m.attempts_.iloc[0]
    assert first["optimizer"] == "lbfgs" and "optimizer reports success, but not a verified maximum" in first["message"]


def test_single_optimizer_failure_is_flagged(monkeypatch):
    _inject(monkeypatch, bfgs="stall")
    with pytest.warns(ConvergenceWarning, match="did NOT converge"):
        m = fit_mixed(SLEEP, "Reaction", "Days", "Subject", optimizers=("bfgs",))
    assert not m.converged_
    assert m.attempts_["optimizer"].tolist() == ["bfgs"] and not m.attempts_["ok"].any()
    assert m.attempts_["chosen"].item()  # the only fit there is, marked failed
    _inject(monkeypatch, bfgs="raise")
    with pytest.raises(RuntimeError, match="every optimizer failed outright"):
        fit_mixed(SLEEP, "Reaction", "Days", "Subject", optimizers=("bfgs",))


def test_grouped_likelihood_equals_statsmodels_loops():
    # the batched per-group algebra must give statsmodels' own numbers, not just similar fits
    from statsmodels.regression.mixed_linear_model import MixedLM, MixedLMParams

    from outcomes.models._grouped_mixedlm import GroupedMixedLM

    d = ms.cohort(80, seed=3, dropout=0.1).query("sessions > 0")  # unequal group sizes
    x = np.column_stack([np.ones(len(d)), np.log1p(d["sessions"]), (d["age"] - 45) / 10,
                         (d["skin_type"] == "III").astype(float)])
    z = np.column_stack([np.ones(len(d)), np.log1p(d["sessions"])])
    y, groups = d["improvement_pct"].to_numpy(), d["patient_id"].to_numpy()
    rng = np.random.default_rng(0)
    for reml in (True, False):
        for use_sqrt in (True, False):
            ref = MixedLM(y, x, groups=groups, exog_re=z, use_sqrt=use_sqrt)
            fast = GroupedMixedLM(y, x, groups, z, use_sqrt=use_sqrt)
            for m in (ref, fast):
                m.reml, m.cov_pen, m.fe_pen, m._freepat = reml, None, None, None
            for _ in range(2):
                chol = np.array([[rng.uniform(0.5, 3), 0], [rng.normal(), rng.uniform(0.2, 2)]])
                p = MixedLMParams(x.shape[1], 2, 0)
                p.cov_re, p.vcomp = chol @ chol.T, np.zeros(0)
                packed = p.get_packed(use_sqrt=use_sqrt, has_fe=False)
                assert fast.loglike(packed) == pytest.approx(ref.loglike(packed), rel=1e-12)
                np.testing.assert_allclose(fast.score(packed), ref.score(packed), rtol=1e-9, atol=1e-12)
                beta = ref.get_fe_params(p.cov_re, p.vcomp)[0]
                np.testing.assert_allclose(fast.get_fe_params(p.cov_re, p.vcomp)[0], beta, rtol=1e-9)
                assert fast.get_scale(beta, p.cov_re, p.vcomp) == pytest.approx(
                    ref.get_scale(beta, p.cov_re, p.vcomp), rel=1e-12)
                p.fe_params = beta + 0.1
                assert fast.loglike(p, profile_fe=False) == pytest.approx(ref.loglike(p, profile_fe=False),
                                                                          rel=1e-12)
                np.testing.assert_allclose(fast.hessian(p)[0], ref.hessian(p)[0], rtol=1e-9, atol=1e-9)


def test_grouped_random_intercept_equals_statsmodels_loops():
    # q = 1 (random_slope=False) takes its own closed-form branch of the batched algebra
    from statsmodels.regression.mixed_linear_model import MixedLM, MixedLMParams

    from outcomes.models._grouped_mixedlm import GroupedMixedLM

    x = np.column_stack([np.ones(len(SLEEP)), SLEEP["Days"]])
    z = np.ones((len(SLEEP), 1))
    y, groups = SLEEP["Reaction"].to_numpy(), SLEEP["Subject"].to_numpy()
    for reml in (True, False):
        ref, fast = MixedLM(y, x, groups=groups, exog_re=z), GroupedMixedLM(y, x, groups, z)
        for m in (ref, fast):
            m.reml, m.cov_pen, m.fe_pen, m._freepat = reml, None, None, None
        p = MixedLMParams(2, 1, 0)
        p.cov_re, p.vcomp = np.array([[1.7]]), np.zeros(0)
        packed = p.get_packed(use_sqrt=True, has_fe=False)
        assert fast.loglike(packed) == pytest.approx(ref.loglike(packed), rel=1e-12)
        np.testing.assert_allclose(fast.score(packed), ref.score(packed), rtol=1e-9)
        p.fe_params = ref.get_fe_params(p.cov_re, p.vcomp)[0] + 0.1
        np.testing.assert_allclose(fast.hessian(p)[0], ref.hessian(p)[0], rtol=1e-9, atol=1e-9)


def test_results_at_a_point_equal_statsmodels_fit_results():
    # the verified maximum is reported through the same results object MixedLM.fit builds
    from statsmodels.regression.mixed_linear_model import MixedLM

    from outcomes.models._grouped_mixedlm import GroupedMixedLM

    x = np.column_stack([np.ones(len(SLEEP)), SLEEP["Days"]])
    y, groups = SLEEP["Reaction"].to_numpy(), SLEEP["Subject"].to_numpy()
    for reml in (True, False):
        ref = MixedLM(y, x, groups=groups, exog_re=x).fit(reml=reml, method="lbfgs")
        at = GroupedMixedLM(y, x, groups, x).results_at(ref.params_object.get_packed(use_sqrt=True, has_fe=False),
                                                          reml)
        assert at.llf == pytest.approx(ref.llf, rel=1e-10)
        np.testing.assert_allclose(at.fe_params, ref.fe_params, rtol=1e-8)
        np.testing.assert_allclose(at.cov_re, ref.cov_re, rtol=1e-8)
        np.testing.assert_allclose(at.cov_params(), ref.cov_params(), rtol=1e-6, atol=1e-10)
        assert at.scale == pytest.approx(ref.scale, rel=1e-10) and at.converged


def test_newton_derivatives_match_finite_differences():
    from outcomes.models._grouped_mixedlm import GroupedMixedLM

    x = np.column_stack([np.ones(len(SLEEP)), SLEEP["Days"]])
    m = GroupedMixedLM(SLEEP["Reaction"].to_numpy(), x, SLEEP["Subject"].to_numpy(), x)
    m.reml, m.cov_pen, m.fe_pen, m._freepat = True, None, None, None
    chol = np.array([0.9, 0.02, 0.22])
    f0, grad, hess = m.profile_derivatives(chol)
    h = 1e-5 * np.abs(chol)
    fd_grad = np.array([(m.profile_derivatives(chol + e)[0] - m.profile_derivatives(chol - e)[0]) / (2 * e.sum())
                        for e in np.diag(h)])
    np.testing.assert_allclose(grad, fd_grad, rtol=1e-4)  # central differences: ~1e-5 of noise
    fd_hess = np.array([(m.profile_derivatives(chol + e)[1] - m.profile_derivatives(chol - e)[1]) / (2 * e.sum())
                        for e in np.diag(h)])
    np.testing.assert_allclose(hess, (fd_hess + fd_hess.T) / 2, rtol=1e-5, atol=1e-6 * np.abs(hess).max())


def test_terms_named_as_the_formula_names_them():
    d = ms.cohort(60, seed=3).query("sessions > 0")
    m = fit_mixed(d, "improvement_pct", "sessions", "patient_id", covariates=("age", "skin_type"),
                  time_transform="log1p")
    assert m.fixed_.index[0] == "Intercept"
    assert "np.log1p(sessions)" in m.fixed_.index and "age" in m.fixed_.index
    # categorical: first present level is the reference, the others are named [T.level]
    assert "skin_type[T.I]" not in m.fixed_.index and "skin_type[T.III]" in m.fixed_.index
    assert list(m.fixed_.columns) == ["estimate", "std_error", "ci_low", "ci_high", "p_value"]
    assert list(m.random_.index) == ["sd(Intercept)", "sd(np.log1p(sessions))",
                                    "corr(Intercept, np.log1p(sessions))", "sd(Residual)"]


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
    beta = m.fixed_["estimate"]
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
    assert ml.llf_ == pytest.approx(-875.9697, abs=1e-3)
    np.testing.assert_allclose(ml.fixed_["estimate"], reml.fixed_["estimate"], rtol=1e-6)
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


def test_warm_start_reaches_the_same_verified_maximum():
    cold = fit_mixed(SLEEP, "Reaction", "Days", "Subject")
    half = fit_mixed(SLEEP[SLEEP["Subject"].isin(SLEEP["Subject"].unique()[:9])], "Reaction", "Days", "Subject")
    warm = MixedModelForTest("Reaction", "Days", "Subject").fit(SLEEP, start=half.theta_)
    assert warm.attempts_.iloc[0]["start"] == "given" and warm.converged_
    np.testing.assert_allclose(warm.fixed_["estimate"], cold.fixed_["estimate"], rtol=1e-6)
    np.testing.assert_allclose(warm.random_["estimate"], cold.random_["estimate"], rtol=1e-4)
    # a start from which nothing works falls back to the default start, and is still verified
    odd = MixedModelForTest("Reaction", "Days", "Subject").fit(SLEEP, start=np.array([1e6, -1e6, 1e6]))
    assert odd.converged_
    np.testing.assert_allclose(odd.fixed_["estimate"], cold.fixed_["estimate"], rtol=1e-6)
    with pytest.raises(ValueError, match="theta_"):
        MixedModelForTest("Reaction", "Days", "Subject").fit(SLEEP, start=np.ones(2))


def test_score_is_the_gradient_of_what_the_optimizer_moves():
    # The optimizer moves the packed Cholesky factor L (Ψ = L L'), whose diagonal may turn
    # negative. statsmodels re-factorises L L' (positive diagonal) and so flips the sign of that
    # row's gradient; the score here is the gradient in L itself.
    from outcomes.models._grouped_mixedlm import GroupedMixedLM

    x = np.column_stack([np.ones(len(SLEEP)), SLEEP["Days"]])
    m = GroupedMixedLM(SLEEP["Reaction"].to_numpy(), x, SLEEP["Subject"].to_numpy(), x)
    m.reml, m.cov_pen, m.fe_pen, m._freepat = True, None, None, None
    for chol in (np.array([0.9, 0.02, 0.22]), np.array([-0.9, 0.02, 0.22]), np.array([0.9, 0.02, -0.22])):
        h = 1e-6
        fd = [(m.loglike(chol + e) - m.loglike(chol - e)) / (2 * h) for e in np.eye(3) * h]
        np.testing.assert_allclose(m.score(chol), fd, rtol=1e-4)


@pytest.mark.parametrize("how", ["release", "internal"])
def test_untested_statsmodels_falls_back_to_its_own_loops_with_the_same_answer(monkeypatch, how):
    # The batched path re-implements statsmodels internals; on a release it was not checked
    # against (injected: no tested release), or one lacking an internal it relies on (injected:
    # one more required name that MixedLM does not have), the fit must run on plain statsmodels,
    # say so with a warning, and give the batched path's (and lme4's) answer.
    from statsmodels.regression.mixed_linear_model import MixedLM

    import outcomes.models._grouped_mixedlm as gm

    fast = fit_mixed(SLEEP, "Reaction", "Days", "Subject")
    assert fast.result_.model._batched
    if how == "release":
        monkeypatch.setattr(gm, "TESTED_STATSMODELS", ())
        match = "is not one of the tested releases"
    else:
        monkeypatch.setitem(gm.REQUIRED_INTERNALS, MixedLM, (*gm.REQUIRED_INTERNALS[MixedLM], "_gone_in_a_new_release"))
        match = "lacks MixedLM._gone_in_a_new_release"
    with pytest.warns(gm.StatsmodelsInternalsWarning, match=match):
        plain = fit_mixed(SLEEP, "Reaction", "Days", "Subject")
    model = plain.result_.model
    assert not model._batched and not model._grouped()
    assert "exog_li" in vars(model)  # statsmodels' own per-group split, built by MixedLM.__init__
    assert plain.converged_
    np.testing.assert_allclose(plain.fixed_["estimate"], fast.fixed_["estimate"], rtol=1e-7)
    # the same maximum, reached by another path: equal to within Newton's stopping rule (a
    # likelihood gain under 1e-6), which leaves the weakly pinned correlation freest
    np.testing.assert_allclose(plain.fixed_["std_error"], fast.fixed_["std_error"], rtol=1e-5)
    np.testing.assert_allclose(plain.random_["estimate"], fast.random_["estimate"], rtol=1e-4)
    assert plain.llf_ == pytest.approx(fast.llf_, abs=1e-6)
    np.testing.assert_allclose(plain.fixed_["estimate"], LME4_FIXED, rtol=1e-4)
    np.testing.assert_allclose(plain.random_["estimate"], LME4_RANDOM, rtol=1e-3)


def test_batched_fit_never_builds_the_per_patient_split_but_statsmodels_gets_it_on_demand():
    # MixedLM.__init__ splits the data into one array per patient for its loops (a fifth to a
    # third of a large fit); the batched path never reads it, so it is only built when one of
    # statsmodels' own loops asks for it, and then it is statsmodels' split.
    from statsmodels.regression.mixed_linear_model import MixedLM

    m = fit_mixed(SLEEP, "Reaction", "Days", "Subject")
    model = m.result_.model
    assert not {"row_indices", "endog_li", "exog_li", "exog_re_li", "_aex_r"} & set(vars(model))
    x = np.column_stack([np.ones(len(SLEEP)), SLEEP["Days"]])
    ref = MixedLM(SLEEP["Reaction"].to_numpy(), x, groups=SLEEP["Subject"].to_numpy(), exog_re=x)
    assert model.group_labels == ref.group_labels and model.n_groups == ref.n_groups
    for name in ("row_indices", "endog_li", "exog_li", "exog_re_li", "exog_re2_li", "_aex_r", "_aex_r2"):
        ours, theirs = getattr(model, name), getattr(ref, name)
        if isinstance(theirs, dict):
            assert ours == theirs
        else:
            assert len(ours) == len(theirs) and all(np.array_equal(a, b) for a, b in zip(ours, theirs))
    # and statsmodels' per-patient predictions (they read the split) equal a plain MixedLM's
    plain = ref.fit(reml=True, start_params=m.result_.params_object)
    np.testing.assert_allclose(pd.DataFrame(m.result_.random_effects).T.to_numpy(),
                               pd.DataFrame(plain.random_effects).T.to_numpy(), rtol=1e-5)


def test_hessian_and_likelihood_are_computed_once_per_point(monkeypatch):
    # The Newton check's last point is the one results_at reports: its Hessian, and the
    # per-group algebra at its covariance (asked for again at the GLS fixed effects), are
    # reused, not recomputed (and a caller changing the returned matrix cannot change the kept one).
    from outcomes.models._grouped_mixedlm import GroupedMixedLM

    x = np.column_stack([np.ones(len(SLEEP)), SLEEP["Days"]])
    m = GroupedMixedLM(SLEEP["Reaction"].to_numpy(), x, SLEEP["Subject"].to_numpy(), x)
    m.reml, m.cov_pen, m.fe_pen, m._freepat = True, None, None, None
    computed, evaluated = [], []
    real, real_gls = GroupedMixedLM._hessian_at, GroupedMixedLM._gls_at
    monkeypatch.setattr(GroupedMixedLM, "_hessian_at", lambda self, p: computed.append(1) or real(self, p))
    monkeypatch.setattr(GroupedMixedLM, "_gls_at", lambda self, *a: evaluated.append(1) or real_gls(self, *a))
    chol = np.array([0.9, 0.02, 0.22])
    _, _, hess = m.profile_derivatives(chol)
    res = m.results_at(chol, reml=True)
    assert len(computed) == 1 and len(evaluated) == 1
    first, _ = m.hessian(res.params_object)
    first[:] = 0
    again, _ = m.hessian(res.params_object)
    assert len(computed) == 1 and np.all(again != 0)
    m.results_at(chol, reml=False)  # ML: another Hessian
    assert len(computed) == 2
    # at other fixed effects only the residual parts change: equal to a fresh model's answer
    other = m._from_chol(chol)
    other.fe_params = res.fe_params + 1.0
    fresh = GroupedMixedLM(SLEEP["Reaction"].to_numpy(), x, SLEEP["Subject"].to_numpy(), x)
    fresh.reml = m.reml = True
    assert m.loglike(other, profile_fe=False) == fresh.loglike(other, profile_fe=False)
    assert len(evaluated) == 2  # the fresh model's one; none more for m


def test_batched_algebra_runs_with_blas_on_one_thread(monkeypatch):
    # Its products are tall and thin; on a shared machine two BLAS threads wait for each other
    # (2-3x slower). What is checked is the setting while the fit runs, never a time.
    from threadpoolctl import ThreadpoolController

    from outcomes.models._grouped_mixedlm import GroupedMixedLM

    seen = []
    real = GroupedMixedLM._gls_at

    def spy(self, *args):
        seen.extend(lib["num_threads"] for lib in ThreadpoolController().select(user_api="blas").info())
        return real(self, *args)

    monkeypatch.setattr(GroupedMixedLM, "_gls_at", spy)
    fit_mixed(SLEEP, "Reaction", "Days", "Subject")
    assert seen and set(seen) == {1}
