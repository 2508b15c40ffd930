"""The report runner: parameters checked before anything runs, failures isolated, exit codes,
each run in its own folder, no worker outliving its run."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from typer.testing import CliRunner

from outcomes.cli import app
from outcomes.escaping import MAX_FILE_NAME_PART
from outcomes.reports import params, runner, runs

PARAMS = "processed_dir: str = ''  # processed-data folder\nn: int = 3  # how many\nlabel: str = 'x'\nscale = 1.5"


def _notebook(path: Path, body: str, parameters: str = PARAMS) -> Path:
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "mesotherapy-outcomes", "display_name": "Python", "language": "python"}
    nb.cells = [
        new_code_cell(parameters, metadata={"tags": ["parameters"]}),
        new_markdown_cell("## Result"),
        new_code_cell(body),
    ]
    nbformat.write(nb, path)
    return path


@pytest.fixture()
def project(tmp_path):
    """Tiny notebooks (one that fails on purpose), a processed folder with a manifest, a grid."""
    (tmp_path / "nb").mkdir()
    _notebook(tmp_path / "nb" / "good.ipynb", "print('twice n is', n * 2, label)")
    _notebook(tmp_path / "nb" / "bad.ipynb", "raise ValueError('too few patients, on purpose <b>now</b>')")
    # the kernel kills its own worker, as the out-of-memory killer or a segfault would
    _notebook(tmp_path / "nb" / "dies.ipynb", "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)")
    processed = tmp_path / "processed"
    processed.mkdir()
    (processed / "manifest.json").write_text(json.dumps({"synthetic": True, "snapshot": "0badc0de"}))
    (processed / "outcomes.parquet").write_bytes(b"")  # the tiny notebooks read nothing; the runner checks it is there
    return tmp_path


def _grid(project: Path, body: str) -> Path:
    path = project / "grid.yml"
    path.write_text(body)
    return path


def test_join_param_pairs_accepts_both_papermill_forms():
    args = ["nb", "-p", "metric", "hydration", "-p", "n=3", "--param", "label", "a=b", "--jobs", "2"]
    assert params.join_param_pairs(args) == ["nb", "-p", "metric=hydration", "-p", "n=3", "--param", "label=a=b",
                                             "--jobs", "2"]
    assert params.parse_cli_params(["metric=hydration", "n=3", "empty="]) == {"metric": "hydration", "n": "3",
                                                                             "empty": ""}
    with pytest.raises(params.ParameterError, match="twice"):
        params.parse_cli_params(["n=1", "n=2"])


def test_values_converted_to_declared_types(project):
    nb = project / "nb" / "good.ipynb"
    assert params.check_parameters(nb, {"n": "7", "label": "y", "scale": "2"}) == {"n": 7, "label": "y", "scale": 2.0}
    with pytest.raises(params.ParameterError, match=r"'n' expects int, got str 'seven'"):
        params.check_parameters(nb, {"n": "seven"})
    with pytest.raises(params.ParameterError, match="'label' expects str, got int"):
        params.check_parameters(nb, {"label": 5})  # from YAML: a number where text is declared


def test_list_parameters_are_real_lists(tmp_path):
    """`metrics: list[str] = [...]` takes a list (YAML) or comma-separated text (-p), item by item."""
    nb = _notebook(tmp_path / "lists.ipynb", "print(metrics)",
                   "metrics: list[str] = ['hydration']  # metrics to show\nsizes: list[int] = [1]\nanything = [1, 'a']")
    assert params.declared_parameters(nb)["metrics"]["type"] == "list[str]"
    check = params.check_parameters
    assert check(nb, {"metrics": "hydration, wrinkles", "sizes": "1,2"}) == {"metrics": ["hydration", "wrinkles"],
                                                                         "sizes": [1, 2]}
    assert check(nb, {"metrics": ["brown_spots"], "sizes": [3.0], "anything": [2]}) == {
        "metrics": ["brown_spots"], "sizes": [3], "anything": [2]}
    with pytest.raises(params.ParameterError, match="'metrics' expects str, got int 5"):
        check(nb, {"metrics": ["hydration", 5]})
    with pytest.raises(params.ParameterError, match="'sizes' expects int, got str 'two'"):
        check(nb, {"sizes": "1,two"})
    with pytest.raises(params.ParameterError, match="'metrics' expects list"):
        check(nb, {"metrics": 5})


def test_parameter_typo_in_grid_refused_before_anything_runs(project, capsys):
    grid = _grid(project, """
