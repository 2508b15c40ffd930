"""Row-level cleaning: every input row is kept, rejected with a reason, or counted as a duplicate."""
from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import outcomes
from outcomes.cli import app
from raw_factory import PATIENTS, PHOTO_METRICS, SESSIONS, write_raw

runner = CliRunner()


def reconcile(result) -> None:
    s = result.summary
    assert (s["read"] == s["kept"] + s["rejected"] + s["duplicates"]).all(), s
    per_table = result.rejected.groupby("table").size().reindex(s.index, fill_value=0)
    assert (per_table == s["rejected"]).all()
    assert result.rejected["reason"].str.len().gt(0).all()
    for table, rows in result.rejected.groupby("table"):
        assert rows["source_row"].is_unique and rows["source_row"].between(2, s.loc[table, "read"] + 1).all()
    assert s.loc["patients", "kept"] == len(result.tables["patients"])
    assert s.loc["sessions", "kept"] == len(result.tables["sessions"])
    assert s.loc["photo_metrics", "kept"] == len(result.tables["measurements"])


# --- hypothesis: random mixes of good and bad rows ---------------------------------------------
GOOD_PATIENT = st.builds(lambda i, age, skin: {"patient_id": f"P{i}", "age": age, "sex": "F", "skin_type": skin},
                         st.integers(1, 6), st.integers(16, 100), st.sampled_from(["III", "type 2", "olive", ""]))
BAD_PATIENT = st.sampled_from([
    {"patient_id": "", "age": 40}, {"patient_id": "P9", "age": "old"}, {"patient_id": "P8", "age": 12},
    {"patient_id": "P7", "age": ""},
])
SESSION = st.builds(
    lambda i, day, status, volume: {"patient_id": f"P{i}", "session_date": day, "status": status, "volume_ml": volume},
    st.integers(0, 9),
    st.sampled_from(["2025-01-10", "2025-02-10", "10/03/2025", "2025-03-10 10:30", "31/02/2025", "soon", ""]),
    st.sampled_from(["completed", "", "Cancelled", "no show", "maybe"]),
    st.sampled_from(["2", "0", "25", "x", ""]),
)
PHOTO = st.builds(
    lambda i, day, metric, value, view: {"patient_id": f"P{i}", "photo_id": f"ph{i}-{day}", "taken_at": day,
                                         "metric": metric, "value": value, "view": view},
    st.integers(0, 9),
    st.sampled_from(["2025-01-05", "2025-02-10 09:00", "01/03/2025", "bad", ""]),
    st.sampled_from(["wrinkles", "Brown Spots", "hydration", "glow", ""]),
    st.sampled_from(["10", "12.5", "-1", "200", "n/a", "abc"]),
    st.sampled_from(["front", "Left 45", "", "top"]),
)


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    patients=st.lists(st.one_of(GOOD_PATIENT, BAD_PATIENT), min_size=1, max_size=12),
    sessions=st.lists(SESSION, min_size=1, max_size=25),
    photos=st.lists(PHOTO, min_size=1, max_size=40),
    repeat=st.integers(0, 3),
)
def test_read_equals_kept_plus_rejected_plus_duplicates(tmp_path_factory, patients, sessions, photos, repeat):
    photos = photos + photos[:repeat]  # exact duplicates too
    raw = write_raw(tmp_path_factory.mktemp("raw"), patients=patients, sessions=sessions, photo_metrics=photos)
    result = outcomes.clean(raw)
    reconcile(result)
    o = result.tables["outcomes"]
    assert not o.duplicated(["patient_id", "metric", "view", "sessions"]).any()


