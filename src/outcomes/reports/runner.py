"""Run report notebooks unattended: check, execute with papermill, make the PDF, summarise.

A scheduled run must fail loudly but in isolation: every report's parameters are checked
before anything runs; each report then runs in its own worker process with the pinned
kernel, a per-cell timeout and its own log file. A failed report keeps its executed
notebook (papermill puts an error banner at the top), gets no PDF, and the others go on.
Outputs land atomically in ``OUT/<YYYY-MM-DD>/``: ``<name>.ipynb``, ``<name>.pdf``,
``<name>.log`` and ``index.html``, which lists every report made in that folder that day
(the newest result of each, kept in ``.status/<name>.json``); the exit code is 1 when any
report failed.

Nothing is written outside the project and OUT: Jupyter's runtime files, IPython's
profile and matplotlib's and fontconfig's caches are pointed into OUT's hidden folders.
"""
from __future__ import annotations

import html
import os
import re
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from outcomes import config
from outcomes.reports.params import ParameterError, check_parameters, parse_cli_params
from outcomes.reports.pdf import file_mode

DEFAULT_CELL_TIMEOUT = 600  # seconds per cell; a stuck model fit must not hang the scheduler
KERNEL_START_TIMEOUT = 120
GRID_KEYS = {"cell_timeout", "reports"}
ENTRY_KEYS = {"name", "notebook", "parameters"}


@dataclass(frozen=True)
class ReportSpec:
    """One report to make: an output name, a notebook, its (checked) parameters."""

    name: str
    notebook: Path
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReportResult:
    """What happened to one report; durations in seconds."""

    name: str
    status: str  # "ok" or "failed"
    duration: float
    execute_seconds: float = 0.0
    pdf_seconds: float = 0.0
    notebook: Path | None = None
    pdf: Path | None = None
    log: Path | None = None
    error: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    finished: str = ""  # ISO time the report ended
    snapshot: str = ""  # the data snapshot it was made from (manifest hash)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


# --- building the list of reports -------------------------------------------------------
def resolve_notebook(name: str | os.PathLike, base: Path | None = None) -> Path:
    """A notebook path from a path, or a name in notebooks/ with or without `.ipynb`."""
    raw = Path(name)
    candidates = [raw if raw.is_absolute() else (base or Path.cwd()) / raw]
    if not raw.is_absolute():
        candidates += [config.NOTEBOOKS_DIR / raw, config.NOTEBOOKS_DIR / f"{raw}.ipynb"]
    for path in candidates:
        if path.is_file():
            return path.resolve()
    raise ParameterError(f"notebook {str(name)!r} not found (looked in {', '.join(str(c.parent) for c in candidates[:2])})")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "report"


def single_spec(notebook: str, params: Sequence[str]) -> ReportSpec:
    """The spec for `outcomes report NOTEBOOK -p ...`; named after the notebook and values."""
    path = resolve_notebook(notebook)
    given = parse_cli_params(params)
    checked = check_parameters(path, given, where=path.name)
    suffix = "-".join(str(v) for k, v in checked.items() if k != "processed_dir" and str(v) != "")
    return ReportSpec(_slug(path.stem + (f"-{suffix}" if suffix else "")), path, checked)