reports:
  - name: first
    notebook: nb/good.ipynb
  - name: second
    notebook: nb/good.ipynb
    parameters: {nn: 4}
""")
    out = project / "out"
    code = runner.cli_report(None, [], grid, project / "processed", out, jobs=2)
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown parameter 'nn' (did you mean 'n'?)" in err and "second" in err
    assert not out.exists()  # nothing ran, not even the good report; nothing was written


def test_single_notebook_typo_and_bad_type_refused(project, capsys):
    nb = str(project / "nb" / "good.ipynb")
    assert runner.cli_report(nb, ["lable=z"], project / "none.yml", project / "processed", project / "out") == 2
    assert "did you mean 'label'" in capsys.readouterr().err
    assert runner.cli_report(nb, ["n=3.5"], project / "none.yml", project / "processed", project / "out") == 2
    assert "'n' expects int" in capsys.readouterr().err
    assert not (project / "out").exists() or not any((project / "out").rglob("*.ipynb"))


def test_missing_processed_folder_is_a_clear_error(project, capsys):
    nb = str(project / "nb" / "good.ipynb")
    assert runner.cli_report(nb, [], project / "none.yml", project / "nothing-here", project / "out") == 2
    assert "outcomes clean" in capsys.readouterr().err


@pytest.mark.slow
def test_failures_and_a_dead_worker_fail_only_their_report_reruns_keep_earlier_pdfs(project, capsys):
    grid = _grid(project, """
cell_timeout: 60
reports:
  - name: good-a
    notebook: nb/good.ipynb
    parameters: {n: 5, label: "alpha"}
  - name: bad
    notebook: nb/bad.ipynb
  - name: dies
    notebook: nb/dies.ipynb
  - name: good-b
    notebook: nb/good.ipynb
""")
    out = project / "out"
    code = runner.cli_report(None, [], grid, project / "processed", out, jobs=2, day="2025-01-31")
    assert code == 1
    summary = capsys.readouterr().out
    assert "FAILED" in summary and "bad.log" in summary and "2 of 4 reports ok" in summary
    assert "good-a.pdf" in summary and "too few patients, on purpose" in summary
    assert "worker died (signal 9, SIGKILL)" in summary
    (first,) = (out / "2025-01-31").iterdir()  # the run's own folder, 2025-01-31/<HHMMSS>
    assert (first / "good-a.pdf").is_file() and (first / "good-b.pdf").is_file()
    assert not (first / "bad.pdf").exists() and not (first / "dies.pdf").exists()
    rows = {r.name: r for r in runner.run_results(first)}
    assert rows["dies"].error == "worker died (signal 9, SIGKILL)" and not rows["dies"].ok
    assert "worker died (signal 9, SIGKILL)" in (first / "dies.log").read_text()
    failed_nb = nbformat.read(first / "bad.ipynb", as_version=4)
    assert "papermill-error-cell-tag" in failed_nb.cells[0].metadata.get("tags", [])  # papermill's banner
    assert "too few patients, on purpose" in (first / "bad.log").read_text()
    good = nbformat.read(first / "good-a.ipynb", as_version=4)
    assert "twice n is 10 alpha" in json.dumps(good.cells[-1].outputs)
    index = (first / "index.html").read_text()
    assert all(name in index for name in ("good-a", "bad", "dies", "good-b"))
    assert '<tr class="failed"><td>bad</td>' in index and '<tr class="failed"><td>dies</td>' in index
    assert "on purpose &lt;b&gt;now&lt;/b&gt;" in index and "<b>now" not in index  # text, never markup
    assert not list(first.glob(".work*")) and not list(first.rglob("*.tmp"))  # no leftovers
    good_pdf = (first / "good-a.pdf").read_bytes()

    # a rerun that day: 'good-a' now fails and 'bad' works; the morning's good-a.pdf stays
    rerun = _grid(project, """
