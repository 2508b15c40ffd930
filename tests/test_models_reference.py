"""Our model wrappers reproduce published results of established R packages on public data.

Fixed effects to 1e-4 relative, variance components to 1e-3 relative. The data are small
CSV copies in tests/data (see tests/data/README.md for source and licence). Each golden
number is quoted from the source named beside it; none was computed by this project.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from outcomes.models import fit_gee, fit_mixed, fit_ordinal

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def sleepstudy_fit():
    d = pd.read_csv(DATA / "sleepstudy.csv")
    return fit_mixed(d, "Reaction", "Days", "Subject", random_slope=True, reml=True)


def test_mixed_fixed_effects_match_lme4(sleepstudy_fit):
    # lme4: fm1 <- lmer(Reaction ~ Days + (Days | Subject), sleepstudy)   (REML)
    # lme4's own regression test asserts fixef(fm1) == c(251.405104848485, 10.467285959595)
    # to 1e-13: https://github.com/lme4/lme4/blob/master/tests/lmer-1.R
    m = sleepstudy_fit
    assert m.converged_
    assert list(m.fixed_.index) == ["Intercept", "Days"]
    np.testing.assert_allclose(m.fixed_["estimate"], [251.405104848485, 10.467285959595], rtol=1e-4)
    # standard errors printed by lme4's summary(fm1): 6.825 and 1.546 (output reproduced in
    # D. Barr, "Linear mixed-effects models", Glasgow stat-models course 2023,
    # https://dalejbarr.github.io/stat-models-2023/slides/05_lmms_1/); printed to 4 significant
    # digits, so compared to that precision
    np.testing.assert_allclose(m.fixed_["std_error"], [6.825, 1.546], rtol=1e-3)


def test_mixed_variance_components_match_lme4(sleepstudy_fit):
    # lme4 1.1-7, unclass(VarCorr(fm1)) for the same fit, posted by lme4 maintainer Ben Bolker:
    # https://stackoverflow.com/q/8526681 ("Extract random effect variances from lme4 mer model
    # object"): stddev (Intercept) 24.740448, Days 5.922133; correlation 0.06555134;
    # attr(,"sc") (residual SD) 25.59182
    r = sleepstudy_fit.random_["estimate"]
    np.testing.assert_allclose(r["sd(Intercept)"], 24.740448, rtol=1e-3)
    np.testing.assert_allclose(r["sd(Days)"], 5.922133, rtol=1e-3)
    np.testing.assert_allclose(r["corr(Intercept, Days)"], 0.06555134, rtol=1e-3)
    np.testing.assert_allclose(r["sd(Residual)"], 25.59182, rtol=1e-3)


def test_mixed_reml_criterion_matches_lme4(sleepstudy_fit):
    # summary(fm1): "REML criterion at convergence: 1743.6" (-2 * REML log-likelihood), same source
    assert -2 * sleepstudy_fit.llf_ == pytest.approx(1743.6, abs=0.05)


def test_mixed_population_prediction_is_the_fixed_line(sleepstudy_fit):
    new = pd.DataFrame({"Days": [0, 5, 9]})
    pred = sleepstudy_fit.predict(new)
    np.testing.assert_allclose(pred["estimate"], 251.405104848485 + 10.467285959595 * new["Days"], rtol=1e-4)
    # the CI at day 0 is the intercept's Wald interval
    se0 = sleepstudy_fit.fixed_.loc["Intercept", "std_error"]
    assert pred.loc[0, "ci_high"] - pred.loc[0, "estimate"] == pytest.approx(1.959964 * se0, rel=1e-5)


def test_gee_matches_geepack_ohio():
    # geepack: geese(resp ~ age + smoke + age:smoke, id = id, data = ohio, family = binomial,
    #                corstr = "exch")
    # printed output (geepack, quoted in the geeq package README,
    # https://github.com/zhouyuze/geeq): coefficients -1.90049518 -0.14123591 0.31382579
    # 0.07083184; estimated scale 0.9994078; correlation alpha 0.354605
    d = pd.read_csv(DATA / "ohio.csv")
    m = fit_gee(d, "resp", "age", "id", covariates=("smoke",), interactions=("smoke",),
                cov_struct="exchangeable", family="binomial")
    assert m.converged_
    assert list(m.fixed_.index) == ["Intercept", "age", "smoke", "age:smoke"]
    np.testing.assert_allclose(m.fixed_["estimate"], [-1.90049518, -0.14123591, 0.31382579, 0.07083184], rtol=1e-4)
    assert m.dependence_ == pytest.approx(0.354605, rel=1e-3)
    assert m.scale_ == pytest.approx(0.9994078, rel=1e-3)


def test_ordinal_matches_clm_wine():
    # ordinal: fm1 <- clm(rating ~ temp + contact, data = wine); summary(fm1)
    # (ordinal package vignette "clm_article", Christensen 2018, and reproduced in many
    # tutorials): tempwarm 2.5031 (SE 0.5287), contactyes 1.5278 (SE 0.4766);
    # thresholds 1|2 -1.3444 (0.5171), 2|3 1.2508 (0.4379), 3|4 3.4669 (0.5978),
    # 4|5 5.0064 (0.7309); logLik -86.49. Printed to 5 significant digits (rounding < 4e-5 rel).
    d = pd.read_csv(DATA / "wine.csv")
    m = fit_ordinal(d, "rating", ("temp", "contact"))
    assert m.converged_
    np.testing.assert_allclose(m.fixed_["estimate"], [2.5031, 1.5278], rtol=1e-4)
    np.testing.assert_allclose(m.fixed_["std_error"], [0.5287, 0.4766], rtol=1e-3)
    np.testing.assert_allclose(m.thresholds_["estimate"], [-1.3444, 1.2508, 3.4669, 5.0064], rtol=1e-4)
    np.testing.assert_allclose(m.thresholds_["std_error"], [0.5171, 0.4379, 0.5978, 0.7309], rtol=1e-3)
    assert m.llf_ == pytest.approx(-86.49, abs=0.005)
    # probabilities of each grade sum to one
    probs = m.predict(pd.DataFrame({"temp": ["cold", "warm"], "contact": ["no", "yes"]}))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