# --- named reasons --------------------------------------------------------------------------
def test_each_kind_of_bad_row_gets_its_reason(tmp_path):
    patients = PATIENTS + [{"patient_id": "", "age": 40}, {"patient_id": "P3", "age": 12}, {"patient_id": "P4", "age": "old"},
                           {"patient_id": "P1", "age": 46}]
    sessions = SESSIONS + [
        {"patient_id": "P9", "session_date": "2025-01-01"}, {"patient_id": "P1", "session_date": "31/02/2025"},
        {"patient_id": "P3", "session_date": "2025-03-02"},
    ]
    photos = PHOTO_METRICS + [
        {"patient_id": "P1", "photo_id": "z", "taken_at": "2025-01-10", "metric": "glow", "value": 1},
        {"patient_id": "P1", "photo_id": "z", "taken_at": "2025-01-10", "metric": "hydration", "value": 131},
        {"patient_id": "P1", "photo_id": "z", "taken_at": "2025-01-10", "metric": "wrinkles", "value": "#VALUE!"},
        {"patient_id": "P1", "photo_id": "", "taken_at": "2025-01-10", "metric": "wrinkles", "value": 3},
        {"patient_id": "P1", "photo_id": "z", "taken_at": "someday", "metric": "wrinkles", "value": 3},
        {"patient_id": "P1", "photo_id": "z", "taken_at": "2025-01-10", "metric": "wrinkles", "value": 3, "view": "top"},
        {"patient_id": " ", "photo_id": "y", "taken_at": "2025-01-10", "metric": "wrinkles", "value": 3},
        {"patient_id": "P9", "photo_id": "y", "taken_at": "2025-01-10", "metric": "wrinkles", "value": 3},
        {"patient_id": "P3", "photo_id": "y", "taken_at": "2025-01-10", "metric": "wrinkles", "value": 3},
    ]
    result = outcomes.clean(write_raw(tmp_path / "raw", patients=patients, sessions=sessions, photo_metrics=photos))
    reconcile(result)
    got = {(r.table, r.source_row): (r.column, r.reason) for r in result.rejected.itertuples()}
    assert got == {
        ("patients", 4): ("patient_id", "missing_patient_id"),
        ("patients", 5): ("age", "age_out_of_range"),
        ("patients", 6): ("age", "age_not_a_number"),
        ("patients", 7): ("patient_id", "duplicate_patient_id"),
        ("sessions", 5): ("patient_id", "unknown_patient"),
        ("sessions", 6): ("session_date", "unparseable_date"),
        ("sessions", 7): ("patient_id", "patient_rejected"),
        ("photo_metrics", 6): ("metric", "unknown_metric"),
        ("photo_metrics", 7): ("value", "out_of_range"),
        ("photo_metrics", 8): ("value", "not_a_number"),
        ("photo_metrics", 9): ("photo_id", "missing_photo_id"),
        ("photo_metrics", 10): ("taken_at", "unparseable_date"),
        ("photo_metrics", 11): ("view", "unknown_view"),
        ("photo_metrics", 12): ("patient_id", "missing_patient_id"),
        ("photo_metrics", 13): ("patient_id", "unknown_patient"),
        ("photo_metrics", 14): ("patient_id", "patient_rejected"),
    }
    assert result.rejected.set_index(["table", "source_row"]).loc[("photo_metrics", 8), "value"] == "#VALUE!"


