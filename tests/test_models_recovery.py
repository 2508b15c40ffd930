"""Simulation recovery: simulate -> clean -> model, against the simulator's recorded truth.

The truth (outcomes.simulation.expected_improvement, truth.json) is the noise-free expected
improvement. Observed improvement_pct carries a small measurement bias of its own (a ratio of
two noisy readings), so the model is checked on CONTRASTS — session count, age and skin type
differences — where that bias cancels and the truth is defined exactly.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import outcomes
from outcomes.config import DEFAULT_SEED
from outcomes.models import fit_gee, fit_ordinal, gais_frame, improvement_model, sessions_to_response
from outcomes.simulation import expected_improvement

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
    return improvement_model(tables["outcomes"], METRIC, patients=tables["patients"])


def _check(model, truth, a, b, average=False):
    c = model.contrast(model.frame(*a), model.frame(*b), average=average).iloc[0]
    true = float(np.mean(expected_improvement(truth, METRIC, *a) - expected_improvement(truth, METRIC, *b)))
    assert np.sign(c["estimate"]) == np.sign(true)
    assert c["ci_low"] <= true <= c["ci_high"], (c.to_dict(), true)


def test_model_used_clean_in_course_rows(model):
    assert model.converged
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
    assert gee.fixed.loc["np.log1p(sessions)", "ci_low"] > 0
    assert gee.fixed.loc["age_c", "estimate"] < 0


def test_gais_improves_with_sessions_and_worsens_with_age(sim):
    _, tables = sim
    gais = gais_frame(tables["assessments"], tables["patients"])
    m = fit_ordinal(gais, group="patient_id")
    assert m.converged
    assert m.fixed.loc["sessions", "estimate"] < 0  # lower grade = better
    assert m.fixed.loc["age_c", "estimate"] > 0
    p = m.responder_probability(gais.iloc[[0, 0]].assign(sessions=[1, 4], age_c=0.0, skin_type="III"))
    assert p["estimate"].iloc[1] > p["estimate"].iloc[0]


def test_older_patients_respond_later(sim):
    _, tables = sim
    m = sessions_to_response(tables["outcomes"], METRIC, patients=tables["patients"])
    assert m.hazard_ratios_.loc["age_c", "estimate"] < 0
    assert m.summary["median_sessions"].between(1, 6).all()
