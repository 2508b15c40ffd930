"""The domain model on synthetic cohorts with a known truth (tests/models_synthetic.py)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import models_synthetic as ms
from outcomes.models import age_band, fit_improvement


@pytest.fixture(scope="module")
def cohort():
    return ms.cohort(500, seed=11)


@pytest.fixture(scope="module")
def model(cohort):
    return fit_improvement(cohort, "hydration")


def test_rows_left_out_are_counted_and_reasons_named(cohort):
    d = cohort.copy()
    d.loc[d.index[:40], "qc_ok"] = False
    d.loc[d.index[40:55], ["improvement_pct", "improvement"]] = np.nan
    d.loc[d["patient_id"] == "P00100", "skin_type"] = np.nan
    m = fit_improvement(d, "hydration", interactions=(), time_transform="log1p")
    dropped = m.dropped_.set_index("reason")["rows"]
    assert dropped["quality-flagged (qc_ok False)"] == 40
    assert dropped["missing outcome"] == d.loc[d.index[40:55], "improvement"].isna().sum()
    assert dropped["unknown skin type"] == (d["patient_id"] == "P00100").sum()  # all its rows, baseline too
    assert len(d) == m.mixed_.n_obs_ + dropped.sum()  # nothing lost in silence
    assert "P00100" not in set(m.rows_["patient_id"])
    flagged = fit_improvement(d, "hydration", interactions=(), time_transform="log1p", include_flagged=True)
    assert flagged.mixed_.n_obs_ > m.mixed_.n_obs_


def test_expected_improvement_covers_the_truth(model):
    e = model.expected()
    assert set(e["age_band"].astype(str)) == {"<35", "35-44", "45-54", "55+"}
    assert e["sessions"].min() == 1 and e["sessions"].max() == 6
    truth = ms.expected(e["sessions"], e["age"], e["skin_type"].astype(str))
    covered = (e["ci_low"] <= truth) & (truth <= e["ci_high"])
    assert covered.mean() >= 0.85  # 144 correlated intervals; nominal 95%
    common = e["skin_type"] == "III"
    assert ((e.loc[common, "ci_low"] <= truth[common]) & (truth[common] <= e.loc[common, "ci_high"])).all()


def test_session_age_and_skin_effects_have_the_right_sign_and_cover_the_truth(model):
    cases = {  # (a, b): contrast a - b at these sessions, age, skin type
        "sessions": ((5, 45, "III"), (1, 45, "III")),
        "age": ((3, 60, "III"), (3, 35, "III")),
        "skin": ((3, 45, "V"), (3, 45, "I")),
    }
    for name, (a, b) in cases.items():
        c = model.contrast(model.frame(*a), model.frame(*b)).iloc[0]
        truth = float(ms.expected(*a) - ms.expected(*b))
        assert np.sign(c["estimate"]) == np.sign(truth), name
        assert c["ci_low"] <= truth <= c["ci_high"], name


def test_plateau_matches_the_truth(model):
    # truth for a ~49-year-old with skin type III: gains 4.7, 2.7, 1.6 ... -> plateau after 3
    table = model.plateau(gain=2.0, n_draws=400, seed=1)
    row = table[(table["age_band"] == "45-54") & (table["skin_type"] == "III")].iloc[0]
    e = ms.expected(np.arange(1, 7), row["age"], "III")
    true_plateau = 1 + int(np.flatnonzero(np.diff(e) < 2.0)[0])
    assert true_plateau == 3
    assert row["ci_low"] <= true_plateau <= row["ci_high"]
    assert row["plateau"] == true_plateau
    # a demand of 100 points per session is never met: "not reached" is infinity, not a number
    never = model.plateau(gain=-100.0, n_draws=50)
    assert np.isinf(never["plateau"]).all() and (never["share_not_reached"] == 1).all()


def test_age_bands():
    bands = age_band(pd.Series([20, 34.9, 35, 44, 45, 54, 55, 80]))
    assert list(bands.astype(str)) == ["<35", "<35", "35-44", "35-44", "45-54", "45-54", "55+", "55+"]
    assert bands.cat.ordered
    assert list(age_band(np.array([36.0, 61.0])).astype(str)) == ["35-44", "55+"]


def test_age_band_keeps_the_index_of_a_series():
    # a filtered, re-sorted frame: the bands must land on the right rows when assigned back
    people = pd.DataFrame({"age": pd.array([70, 30, None, 50, 40], dtype="Float64")},
                          index=[11, 3, 8, 20, 5]).sort_values("age", ascending=False).iloc[1:]
    bands = age_band(people["age"])
    assert list(bands.index) == list(people.index)
    out = people.assign(age_band=bands).sort_index()
    assert list(out.index) == [3, 5, 8, 20]
    assert out["age_band"].iloc[[0, 1, 3]].tolist() == ["<35", "35-44", "45-54"]
    assert pd.isna(out.loc[8, "age_band"])  # missing age: no band


def test_unknown_metric_and_view_are_named(cohort):
    with pytest.raises(ValueError, match="no rows for metric 'collagen'"):
        fit_improvement(cohort, "collagen")
    with pytest.raises(ValueError, match="left45"):
        fit_improvement(cohort, "hydration", view="left45")


def test_prediction_band_holds_95_percent_of_new_patients(model):
    # patients the model never saw, from the same population (response factor r ~ N(1, 0.5),
    # noise SD 4): their single measurements fall in the band ~95% of the time
    new = ms.cohort(1000, seed=99).query("sessions > 0")
    new = new[new["skin_type"].isin(model.skin_types_)]
    pred = model.predict(new, prediction=True)
    inside = (pred["pred_low"] <= new["improvement_pct"]) & (new["improvement_pct"] <= pred["pred_high"])
    assert 0.92 <= inside.mean() <= 0.98
    assert inside.groupby(new["sessions"]).mean().between(0.90, 0.99).all()
    assert (pred["pred_low"] < pred["ci_low"]).all() and (pred["ci_high"] < pred["pred_high"]).all()


def test_a_skin_type_seen_at_too_few_session_counts_is_left_out_and_counted(cohort):
    # type IV measured only after 1-3 sessions cannot carry its own spline (4 parameters): its
    # design columns would be collinear. It is left out, counted, and the rest fits.
    d = cohort[~((cohort["skin_type"] == "IV") & (cohort["sessions"] > 3))]
    m = fit_improvement(d, "hydration")
    assert m.converged_ and "IV" not in m.skin_types_
    dropped = m.dropped_.set_index("reason")["rows"]
    reason = next(r for r in dropped.index if r.startswith("skin type with"))
    assert "IV: 46 patients, 3 counts" in reason  # (and VI: < 10 patients)
    assert dropped[reason] == (d["skin_type"].isin(["IV", "VI"]) & (d["sessions"] > 0)).sum()
    # without the sessions x skin type interaction, one session count is enough
    assert "IV" in fit_improvement(d, "hydration", interactions=("age",)).skin_types_