def test_a_session_with_a_bad_volume_or_status_is_kept_counted_and_noted(tmp_path):
    """An unusable optional value is left empty and noted: the session still happened, so the
    session counts of the patient's later photos do not change."""
    sessions = [
        {"patient_id": "P1", "session_date": "2025-01-10", "status": "completed", "volume_ml": "25"},  # > 20 ml
        {"patient_id": "P1", "session_date": "2025-02-10", "status": "done", "volume_ml": "lots"},
        {"patient_id": "P1", "session_date": "2025-03-10", "status": "maybe", "volume_ml": "2"},
        {"patient_id": "P2", "session_date": "2025-01-05", "status": "completed", "volume_ml": "3"},
    ]
    photos = PHOTO_METRICS + [dict(PHOTO_METRICS[1], photo_id="late", taken_at="2025-04-01", value=8.0)]
    result = outcomes.clean(write_raw(tmp_path / "raw", sessions=sessions, photo_metrics=photos), tmp_path / "out")
    reconcile(result)
    assert len(result.rejected) == 0 and result.summary.loc["sessions", "noted"] == 3
    s = result.tables["sessions"].query("patient_id == 'P1'")
    assert s["volume_ml"].isna().tolist() == [True, True, False]
    assert s["status"].tolist() == ["completed", "completed", "unknown"]
    assert s["session_number"].tolist()[:2] == [1, 2] and s["session_number"].isna().tolist() == [False, False, True]
    m = result.tables["measurements"].set_index("photo_id")
    assert m.loc["b", "sessions"] == 1 and m.loc["late", "sessions"] == 2  # the 25 ml session counts; "maybe" does not
    assert result.tables["patients"].set_index("patient_id").loc["P1", "n_sessions"] == 2
    notes = outcomes.load_processed(tmp_path / "out")["data_quality"].query("table == 'sessions'")
    got = {(n.column, n.value, n.rows, n.first_source_row) for n in notes.itertuples()}
    assert got == {("volume_ml", "25", 1, 2), ("volume_ml", "lots", 1, 3), ("status", "maybe", 1, 4)}
    assert notes.set_index("value").loc["25", "note"].startswith("out of range")
    cli = runner.invoke(app, ["clean", "--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "cli"), "--strict"])
    assert cli.exit_code == 0 and "volume_ml" in cli.stdout and "noted" in cli.stdout


def test_duplicates_exact_rows_and_same_patient_same_day(tmp_path):
    patients = PATIENTS + [PATIENTS[0]]
    sessions = SESSIONS + [SESSIONS[0], {"patient_id": "P1", "session_date": "10/02/2025 15:00", "status": "completed"},
                           {"patient_id": "P2", "session_date": "2025-01-05", "status": "cancelled"}]
    result = outcomes.clean(write_raw(tmp_path / "raw", patients=patients, sessions=sessions,
                                      photo_metrics=PHOTO_METRICS + PHOTO_METRICS[:2]))
    reconcile(result)
    assert result.summary["duplicates"].tolist() == [1, 3, 2]
    s = result.tables["sessions"]
    assert (s["status"] == "completed").all() and len(s) == 3  # the completed row of a day wins


def test_odd_skin_type_is_unknown_with_a_note_not_a_rejection(tmp_path):
    patients = [dict(PATIENTS[0], skin_type="olive"), dict(PATIENTS[1], skin_type="Fitzpatrick 5")]
    result = outcomes.clean(write_raw(tmp_path / "raw", patients=patients))
    p = result.tables["patients"]
    assert p["skin_type"].isna().tolist() == [True, False] and len(result.rejected) == 0
    note = result.notes.iloc[0]
    assert (note["column"], note["value"], note["rows"], note["first_source_row"]) == ("skin_type", "olive", 1, 2)


def test_birth_date_becomes_age_at_first_session_and_is_never_written(tmp_path):
    patients = [{"patient_id": "P1", "birth_date": "1980-01-11", "sex": "F"},  # 45 on 2025-01-10? no: 44
                {"patient_id": "P2", "birth_date": "05/01/1965", "age": ""},  # day first; 60 on 2025-01-05
                {"patient_id": "P3", "birth_date": "1999-99-99"}]
    result = outcomes.clean(write_raw(tmp_path / "raw", patients=patients), tmp_path / "out")
    assert result.tables["patients"].set_index("patient_id")["age"].to_dict() == {"P1": 44.0, "P2": 60.0}
    assert result.rejected[["column", "value", "reason"]].values.tolist() == [
        ["birth_date", "(withheld: birth_date)", "birth_date_unparseable_date"]]
    for path in (tmp_path / "out").iterdir():
        text = path.read_bytes()
        assert b"1980-01-11" not in text and b"1965" not in text and b"1999-99-99" not in text, path.name
    for frame in outcomes.load_processed(tmp_path / "out").values():
        assert "birth_date" not in frame.columns


def test_age_from_birth_date_refers_to_the_first_completed_else_booked_session_else_first_photo(tmp_path):
    patients = [{"patient_id": "P1", "birth_date": "1980-06-15"}, {"patient_id": "P2", "birth_date": "1970-01-20"},
                {"patient_id": "P3", "birth_date": "1990-02-15"}]
    sessions = [{"patient_id": "P1", "session_date": "2025-01-10", "status": "cancelled"},  # only booked: 2025-01-10
                {"patient_id": "P1", "session_date": "2025-07-01", "status": "cancelled"},
                {"patient_id": "P3", "session_date": "2025-02-01", "status": "cancelled"},  # completed first: 2025-03-01
                {"patient_id": "P3", "session_date": "2025-03-01", "status": "completed"}]
    # P2 has no session: its first photo (2025-01-05) is the reference
    result = outcomes.clean(write_raw(tmp_path / "raw", patients=patients, sessions=sessions))
    assert result.tables["patients"].set_index("patient_id")["age"].to_dict() == {"P1": 44.0, "P2": 54.0, "P3": 35.0}


# --- command line ------------------------------------------------------------------------------
def test_cli_prints_a_summary_and_strict_fails_on_rejections(tmp_path):
    raw = write_raw(tmp_path / "raw", photo_metrics=PHOTO_METRICS + [dict(PHOTO_METRICS[0], metric="glow")])
    ok = runner.invoke(app, ["clean", "--raw", str(raw), "--out", str(tmp_path / "a")])
    assert ok.exit_code == 0
    assert "photo_metrics" in ok.stdout and "unknown_metric" in ok.stdout and "Without baseline" in ok.stdout
    strict = runner.invoke(app, ["clean", "--raw", str(raw), "--out", str(tmp_path / "b"), "--strict"])
    assert strict.exit_code == 1 and (tmp_path / "b" / "rejected.csv").exists()
    clean_raw = write_raw(tmp_path / "clean")
    assert runner.invoke(app, ["clean", "--raw", str(clean_raw), "--out", str(tmp_path / "c"), "--strict"]).exit_code == 0


def test_cli_monthfirst(tmp_path):
    sessions = [{"patient_id": "P1", "session_date": "01/10/2025"}, {"patient_id": "P1", "session_date": "02/10/2025"}]
    photos = [dict(PHOTO_METRICS[0], taken_at="01/05/2025"), dict(PHOTO_METRICS[1], taken_at="02/15/2025")]
    raw = write_raw(tmp_path / "raw", sessions=sessions, photo_metrics=photos)
    day_first = outcomes.clean(raw)
    assert day_first.rejected["reason"].str.contains("--monthfirst").any()  # 02/15/2025 has no 15th month
    result = runner.invoke(app, ["clean", "--raw", str(raw), "--out", str(tmp_path / "out"), "--monthfirst"])
    assert result.exit_code == 0
    tables = outcomes.load_processed(tmp_path / "out")
    assert tables["sessions"]["session_date"].tolist() == [pd.Timestamp("2025-01-10"), pd.Timestamp("2025-02-10")]
    assert tables["measurements"]["sessions"].tolist() == [0, 2]
    assert outcomes.loader.load_manifest(tmp_path / "out")["settings"]["monthfirst"] is True


def test_user_metric_registry(tmp_path):
    raw = write_raw(tmp_path / "raw", photo_metrics=PHOTO_METRICS + [
        dict(PHOTO_METRICS[0], metric="Glow Score", value=5), dict(PHOTO_METRICS[1], metric="glow_score", value=6),
        dict(PHOTO_METRICS[1], metric="glow_score", value=60, photo_id="x")])
    pd.DataFrame([{"metric": "Glow Score", "better": "higher", "unit": "AU", "low": 0, "high": 10}]).to_csv(raw / "metrics.csv", index=False)
    result = outcomes.clean(raw)
    glow = result.tables["outcomes"].query("metric == 'glow_score' and sessions == 1")
    assert glow["improvement_pct"].tolist() == [pytest.approx(20.0)]
    assert result.rejected["reason"].tolist() == ["out_of_range"]
    assert result.manifest["inputs"][-1]["file"] == "metrics.csv"
    (raw / "metrics.csv").write_text("metric,better\nglow,sideways\n")
    with pytest.raises(outcomes.raw_files.RawDataError, match="better"):
        outcomes.clean(raw)


def test_photo_ids_are_trimmed_and_a_blank_one_is_missing(tmp_path):
    photos = [dict(PHOTO_METRICS[0], photo_id=" a "), dict(PHOTO_METRICS[1], photo_id="   ")] + PHOTO_METRICS[2:]
    result = outcomes.clean(write_raw(tmp_path / "raw", photo_metrics=photos))
    assert result.tables["measurements"]["photo_id"].tolist() == ["a", "c", "d"]
    assert result.rejected[["source_row", "reason"]].values.tolist() == [[3, "missing_photo_id"]]


def test_unusable_quality_readings_are_left_empty_and_noted_not_rejected(tmp_path):
    photos = [dict(PHOTO_METRICS[0], blur="1.7", head_yaw_deg="left", makeup="maybe", color_delta_e="-2"),
              dict(PHOTO_METRICS[1], blur="0.9")] + PHOTO_METRICS[2:]
    result = outcomes.clean(write_raw(tmp_path / "raw", photo_metrics=photos))
    reconcile(result)
    assert len(result.rejected) == 0 and result.summary.loc["photo_metrics", "noted"] == 1
    m = result.tables["measurements"]
    assert m.loc[0, ["blur", "head_yaw_deg", "color_delta_e", "makeup"]].isna().all() and m.loc[1, "blur"] == 0.9
    notes = result.notes.query("table == 'photo_metrics'")
    assert {(n.column, n.value, n.rows, n.first_source_row) for n in notes.itertuples()} == {
        ("blur", "1.7", 1, 2), ("head_yaw_deg", "left", 1, 2), ("makeup", "maybe", 1, 2), ("color_delta_e", "-2", 1, 2)}
    o = result.tables["outcomes"].set_index("photo_id")
    assert o.loc["a", "qc_reasons"] == "" and o.loc["b", "qc_reasons"] == "blur"  # an ignored reading raises no flag


def test_assessments_scores_outside_their_scale_are_rejected_odd_raters_noted(tmp_path):
    rows = [("GAIS", 2, "clinician"), ("gais", 7, "clinician"), ("Global Aesthetic Improvement Scale", 1, "robot"),
            ("satisfaction", 140, "patient"), ("satisfaction", 80, "patient"), ("vibes", 3, "patient")]
    assessments = [{"patient_id": "P1", "assessed_at": "2025-02-01", "scale": s, "score": v, "rater": r} for s, v, r in rows]
    result = outcomes.clean(write_raw(tmp_path / "raw", assessments=assessments))
    reconcile(result)
    got = result.rejected.query("table == 'assessments'")[["source_row", "reason"]].values.tolist()
    assert got == [[3, "out_of_range"], [5, "out_of_range"], [7, "unknown_scale"]]
    a = result.tables["assessments"]
    assert a["scale"].tolist() == ["gais", "gais", "satisfaction"] and a["rater"].isna().tolist() == [False, True, False]
    assert result.notes.query("table == 'assessments'")[["column", "value"]].values.tolist() == [["rater", "robot"]]