reports:
  - name: good-a
    notebook: nb/bad.ipynb
  - name: bad
    notebook: nb/good.ipynb
""")
    assert runner.cli_report(None, [], rerun, project / "processed", out, jobs=2, day="2025-01-31") == 1
    (second,) = set((out / "2025-01-31").iterdir()) - {first}
    assert (first / "good-a.pdf").read_bytes() == good_pdf and (second / "bad.pdf").is_file()
    assert not (second / "good-a.pdf").exists()
    rows = {r.name: r for r in runner.run_results(second)}
    assert sorted(rows) == ["bad", "good-a"] and rows["bad"].ok and not rows["good-a"].ok
    index = (second / "index.html").read_text()  # this run's reports only: no stale failures of the first
    assert "dies" not in index and "good-b" not in index and '<tr class="ok"><td>bad</td>' in index
    assert "0badc0de" in index  # the data snapshot each report was made from
    assert "dies" in (first / "index.html").read_text()  # the first run's index is its own
    assert (out / "latest").is_symlink() and (out / "latest").resolve() == second.resolve()
    runs_index = (out / "index.html").read_text()
    assert runs_index.index(f"2025-01-31/{second.name}") < runs_index.index(f"2025-01-31/{first.name}")
    assert [(r.path, r.state, r.ok, r.failed) for r in runs.list_runs(out)] == [
        (first, "finished", 2, 2), (second, "finished", 1, 1)]


@pytest.mark.slow
def test_cli_unattended_two_word_params_and_nothing_written_to_home(project, tmp_path_factory):
    """Like cron: no terminal, CI=true, an empty HOME that must stay empty."""
    home = tmp_path_factory.mktemp("home")
    env = {**os.environ, "HOME": str(home), "CI": "true"}
    env.pop("IPYTHONDIR", None), env.pop("MPLCONFIGDIR", None), env.pop("JUPYTER_RUNTIME_DIR", None)
    exe = Path(sys.executable).with_name("outcomes")
    label = "beta" * 125  # 500 characters: far too long for a file name as it stands
    cmd = [str(exe), "report", str(project / "nb" / "good.ipynb"), "-p", "n", "21", "-p", f"label={label}",
           "--processed", str(project / "processed"), "--out", str(project / "out")]
    proc = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
                          cwd=project)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "good-21-beta" in proc.stdout and "ok" in proc.stdout
    pdfs = list((project / "out").rglob("good-21-beta*.pdf"))
    assert len(pdfs) == 1 and len(pdfs[0].stem) <= MAX_FILE_NAME_PART
    assert pdfs[0].parent == (project / "out" / "latest").resolve()
    assert f"twice n is 42 {label}" in pdfs[0].with_suffix(".log").read_text()
    assert list(home.rglob("*")) == []
    assert "\r" not in proc.stderr  # plain progress lines without a terminal


def test_parameters_read_from_a_notebook_without_kernelspec(tmp_path):
    path = _notebook(tmp_path / "plain.ipynb", "print(n)")
    nb = nbformat.read(path, as_version=4)
    del nb.metadata["kernelspec"]
    nbformat.write(nb, path)
    assert list(params.declared_parameters(path)) == ["processed_dir", "n", "label", "scale"]
    assert params.declared_parameters(path)["scale"]["type"] == "float"  # from the default, no annotation


# --- clear exit-2 messages instead of tracebacks -----------------------------------------
def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["report", *args])
    return result.exit_code, result.output


def _one_clear_line(output: str) -> str:
    assert "Traceback" not in output and len(output.strip().splitlines()) == 1, output
    return output


@pytest.mark.parametrize("name, content", [
    ("notes.txt", b"SECRET-1234 from a text file\n"),
    ("photo.png", b"\x89PNG\r\n\x1a\n\x00\xffSECRET-1234"),
    ("looks-like.ipynb", b"SECRET-1234 is no JSON"),
])
def test_a_file_that_is_not_a_notebook_is_named_never_echoed(project, name, content):
    path = project / name
    path.write_bytes(content)
    code, output = _cli(str(path), "--processed", str(project / "processed"), "--out", str(project / "out"))
    assert code == 2
    assert "is not a Jupyter notebook (.ipynb)" in _one_clear_line(output) and name in output
    assert "SECRET" not in output and not (project / "out").exists()


@pytest.mark.parametrize("content, message", [
    (b"\x89PNG\r\n\x1a\n\x00\xff\xfe", "not a text (YAML) file"),
    (b"reports:\n  - notebook: 5\n", "each report needs 'notebook' (a path"),
])
def test_a_grid_that_cannot_be_read_is_one_message(project, content, message):
    grid = project / "grid.yml"
    grid.write_bytes(content)
    code, output = _cli("--grid", str(grid), "--processed", str(project / "processed"), "--out", str(project / "out"))
    assert code == 2 and message in _one_clear_line(output)


def test_out_that_is_a_file_refused(project):
    out = project / "out.txt"
    out.write_text("not a folder")
    code, output = _cli(str(project / "nb" / "good.ipynb"), "--processed", str(project / "processed"), "--out", str(out))
    assert code == 2 and f"--out {out} is a file, not a folder" in _one_clear_line(output)
    assert out.read_text() == "not a folder"


@pytest.mark.parametrize("missing", ["manifest.json", "outcomes.parquet", "everything"])
def test_report_without_processed_data_is_one_message_before_anything_runs(project, missing):
    processed = project / "processed"
    for path in processed.iterdir():
        if missing in (path.name, "everything"):
            path.unlink()
    grid = _grid(project, "reports:\n  - notebook: nb/good.ipynb\n  - name: other\n    notebook: nb/good.ipynb\n")
    code, output = _cli("--grid", str(grid), "--processed", str(processed), "--out", str(project / "out"))
    assert code == 2
    assert f"{processed} holds no processed data" in _one_clear_line(output) and "outcomes clean" in output
    assert not (project / "out").exists()


def test_a_long_parameter_value_gives_a_bounded_distinct_report_name(project):
    nb = str(project / "nb" / "good.ipynb")
    one = runner.single_spec(nb, ["label=" + "x" * 500])
    two = runner.single_spec(nb, ["label=" + "x" * 499 + "y"])
    assert len(one.name) <= MAX_FILE_NAME_PART and len(two.name) <= MAX_FILE_NAME_PART
    assert one.name.startswith("good-xxx") and one.name != two.name
    assert "/" not in runner.single_spec(nb, ["label=../../etc/passwd"]).name


# --- run folders, the index of runs, `latest`, leftovers --------------------------------
def test_runs_in_the_same_second_get_their_own_folders_latest_is_the_newest_finished(tmp_path):
    now = datetime(2025, 1, 31, 6, 45, 1)
    first, second = runs.Run(tmp_path, now=now, reports=1), runs.Run(tmp_path, now=now, reports=1)
    assert [first.path.name, second.path.name] == ["064501", "064501-2"]
    first.finish(), first.close()
    assert runs.point_latest(tmp_path) == Path("2025-01-31/064501")  # the second has not finished
    assert [r.state for r in runs.list_runs(tmp_path)] == ["finished", "running"]
    second.finish(), second.close()
    assert runs.point_latest(tmp_path) == Path("2025-01-31/064501-2")
    assert os.readlink(tmp_path / "latest") == "2025-01-31/064501-2" and not list(tmp_path.glob(".latest*"))
    assert not (first.path / ".work").exists() and not (second.path / ".work").exists()


def test_latest_that_was_not_made_here_is_left_alone(tmp_path):
    (tmp_path / "latest").mkdir()
    (tmp_path / "latest" / "mine.txt").write_text("kept")
    run = runs.Run(tmp_path, now=datetime(2025, 1, 31, 7, 0, 0))
    run.finish(), run.close()
    assert runs.point_latest(tmp_path) is None and (tmp_path / "latest" / "mine.txt").read_text() == "kept"


def test_leftovers_of_a_dead_run_removed_live_and_foreign_folders_kept(tmp_path):
    live = runs.Run(tmp_path, day="2025-01-31", now=datetime(2025, 1, 31, 7, 0, 0))
    # a run killed before it could clean up: its process ends holding the lock, without close()
    subprocess.run([sys.executable, "-c", "import os, sys; from pathlib import Path; from outcomes.reports import runs;"
                    "runs.Run(Path(sys.argv[1]), day='2025-01-31'); os._exit(0)", str(tmp_path)], check=True)
    (dead,) = [r.path for r in runs.list_runs(tmp_path) if r.path != live.path]
    foreign = tmp_path / "2025-01-31" / "070000-9" / ".work"  # no run.json: not a folder this runner wrote
    foreign.mkdir(parents=True)
    assert (dead / ".work").is_dir()
    assert runs.clean_leftovers(tmp_path) == [dead / ".work"]
    assert not (dead / ".work").exists() and (live.path / ".work").is_dir() and foreign.is_dir()
    assert {r.path: r.state for r in runs.list_runs(tmp_path)} == {live.path: "running", dead: "interrupted"}
    live.close()


# --- no worker outlives its run ------------------------------------------------------------
def _wait_for(condition, seconds: float) -> bool:
    """Poll `condition` until it holds or `seconds` pass (a bound, not a synchronisation)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


