"""Dates of events before 1990 or after the export's day are typos: rejected with their reason,
never used to count sessions or anchor a baseline. The export's day is given (as_of), so no
test depends on the clock."""
from __future__ import annotations

import datetime as dt

import pandas as pd

import outcomes
from outcomes import cleaning
from raw_factory import PHOTO_METRICS, SESSIONS, write_raw

AS_OF = "2025-06-30"
SESSIONS_WITH_TYPOS = SESSIONS + [
    {"patient_id": "P1", "session_date": "1900-01-01", "status": "completed", "volume_ml": 2},  # row 5
    {"patient_id": "P2", "session_date": "2025-07-01", "status": "completed", "volume_ml": 2},  # row 6: after the export
]
PHOTOS_WITH_TYPOS = PHOTO_METRICS + [
    dict(PHOTO_METRICS[1], photo_id="old", taken_at="1989-12-31"),  # row 6
    dict(PHOTO_METRICS[3], photo_id="future", taken_at="2031-02-05 10:00"),  # row 7
]
EXPECTED = {
    ("sessions", "sessions.csv", 5, "session_date", "1900-01-01", "date_before_1990"),
    ("sessions", "sessions.csv", 6, "session_date", "2025-07-01", "date_after_export"),
    ("photo_metrics", "photo_metrics.csv", 6, "taken_at", "1989-12-31", "date_before_1990"),
    ("photo_metrics", "photo_metrics.csv", 7, "taken_at", "2031-02-05 10:00", "date_after_export"),
}


def _rejected(folder) -> set[tuple]:
    rejected = outcomes.load_processed(folder)["rejected"]
    return {(r.table, r.source_file, r.source_row, r.column, r.value, r.reason) for r in rejected.itertuples()}


def test_a_1900_session_and_a_future_one_are_rejected_and_every_baseline_stays(tmp_path):
    raw = write_raw(tmp_path / "raw", sessions=SESSIONS_WITH_TYPOS, photo_metrics=PHOTOS_WITH_TYPOS)
    result = outcomes.clean(raw, tmp_path / "out", as_of=AS_OF)
    assert _rejected(tmp_path / "out") == EXPECTED
    outcome = result.tables["outcomes"]
    # the 1900 session would be P1's first: no photo within 90 days before it, so no baseline at all
    assert outcome["baseline"].notna().all() and not outcome["qc_reasons"].str.contains("no_baseline").any()
    assert result.manifest["no_baseline"]["outcome_rows"] == 0
    # exactly what the export without the typos gives: the typos count no session and anchor nothing
    reference = outcomes.clean(write_raw(tmp_path / "reference"), as_of=AS_OF)
    for name in ("outcomes", "sessions", "patients", "measurements"):
        pd.testing.assert_frame_equal(result.tables[name], reference.tables[name])
    assert result.manifest["settings"]["event_dates"] == {"earliest": "1990-01-01", "latest": AS_OF}
    assert (result.summary["read"] == result.summary["kept"] + result.summary["rejected"]
            + result.summary["duplicates"]).all()


def test_the_export_day_decides_what_is_in_the_future(tmp_path):
    raw = write_raw(tmp_path / "raw", sessions=SESSIONS_WITH_TYPOS, photo_metrics=PHOTOS_WITH_TYPOS)
    later = outcomes.clean(raw, as_of=dt.date(2025, 7, 1))  # that session was on the export's day: fine
    assert set(later.rejected["reason"]) == {"date_before_1990", "date_after_export"}
    assert "2025-07-01" not in set(later.rejected["value"])
    assert later.tables["sessions"].query("patient_id == 'P2'")["session_date"].max() == pd.Timestamp("2025-07-01")


def test_without_as_of_the_export_day_is_today(tmp_path, monkeypatch):
    class Today(dt.date):
        @classmethod
        def today(cls):
            return cls(2025, 6, 30)

    monkeypatch.setattr(cleaning, "date", Today)  # today's date injected: no test depends on the clock
    raw = write_raw(tmp_path / "raw", sessions=SESSIONS_WITH_TYPOS, photo_metrics=PHOTOS_WITH_TYPOS)
    result = outcomes.clean(raw, tmp_path / "out")
    assert _rejected(tmp_path / "out") == EXPECTED
    assert result.manifest["settings"]["event_dates"]["latest"] == "2025-06-30"


def test_typed_dates_from_parquet_get_the_same_rule(tmp_path):
    raw = write_raw(tmp_path / "raw", sessions=SESSIONS_WITH_TYPOS)
    sessions = pd.DataFrame(SESSIONS_WITH_TYPOS).assign(session_date=lambda f: pd.to_datetime(f["session_date"]))
    (raw / "sessions.csv").unlink()
    sessions.to_parquet(raw / "sessions.parquet")
    result = outcomes.clean(raw, as_of=AS_OF)
    got = result.rejected.set_index("source_row")["reason"].to_dict()
    assert got == {5: "date_before_1990", 6: "date_after_export"}
    assert result.tables["outcomes"]["baseline"].notna().all()


def test_birth_dates_before_1990_are_ordinary(tmp_path):
    patients = [{"patient_id": "P1", "birth_date": "1950-03-01"}, {"patient_id": "P2", "birth_date": "1931-12-24"}]
    result = outcomes.clean(write_raw(tmp_path / "raw", patients=patients), as_of=AS_OF)
    assert len(result.rejected) == 0
    assert result.tables["patients"].set_index("patient_id")["age"].to_dict() == {"P1": 74, "P2": 93}
