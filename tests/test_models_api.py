"""The analyst's API (issue 12): one style for every model, explicit options, any comparison,
boundary fits said out loud, readable terms.

Small simulated cohorts (the package's own demo tables, 150 patients) and hand-built panels
whose answer is known by construction.
"""
from __future__ import annotations

import inspect
import re
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from outcomes import models, simulation  # noqa: E402
from outcomes.models._tidy import TIDY_COLUMNS, holm  # noqa: E402
from outcomes.models.improvement import attach_columns  # noqa: E402
from outcomes.reports import fitting  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tables():
    return simulation.demo_tables(n_patients=150, seed=11)


@pytest.fixture(scope="module")
def fitted(tables):
    """One fitted object of every coefficient model."""
    imp = models.ImprovementModel("hydration", interactions=())
    assert imp.fit(tables) is imp
    gee = models.GEEModel("improvement_pct", "sessions", "patient_id", ["age_c", "skin_type"], time_transform="log1p")
    assert gee.fit(imp.rows_) is gee
    gais = models.gais_frame(tables["assessments"], tables["patients"])
    ordinal = models.OrdinalModel(group="patient_id")
    assert ordinal.fit(gais) is ordinal
    response = models.ResponseModel("hydration")
    assert response.fit(tables) is response
    return {"improvement": imp, "mixed": imp.mixed_, "gee": gee, "ordinal": ordinal, "response": response}


