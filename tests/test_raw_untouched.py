"""Raw data is never modified: every command, run as a scheduler or a newcomer would, leaves the
raw folder byte for byte, name for name and mtime for mtime as it was; and the scheduled command
never writes demo data."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from typer.testing import CliRunner

from folder_state import unchanged
from outcomes.cli import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    """A messy export of 60 patients, made by the command line."""
    folder = tmp_path_factory.mktemp("export") / "raw"
    res = runner.invoke(app, ["simulate", "--patients", "60", "--seed", "7", "--out", str(folder)])
    assert res.exit_code == 0, res.output
    return folder


def outcomes_cli(*args: str) -> tuple[int, str]:
    res = runner.invoke(app, list(args))
    return res.exit_code, res.stderr


def test_simulate_demo_and_clean_leave_the_raw_folder_untouched(raw, tmp_path):
    steps = [
        (["simulate", "--patients", "20", "--out", str(tmp_path / "other")], 0),
        (["simulate", "--patients", "20", "--out", str(raw)], 2),
        (["demo", "--raw", str(raw), "--patients", "20"], 2),
        (["demo", "--raw", str(raw), "--patients", "20", "--if-empty"], 0),
        (["clean", "--raw", str(raw), "--out", str(tmp_path / "processed")], 0),
        (["clean", "--raw", str(raw), "--out", str(tmp_path / "processed")], 0),  # replaces its own output
        (["clean", "--raw", str(raw), "--out", str(tmp_path / "processed"), "--strict"], 1),  # the export is messy
    ]
    for args, code in steps:
        with unchanged(raw):
            assert outcomes_cli(*args)[0] == code, args


@pytest.mark.slow
def test_a_report_run_leaves_the_raw_folder_untouched(raw, tmp_path):
    nb = new_notebook(cells=[
        new_code_cell("processed_dir = ''", metadata={"tags": ["parameters"]}),
        new_code_cell("import outcomes\nprint('outcome rows', len(outcomes.load_processed(processed_dir)['outcomes']))"),
    ])
    nb.metadata["kernelspec"] = {"name": "mesotherapy-outcomes", "display_name": "Python", "language": "python"}
    nbformat.write(nb, tmp_path / "rows.ipynb")
    with unchanged(raw):
        assert outcomes_cli("clean", "--raw", str(raw), "--out", str(tmp_path / "processed"))[0] == 0
        code, err = outcomes_cli("report", str(tmp_path / "rows.ipynb"), "--processed", str(tmp_path / "processed"),
                                 "--out", str(tmp_path / "reports"))
        assert code == 0, err
    assert "outcome rows" in next((tmp_path / "reports").rglob("rows.log")).read_text()


# --- the Makefile's commands, as `make` would run them ------------------------------------------
def make_commands(target: str, **variables: Path) -> list[str]:
    """The `outcomes` commands `make TARGET` runs (dry run), with the test's folders."""
    exe = Path(sys.executable).with_name("outcomes")
    args = ["make", "-n", "-s", target, f"OUTCOMES={exe}", *(f"{k}={v}" for k, v in variables.items())]
    out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line.startswith(str(exe))]


def run_until_failure(commands: list[str]) -> tuple[int, str]:
    """Run the commands one after the other as make does; the first failure stops the rest."""
    for command in commands:
        proc = subprocess.run(command, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=600)
        if proc.returncode:
            return proc.returncode, proc.stderr
    return 0, ""


def without_patients(raw: Path, folder: Path) -> Path:
    """A morning when the patients export is missing: sessions and photo_metrics only."""
    folder.mkdir()
    for name in ("sessions.csv", "photo_metrics.csv"):
        shutil.copy2(raw / name, folder / name)
    return folder


def test_scheduled_run_without_patients_fails_with_2_names_the_table_and_writes_no_demo(raw, tmp_path):
    morning = without_patients(raw, tmp_path / "raw")
    commands = make_commands("scheduled", RAW=morning, PROCESSED=tmp_path / "processed", REPORTS=tmp_path / "reports")
    assert commands and not [c for c in commands if " demo " in c]
    with unchanged(morning):
        code, err = run_until_failure(commands)
    assert code == 2 and "required file patients" in err
    assert not (tmp_path / "processed").exists() and not (tmp_path / "reports").exists()


def test_make_report_uses_real_exports_as_they_are_and_never_adds_demo_data(raw, tmp_path):
    morning = without_patients(raw, tmp_path / "raw")
    commands = make_commands("report", RAW=morning, PROCESSED=tmp_path / "processed", REPORTS=tmp_path / "reports")
    assert " demo " in commands[0] and "--if-empty" in commands[0]
    with unchanged(morning):
        code, err = run_until_failure(commands)
    assert code == 2 and "required file patients" in err  # the demo step let the real files be; clean refused them
    shutil.copy2(raw / "patients.csv", morning / "Patients.CSV")  # the case `outcomes clean` accepts
    data = [c for c in commands if " report " not in c]  # demo, clean (the report step is tested elsewhere)
    with unchanged(morning):
        assert run_until_failure(data) == (0, "")
    assert (tmp_path / "processed" / "manifest.json").is_file()


def test_make_measures_the_raw_photos_before_the_clean_once_and_only_with_an_index(tmp_path):
    """`make data` and `make scheduled` run `outcomes photos` on RAW/photos (when it has an index.csv)
    between the demo and the clean; a rerun measures nothing again and the photos stay as they are."""
    from outcomes.photos.simulate import simulate_photos

    raw = tmp_path / "raw"
    exe = str(Path(sys.executable).with_name("outcomes"))
    for target in ("data", "scheduled"):
        args = ["make", "-n", "-s", target, f"OUTCOMES={exe}", f"RAW={raw}", f"PROCESSED={tmp_path / 'processed'}"]
        lines = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=True).stdout.splitlines()
        measure = next(i for i, line in enumerate(lines) if " photos --photos " in line)
        clean = next(i for i, line in enumerate(lines) if " clean " in line)
        assert measure < clean and (target == "scheduled" or " demo " in lines[measure - 1])
    step = lines[measure]
    assert f"{raw}/photos/index.csv" in step and f"--out {raw}/photo_metrics.photos.csv" in step
    raw.mkdir()
    assert run_until_failure([step]) == (0, "")  # no photos folder: nothing to do, nothing written
    assert list(raw.iterdir()) == []
    simulate_photos(raw / "photos", n_patients=1, seed=3, size=(640, 480))
    with unchanged(raw / "photos"):
        first = subprocess.run(step, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=600)
        again = subprocess.run(step, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert first.returncode == again.returncode == 0, first.stderr + again.stderr
    assert " 0 measured in this run" not in first.stdout and " 0 measured in this run" in again.stdout
    assert (raw / "photo_metrics.photos.csv").is_file()
