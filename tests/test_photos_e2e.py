"""Issue 13, end to end: simulated photos -> `outcomes photos` -> `outcomes clean` -> the reports'
improvement model recovers the simulated effect of sessions on a metric measured from the pixels.

The photo simulator changes a patient's pigmented-spot area as the cohort's `spots` metric
changes (outcomes.photos.simulate.PHOTO_EFFECTS: a ratio metric following `spots`), so the true
mean improvement of spot_area (% of the baseline) after n sessions is the cohort truth's
expected_improvement for `spots`. The model is checked on a session contrast, as in
test_models_recovery: its 95% CI must hold the truth. The model keeps the patients of skin types
with enough patients (type III here): about 10 patients and 30 in-course rows, so the effect is
made larger than the demo's (EMAX_PCT) for the CI to exclude zero. Slow (about a minute: ~80
photos rendered and measured).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

import outcomes
from outcomes.cli import app
from outcomes.models import fit_improvement
from outcomes.photos.simulate import PHOTO_EFFECTS, simulate_photos
from outcomes.simulation import expected_improvement

pytestmark = pytest.mark.slow
METRIC = "spot_area"
PHOTO_PATIENTS = 16  # about 80 photos at 640 x 480
EMAX_PCT = 40.0  # sessions clear at most this % of the spots here (the demo's 10% would need many more patients)
CONTRAST = ((4, 45, "III"), (1, 45, "III"))  # after 4 sessions against after 1


def test_sessions_effect_on_a_photo_metric_is_recovered(tmp_path):
    raw = tmp_path / "raw"
    cohort = outcomes.simulate(150, seed=13, out_dir=raw, tidy=True)
    cohort.truth["metrics"][PHOTO_EFFECTS[METRIC]["follows"]]["emax_pct"] = EMAX_PCT  # the photos' truth
    simulate_photos(raw / "photos", n_patients=PHOTO_PATIENTS, seed=13, size=(640, 480), cohort=cohort)
    res = CliRunner().invoke(app, ["photos", "--photos", str(raw / "photos"), "--out",
                                   str(raw / "photo_metrics.photos.csv"), "--quiet"])
    assert res.exit_code == 0, res.output
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tables = outcomes.clean(raw).tables
    measured = tables["outcomes"].loc[tables["outcomes"]["metric"] == METRIC]
    assert measured["patient_id"].nunique() == PHOTO_PATIENTS
    model = fit_improvement(tables, METRIC, interactions=())
    assert model.converged_
    c = model.contrast(model.frame(*CONTRAST[0]), model.frame(*CONTRAST[1])).iloc[0]
    follows = PHOTO_EFFECTS[METRIC]["follows"]
    truth = float(expected_improvement(cohort.truth, follows, *CONTRAST[0])
                  - expected_improvement(cohort.truth, follows, *CONTRAST[1]))
    print(f"{METRIC}: 4 vs 1 sessions {c['estimate']:.2f} (95% CI {c['ci_low']:.2f} to {c['ci_high']:.2f}), "
          f"truth {truth:.2f}; {model.n_patients_} patients, {len(model.rows_)} rows")
    assert truth > 5 and c["ci_low"] > 0  # a clear effect, and the model sees one
    assert c["ci_low"] <= truth <= c["ci_high"]
    assert c["ci_high"] - c["ci_low"] < 2 * truth  # narrow enough to be a check