@linux_only
@pytest.mark.parametrize("watch", ["pidfd", "polling"])
def test_a_worker_ends_when_its_run_ends_though_its_parent_lives_on(tmp_path, watch):
    """The worker's parent is the run's fork server, which outlives the run while a worker lives:
    the worker watches the run itself (its pidfd; polling where there is none, faked here)."""
    ready = tmp_path / "ready"
    script = f"""
import os, sys, time
from outcomes.reports import runner
run = os.getpid()
if os.fork() == 0:  # the fork server
    if os.fork() == 0:  # the worker
        if {watch!r} == "polling":
            del os.pidfd_open
        runner._die_with_run(run)
        open({str(ready)!r} + ".tmp", "w").write(f"{{os.getppid()}} {{os.getpid()}}")
        os.replace({str(ready)!r} + ".tmp", {str(ready)!r})
        time.sleep(120)  # ends early only if the run's end ends it
        os._exit(3)
    time.sleep(120)
    os._exit(3)
deadline = time.monotonic() + 60
while not os.path.exists({str(ready)!r}) and time.monotonic() < deadline:
    time.sleep(0.05)
os._exit(0)
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=90)
    server, worker = map(int, ready.read_text().split())
    try:
        assert _wait_for(lambda: not _alive(worker), 30), f"worker {worker} outlived its run"
        assert _alive(server)
    finally:
        os.kill(server, signal.SIGKILL)


def test_a_worker_started_after_its_run_ended_ends_at_once():
    """A fork server can fork a worker just as the run dies: the worker must not outlive it."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    script = f"""
