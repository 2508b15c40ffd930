"""The report runner: parameters checked before anything runs, failures isolated, exit codes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from outcomes.reports import params, runner

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
    _notebook(tmp_path / "nb" / "bad.ipynb", "raise ValueError('too few patients, on purpose')")
    processed = tmp_path / "processed"
    processed.mkdir()
    (processed / "manifest.json").write_text(json.dumps({"synthetic": True, "snapshot": "0badc0de"}))
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
def test_failed_report_isolated_no_pdf_others_run_exit_1(project, capsys):
    grid = _grid(project, """
cell_timeout: 60
reports:
  - name: good-a
    notebook: nb/good.ipynb
    parameters: {n: 5, label: "alpha"}
  - name: bad
    notebook: nb/bad.ipynb
  - name: good-b
    notebook: nb/good.ipynb
""")
    out = project / "out"
    day = out / "2025-01-31"
    day.mkdir(parents=True)
    (day / "bad.pdf").write_text("a PDF from an earlier run that would now be stale")
    code = runner.cli_report(None, [], grid, project / "processed", out, jobs=2, day="2025-01-31")
    assert code == 1
    summary = capsys.readouterr().out
    assert "FAILED" in summary and "bad.log" in summary and "2 of 3 reports ok" in summary
    assert "good-a.pdf" in summary and "too few patients, on purpose" in summary
    assert (day / "good-a.pdf").is_file() and (day / "good-b.pdf").is_file()
    assert not (day / "bad.pdf").exists()
    failed_nb = nbformat.read(day / "bad.ipynb", as_version=4)
    assert "papermill-error-cell-tag" in failed_nb.cells[0].metadata.get("tags", [])  # papermill's banner
    assert "too few patients, on purpose" in (day / "bad.log").read_text()
    good = nbformat.read(day / "good-a.ipynb", as_version=4)
    assert "twice n is 10 alpha" in json.dumps(good.cells[-1].outputs)
    index = (day / "index.html").read_text()
    assert all(name in index for name in ("good-a", "bad", "good-b")) and '<tr class="failed"><td>bad</td>' in index
    assert not list(day.glob(".work-*")) and not list(day.glob("*.tmp"))  # no leftovers

    # a later run that day: 'bad' now works, 'good-c' is new; the index lists all four
    fixed = _grid(project, """
reports:
  - name: bad
    notebook: nb/good.ipynb
  - name: good-c
    notebook: nb/good.ipynb
    parameters: {label: "gamma"}
""")
    assert runner.cli_report(None, [], fixed, project / "processed", out, jobs=2, day="2025-01-31") == 0
    rows = {r.name: r for r in runner.day_results(day)}
    assert sorted(rows) == ["bad", "good-a", "good-b", "good-c"] and all(r.ok for r in rows.values())
    assert rows["good-a"].parameters["label"] == "alpha" and rows["bad"].pdf == day / "bad.pdf"
    index = (day / "index.html").read_text()
    assert "4 of 4 reports ok" in index and 'class="failed"' not in index and 'href="good-a.pdf"' in index
    assert "0badc0de" in index  # the data snapshot each report was made from


@pytest.mark.slow
def test_cli_unattended_two_word_params_and_nothing_written_to_home(project, tmp_path_factory):
    """Like cron: no terminal, CI=true, an empty HOME that must stay empty."""
    home = tmp_path_factory.mktemp("home")
    env = {**os.environ, "HOME": str(home), "CI": "true"}
    env.pop("IPYTHONDIR", None), env.pop("MPLCONFIGDIR", None), env.pop("JUPYTER_RUNTIME_DIR", None)
    exe = Path(sys.executable).with_name("outcomes")
    cmd = [str(exe), "report", str(project / "nb" / "good.ipynb"), "-p", "n", "21", "-p", "label=beta",
           "--processed", str(project / "processed"), "--out", str(project / "out")]
    proc = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
                          cwd=project)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "good-21-beta" in proc.stdout and "ok" in proc.stdout
    pdfs = list((project / "out").rglob("good-21-beta.pdf"))
    assert len(pdfs) == 1
    assert "twice n is 42 beta" in pdfs[0].with_suffix(".log").read_text()
    assert list(home.rglob("*")) == []
    assert "\r" not in proc.stderr  # plain progress lines without a terminal


def test_parameters_read_from_a_notebook_without_kernelspec(tmp_path):
    path = _notebook(tmp_path / "plain.ipynb", "print(n)")
    nb = nbformat.read(path, as_version=4)
    del nb.metadata["kernelspec"]
    nbformat.write(nb, path)
    assert list(params.declared_parameters(path)) == ["processed_dir", "n", "label", "scale"]
    assert params.declared_parameters(path)["scale"]["type"] == "float"  # from the default, no annotation
