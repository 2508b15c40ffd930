"""Issue 9, item 4: spreadsheet-safe CSVs, complementary small-cell suppression, min_cell's floor, ages 90+."""
from __future__ import annotations

import csv

import pandas as pd
import pytest
from typer.testing import CliRunner

import outcomes
from outcomes import config, privacy
from outcomes.cli import app
from raw_factory import PATIENTS, SESSIONS, write_raw

FORMULA_ID = '=HYPERLINK("http://x","s")'
FORMULA_DATE = "+cmd|' /C calc'!A0"


def _cells(path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_rejected_and_data_quality_csv_cells_cannot_run_as_formulas(tmp_path):
    patients = PATIENTS + [dict(PATIENTS[0], patient_id="P3", age=-3.5), dict(PATIENTS[0], patient_id="P4", sex="@SUM(1)")]
    sessions = SESSIONS + [dict(SESSIONS[0], patient_id=FORMULA_ID), dict(SESSIONS[0], session_date=FORMULA_DATE)]
    raw = write_raw(tmp_path / "raw", patients=patients, sessions=sessions)
    result = outcomes.clean(raw, tmp_path / "out")
    rejected = {r["column"]: r["value"] for r in _cells(tmp_path / "out" / "rejected.csv")}
    assert rejected["patient_id"] == "'" + FORMULA_ID
    assert rejected["session_date"] == "'" + FORMULA_DATE
    assert rejected["age"] == "-3.5"  # a genuine number stays a number
    notes = {r["column"]: r["value"] for r in _cells(tmp_path / "out" / "data_quality.csv")}
    assert notes["sex"] == "'@SUM(1)"
    for name in ("rejected.csv", "data_quality.csv"):  # no cell of any column starts like a formula
        for row in _cells(tmp_path / "out" / name):
            for value in row.values():
                assert not value.startswith(("=", "+", "@", "\t", "\r")) and (
                    not value.startswith("-") or value.lstrip("-").replace(".", "", 1).isdigit()), (name, value)
    # the Python result keeps the true values; only the file a spreadsheet opens is escaped
    assert FORMULA_ID in set(result.rejected["value"])


def test_spreadsheet_safe_escapes_text_columns_only():
    frame = pd.DataFrame({"text": ["=1+1", "-2", "ok", None, "\tx"], "n": [-1, 2, 3, 4, 5],
                          "cat": pd.Categorical(["@a", "b", "b", "b", "b"])})
    safe = outcomes.io.spreadsheet_safe(frame)
    assert safe["text"].tolist()[:3] == ["'=1+1", "-2", "ok"] and pd.isna(safe["text"][3])
    assert safe["text"][4] == "'\tx" and safe["cat"][0] == "'@a"
    assert safe["n"].tolist() == [-1, 2, 3, 4, 5]
    assert frame["text"][0] == "=1+1"  # the input is not changed


def test_report_refuses_min_cell_under_five_with_exit_2(tmp_path):
    for notebook in ("10-data-quality", "20-sessions-response", "30-patient-progress"):
        run = CliRunner().invoke(app, ["report", str(config.NOTEBOOKS_DIR / f"{notebook}.ipynb"), "-p", "min_cell", "1",
                                       "--processed", str(tmp_path / "none"), "--out", str(tmp_path / "out")])
        assert run.exit_code == 2, (notebook, run.output)
        assert "min_cell must be a whole number of at least 5" in run.output
    assert not (tmp_path / "out").exists()
