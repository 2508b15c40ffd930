"""Each step of `outcomes.clean` alone, on a small hand-made export (raw_factory): read, parse,
patient ids, check and tidy, link, output, bookkeeping."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from outcomes import cleaning, contract
from outcomes.cleaning import measurements, schemas
from outcomes.raw_files import RawDataError
from raw_factory import PATIENTS, PHOTO_METRICS, SESSIONS, write_raw

UNTIL = np.datetime64("2026-06-30", "D")
REGISTRY = dict(contract.METRICS)


def _export(tmp_path):
    patients = PATIENTS + [{**PATIENTS[0], "patient_id": "P3", "age": "old"}]  # rejected on its own field
    sessions = SESSIONS + [{**SESSIONS[0], "patient_id": "P9"}]  # no such patient
    photos = PHOTO_METRICS + [PHOTO_METRICS[0], {**PHOTO_METRICS[1], "patient_id": "P3"}]  # a row twice
    return write_raw(tmp_path / "raw", patients=pd.DataFrame(patients).assign(shoe_size=41),
                     sessions=sessions, photo_metrics=photos)


def _up_to_tidy(raw):
    raws, notes = cleaning.read_tables(raw)
    tables = cleaning.parse_tables(raws, REGISTRY, False, UNTIL)
    ids = cleaning.patient_ids(tables)
    return raws, notes, tables, ids, cleaning.check_and_tidy(tables, ids, REGISTRY)


def test_check_folders_refuses_a_missing_raw_folder_and_an_output_inside_it(tmp_path):
    with pytest.raises(RawDataError, match="does not exist"):
        cleaning.check_folders(tmp_path / "nowhere", None)
    with pytest.raises(cleaning.OutputError, match="inside the raw-data folder"):
        cleaning.check_folders(tmp_path, tmp_path / "processed")


def test_read_tables_reads_each_table_and_notes_ignored_columns(tmp_path):
    raws, notes = cleaning.read_tables(_export(tmp_path))
    assert list(raws) == ["patients", "sessions", "photo_metrics"]
    assert [raws[t].rows for t in raws] == [3, 4, 6]
    assert [(n["table"], n["column"]) for n in notes] == [("patients", "shoe_size")]


def test_parse_tables_rejects_only_what_needs_no_link(tmp_path):
    raws, _ = cleaning.read_tables(_export(tmp_path))
    tables = cleaning.parse_tables(raws, REGISTRY, False, UNTIL)
    assert tables.patients.ledger.ok.tolist() == [True, True, False]  # P3's age is no number
    assert tables.sessions.ledger.ok.all() and tables.photos.ledger.ok.all()  # unknown patients: later
    assert tables.assessments is None and list(tables.with_modules()) == ["patients", "sessions", "photo_metrics"]


def test_patient_ids_are_the_known_and_the_kept_ones(tmp_path):
    _, _, _, ids, _ = _up_to_tidy(_export(tmp_path))
    assert sorted(ids.known.to_pylist()) == ["P1", "P2", "P3"] and ids.kept.to_pylist() == ["P1", "P2"]


def test_check_and_tidy_rejects_rows_of_unknown_or_rejected_patients(tmp_path):
    _, _, tables, _, tidy = _up_to_tidy(_export(tmp_path))
    assert tables.sessions.ledger.ok.tolist() == [True, True, True, False]
    assert tables.photos.ledger.ok.tolist() == [True, True, True, True, True, False]
    assert tidy.patients["patient_id"].tolist() == ["P1", "P2"] and len(tidy.sessions) == 3
    assert tidy.optional == {}


def test_link_marks_exact_duplicates_and_output_checks_and_keeps_the_tables(tmp_path):
    _, _, tables, _, tidy = _up_to_tidy(_export(tmp_path))
    photos = tables.photos
    linked, _, _ = measurements.link(photos, tidy.keys, tidy.patients, REGISTRY)
    assert photos.ledger.ok.tolist() == [True, True, True, True, False, False]  # the repeated row
    out = cleaning.Output(None, schemas.processed_schemas(list(REGISTRY)))
    out.table("patients", tidy.patients)
    out.batches("measurements", measurements.batches(photos, linked, tidy.patients, REGISTRY))
    assert out.rows() == {"patients": 2, "measurements": 4}
    assert out.in_memory()["measurements"].column("sessions").to_pylist() == [0, 1, 0, 1]  # completed sessions before each photo
    with pytest.raises(Exception, match="sex"):  # a value outside the vocabulary fails the schema check
        out.table("patients", tidy.patients.assign(sex="Q"))


def test_bookkeeping_accounts_for_every_row(tmp_path):
    _, notes, tables, _, tidy = _up_to_tidy(_export(tmp_path))
    measurements.link(tables.photos, tidy.keys, tidy.patients, REGISTRY)
    rejected, summary, quality = cleaning.bookkeeping(tables, notes, None)
    assert (summary["read"] == summary["kept"] + summary["rejected"] + summary["duplicates"]).all()
    assert summary.loc["photo_metrics", ["kept", "rejected", "duplicates"]].tolist() == [4, 1, 1]
    assert sorted(zip(rejected["table"], rejected["reason"])) == [
        ("patients", "age_not_a_number"), ("photo_metrics", "patient_rejected"), ("sessions", "unknown_patient")]
    assert "shoe_size" in quality["column"].tolist()


def test_each_patient_carries_the_area_most_of_their_completed_sessions_treated(tmp_path):
    """outcomes.area: the most frequent area of the completed sessions; a tie goes to the area
    treated first; cancelled sessions do not count; none recorded: missing (contract, section 4)."""
    sessions = [
        # P1: face twice, neck once (and a cancelled neck session that must not count)
        *({"patient_id": "P1", "session_date": d, "status": "completed", "area": a}
          for d, a in (("2025-01-10", "Neck"), ("2025-02-10", "face"), ("2025-03-10", "FACE"))),
        {"patient_id": "P1", "session_date": "2025-03-20", "status": "cancelled", "area": "neck"},
        {"patient_id": "P1", "session_date": "2025-03-21", "status": "cancelled", "area": "neck"},
        # P2: one neck and one face session: a tie, neck was treated first
        {"patient_id": "P2", "session_date": "2025-01-05", "status": "completed", "area": "neck"},
        {"patient_id": "P2", "session_date": "2025-02-05", "status": "completed", "area": "face"},
    ]
    photos = [*PHOTO_METRICS, {"patient_id": "P1", "photo_id": "e", "taken_at": "2025-04-10", "metric": "wrinkles",
                               "value": 8.0}]
    tables = cleaning.clean(write_raw(tmp_path / "raw", sessions=sessions, photo_metrics=photos),
                            as_of="2030-01-01").tables
    area = tables["outcomes"].groupby("patient_id")["area"].agg(lambda a: set(a))
    assert area.to_dict() == {"P1": {"face"}, "P2": {"neck"}}
    assert list(tables["outcomes"].columns[:len(contract.OUTCOME_COLUMNS)]) == list(contract.OUTCOME_COLUMNS)
    unrecorded = cleaning.clean(write_raw(tmp_path / "raw2"), as_of="2030-01-01").tables["outcomes"]
    assert unrecorded["area"].isna().all()
