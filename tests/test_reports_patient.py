"""The patient report's comparison rules on constructed cohorts (percentile, verdict, the
widening of the comparison group) and the personal expected course against statsmodels' BLUP."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from outcomes import models
from outcomes.reports import patient

ME = {"patient_id": "P0", "concern": "hydration", "area": "face", "band": "35-44", "skin": "III"}


def _cohort(values, **traits) -> pd.DataFrame:
    row = {**ME, **traits}
    return pd.DataFrame([{**row, "patient_id": f"Q{traits.get('area', '')}{i}", "improvement_pct": v}
                         for i, v in enumerate(values)])


def _compare(value, others, min_cell=5):
    group, step = patient.comparable(ME, others, min_cell)
    n = group["patient_id"].nunique()
    pct = patient.percentile(value, group["improvement_pct"]) if n >= min_cell else None
    return patient.verdict(pct, n, min_cell), step, n


def test_planted_non_responder_is_flagged_slower_and_fast_responder_faster():
    others = _cohort(np.linspace(15, 30, 20))
    assert _compare(1.0, others)[0] == "slower than 9 in 10 comparable patients"
    assert _compare(60.0, others)[0] == "faster than 9 in 10 comparable patients"
    assert _compare(22.5, others)[0] == "about average"
    assert _compare(np.percentile(np.linspace(15, 30, 20), 15), others)[0] == "slower than 8 in 10 comparable patients"


def test_percentile_counts_ties_half_and_ignores_the_patient_themself():
    assert patient.percentile(2.0, [1, 2, 3, 4]) == 37.5
    others = pd.concat([_cohort([1, 2, 3, 4, 5]), pd.DataFrame([{**ME, "improvement_pct": -99.0}])])
    group, _ = patient.comparable(ME, others, 5)
    assert "P0" not in set(group["patient_id"]) and len(group) == 5


def test_comparison_widens_in_the_stated_order_and_keeps_min_cell():
    # 3 on the same area, 4 more of the same band and skin elsewhere, 10 more of another skin type
    others = pd.concat([_cohort([10, 11, 12]), _cohort([20, 21, 22, 23], area="neck"),
                        _cohort(range(10), area="neck", skin="V")], ignore_index=True)
    others["patient_id"] = [f"Q{i}" for i in range(len(others))]
    verdict, step, n = _compare(0.0, others, min_cell=5)
    assert step == ("concern", "band", "skin") and n == 7 and n >= 5
    _, step, n = _compare(0.0, others, min_cell=8)
    assert step == ("concern", "band") and n == 17
    assert patient.describe_step(step) == "same concern and age band"
    verdict, step, n = _compare(0.0, others, min_cell=20)
    assert step == () and n == 0 and verdict == "the data cannot tell (fewer than 20 comparable patients)"
    # an unrecorded area skips the steps that need it
    group, step = patient.comparable({**ME, "area": None}, _cohort(range(6)), 5)
    assert step == ("concern", "band", "skin") and len(group) == 6


@pytest.fixture(scope="module")
def small_fit():
    rng = np.random.default_rng(3)
    rows = []
    for i in range(40):
        skin, age = ["II", "III"][i % 2], 30 + i % 30
        b0, b1 = rng.normal(0, 4), rng.normal(0, 1.5)
        for s in range(1, 6):
            rows.append({"patient_id": f"P{i:03d}", "metric": "hydration", "view": "front", "sessions": s,
                         "improvement": 5 + 3 * s + b0 + b1 * s + rng.normal(0, 2), "age": age,
                         "skin_type": skin, "qc_ok": True})
    return models.fit_improvement(pd.DataFrame(rows), "hydration")


def test_personal_course_is_statsmodels_blup(small_fit):
    model = small_fit
    pid = "P007"
    own = model.rows_.loc[model.rows_["patient_id"] == pid]
    course = patient.personal_course(model, own, float(own["age"].iloc[0]), str(own["skin_type"].iloc[0]))
    expected = np.asarray(model.mixed_.result_.random_effects[pid], dtype=float)
    np.testing.assert_allclose(course.attrs["random_effects"].to_numpy(), expected, rtol=1e-6, atol=1e-8)
    pop = model.predict(model.frame(course["sessions"], float(own["age"].iloc[0]), str(own["skin_type"].iloc[0])))
    z = model.mixed_.re_design_.build(model.frame(course["sessions"], 0, "II")).to_numpy()
    np.testing.assert_allclose(course["estimate"], pop["estimate"].to_numpy() + z @ expected, rtol=1e-6)
    assert (course["pred_low"] < course["ci_low"]).all() and (course["ci_high"] < course["pred_high"]).all()


def test_personal_course_follows_the_patients_own_measurements(small_fit):
    model = small_fit
    own = model.rows_.loc[model.rows_["patient_id"] == "P007"][["sessions", "improvement"]]
    age, skin = float(model.rows_["age"].iloc[0]), "II"
    low = patient.personal_course(model, own.assign(improvement=0.0), age, skin)
    high = patient.personal_course(model, own.assign(improvement=40.0), age, skin)
    pop = model.predict(model.frame(low["sessions"], age, skin))["estimate"].to_numpy()
    assert (low["estimate"].to_numpy() < pop).all() and (high["estimate"].to_numpy() > pop).all()
