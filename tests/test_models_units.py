"""GEE, ordinal, sessions-to-response, predictive model and figures on frames with known answers."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import models_synthetic as ms  # noqa: E402
from outcomes import plots  # noqa: E402
from outcomes.models import (  # noqa: E402
    first_response, fit_gee, fit_ordinal, fit_improvement, fit_predictive, fit_response,
)


def _linear_panel(n=300, seed=0, rho=None):
    """y = 2 + 1.5 s - 0.8 age_c + patient intercept + error (AR(1) errors when rho given)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        age_c = rng.normal(0, 1)
        b = rng.normal(0, 2)
        e_prev = rng.normal(0, 1)
        for s in range(1, 6):
            e = rho * e_prev + np.sqrt(1 - rho**2) * rng.normal() if rho is not None else rng.normal()
            e_prev = e
            rows.append((f"p{i}", s, age_c, 2 + 1.5 * s - 0.8 * age_c + (0 if rho is not None else b) + e))
    return pd.DataFrame(rows, columns=["pid", "s", "age_c", "y"])


def test_gee_exchangeable_recovers_known_effects():
    m = fit_gee(_linear_panel(), "y", "s", "pid", covariates=("age_c",))
    assert m.converged_
    for term, truth in {"s": 1.5, "age_c": -0.8, "Intercept": 2.0}.items():
        row = m.fixed_.loc[term]
        assert row["ci_low"] <= truth <= row["ci_high"], term
    # exchangeable correlation: var(b) / (var(b) + var(e)) = 4 / 5
    assert m.dependence_ == pytest.approx(0.8, abs=0.05)


def test_gee_ar1_recovers_known_effects_and_correlation():
    m = fit_gee(_linear_panel(seed=1, rho=0.6), "y", "s", "pid", covariates=("age_c",), cov_struct="ar1")
    assert m.fixed_.loc["s", "ci_low"] <= 1.5 <= m.fixed_.loc["s", "ci_high"]
    assert m.fixed_.loc["age_c", "ci_low"] <= -0.8 <= m.fixed_.loc["age_c", "ci_high"]
    assert m.dependence_ == pytest.approx(0.6, abs=0.07)
    pred = m.predict(pd.DataFrame({"s": [0, 2], "age_c": [0, 0]}))
    assert pred.loc[0, "ci_low"] <= 2.0 <= pred.loc[0, "ci_high"]