def load_grid(grid: str | os.PathLike) -> tuple[list[ReportSpec], int]:
    """The reports listed in a grid YAML file (checked) and its per-cell timeout."""
    grid = Path(grid)
    if not grid.is_file():
        raise ParameterError(f"grid file {grid} not found")
    try:
        doc = yaml.safe_load(grid.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ParameterError(f"{grid}: not valid YAML ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("reports"), list) or not doc["reports"]:
        raise ParameterError(f"{grid}: expected a mapping with a non-empty list under 'reports'")
    extra = set(doc) - GRID_KEYS
    if extra:
        raise ParameterError(f"{grid}: unknown keys {sorted(extra)} (allowed: {sorted(GRID_KEYS)})")
    timeout = doc.get("cell_timeout", DEFAULT_CELL_TIMEOUT)
    if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout <= 0:
        raise ParameterError(f"{grid}: cell_timeout must be a positive number of seconds")
    specs: list[ReportSpec] = []
    for i, entry in enumerate(doc["reports"], start=1):
        where = f"{grid.name}, report {i}"
        if not isinstance(entry, dict) or "notebook" not in entry:
            raise ParameterError(f"{where}: each report needs at least 'notebook' (and usually 'name', 'parameters')")
        extra = set(entry) - ENTRY_KEYS
        if extra:
            raise ParameterError(f"{where}: unknown keys {sorted(extra)} (allowed: {sorted(ENTRY_KEYS)})")
        path = resolve_notebook(entry["notebook"], base=grid.parent)
        name = _slug(str(entry.get("name") or path.stem))
        where = f"{grid.name}, report {name!r}"
        given = entry.get("parameters") or {}
        if not isinstance(given, dict):
            raise ParameterError(f"{where}: 'parameters' must be a mapping of name: value")
        specs.append(ReportSpec(name, path, check_parameters(path, given, where=where)))
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ParameterError(f"{grid}: report names must be unique; repeated: {dupes}")
    return specs, timeout


def _with_processed(spec: ReportSpec, processed: Path) -> ReportSpec:
    """Every report reads the same processed folder; the notebook must take `processed_dir`."""
    check_parameters(spec.notebook, {"processed_dir": str(processed)}, where=spec.name)
    return ReportSpec(spec.name, spec.notebook, {**spec.parameters, "processed_dir": str(processed)})


def _check_kernel() -> None:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(config.KERNEL_NAME)
    except NoSuchKernel:
        raise ParameterError(
            f"Jupyter kernel {config.KERNEL_NAME!r} is not installed in this environment; run `make setup`"
        ) from None


# --- running ---------------------------------------------------------------------------
def _quiet_environment(out: Path, work: Path, jobs: int = 1) -> dict[str, str]:
    """Env vars that keep Jupyter, IPython, matplotlib and fontconfig writing inside OUT, and
    that share the CPUs between parallel reports (numeric libraries would each take them all)."""
    cache = out / ".cache"
    threads = str(max(1, (os.cpu_count() or 1) // max(1, jobs)))
    limits = {k: os.environ.get(k, threads) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    return {
        **limits,
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": str(cache / "matplotlib"),
        "XDG_CACHE_HOME": str(cache),
        "IPYTHONDIR": str(cache / "ipython"),
        "JUPYTER_RUNTIME_DIR": str(work / "runtime"),
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        "PYTHONWARNINGS": os.environ.get("PYTHONWARNINGS", ""),
    }


def _init_worker(env: dict[str, str]) -> None:
    os.environ.update(env)
    for key in ("MPLCONFIGDIR", "IPYTHONDIR", "JUPYTER_RUNTIME_DIR", "XDG_CACHE_HOME"):
        Path(env[key]).mkdir(parents=True, exist_ok=True)


def _first_error(nb_path: Path) -> str:
    """'ValueError: ...' from the first error output of an executed notebook."""
    import nbformat

    try:
        nb = nbformat.read(str(nb_path), as_version=4)
    except Exception:  # noqa: BLE001 - the notebook may be half-written
        return ""
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return f"{output.get('ename')}: {output.get('evalue')}".strip()
    return ""


def run_one(spec: ReportSpec, day_dir: Path, work_dir: Path, cell_timeout: int, manifest: dict | None) -> ReportResult:
    """Execute one report and make its PDF. Runs in a worker process; never raises."""
    import logging

    day_dir.mkdir(parents=True, exist_ok=True)
    work_dir.mkdir(parents=True, exist_ok=True)
    log_path = day_dir / f"{spec.name}.log"
    final_nb, final_pdf = day_dir / f"{spec.name}.ipynb", day_dir / f"{spec.name}.pdf"
    tmp_nb = work_dir / f"{spec.name}.ipynb"
    result = ReportResult(spec.name, "failed", 0.0, log=log_path, parameters=dict(spec.parameters),
                          snapshot=str((manifest or {}).get("snapshot", "")))
    start = time.perf_counter()

    # All output of this report, including the kernel's own stderr, goes to its log file.
    log_file = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 - closed in finally
    sys.stdout.flush(), sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    os.dup2(log_file.fileno(), 1), os.dup2(log_file.fileno(), 2)
    handler = logging.StreamHandler(log_file)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    log = logging.getLogger("outcomes.reports")
    try:
        import papermill
        from papermill.exceptions import PapermillExecutionError

        log.info("report %s: notebook %s, kernel %s, cell timeout %ss", spec.name, spec.notebook,
                 config.KERNEL_NAME, cell_timeout)
        log.info("parameters: %s", spec.parameters)
        t0 = time.perf_counter()
        try:
            papermill.execute_notebook(
                str(spec.notebook), str(tmp_nb), parameters=dict(spec.parameters),
                kernel_name=config.KERNEL_NAME, execution_timeout=cell_timeout,
                start_timeout=KERNEL_START_TIMEOUT, progress_bar=False, log_output=True, cwd=str(work_dir),
            )
        except PapermillExecutionError as exc:
            result.error = f"cell {exc.exec_count}: {exc.ename}: {exc.evalue}"
            raise
        except Exception as exc:  # timeouts, a dead kernel, ...
            result.error = _first_error(tmp_nb) or f"{type(exc).__name__}: {exc}"
            raise
        finally:
            result.execute_seconds = time.perf_counter() - t0
            if tmp_nb.exists():
                os.replace(tmp_nb, final_nb)
                result.notebook = final_nb
        log.info("executed in %.1fs", result.execute_seconds)

        from outcomes.reports.pdf import notebook_to_pdf

        t0 = time.perf_counter()
        try:
            notebook_to_pdf(final_nb, final_pdf, name=spec.name, parameters=spec.parameters, manifest=manifest)
        except Exception as exc:
            result.error = f"PDF: {type(exc).__name__}: {exc}"
            raise
        finally:
            result.pdf_seconds = time.perf_counter() - t0
        result.pdf, result.status = final_pdf, "ok"
        log.info("PDF written in %.1fs: %s", result.pdf_seconds, final_pdf)
    except Exception:  # noqa: BLE001 - a failed report is recorded, never propagated
        log.error("report %s FAILED: %s\n%s", spec.name, result.error, traceback.format_exc())
        if final_pdf.exists():  # an older PDF of the same name would now be a lie
            final_pdf.unlink()
    finally:
        result.duration = time.perf_counter() - start
        result.finished = datetime.now().isoformat(timespec="seconds")
        root.removeHandler(handler)
        sys.stdout.flush(), sys.stderr.flush()
        os.dup2(saved[0], 1), os.dup2(saved[1], 2)
        os.close(saved[0]), os.close(saved[1])
        log_file.close()
    return result


class Progress:
    """Progress of a grid: one plain line per event without a terminal (or with CI set),
    a single self-updating status line on an interactive terminal."""

    def __init__(self, total: int, stream=None) -> None:
        self.total, self.done, self.stream = total, 0, stream or sys.stderr
        self.start = time.perf_counter()
        self.live = bool(getattr(self.stream, "isatty", lambda: False)()) and not os.environ.get("CI")

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def started(self, name: str) -> None:
        if not self.live:
            self._write(f"start   {name}\n")

    def finished(self, result: ReportResult) -> None:
        self.done += 1
        line = f"[{self.done}/{self.total}] {result.status:6} {result.name} ({result.duration:.1f}s)"
        self._write(("\r\033[K" + line + "\n") if self.live else line + "\n")
        self.tick()

    def tick(self) -> None:
        if self.live and self.done < self.total:
            elapsed = time.perf_counter() - self.start
            self._write(f"\r\033[K{self.done}/{self.total} reports done, {elapsed:.0f}s elapsed")


def run_reports(
    specs: Sequence[ReportSpec],
    processed: str | os.PathLike,
    out: str | os.PathLike,
    jobs: int = 1,
    cell_timeout: int = DEFAULT_CELL_TIMEOUT,
    progress: Progress | None = None,
    day: str | None = None,
) -> list[ReportResult]:
    """Run checked reports (in parallel worker processes) into OUT/<day>/; returns their results.

    Nothing runs unless every report's parameters (plus ``processed_dir``) pass the check.
    """
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    import multiprocessing

    from outcomes.reports.pdf import load_manifest

    processed = Path(processed).resolve()
    if not processed.is_dir():
        raise ParameterError(f"processed-data folder {processed} not found; run `outcomes clean` (or `make report`)")
    specs = [_with_processed(s, processed) for s in specs]
    out = Path(out).resolve()
    for folder in ("matplotlib", "ipython"):  # Jupyter's kernel lookup creates IPYTHONDIR otherwise
        (out / ".cache" / folder).mkdir(parents=True, exist_ok=True)
    _check_kernel()
    day_dir = out / (day or datetime.now().strftime("%Y-%m-%d"))
    work_dir = Path(tempfile.mkdtemp(prefix=".work-", dir=_mkdir(day_dir)))
    env = _quiet_environment(out, work_dir, jobs)
    manifest = load_manifest(processed)
    progress = progress or Progress(len(specs))
    results: dict[str, ReportResult] = {}
    try:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=max(1, min(jobs, len(specs))), mp_context=ctx,
                                 initializer=_init_worker, initargs=(env,)) as pool:
            pending = {}
            for spec in specs:
                fut = pool.submit(run_one, spec, day_dir, work_dir / spec.name, cell_timeout, manifest)
                pending[fut] = spec
            running = set(list(pending)[: max(1, jobs)])
            for fut in running:
                progress.started(pending[fut].name)
            while pending:
                done, _ = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
                for fut in done:
                    spec = pending.pop(fut)
                    try:
                        result = fut.result()
                    except Exception as exc:  # noqa: BLE001 - e.g. a worker killed by the OS
                        result = ReportResult(spec.name, "failed", 0.0, error=f"worker: {type(exc).__name__}: {exc}",
                                              parameters=dict(spec.parameters),
                                              finished=datetime.now().isoformat(timespec="seconds"))
                    results[spec.name] = result
                    save_status(result, day_dir)
                    progress.finished(result)
                    waiting = [f for f in pending if f not in running]
                    if waiting:
                        running.add(waiting[0])
                        progress.started(pending[waiting[0]].name)
                progress.tick()
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    ordered = [results[s.name] for s in specs]
    write_index(day_results(day_dir), day_dir, manifest)
    return ordered


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


# --- reporting on the run -------------------------------------------------------------
STATUS_DIR = ".status"  # OUT/<date>/.status/<name>.json: the newest result of each report that day
_PATH_FIELDS = ("notebook", "pdf", "log")


def save_status(result: ReportResult, day_dir: Path) -> Path:
    """Record a report's result in the day folder (atomic), replacing an earlier run's record,
    so the day's index can list every report made that day, not only this run's."""
    import dataclasses
    import json

    record = dataclasses.asdict(result)
    for key in _PATH_FIELDS:
        record[key] = record[key].name if record[key] else None  # names: the folder may be moved
    folder = _mkdir(day_dir / STATUS_DIR)
    fd, tmp = tempfile.mkstemp(prefix=f".{result.name}.", suffix=".tmp", dir=folder)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(record, fh, default=str)
    os.replace(tmp, folder / f"{result.name}.json")
    return folder / f"{result.name}.json"


def day_results(day_dir: Path) -> list[ReportResult]:
    """The newest result of every report made in this day folder, by name."""
    import json

    results = []
    for path in sorted((day_dir / STATUS_DIR).glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # a record being replaced right now by a parallel run
            continue
        for key in _PATH_FIELDS:
            record[key] = day_dir / record[key] if record.get(key) else None
        results.append(ReportResult(**record))
    return results


def _shown_path(path: Path | None) -> str:
    if path is None:
        return "-"
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def format_summary(results: Sequence[ReportResult]) -> str:
    """The closing table: name, status, duration, output (the PDF, or the error and the log)."""
    rows = [("name", "status", "duration", "output")]
    for r in results:
        output = _shown_path(r.pdf) if r.ok else f"{r.error or 'failed'} (log: {_shown_path(r.log)})"
        rows.append((r.name, r.status.upper() if not r.ok else r.status, f"{r.duration:.1f}s", output))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join(row[i].ljust(widths[i]) for i in range(3)) + "  " + row[3] for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * 6)
    failed = sum(not r.ok for r in results)
    lines.append(f"{len(results) - failed} of {len(results)} reports ok" + (f", {failed} FAILED" if failed else ""))
    return "\n".join(lines)


def write_index(results: Sequence[ReportResult], day_dir: Path, manifest: dict | None) -> Path:
    """OUT/<date>/index.html: every report made that day (the newest result of each, see
    `day_results`), with links, status, timings and data snapshot (written atomically)."""
    from outcomes import __version__

    def link(path: Path | None, label: str) -> str:
        return f'<a href="{html.escape(path.name)}">{label}</a>' if path and path.exists() else ""

    rows = []
    for r in sorted(results, key=lambda r: r.name):
        params = ", ".join(f"{k}={v}" for k, v in r.parameters.items() if k != "processed_dir") or "defaults"
        rows.append(
            f'<tr class="{r.status}"><td>{html.escape(r.name)}</td><td>{r.status}</td>'
            f"<td>{html.escape(r.finished[11:16])}</td><td>{r.duration:.1f}s</td>"
            f"<td>{link(r.pdf, 'PDF')} {link(r.notebook, 'notebook')} {link(r.log, 'log')}</td>"
            f"<td>{html.escape(params)}</td><td>{html.escape(r.snapshot or '-')}</td><td>{html.escape(r.error)}</td></tr>"
        )
    manifest = manifest or {}
    synthetic = "<p><strong>SYNTHETIC DEMO DATA</strong> (simulator output, not patients).</p>" if manifest.get("synthetic") else ""
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Reports {html.escape(day_dir.name)}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border-bottom:1px solid #ccc;padding:.3em .8em;text-align:left}} tr.failed td{{background:#fdd}}</style></head>
<body><h1>Reports of {html.escape(day_dir.name)}</h1>{synthetic}
<p>Every report made in this folder that day, with the result of its latest run.
{sum(r.ok for r in results)} of {len(results)} reports ok.</p>
<p>Last run finished {datetime.now():%Y-%m-%d %H:%M}; its data snapshot {html.escape(str(manifest.get('snapshot', 'unknown')))}
(cleaned {html.escape(str(manifest.get('created', 'unknown')))}); mesotherapy-outcomes {__version__}.</p>
<table><thead><tr><th>report</th><th>status</th><th>finished</th><th>duration</th><th>files</th><th>parameters</th>
<th>data snapshot</th><th>error</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table></body></html>
"""
    path = day_dir / "index.html"
    fd, tmp = tempfile.mkstemp(prefix=".index.", suffix=".tmp", dir=day_dir)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(page)
    os.chmod(tmp, file_mode())
    os.replace(tmp, path)
    return path


def cli_report(
    notebook: str | None,
    params: Sequence[str],
    grid: str | os.PathLike,
    processed: str | os.PathLike,
    out: str | os.PathLike,
    jobs: int = 1,
    echo: Callable[[str], Any] = print,
    day: str | None = None,
) -> int:
    """`outcomes report`: 0 all reports ok, 1 any failed, 2 nothing ran (bad input).

    Outputs go to OUT/<day>/, `day` defaulting to today's date (YYYY-MM-DD)."""
    # this process too reads Jupyter/IPython settings; keep their files inside OUT (restored after)
    saved_env = dict(os.environ)
    os.environ.update(_quiet_environment(Path(out).resolve(), Path(out).resolve() / ".cache", jobs))
    try:
        return _cli_report(notebook, params, grid, processed, out, jobs, echo, day)
    finally:
        os.environ.clear()
        os.environ.update(saved_env)


def _cli_report(notebook, params, grid, processed, out, jobs, echo, day) -> int:
    try:
        if notebook:
            specs, timeout = [single_spec(notebook, params)], DEFAULT_CELL_TIMEOUT
        else:
            if params:
                raise ParameterError("-p parameters go with a single NOTEBOOK; a grid file holds its own")
            specs, timeout = load_grid(grid)
        mode = f"{len(specs)} report{'s' if len(specs) != 1 else ''} with {min(jobs, len(specs))} job(s)"
        echo(f"Running {mode}; output in {Path(out)}/<date>/")
        results = run_reports(specs, processed, out, jobs=jobs, cell_timeout=timeout, day=day)
    except ParameterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    echo(format_summary(results))
    if results:
        echo(f"Index: {_shown_path(results[0].log.parent / 'index.html' if results[0].log else None)}")
    return 0 if all(r.ok for r in results) else 1


__all__ = [
    "ReportSpec", "ReportResult", "ParameterError", "load_grid", "single_spec", "run_reports", "run_one",
    "format_summary", "write_index", "save_status", "day_results", "cli_report", "resolve_notebook",
]
