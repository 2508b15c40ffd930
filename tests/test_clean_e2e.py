"""End to end: simulate -> clean. Reconciliation, privacy, determinism, messy vs tidy, and the
linked improvements against the simulator's truth."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import outcomes
from outcomes.cleaning import schemas
from outcomes.simulation import expected_improvement, simulate
from folder_state import unchanged

N, SEED = 300, 20251
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("e2e")
    out = {}
    for name, tidy in (("messy", False), ("again", False), ("tidy", True)):
        simulate(n_patients=N, seed=SEED, out_dir=base / f"raw_{name}", tidy=tidy)
        # the export's day given: the runs agree even across midnight (the simulator's last date is 2026-03)
        with unchanged(base / f"raw_{name}"):
            out[name] = outcomes.clean(base / f"raw_{name}", base / f"processed_{name}", as_of="2026-06-30")
    out["base"] = base
    return out


@pytest.mark.parametrize("name", ["messy", "tidy"])
def test_every_table_reconciles(runs, name):
    s = runs[name].summary
    assert set(s.index) == {"patients", "sessions", "photo_metrics", "assessments", "adverse_events"}
    assert (s["read"] == s["kept"] + s["rejected"] + s["duplicates"]).all()
    for table, frame_name in (("patients", "patients"), ("sessions", "sessions"), ("photo_metrics", "measurements"),
                              ("assessments", "assessments"), ("adverse_events", "adverse_events")):
        assert s.loc[table, "kept"] == len(runs[name].tables[frame_name])
    manifest = json.loads((runs["base"] / f"processed_{name}" / "manifest.json").read_text())
    assert {t: v["read"] for t, v in manifest["tables"].items()} == s["read"].to_dict()
    assert {i["table"]: i["rows"] for i in manifest["inputs"]} == s["read"].to_dict()
    assert manifest["synthetic"] is True and len(manifest["snapshot"]) == 12


def test_messy_export_has_rejections_duplicates_and_notes(runs):
    s = runs["messy"].summary
    assert s["rejected"].sum() > 0 and s["duplicates"].sum() > 0
    reasons = set(runs["messy"].rejected["reason"])
    assert {"unknown_patient", "unknown_metric", "out_of_range"} <= reasons
    assert (runs["messy"].notes["column"] == "skin_type").any()
    assert runs["tidy"].summary[["rejected", "duplicates"]].sum().sum() == 0


def test_processed_tables_meet_their_schemas(runs):
    for name in ("messy", "tidy"):
        schemas.validate_processed(runs[name].tables)
        o = runs[name].tables["outcomes"]
        assert not o.duplicated(["patient_id", "metric", "view", "sessions"]).any()


def test_no_birth_date_anywhere_in_the_output(runs):
    raw = pd.read_csv(runs["base"] / "raw_messy" / "patients.csv", dtype=str)
    births = raw["Birth Date"].dropna()
    assert len(births) > 10  # the messy export does use birth dates
    folder = runs["base"] / "processed_messy"
    for path in folder.iterdir():
        data = path.read_bytes()
        assert not [b for b in births if b.encode() in data], path.name
        if path.suffix == ".parquet":
            assert "birth_date" not in pd.read_parquet(path).columns


def test_same_seed_gives_identical_processed_files(runs):
    a, b = runs["base"] / "processed_messy", runs["base"] / "processed_again"
    assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
    for path in a.glob("*.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(path), pd.read_parquet(b / path.name))
    for name in ("rejected.csv", "data_quality.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    ma, mb = (json.loads((d / "manifest.json").read_text()) for d in (a, b))
    ma.pop("created"), mb.pop("created")
    assert ma == mb


def test_messy_cohort_cleans_to_nearly_the_tidy_outcomes(runs):
    keys = ["patient_id", "metric", "view", "sessions"]
    tidy, messy = runs["tidy"].tables["outcomes"], runs["messy"].tables["outcomes"]
    both = tidy.merge(messy, on=keys, how="left", suffixes=("", "_messy"), indicator=True)
    found = both["_merge"] == "both"
    assert found.mean() > 0.98
    same = np.isclose(both.loc[found, "improvement_pct"], both.loc[found, "improvement_pct_messy"], equal_nan=True)
    assert same.mean() > 0.97


def test_first_session_improvement_matches_the_truth(runs):
    """Linking is right if the improvement after one session, per patient, is what generated it."""
    truth = json.loads((runs["base"] / "raw_tidy" / "truth.json").read_text())
    o = runs["tidy"].tables["outcomes"]
    o = o[o["qc_ok"] & (o["sessions"] == 1) & (o["metric"] == "hydration")]
    patients = pd.DataFrame.from_dict(truth["patients"], orient="index").loc[o["patient_id"]]
    expected = expected_improvement(truth, "hydration", 1, patients["age"].to_numpy(), patients["skin_type"].to_numpy())
    expected = expected * patients["response_factor"].to_numpy()
    assert len(o) > 100
    assert o["improvement_pct"].mean() == pytest.approx(expected.mean(), abs=2.0)
    assert np.corrcoef(o["improvement_pct"], expected)[0, 1] > 0.3  # photo noise is large per patient