def _gais_like(n=1500, seed=0):
    """P(grade <= j) = logistic(theta_j - (-0.6 sessions + 0.4 age_c)); lower grade = better."""
    rng = np.random.default_rng(seed)
    sessions = rng.integers(1, 7, n)
    age_c = rng.normal(0, 1, n)
    latent = -0.6 * sessions + 0.4 * age_c + rng.logistic(size=n)
    grade = 1 + np.searchsorted(np.array([-3.5, -2.0, -0.5, 1.0]), latent)
    return pd.DataFrame({"score": grade, "sessions": sessions, "age_c": age_c, "pid": np.arange(n) // 3})


def test_ordinal_recovers_known_effects_and_thresholds():
    m = fit_ordinal(_gais_like(), "score", ("sessions", "age_c"))
    assert m.converged_
    for term, truth in {"sessions": -0.6, "age_c": 0.4}.items():
        assert m.fixed_.loc[term, "ci_low"] <= truth <= m.fixed_.loc[term, "ci_high"], term
    th = m.thresholds_
    assert ((th["ci_low"].to_numpy() <= [-3.5, -2.0, -0.5, 1.0]) & ([-3.5, -2.0, -0.5, 1.0] <= th["ci_high"].to_numpy())).all()
    new = pd.DataFrame({"sessions": [1, 3, 6], "age_c": [0.0, 0.0, 0.0]})
    p = m.responder_probability(new)
    assert p["estimate"].is_monotonic_increasing  # more sessions, more "improved or better"
    true_p = 1 / (1 + np.exp(-(-0.5 - (-0.6 * new["sessions"]))))
    assert ((p["ci_low"] <= true_p) & (true_p <= p["ci_high"])).all()
    clustered = fit_ordinal(_gais_like(), "score", ("sessions", "age_c"), group="pid")
    np.testing.assert_allclose(clustered.fixed_["estimate"], m.fixed_["estimate"])
    assert not np.allclose(clustered.fixed_["std_error"], m.fixed_["std_error"])


def test_censoring_on_a_hand_made_case():
    # A responds at session 1; B stops after session 1 without responding (censored at 1);
    # C responds at 2; D is followed to 3 without responding (censored at 3); E only has a
    # baseline (nothing to say: left out).
    rows = pd.DataFrame({
        "patient_id": list("AAABBCCCDDDDE"),
        "sessions": [0, 1, 2, 0, 1, 0, 1, 2, 0, 1, 2, 3, 0],
        "improvement": [0, 12, 15, 0, 4, 0, 8, 11, 0, 2, 5, 9, 0],
    })
    per = first_response(rows, threshold=10).set_index("patient_id")
    assert per.to_dict("index") == {"A": {"responded": True, "sessions": 1}, "B": {"responded": False, "sessions": 1},
                                    "C": {"responded": True, "sessions": 2}, "D": {"responded": False, "sessions": 3}}
    frame = rows.assign(metric="hydration", view="front", age=45.0, skin_type="III", qc_ok=True)
    frame["skin_type"] = pd.Categorical(frame["skin_type"], categories=["I", "II", "III", "IV", "V", "VI"], ordered=True)
    m = fit_response(frame, "hydration", threshold=10, by=None)
    curve = m.curves_.set_index("sessions")["survival"]
    # Kaplan-Meier by hand: t=1: 4 at risk, 1 event -> 3/4; B leaves; t=2: 2 at risk, 1 event -> 3/8
    assert curve[1] == pytest.approx(0.75) and curve[2] == pytest.approx(0.375)
    assert m.medians_.loc[0, "median_sessions"] == 2
    assert m.medians_.loc[0, "patients"] == 4 and m.medians_.loc[0, "responded"] == 2


def test_fit_response_age_slows_response():
    d = ms.cohort(800, seed=21, dropout=0.05)
    m = fit_response(d, "hydration", threshold=10, by="age_band")
    hr = m.fixed_.loc["age_c"]
    assert hr["estimate"] < 0 and hr["hr_ci_high"] < 1  # older -> lower hazard of responding
    c = m.curves_
    for _, part in c.groupby("group"):
        assert part["survival"].is_monotonic_decreasing
        assert ((part["ci_low"] <= part["survival"] + 1e-12) & (part["survival"] <= part["ci_high"] + 1e-12)).all()


@pytest.mark.slow
def test_predictive_folds_never_share_a_patient_and_sessions_matter_most():
    d = ms.cohort(250, seed=8)
    m = fit_predictive(d, "hydration", n_splits=5)
    all_patients = set(m.rows_["patient_id"])
    for f in m.folds_:
        assert not (f["train_patients"] & f["test_patients"])
        assert f["train_patients"] | f["test_patients"] == all_patients
    tests = [f["test_patients"] for f in m.folds_]
    assert sum(len(t) for t in tests) == len(all_patients)  # each patient tested exactly once
    s = m.summary
    assert list(s.index) == ["boosting", "ridge", "mixed model"]
    assert (s["folds"] == 5).all() and (s["mae_sd"] > 0).all()
    assert s.loc["ridge", "r2"] > 0 and s.loc["mixed model", "r2"] > 0
    assert m.importance_.iloc[0]["feature"] == "sessions"
    pdp = m.partial_dependence_.query("feature == 'sessions'")
    assert pdp["average"].iloc[-1] > pdp["average"].iloc[0]  # more sessions, more improvement


def test_figures_return_axes_and_tell_groups_apart_without_colour():
    m = fit_improvement(ms.cohort(120, seed=3), "hydration", interactions=(), time_transform="log1p")
    fig, ax = plt.subplots()
    assert m.plot(ax=ax) is ax
    styles = {(line.get_marker(), str(line.get_linestyle())) for line in ax.get_lines()}
    assert len(styles) == len(ax.get_lines()) == 4  # four age bands, four marker/line styles
    assert isinstance(m.mixed_.plot(), plt.Axes)
    assert isinstance(plots.naive_vs_model(m.marginal(), m.marginal()), plt.Axes)
    plt.close("all")
