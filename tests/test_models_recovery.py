"""Simulation recovery: simulate -> clean -> model, against the simulator's recorded truth.

The truth (outcomes.simulation.expected_improvement, truth.json) is the noise-free expected
improvement. Observed improvement_pct carries a small measurement bias of its own (a ratio of
two noisy readings), so the model is checked on CONTRASTS — session count, age and skin type
differences — where that bias cancels and the truth is defined exactly.
"""
from __future__ import annotations

import tempfile
import warnings

import numpy as np
import pandas as pd
import pytest

import outcomes
from outcomes.config import DEFAULT_SEED
from outcomes.models import fit_gee, fit_improvement, fit_ordinal, fit_response, gais_frame, naive_means
from outcomes.simulation import DropoutParams, expected_improvement

pytestmark = pytest.mark.slow
METRIC = "hydration"


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    raw = tmp_path_factory.mktemp("raw")
    cohort = outcomes.simulate(1000, seed=DEFAULT_SEED, out_dir=raw)  # messy export, as clinics send it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = outcomes.clean(raw)
    return cohort.truth, result.tables


@pytest.fixture(scope="module")
def model(sim):
    _, tables = sim
    return fit_improvement(tables["outcomes"], METRIC, patients=tables["patients"])


def _check(model, truth, a, b, average=False):
    c = model.contrast(model.frame(*a), model.frame(*b), average=average).iloc[0]
    true = float(np.mean(expected_improvement(truth, METRIC, *a) - expected_improvement(truth, METRIC, *b)))
    assert np.sign(c["estimate"]) == np.sign(true)
    assert c["ci_low"] <= true <= c["ci_high"], (c.to_dict(), true)


def test_model_used_clean_in_course_rows(model):
    assert model.converged_
    dropped = model.dropped_.set_index("reason")["rows"]
    assert dropped["follow-up after the course (fading)"] > 0
    assert dropped["baseline row (sessions 0)"] > 0
    assert model.n_patients_ > 700


def test_session_effect_recovered(sim, model):
    truth, _ = sim
    _check(model, truth, (4, 45, "III"), (1, 45, "III"))
    _check(model, truth, (2, 45, "III"), (1, 45, "III"))


def test_age_effect_recovered(sim, model):
    truth, _ = sim
    _check(model, truth, (3, 60, "III"), (3, 35, "III"))


def test_skin_type_effect_recovered(sim, model):
    # darker types (IV-VI, weighted as in this cohort) against type III, after 3 sessions
    truth, _ = sim
    patients = model.rows_.drop_duplicates("patient_id")
    dark = patients.loc[patients["skin_type"].isin(["IV", "V", "VI"]), "skin_type"].astype(str).to_numpy()
    _check(model, truth, (3, 45, dark), (3, 45, np.array(["III"] * len(dark))), average=True)


def test_gee_agrees_on_direction(model):
    gee = fit_gee(model.rows_, "improvement_pct", "sessions", "patient_id", covariates=("age_c", "skin_type"),
                  time_transform="log1p")
    assert gee.fixed_.loc["np.log1p(sessions)", "ci_low"] > 0
    assert gee.fixed_.loc["age_c", "estimate"] < 0


def test_gais_improves_with_sessions_and_worsens_with_age(sim):
    _, tables = sim
    gais = gais_frame(tables["assessments"], tables["patients"])
    m = fit_ordinal(gais, group="patient_id")
    assert m.converged_
    assert m.fixed_.loc["sessions", "estimate"] < 0  # lower grade = better
    assert m.fixed_.loc["age_c", "estimate"] > 0
    p = m.responder_probability(gais.iloc[[0, 0]].assign(sessions=[1, 4], age_c=0.0, skin_type="III"))
    assert p["estimate"].iloc[1] > p["estimate"].iloc[0]


def test_older_patients_respond_later(sim):
    _, tables = sim
    m = fit_response(tables["outcomes"], METRIC, patients=tables["patients"])
    assert m.fixed_.loc["age_c", "estimate"] < 0
    assert m.medians_["median_sessions"].between(1, 6).all()


# --- dropout: naive per-session means vs the mixed model, on simulator data ------------------------
STRONG_MAR_DROPOUT = DropoutParams(base=0.05, factor=10, trigger="measured")


def observed_scale(truth, metric, improvement):
    """expected_improvement carried to the scale of recorded improvement_pct. A recorded
    improvement is a ratio of two readings with independent log-normal noise (SD noise_cv), so
    its mean is exp(noise_cv²) times the true ratio (+0.5 points for hydration's 7%)."""
    inflate = np.exp(truth["metrics"][metric]["noise_cv"] ** 2)
    if truth["metrics"][metric]["better"] == "higher":
        return 100 * ((1 + improvement / 100) * inflate - 1)
    return 100 * (1 - (1 - improvement / 100) * inflate)


def naive_and_model(dropout, seed=3, n_patients=1500):
    """simulate -> clean -> naive per-session means and the mixed model's population mean, with
    the truth on the observed scale, averaged over the modelled patients' ages and skin types."""
    with tempfile.TemporaryDirectory() as raw:
        cohort = outcomes.simulate(n_patients, seed=seed, out_dir=raw, tidy=True, dropout=dropout)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tables = outcomes.clean(raw).tables
    out, patients = tables["outcomes"], tables["patients"]
    model = fit_improvement(out, METRIC, patients=patients)
    naive = naive_means(out, METRIC, patients=patients).set_index("sessions")
    marginal = model.marginal().set_index("sessions")
    people = model.rows_.drop_duplicates("patient_id")
    true = {n: float(np.mean(expected_improvement(cohort.truth, METRIC, n, people["age"].to_numpy(),
                                                  people["skin_type"].astype(str).to_numpy())))
            for n in naive.index}
    truth = pd.Series({n: observed_scale(cohort.truth, METRIC, v) for n, v in true.items()})
    return cohort, model, naive, marginal, truth


def test_outcome_dependent_dropout_biases_naive_means_but_not_the_mixed_model():
    # Patients stop 10x as often (50% per interval) once the clinic's hydration reading shows
    # less than 40% of the maximal gain: the later session counts are seen mostly in responders.
    # Dropout depends only on recorded readings (missing at random), the case a mixed model
    # handles: it learns every patient's curve from their early visits.
    cohort, model, naive, marginal, truth = naive_and_model(STRONG_MAR_DROPOUT)
    assert cohort.truth["dropout"]["multiplier"] == 10 and cohort.truth["dropout"]["trigger"] == "measured"
    assert model.converged_
    assert naive.loc[5, "n"] < 0.15 * naive.loc[1, "n"]  # the dropout really happened
    for n in (3, 4, 5):  # naive means: above the truth by more than their CI allows
        assert naive.loc[n, "ci_low"] > truth[n], (n, naive.loc[n].to_dict(), truth[n])
    for n in range(1, 6):  # the mixed model's population mean: its 95% CI holds the truth
        assert marginal.loc[n, "ci_low"] <= truth[n] <= marginal.loc[n, "ci_high"], (n, marginal.loc[n].to_dict())
    # control: the same cohort with dropout that ignores outcomes shows no such bias
    _, _, naive0, _, truth0 = naive_and_model(DropoutParams(base=0.05, factor=1, trigger="measured"))
    for n in (3, 4, 5):
        assert naive0.loc[n, "ci_low"] <= truth0[n] <= naive0.loc[n, "ci_high"], n