import os, time
from outcomes.reports import runner
runner._die_with_run({int(gone.stdout)})  # not this process's parent, and no longer running
time.sleep(120)
os._exit(3)
"""
    done = subprocess.run([sys.executable, "-c", script], timeout=90)
    assert done.returncode == 1


HOLD = """import os, pathlib, time
pathlib.Path(ready + '.tmp').write_text(f'{os.getpid()} {os.getppid()}')
os.replace(ready + '.tmp', ready)
deadline = time.monotonic() + 120  # bounded, in case the run's death does not end this kernel
while time.monotonic() < deadline:
    time.sleep(0.1)"""


@linux_only
@pytest.mark.slow
def test_kill_9_of_the_run_ends_its_worker_and_kernel_next_run_removes_its_work_folder(project):
    hold = _notebook(project / "nb" / "hold.ipynb", HOLD, "processed_dir: str = ''\nready: str = ''")
    ready, out = project / "ready", project / "out"
    cmd = [str(Path(sys.executable).with_name("outcomes")), "report", str(hold), "-p", f"ready={ready}",
           "--processed", str(project / "processed"), "--out", str(out)]
    with open(project / "killed-run.txt", "w") as log:
        proc = subprocess.Popen(cmd, env={**os.environ, "CI": "true"}, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=log, cwd=project)
    try:
        assert _wait_for(lambda: ready.is_file() or proc.poll() is not None, 120)
        assert proc.poll() is None, (project / "killed-run.txt").read_text()
        kernel, worker = map(int, ready.read_text().split())
        server = _parent(worker)  # the notebook runs in a kernel of a worker of the run's fork server
        assert _parent(server) == proc.pid
    finally:
        proc.kill()  # kill -9
        proc.wait()
    assert _wait_for(lambda: not _alive(server), 30), "the fork server outlived the killed run"
    assert _wait_for(lambda: not _alive(worker), 30), "the worker outlived the killed run"
    assert _wait_for(lambda: not _alive(kernel), 30), "the kernel outlived the killed run"
    (work,) = out.glob("*/*/.work")
    killed = work.parent
    assert [r.state for r in runs.list_runs(out)] == ["interrupted"]
    assert (killed / "index.html").is_file()  # written when the run began: the index of runs links to it

    assert runner.cli_report(str(project / "nb" / "good.ipynb"), [], project / "none.yml", project / "processed",
                             out) == 0
    assert not work.exists() and list(killed.glob("hold-*.log"))  # its log stays; only the work folder goes
    assert [r.state for r in runs.list_runs(out)] == ["interrupted", "finished"]
    assert (out / "latest").resolve() != killed.resolve()


def test_the_atomic_write_replaces_whole_files_or_leaves_the_old_one(tmp_path):
    path = tmp_path / "index.html"
    path.write_text("old")
    with pytest.raises(RuntimeError), runs.replacing(path, 0o640) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed while writing")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["index.html"]
    runs.write_text(path, "new", 0o640)
    assert path.read_text() == "new" and path.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["index.html"]


# --- `for_each: concern`: one report per concern present and metric it is treated for -----------
CONCERN_PARAMS = PARAMS + "\nmetric: str = 'hydration'\nconcern: str = ''"


@pytest.fixture()
def concerns(project):
    """A concern-aware tiny notebook and processed outcomes holding three concerns (one unknown)."""
    import pandas as pd

    _notebook(project / "nb" / "by_concern.ipynb", "print('report on', concern, metric)", CONCERN_PARAMS)
    rows = [("pigmentation", m) for m in ("brown_spots", "melanin_index", "hydration")]  # hydration: not its metric
    rows += [("cellulite", "hydration"), ("cellulite", "elasticity_r7"), ("unknown", "wrinkles")]
    rows += [("hair_loss", "hydration")]  # present, but the registry has no hair-loss metric
    pd.DataFrame(rows, columns=["concern", "metric"]).to_parquet(project / "processed" / "outcomes.parquet")
    return project


def test_concern_pairs_come_from_the_registry_and_the_data(concerns):
    from outcomes.contract import CONCERN_METRICS

    pairs = runner.concern_metrics_present(concerns / "processed")
    # registry order (primary metric first), only concerns present, only metrics with data
    assert pairs == [("pigmentation", "brown_spots"), ("pigmentation", "melanin_index"),
                     ("cellulite", "elasticity_r7"), ("cellulite", "hydration")]
    assert all(m in CONCERN_METRICS[c] for c, m in pairs)
    assert "hydration" not in CONCERN_METRICS["pigmentation"]  # so the pigmentation hydration rows give nothing


def test_for_each_concern_expands_per_concern_and_metric_capped(concerns):
    grid = _grid(concerns, """
