"""`outcomes clean --out`: it replaces only its own output, follows (never replaces) a user's
symlink, and switches to a new output in one atomic step: a kill injected at every step of the
switch leaves the complete old or the complete new output, and the next run removes the rest."""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import outcomes
from outcomes import processed_folder
from outcomes.cli import app
from outcomes.loader import load_manifest, load_processed
from outcomes.processed_folder import OutputError, ProcessedWriter
from folder_state import fingerprint, unchanged
from raw_factory import PHOTO_METRICS, write_raw

runner = CliRunner()


class Killed(BaseException):
    """Stands for SIGKILL: raised at a step of the switch, and no clean-up code runs."""


@pytest.fixture
def raws(tmp_path) -> dict[str, Path]:
    """Two exports with different snapshots: `old` (4 photo rows) and `new` (2 photo rows)."""
    return {"old": write_raw(tmp_path / "raw_old"), "new": write_raw(tmp_path / "raw_new", photo_metrics=PHOTO_METRICS[:2])}


def clean_cli(raw: Path, out: Path):
    return runner.invoke(app, ["clean", "--raw", str(raw), "--out", str(out)])


def complete_output(out: Path) -> str | None:
    """The snapshot of the output at `out` after checking it is whole (manifest and every table
    readable, row counts as the manifest says); None when there is no output at all."""
    if not (out / "manifest.json").exists():  # no output: nothing there, or an empty folder
        assert not out.exists() or not [p for p in out.iterdir() if not p.name.startswith(".")]
        return None
    manifest, tables = load_manifest(out), load_processed(out)
    assert set(manifest["outputs"]) <= set(tables)
    for name, rows in manifest["outputs"].items():
        assert len(tables[name]) == rows, name
    assert len(tables["rejected"]) == sum(t["rejected"] for t in manifest["tables"].values())
    return manifest["snapshot"]


def leftovers(out: Path) -> list[str]:
    """Everything beside `out` in its folder, other than the version folder it links to."""
    current = out.readlink().name if out.is_symlink() else None
    return sorted(p.name for p in out.parent.iterdir() if p.name not in (out.name, current))