def _panel(kind: str, n: int = 150, seed: int = 0) -> pd.DataFrame:
    """y = 5 + 2 t + patient effects + noise. ``corr``: the patient's slope is half their intercept
    (random effects perfectly correlated); ``zero``: noise centred within each patient (no
    between-patient variance at all); ``ok``: independent intercepts and slopes."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        b0, b1 = rng.normal(0, 3), rng.normal(0, 1)
        e = rng.normal(0, 2, 6)
        if kind == "zero":
            e -= e.mean()
        for t in range(6):
            patient = {"corr": b0 * (1 + 0.5 * t), "zero": 0.0, "ok": b0 + b1 * t}[kind]
            rows.append((f"P{i:03d}", t, 5 + 2 * t + patient + e[t]))
    return pd.DataFrame(rows, columns=["g", "t", "y"])


# -- 1. one style ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["improvement", "mixed", "gee", "ordinal", "response"])
def test_every_model_has_the_same_tidy_summary_and_one_name_per_attribute(fitted, name):
    m = fitted[name]
    assert list(m.summary.columns[:5]) == list(TIDY_COLUMNS)
    assert m.summary.index.name == "term" and len(m.summary) > 0
    assert m.fixed_.index.isin(m.summary.index).all()
    for alias in ("fixed", "random", "converged", "llf", "hazard_ratios_"):
        assert not hasattr(m, alias), f"{name} still has {alias}"
    if name != "response":
        assert m.converged_ is True


def test_response_summary_holds_log_hazard_ratios_and_hazard_ratios(fitted):
    s = fitted["response"].summary
    np.testing.assert_allclose(s["hazard_ratio"], np.exp(s["estimate"]))
    np.testing.assert_allclose(s["hr_ci_low"], np.exp(s["ci_low"]))
    assert "median_sessions" in fitted["response"].medians_


@pytest.mark.parametrize("name", ["improvement", "mixed", "gee", "ordinal", "response"])
def test_print_summary_and_plot_kwargs(fitted, name, capsys):
    m = fitted[name]
    m.print_summary()
    text = capsys.readouterr().out
    assert type(m).__name__ in text and str(m.summary.index[-1]) in text
    ax = m.plot(title="my title")
    assert ax.get_title() == "my title"
    import matplotlib.pyplot as plt

    plt.close("all")


def test_print_summary_of_a_mixed_model_names_its_random_effects(fitted, capsys):
    fitted["mixed"].print_summary()
    assert "sd(Residual)" in capsys.readouterr().out


# -- 2. explicit options, the reports' rows by default ----------------------------------------
@pytest.mark.parametrize("fn", [models.fit_improvement, models.fit_response, models.fit_predictive,
                                models.fit_mixed, models.fit_gee, models.naive_means])
def test_shortcuts_name_their_options(fn):
    params = inspect.signature(fn).parameters
    assert not any(p.kind is p.VAR_KEYWORD for p in params.values())
    assert next(iter(params)) == "data"


def test_fit_improvement_on_the_tables_gives_the_reports_numbers(tables):
    model, notes = fitting.improvement_model(tables["outcomes"], "hydration", 5, include_flagged=False,
                                             patients=tables["patients"])
    assert not notes  # the richest model: the one fit_improvement fits by default
    mine = models.fit_improvement(tables, "hydration")
    pd.testing.assert_frame_equal(mine.summary, model.summary)
    # the outcomes table alone keeps the follow-up visits (the reason the README used to differ)
    alone = models.fit_improvement(tables["outcomes"], "hydration")
    assert alone.mixed_.n_obs_ > mine.mixed_.n_obs_
    assert mine.dropped_.set_index("reason").loc["follow-up after the course (fading)", "rows"] > 0


def test_readme_snippet_runs_and_matches_the_reports(tables, monkeypatch):
    import outcomes

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## For analysts\s+```python\n(.*?)```", readme, re.S).group(1)
    monkeypatch.setattr(outcomes, "load_processed", lambda *a, **k: tables)
    scope: dict = {}
    exec(block, scope)
    model, _ = fitting.improvement_model(tables["outcomes"], "hydration", 5, include_flagged=False,
                                         patients=tables["patients"])
    pd.testing.assert_frame_equal(scope["model"].summary, model.summary)


# -- 3. any comparison -------------------------------------------------------------------------
def _with_clinics(effect: float, seed: int = 2) -> pd.DataFrame:
    """The synthetic cohort, patients spread over clinics C1..C3; C2's measurements after a
    session are ``effect`` points higher."""
    import models_synthetic as ms

    d = ms.cohort(240, seed=seed)
    ids = d["patient_id"].unique()
    clinic = dict(zip(ids, np.array(["C1", "C2", "C3"])[np.arange(len(ids)) % 3]))
    d["clinic_id"] = d["patient_id"].map(clinic)
    d.loc[(d["clinic_id"] == "C2") & (d["sessions"] > 0), ["improvement_pct", "improvement"]] += effect
    return d


def test_a_clinic_difference_is_found_labelled_and_adjusted():
    m = models.fit_improvement(_with_clinics(8.0), "hydration", covariates=["clinic_id"], interactions=(),
                               time_transform="log1p")
    wald = m.wald_test("clinic_id")
    assert wald["df"] == 2 and wald["p_value"] < 1e-6
    assert wald["terms"] == ["clinic_id[T.C2]", "clinic_id[T.C3]"]
    c = m.compare_levels("clinic_id", at={"sessions": 3})
    assert list(c.index) == ["C1 vs the rest", "C2 vs the rest", "C3 vs the rest"]
    # C2 is 8 above C1 and C3: 8 above their average; C1 and C3 are 4 below theirs
    for label, truth in (("C2 vs the rest", 8.0), ("C1 vs the rest", -4.0), ("C3 vs the rest", -4.0)):
        assert c.loc[label, "ci_low"] <= truth <= c.loc[label, "ci_high"], label
    assert (c["p_value"] >= c["p_unadjusted"]).all()
    assert c.loc["C2 vs the rest", "p_value"] < 1e-4
    # Bonferroni intervals: wider than the plain 95% interval of the same difference
    plain = 1.959964 * c["std_error"]
    assert ((c["ci_high"] - c["ci_low"]) / 2 > plain).all()


def test_no_clinic_difference_is_not_found():
    m = models.fit_improvement(_with_clinics(0.0), "hydration", covariates=["clinic_id"], interactions=(),
                               time_transform="log1p")
    assert m.wald_test("clinic_id")["p_value"] > 0.01
    assert (m.compare_levels("clinic_id")["p_value"] > 0.01).all()


def test_wald_test_of_one_coefficient_is_its_squared_z(fitted):
    m = fitted["improvement"]
    row = m.summary.loc["age_c"]
    w = m.wald_test("age")  # the analyst's name; the model's column is age_c
    assert w["terms"] == ["age_c"] and w["df"] == 1
    assert w["chi2"] == pytest.approx((row["estimate"] / row["std_error"]) ** 2, rel=1e-10)
    assert w["p_value"] == pytest.approx(row["p_value"], rel=1e-8)


def test_wald_test_takes_a_variable_with_its_interactions(tables):
    m = models.fit_improvement(tables, "hydration", time_transform="log1p")
    terms = m.wald_test("skin_type")["terms"]
    assert any(t.startswith("skin_type[") for t in terms) and any(":skin_type[" in t for t in terms)
    with pytest.raises(KeyError, match="no coefficient involves 'clinic_id'"):
        m.wald_test("clinic_id")


def test_holm_by_hand():
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(holm([0.5, 0.9]), [1.0, 1.0])


def test_marginal_means_differences_are_the_level_contrasts(fitted):
    m = fitted["improvement"]
    mm = m.marginal_means("skin_type", at={"sessions": 3, "age": 45})
    assert list(mm.index) == [str(s) for s in m.skin_types_]
    # main effects only: the difference of two marginal means is the coefficient
    second = m.skin_types_[1]
    diff = mm.loc[str(second), "estimate"] - mm.iloc[0]["estimate"]
    assert diff == pytest.approx(m.summary.loc[f"skin_type[T.{second}]", "estimate"], rel=1e-8)


def test_covariates_may_be_patient_or_session_level(tables):
    m = models.fit_improvement(tables, "hydration", covariates=["concern", "product"], interactions=())
    assert any(t.startswith("product[") for t in m.summary.index)
    assert any(t.startswith("concern[") for t in m.summary.index)
    with pytest.raises(KeyError, match="no column 'shoe_size'"):
        models.fit_improvement(tables, "hydration", covariates=["shoe_size"])
    with pytest.raises(ValueError, match="already in the model"):
        models.ImprovementModel("hydration", covariates=["skin_type"])


def test_a_session_level_column_is_the_session_the_measurement_follows():
    rows = pd.DataFrame({"patient_id": ["a", "a", "b"], "sessions": [1, 2, 1]})
    sessions = pd.DataFrame({"patient_id": ["a", "a", "b", "b"], "session_number": [1, 2, 1, np.nan],
                             "product": ["X", "Y", "Z", "W"]})
    patients = pd.DataFrame({"patient_id": ["a", "b"], "clinic_id": ["C1", "C2"]})
    out = attach_columns(rows, ["product", "clinic_id"], patients, sessions)
    assert out["product"].tolist() == ["X", "Y", "Z"]
    assert out["clinic_id"].tolist() == ["C1", "C1", "C2"]


@pytest.mark.parametrize("by", ["clinic_id", "concern", "sex", "product"])
def test_sessions_to_response_by_any_column(tables, by):
    r = models.fit_response(tables, "hydration", by=by)
    assert set(r.medians_["group"]) == set(r.data_[by].dropna().astype(str))
    assert r.medians_["patients"].sum() == r.data_[by].notna().sum()


def test_response_cox_takes_covariates_and_a_joint_test(tables):
    r = models.fit_response(tables, "hydration", covariates=["clinic_id"])
    w = r.wald_test("clinic_id")
    assert w["df"] == r.data_["clinic_id"].nunique() - 1 and 0 <= w["p_value"] <= 1


def test_the_docs_answer_whether_a_clinic_differs(tables):
    """docs/models.md's three lines run and answer the question."""
    text = (ROOT / "docs" / "models.md").read_text(encoding="utf-8")
    block = re.search(r"```python\n(# Is clinic C02 different.*?)```", text, re.S).group(1)
    lines = [ln for ln in block.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert len(lines) <= 4  # the tables, then three lines
    scope = {"tables": tables}
    exec(block, scope)
    answer = scope["answer"]
    assert "C02 vs the rest" in answer.index and {"estimate", "ci_low", "ci_high", "p_value"} <= set(answer.columns)
    assert scope["m"].covariates == ("concern", "clinic_id")


# -- 4. boundary fits said out loud ------------------------------------------------------------
@pytest.mark.parametrize("kind, slope, reason", [("corr", True, "perfectly correlated"),
                                                  ("zero", False, "variance at 0 for Intercept")])
def test_a_singular_fit_is_flagged_and_warned_once(kind, slope, reason):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = models.fit_mixed(_panel(kind), "y", "t", "g", random_slope=slope)
    singular = [w for w in caught if issubclass(w.category, models.SingularFitWarning)]
    assert len(singular) == 1 and reason in str(singular[0].message)
    assert m.converged_ and m.singular_ and reason in m.singular_reason_
    assert "SINGULAR" in repr(m) and "SINGULAR" in m.summary_text()


def test_a_regular_fit_is_not_singular():
    with warnings.catch_warnings():
        warnings.simplefilter("error", models.SingularFitWarning)
        m = models.fit_mixed(_panel("ok"), "y", "t", "g")
    assert m.converged_ and not m.singular_ and m.singular_reason_ is None


def test_a_rate_without_a_level_fits_the_proportional_case():
    """Patients whose whole curve is scaled (level and rate together): one random effect, the rate."""
    d = _panel("corr")
    m = models.fit_mixed(d, "y", "t", "g", random_intercept=False)
    assert m.formula.endswith("(0 + t | g)") and list(m.random_.index) == ["sd(t)", "sd(Residual)"]
    with pytest.raises(ValueError, match="random intercept or a random slope"):
        models.MixedModel("y", "t", "g", random_slope=False, random_intercept=False)


class _Fake:
    def __init__(self, converged=True, singular=False):
        self.converged_, self.singular_ = converged, singular
        self.singular_reason_ = "variance at 0 for Intercept" if singular else None


def test_reports_fall_back_from_a_singular_fit_and_say_why():
    fine = _Fake()
    model, label, problems = fitting.first_converged([("rich", lambda: _Fake(singular=True)),
                                                      ("broken", lambda: _Fake(converged=False)),
                                                      ("simple", lambda: fine)])
    assert model is fine and label == "simple"
    assert problems == ["rich: singular fit (variance at 0 for Intercept)", "broken: did not converge"]
    first = _Fake(singular=True)
    model, label, problems = fitting.first_converged([("a", lambda: first), ("b", lambda: _Fake(singular=True))])
    assert model is first and label == "a" and len(problems) == 2  # all singular: the richest, flagged


def test_the_sessions_report_states_the_simpler_structure(tables, monkeypatch):
    real = models.fit_improvement

    def singular_when_rich(*args, **kwargs):
        m = real(*args, **kwargs)
        if kwargs.get("random_intercept", True) and kwargs.get("random_slope", True):
            m.singular_, m.singular_reason_ = True, "random effects perfectly correlated (injected)"
        return m

    monkeypatch.setattr(models, "fit_improvement", singular_when_rich)
    model, notes = fitting.improvement_model(tables["outcomes"], "hydration", 5, include_flagged=False,
                                             patients=tables["patients"])
    assert not model.singular_ and model.mixed_.random_intercept is False
    notes = " ".join(notes)  # the practitioner's report: plain words, no model terms
    assert "cannot tell each patient's own starting level apart from their own rate" in notes
    assert "no separate level" in notes and "injected" not in notes and "singular" not in notes
    _, technical = fitting.improvement_model(tables["outcomes"], "hydration", 5, include_flagged=False,
                                             patients=tables["patients"], details=True)
    assert "In the model's terms: age and skin type may change the shape of the curve: singular fit (random " \
           "effects perfectly correlated (injected))" in " ".join(technical).replace("\\", "")  # markdown-escaped


@pytest.mark.parametrize("problem, words", [
    ("rich: singular fit (random effects perfectly correlated (corr(Intercept, np.log1p(sessions)) = +1.000))",
     "cannot tell each patient's own starting level apart from their own rate of improvement"),
    ("rich: singular fit (variance at 0 for Intercept)", "patients' own starting levels do not differ measurably"),
    ("rich: singular fit (variance at 0 for np.log1p(sessions))",
     "patients' own rates of improvement do not differ measurably"),
    ("rich: did not converge", "the fit did not settle on an answer"),
    ("rich: Singular matrix", "the fit failed on these data"),
])
def test_what_went_wrong_with_a_fit_in_plain_words(problem, words):
    said = fitting.in_plain_words(problem)
    assert words in said and "(" not in said and "Intercept" not in said


# -- 5. readable terms -------------------------------------------------------------------------
def test_effects_say_what_spline_and_interaction_terms_mean(tables):
    m = models.fit_improvement(tables, "hydration")  # spline x age and x skin type
    eff = m.effects()
    assert not any("bs(" in label or "[T." in label for label in eff.index)
    assert list(eff.columns) == list(TIDY_COLUMNS) and eff.index.name == "effect"
    ref, other = m.skin_types_[0], m.skin_types_[1]
    label = f"skin_type {other} vs {ref} at sessions = 3"
    pred = m.predict(m.frame([3, 3], 45, [other, ref]), ci=False)["estimate"]
    assert eff.loc[label, "estimate"] == pytest.approx(pred.iloc[0] - pred.iloc[1], rel=1e-9)
    pred = m.predict(m.frame([4, 1], 45, ref), ci=False)["estimate"]
    assert eff.loc["sessions = 4 vs 1", "estimate"] == pytest.approx(pred.iloc[0] - pred.iloc[1], rel=1e-9)
    pred = m.predict(m.frame([2, 2], [55, 45], ref), ci=False)["estimate"]
    assert eff.loc["age +10 years at sessions = 2", "estimate"] == pytest.approx(pred.iloc[0] - pred.iloc[1], rel=1e-9)


def test_effects_of_a_main_effect_are_its_coefficient(fitted):
    m = fitted["gee"]  # log1p(sessions), no interactions
    eff = m.effects(times=[1, 3])
    beta = m.summary["estimate"]
    second = m.rows_["skin_type"].cat.categories[1]
    assert eff.loc[f"skin_type {second} vs {m.rows_['skin_type'].cat.categories[0]}", "estimate"] == pytest.approx(
        beta[f"skin_type[T.{second}]"], rel=1e-10)
    assert eff.loc["sessions = 3 vs 1", "estimate"] == pytest.approx(
        beta["np.log1p(sessions)"] * (np.log1p(3) - np.log1p(1)), rel=1e-10)


def test_coefficient_plots_and_summaries_show_terms_by_meaning(tables, capsys):
    import matplotlib.pyplot as plt

    m = models.fit_improvement(tables, "hydration")
    labels = [t.get_text() for t in m.mixed_.plot().get_yticklabels()]
    assert labels and not any("bs(" in t for t in labels) and any("at sessions = " in t for t in labels)
    plt.close("all")
    m.print_summary()
    text = capsys.readouterr().out
    assert "effects by meaning" in text and "bs(sessions, df=3)[0]:" not in text


def test_plots_exports_only_its_figures():
    from outcomes import plots

    assert set(plots.__all__) == {"coefficients", "expected_curves", "fold_scores", "naive_vs_model",
                                  "partial_dependence", "probability_curves", "style", "survival_curves"}
    for name in ("np", "pd", "plt", "sns"):
        assert not hasattr(plots, name)


def test_likelihood_ratio_test_refits_by_ml_when_the_fixed_parts_differ():
    d = _with_clinics(8.0)
    kw = {"interactions": (), "time_transform": "log1p", "random_intercept": False}
    small = models.fit_improvement(d, "hydration", **kw)
    big = models.fit_improvement(d, "hydration", covariates=["clinic_id"], **kw)
    test = models.lr_test(small, big)
    assert test["method"] == "ML (refitted)" and test["df"] == 2 and test["p_value"] < 1e-6
    ml_big = models.fit_improvement(d, "hydration", covariates=["clinic_id"], reml=False, **kw)
    assert test["llf_big"] == pytest.approx(ml_big.llf_, rel=1e-9)
    assert big.mixed_.reml and big.llf_ != pytest.approx(ml_big.llf_)  # the fits given are left as they were
    null = models.lr_test(models.fit_improvement(_with_clinics(0.0), "hydration", **kw),
                          models.fit_improvement(_with_clinics(0.0), "hydration", covariates=["clinic_id"], **kw))
    assert null["p_value"] > 0.01


def test_likelihood_ratio_test_of_a_random_slope_keeps_reml_and_checks_rows():
    d = _panel("ok")
    small = models.fit_mixed(d, "y", "t", "g", random_slope=False)
    big = models.fit_mixed(d, "y", "t", "g")
    test = models.lr_test(small, big)
    assert test["method"] == "REML" and test["df"] == 2 and test["p_value"] < 1e-6
    with pytest.raises(ValueError, match="different rows"):
        models.lr_test(small, models.fit_mixed(d.iloc[6:], "y", "t", "g"))
    with pytest.raises(ValueError, match="more parameters"):
        models.lr_test(big, small)


def test_contrasts_are_labelled_tidy_tables(fitted):
    m = fitted["improvement"]
    c = m.contrast(m.frame([3, 3], [55, 45], "III"), m.frame([3, 3], [45, 45], "III"),
                   labels=["age 55 vs 45", "nothing"])
    assert list(c.index) == ["age 55 vs 45", "nothing"] and list(c.columns) == list(TIDY_COLUMNS)
    assert c.loc["age 55 vs 45", "estimate"] == pytest.approx(m.summary.loc["age_c", "estimate"], rel=1e-10)
    assert c.loc["age 55 vs 45", "p_value"] == pytest.approx(m.summary.loc["age_c", "p_value"], rel=1e-8)
    with pytest.raises(ValueError, match="one label per row"):
        m.contrast(m.frame(3, 55, "III"), m.frame(3, 45, "III"), labels=["a", "b"])


def test_the_predictive_model_prints_its_summary_too(tables, capsys):
    p = models.fit_predictive(tables, "hydration", n_splits=2, n_repeats=1, compare_mixed=False)
    p.print_summary()
    text = capsys.readouterr().out
    assert "PredictiveModel: hydration" in text and "boosting" in text and "permutation importance" in text