reports:
  - name: response
    notebook: nb/by_concern.ipynb
    for_each: concern
    max_metrics: 1
    parameters: {n: 4}
  - name: other
    notebook: nb/good.ipynb
""")
    specs, _ = runner.load_grid(grid, concerns / "processed")
    assert [(s.name, s.parameters) for s in specs] == [
        ("response-pigmentation-brown_spots", {"n": 4, "concern": "pigmentation", "metric": "brown_spots"}),
        ("response-cellulite-elasticity_r7", {"n": 4, "concern": "cellulite", "metric": "elasticity_r7"}),
        ("other", {}),
    ]
    uncapped, _ = runner.load_grid(_grid(concerns, "reports:\n  - notebook: nb/by_concern.ipynb\n    for_each: concern\n"),
                                   concerns / "processed")
    assert [s.name for s in uncapped] == ["by_concern-pigmentation-brown_spots", "by_concern-pigmentation-melanin_index",
                                          "by_concern-cellulite-elasticity_r7", "by_concern-cellulite-hydration"]


@pytest.mark.parametrize("entry, message", [
    ("for_each: concern\n    parameters: {n: seven}", "'n' expects int"),
    ("for_each: concern\n    parameters: {nn: 1}", "unknown parameter 'nn'"),
    ("for_each: concern\n    parameters: {metric: wrinkles}", "come from the data"),
    ("for_each: clinic", "for_each must be one of"),
    ("for_each: concern\n    max_metrics: 0", "max_metrics must be a positive"),
    ("max_metrics: 2", "goes with 'for_each: concern'"),
])
def test_for_each_entry_refused_before_anything_runs(concerns, entry, message, capsys):
    grid = _grid(concerns, f"reports:\n  - notebook: nb/by_concern.ipynb\n    {entry}\n")
    assert runner.cli_report(None, [], grid, concerns / "processed", concerns / "out") == 2
    assert message in capsys.readouterr().err
    assert not (concerns / "out").exists()


def test_for_each_without_processed_data_or_concerns_is_a_clear_error(concerns):
    grid = _grid(concerns, "reports:\n  - notebook: nb/by_concern.ipynb\n    for_each: concern\n")
    with pytest.raises(params.ParameterError, match="needs the processed data"):
        runner.load_grid(grid)
    import pandas as pd

    pd.DataFrame({"concern": ["hair_loss"], "metric": ["hydration"]}).to_parquet(concerns / "processed" / "outcomes.parquet")
    with pytest.raises(params.ParameterError, match="no report to run"):
        runner.load_grid(grid, concerns / "processed")


@pytest.mark.slow
def test_a_for_each_grid_runs_one_report_per_concern_and_metric(concerns, capsys):
    grid = _grid(concerns, "reports:\n  - name: resp\n    notebook: nb/by_concern.ipynb\n    for_each: concern\n"
                           "    max_metrics: 1\n")
    code = runner.cli_report(None, [], grid, concerns / "processed", concerns / "out", jobs=2, day="d")
    assert code == 0
    run_dir = next((concerns / "out" / "d").iterdir())
    for concern, metric in (("pigmentation", "brown_spots"), ("cellulite", "elasticity_r7")):
        nb = nbformat.read(run_dir / f"resp-{concern}-{metric}.ipynb", as_version=4)
        assert f"report on {concern} {metric}" in "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
        assert (run_dir / f"resp-{concern}-{metric}.pdf").is_file()
    assert sorted(p.stem for p in run_dir.glob("*.pdf")) == ["resp-cellulite-elasticity_r7", "resp-pigmentation-brown_spots"]


def test_kernels_started_at_once_cannot_be_handed_the_same_port(project, monkeypatch):
    """Over TCP, jupyter_client picks a kernel's ports by binding port 0 and closing it, so two
    reports starting their kernels together can be handed the same port and one kernel dies on
    `Address already in use` (1 report in 29 of the default grid once). Injected here: every
    port jupyter_client is handed is one already in use. The report still runs (its kernel talks
    over socket files of its own), and the socket folder is gone afterwards."""
    import socket
    from types import SimpleNamespace

    import jupyter_client.connect as connect

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]

    handed = []

    class HandedATakenPort(socket.socket):
        """The first port handed out is the taken one (another kernel's), the others are free."""

        def getsockname(self) -> tuple[str, int]:
            handed.append(super().getsockname())
            return ("127.0.0.1", port) if len(handed) == 1 else handed[-1]

    monkeypatch.setattr(connect, "socket", SimpleNamespace(socket=HandedATakenPort, SOL_SOCKET=socket.SOL_SOCKET,
                                                           SO_LINGER=socket.SO_LINGER))
    monkeypatch.setattr(runner, "KERNEL_START_TIMEOUT", 30)  # without the fix: fail in 30 s, not 120
    made = []
    real = runner.kernel_transport

    @runner.contextmanager
    def recorded():
        with real() as sockets:
            made.append(sockets["KernelManager"]["ip"])
            yield sockets

    monkeypatch.setattr(runner, "kernel_transport", recorded)
    spec = runner.ReportSpec("good", project / "nb" / "good.ipynb", {"n": 4, "label": "ok"})
    try:
        result = runner.run_one(spec, project / "run", project / "run" / ".work" / "good", 60, None)
    finally:
        taken.close()
    assert result.status == "ok", (project / "run" / "good.log").read_text()
    assert "twice n is 8 ok" in (project / "run" / "good.log").read_text()
    assert made and not Path(made[0]).parent.exists()


@linux_only
@pytest.mark.parametrize("pango", ["present", "missing"])
def test_the_fork_server_preload_never_fails_and_leaves_nothing_to_fork_badly(tmp_path, pango):
    """Workers are forked from the state outcomes.reports.preload leaves: it must load what it can,
    never raise (a WeasyPrint that cannot find Pango is injected here), and import no numpy
    (OpenBLAS starts threads) nor start a thread itself."""
    env = dict(os.environ)
    if pango == "missing":
        (tmp_path / "weasyprint.py").write_text("raise OSError(\"cannot load library 'pango-1.0-0'\")\n")
        env["PYTHONPATH"] = str(tmp_path)
    code = ("import json, os, sys; from outcomes.reports import preload; "
            "print(json.dumps([preload.LOADED, 'numpy' in sys.modules, len(os.listdir('/proc/self/task'))]))")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded, numpy, threads = json.loads(done.stdout)
    assert loaded == (["nbformat", "nbconvert", "weasyprint"] if pango == "present" else ["nbformat", "nbconvert"])
    assert not numpy and threads == 1


def test_each_run_gives_its_reports_its_own_environment(project, monkeypatch):
    """The fork server keeps the environment of the run that started it; each report must still
    see the environment of the run it belongs to (as a spawned worker would)."""
    nb = _notebook(project / "nb" / "env.ipynb", "import os\nprint('mark is', os.environ.get('OUTCOMES_TEST_MARK'))")
    out = project / "out"
    seen = []
    for mark in ("first", "second"):
        monkeypatch.setenv("OUTCOMES_TEST_MARK", mark)
        (result,) = runner.run_reports([runner.single_spec(str(nb), [])], project / "processed", out)
        assert result.ok, result.error
        seen += [o.get("text", "") for c in nbformat.read(result.notebook, as_version=4).cells
                 for o in c.get("outputs", [])]
    assert "mark is first\n" in seen and "mark is second\n" in seen