def legacy_folder(raw: Path, out: Path) -> Path:
    """A plain processed folder as versions before the switch wrote it (no marker, no written_by)."""
    outcomes.clean(raw, out.parent / "seed" / "p")
    shutil.copytree((out.parent / "seed" / "p").resolve(), out, ignore=shutil.ignore_patterns(processed_folder.MARKER))
    shutil.rmtree(out.parent / "seed")
    manifest = load_manifest(out)
    del manifest["written_by"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    (out / ".gitkeep").write_text("")
    return out


# --- what clean may replace ----------------------------------------------------------------------
FOREIGN = {
    "hidden .ssh folder": {".ssh/id_ed25519": "PRIVATE KEY"},
    "hidden .git folder": {".git/HEAD": "ref: refs/heads/main"},
    "raw export in .raw": {".raw/patients.csv": "patient_id,age\nP1,40\n"},
    "foreign file": {"my_notes.txt": "mine"},
    "hidden file": {".env": "SECRET=1"},
    "a symlink": {},
}


def put(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


@pytest.mark.parametrize("files", FOREIGN.values(), ids=FOREIGN.keys())
@pytest.mark.parametrize("state", ["clean's output", "a user's folder"])
def test_foreign_content_in_out_is_refused_with_2_and_nothing_is_touched(tmp_path, raws, state, files):
    out = tmp_path / "data" / "processed"
    if state == "clean's output":
        outcomes.clean(raws["old"], out)
    else:
        out.mkdir(parents=True)
    put(out, files)
    if not files:
        (out / "link").symlink_to(raws["old"])
    with unchanged(out.parent), unchanged(out.resolve()):
        result = clean_cli(raws["new"], out)
        assert result.exit_code == 2, result.output
        assert "refusing to replace" in result.stderr and (next(iter(files), "link").split("/")[0] in result.stderr)


def test_parquet_files_without_clean_s_manifest_are_refused(tmp_path, raws):
    out = tmp_path / "processed"
    outcomes.clean(raws["old"], out)
    manifest = load_manifest(out)
    del manifest["written_by"], manifest["snapshot"]  # neither the new nor the earlier form of clean's manifest
    (out / "manifest.json").write_text(json.dumps(manifest))
    with unchanged(tmp_path):
        result = clean_cli(raws["new"], out)
    assert result.exit_code == 2 and "no manifest.json written by `outcomes clean`" in result.stderr


def test_out_inside_the_raw_folder_is_refused(raws):
    with unchanged(raws["old"]):
        result = clean_cli(raws["old"], raws["old"] / "processed")
    assert result.exit_code == 2 and "inside the raw-data folder" in result.stderr


def test_manifest_says_who_wrote_the_folder(tmp_path, raws):
    out = tmp_path / "processed"
    result = outcomes.clean(raws["old"], out)
    assert load_manifest(out)["written_by"] == result.manifest["written_by"] == "outcomes clean"
    assert out.is_symlink() and out.resolve().parent == out.parent  # a link to a version folder beside it
    assert sorted(p.name for p in out.iterdir()) == sorted(
        {processed_folder.MARKER, "manifest.json", "rejected.csv", "data_quality.csv"}
        | {f"{t}.parquet" for t in ("patients", "sessions", "measurements", "outcomes")})


# --- symlinks --------------------------------------------------------------------------------------
@pytest.mark.parametrize("target_state", ["absent", "clean's output"])
def test_a_user_symlink_at_out_is_followed_and_kept(tmp_path, raws, target_state):
    target = tmp_path / "big-disk" / "processed"
    if target_state == "clean's output":
        outcomes.clean(raws["old"], target)
    out = tmp_path / "data" / "processed"
    out.parent.mkdir()
    out.symlink_to(target)
    for raw in (raws["new"], raws["old"], raws["new"]):
        assert clean_cli(raw, out).exit_code == 0
        assert out.is_symlink() and out.readlink() == target  # the user's link, untouched
        assert complete_output(out) == complete_output(target) == load_manifest(raws_output(raw, tmp_path))["snapshot"]
    assert leftovers(target) == [] and sorted(p.name for p in out.parent.iterdir()) == ["processed"]


def raws_output(raw: Path, tmp_path: Path) -> Path:
    """clean's output for `raw` in a scratch folder (to know the snapshot it gives)."""
    out = tmp_path / "scratch" / raw.name
    if not out.exists():
        outcomes.clean(raw, out)
    return out


# --- the switch, killed at each step ---------------------------------------------------------------
START = {
    "no output yet": lambda raws, out: None,
    "clean's output": lambda raws, out: outcomes.clean(raws["old"], out),
    "output of an earlier version (plain folder)": lambda raws, out: legacy_folder(raws["old"], out),
    "empty folder": lambda raws, out: out.mkdir(),
}
STEPS = {
    "no output yet": ["created", "written", "linked", "swapped"],
    "clean's output": ["created", "written", "linked", "swapped"],
    "output of an earlier version (plain folder)": ["created", "written", "linked", "marked", "swapped"],
    "empty folder": ["created", "written", "linked", "marked", "swapped"],
}
CASES = [(start, step) for start, steps in STEPS.items() for step in steps]


def kill_at(monkeypatch, step: str) -> list[str]:
    """Make the next clean die at `step`: Killed is raised there and no clean-up runs."""
    seen: list[str] = []

    def point(name: str) -> None:
        seen.append(name)
        if name == step:
            raise Killed(step)

    monkeypatch.setattr(processed_folder, "_step", point)
    monkeypatch.setattr(ProcessedWriter, "_discard", lambda self: None)
    return seen


@pytest.mark.parametrize("start,step", CASES, ids=[f"{a}-killed-{b}" for a, b in CASES])
def test_a_kill_at_any_step_leaves_a_complete_output_and_the_next_run_tidies_up(tmp_path, raws, monkeypatch, start, step):
    out = tmp_path / "data" / "processed"
    out.parent.mkdir()
    START[start](raws, out)
    old = complete_output(out)
    new = complete_output(raws_output(raws["new"], tmp_path))
    assert old != new
    with monkeypatch.context() as patch:
        seen = kill_at(patch, step)
        with pytest.raises(Killed):
            outcomes.clean(raws["new"], out)
    assert seen[-1] == step  # the kill happened where it was asked for
    assert complete_output(out) in ({old, new} if old else {None, new})  # old or new, whole, never a mix
    if start == "output of an earlier version (plain folder)" and complete_output(out) == old:
        assert (out / ".gitkeep").is_file()
    result = clean_cli(raws["new"], out)  # the next run
    assert result.exit_code == 0, result.output
    assert complete_output(out) == new and leftovers(out) == []


@pytest.mark.parametrize("start", START)
def test_a_kill_after_any_file_system_call_of_the_switch_leaves_a_complete_output(tmp_path, raws, start):
    """Independent of the code's own steps: the run dies right after its 1st, 2nd, ... rename,
    replace, symlink or exchange, until one run gets through."""
    new = complete_output(raws_output(raws["new"], tmp_path))
    for k in range(1, 10):
        out = tmp_path / f"kill-after-call-{k}" / "processed"
        out.parent.mkdir()
        START[start](raws, out)
        old = complete_output(out)
        calls: list[str] = []

        def dying(real):
            def call(*args, **kwargs):
                result = real(*args, **kwargs)
                calls.append(real.__name__)
                if len(calls) == k:
                    raise Killed(real.__name__)
                return result
            return call

        with pytest.MonkeyPatch.context() as patch:
            for name in ("rename", "replace", "symlink"):
                patch.setattr(processed_folder.os, name, dying(getattr(processed_folder.os, name)))
            if hasattr(processed_folder, "_exchange"):
                patch.setattr(processed_folder, "_exchange", dying(processed_folder._exchange))
            patch.setattr(ProcessedWriter, "abort", lambda self: None)  # a kill runs no clean-up
            try:
                outcomes.clean(raws["new"], out)
                finished = True
            except Killed:
                finished = False
        assert complete_output(out) in ({old, new} if old else {None, new}), (k, calls)
        assert clean_cli(raws["new"], out).exit_code == 0
        assert complete_output(out) == new and leftovers(out) == []
        if finished:
            break
    assert finished, "the switch should take only a few calls"


def test_where_renames_cannot_swap_a_folder_the_first_switch_takes_two(tmp_path, raws, monkeypatch):
    """Without renameat2 (not Linux, some network file systems) a plain folder is moved aside, then
    the link takes its place; after a kill between the two the next run puts the old one back first."""
    (tmp_path / "data").mkdir()
    out = legacy_folder(raws["old"], tmp_path / "data" / "processed")
    monkeypatch.setattr(processed_folder, "_exchange", lambda a, b: False)
    with monkeypatch.context() as patch:
        kill_at(patch, "aside")
        with pytest.raises(Killed):
            outcomes.clean(raws["new"], out)
    assert not out.exists()  # the one moment without output, documented for such systems
    with monkeypatch.context() as patch:
        kill_at(patch, "written")  # the next run puts the old output back before anything else
        with pytest.raises(Killed):
            outcomes.clean(raws["new"], out)
    assert complete_output(out) == complete_output(raws_output(raws["old"], tmp_path))
    assert clean_cli(raws["new"], out).exit_code == 0
    assert complete_output(out) == complete_output(raws_output(raws["new"], tmp_path)) and leftovers(out) == []
    assert (out / ".gitkeep").is_file()


def test_only_clean_s_own_leftovers_are_removed(tmp_path, raws):
    out = tmp_path / "processed"
    outcomes.clean(raws["old"], out)
    mine = {".processed.v-mine/notes.txt": "a folder of mine with clean's name pattern",
            ".processed.new-keep/my.csv": "not clean's file",
            "other/readme.txt": "unrelated"}
    put(tmp_path, mine)
    legacy = tmp_path / ".processed.new-abc12345"  # a run of an earlier version, killed while writing
    legacy.mkdir()
    (legacy / "patients.parquet").write_bytes(b"partial")
    before = {name: fingerprint(tmp_path / name.split("/")[0]) for name in mine}
    assert clean_cli(raws["new"], out).exit_code == 0
    assert not legacy.exists()
    assert {name: fingerprint(tmp_path / name.split("/")[0]) for name in mine} == before


def test_two_cleans_into_one_place_at_once_the_second_is_refused(tmp_path, raws):
    out = tmp_path / "processed"
    with ProcessedWriter(out):
        result = clean_cli(raws["new"], out)
        assert result.exit_code == 2 and "another `outcomes clean`" in result.stderr
    assert clean_cli(raws["new"], out).exit_code == 0  # released with the first


@pytest.mark.parametrize("step", ["linked", "swapped"])
def test_a_real_sigkill_during_the_switch(tmp_path, raws, step):
    """The same with a real SIGKILL of a separate process (no Python clean-up at all)."""
    out = tmp_path / "data" / "processed"
    outcomes.clean(raws["old"], out)
    old, new = complete_output(out), complete_output(raws_output(raws["new"], tmp_path))
    script = ("import os, signal, sys\nfrom outcomes import processed_folder\nimport outcomes\n"
              "processed_folder._step = lambda name: os.kill(os.getpid(), signal.SIGKILL) if name == sys.argv[3] else None\n"
              "outcomes.clean(sys.argv[1], sys.argv[2])\n")
    proc = subprocess.run([sys.executable, "-c", script, str(raws["new"]), str(out), step], capture_output=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert complete_output(out) == (old if step == "linked" else new)
    assert leftovers(out)  # what the killed run left ...
    assert clean_cli(raws["new"], out).exit_code == 0
    assert complete_output(out) == new and leftovers(out) == []  # ... is gone after the next run
