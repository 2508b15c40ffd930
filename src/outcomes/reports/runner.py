"""Run report notebooks unattended: check, execute with papermill, make the PDF, summarise.

A scheduled run must fail loudly but in isolation: every report's parameters (and the
processed data, the output folder, the kernel) are checked before anything runs; each report
then runs in a process of its own, so a worker that dies (out of memory, a segfault) fails only
its own report. Workers are forked from a fork server that has already imported what each
needs (a fresh interpreter all the same; spawn where there is no fork server). Workers die with
the run (a thread in each waits for the run's end), and their kernels with them (ipykernel polls
its parent).

Every run writes into its own folder ``OUT/<YYYY-MM-DD>/<HHMMSS>/`` (see `outcomes.reports.runs`):
``<name>.ipynb``, ``<name>.pdf``, ``<name>.log`` and an ``index.html`` of that run. A failed report
keeps its executed notebook (papermill puts an error banner at the top) and gets no PDF; the
exit code is 1 when any report failed. ``OUT/index.html`` lists the runs; ``OUT/latest`` points
at the newest finished one.

Nothing is written outside the project and OUT: Jupyter's runtime files, IPython's
profile and matplotlib's and fontconfig's caches are pointed into OUT's hidden folders.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from outcomes import config
from outcomes.escaping import file_name_part, html_text
from outcomes.reports import runs
from outcomes.reports.params import ParameterError, check_parameters, parse_cli_params
from outcomes.reports.pdf import file_mode

DEFAULT_CELL_TIMEOUT = 600  # seconds per cell; a stuck model fit must not hang the scheduler
KERNEL_START_TIMEOUT = 120
GRID_KEYS = {"cell_timeout", "reports"}
ENTRY_KEYS = {"name", "notebook", "parameters", "for_each", "max_metrics"}
FOR_EACH = ("concern",)  # what an entry may expand over


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
            if path.suffix != ".ipynb":
                raise ParameterError(f"{name} is not a Jupyter notebook (.ipynb)")
            return path.resolve()
    raise ParameterError(f"notebook {str(name)!r} not found (looked in {', '.join(str(c.parent) for c in candidates[:2])})")


def report_name(text: str) -> str:
    """A report's output name: safe and bounded as a file name (a long value ends in a hash)."""
    return file_name_part(text, default="report")


def single_spec(notebook: str, params: Sequence[str]) -> ReportSpec:
    """The spec for `outcomes report NOTEBOOK -p ...`; named after the notebook and values."""
    path = resolve_notebook(notebook)
    given = parse_cli_params(params)
    checked = check_parameters(path, given, where=path.name)
    suffix = "-".join(str(v) for k, v in checked.items() if k != "processed_dir" and str(v) != "")
    return ReportSpec(report_name(path.stem + (f"-{suffix}" if suffix else "")), path, checked)


def concern_metrics_present(processed: str | os.PathLike) -> list[tuple[str, str]]:
    """(concern, metric) pairs to report on: each concern of the contract present in the processed
    outcomes, with the registry's metrics for it (`contract.CONCERN_METRICS`, in its order) that the
    data holds for that concern. An unknown concern, or a metric without data, gives no pair."""
    import pandas as pd

    from outcomes.contract import CONCERN_METRICS

    folder = _check_processed(processed)
    table = pd.read_parquet(folder / "outcomes.parquet", columns=["concern", "metric"])
    held = set(table.dropna().astype(str).drop_duplicates().itertuples(index=False, name=None))
    return [(c, m) for c, metrics in CONCERN_METRICS.items() for m in metrics if (c, m) in held]


def _expand(entry: dict, where: str, pairs: list[tuple[str, str]]) -> list[tuple[str, dict]]:
    """A `for_each: concern` entry as (name suffix, parameters), one per concern present and metric
    (the first `max_metrics` of each concern's registry list); a plain entry as itself."""
    if "for_each" not in entry:
        if "max_metrics" in entry:
            raise ParameterError(f"{where}: 'max_metrics' goes with 'for_each: concern'")
        return [("", {})]
    if entry["for_each"] not in FOR_EACH:
        raise ParameterError(f"{where}: for_each must be one of {list(FOR_EACH)}, not {entry['for_each']!r}")
    cap = entry.get("max_metrics")
    if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap <= 0):
        raise ParameterError(f"{where}: max_metrics must be a positive whole number")
    given = entry.get("parameters") or {}
    if isinstance(given, dict) and {"concern", "metric"} & set(given):
        raise ParameterError(f"{where}: with for_each: concern, 'concern' and 'metric' come from the data "
                             "and the metric registry; do not set them")
    out: list[tuple[str, dict]] = []
    for concern in dict.fromkeys(c for c, _ in pairs):
        metrics = [m for c, m in pairs if c == concern][:cap]
        out += [(f"-{concern}-{metric}", {"concern": concern, "metric": metric}) for metric in metrics]
    return out


def load_grid(grid: str | os.PathLike, processed: str | os.PathLike | None = None) -> tuple[list[ReportSpec], int]:
    """The reports listed in a grid YAML file (checked) and its per-cell timeout.

    An entry with ``for_each: concern`` becomes one report per concern present in the processed
    data (`processed`, needed then) and metric that concern is treated for (`concern_metrics_present`)."""
    grid = Path(grid)
    if not grid.is_file():
        raise ParameterError(f"grid file {grid} not found")
    try:
        doc = yaml.safe_load(grid.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError:
        raise ParameterError(f"{grid}: not a text (YAML) file") from None
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
    pairs: list[tuple[str, str]] | None = None
    for i, entry in enumerate(doc["reports"], start=1):
        where = f"{grid.name}, report {i}"
        if not isinstance(entry, dict) or not isinstance(entry.get("notebook"), str):
            raise ParameterError(f"{where}: each report needs 'notebook' (a path, or a name in notebooks/) "
                                 "and usually 'name', 'parameters'")
        extra = set(entry) - ENTRY_KEYS
        if extra:
            raise ParameterError(f"{where}: unknown keys {sorted(extra)} (allowed: {sorted(ENTRY_KEYS)})")
        if "for_each" in entry and pairs is None:
            if processed is None:
                raise ParameterError(f"{where}: for_each needs the processed data to find the concerns present")
            pairs = concern_metrics_present(processed)
        path = resolve_notebook(entry["notebook"], base=grid.parent)
        base = str(entry.get("name") or path.stem)
        for suffix, expanded in _expand(entry, where, pairs or []):
            name = report_name(base + suffix)
            where = f"{grid.name}, report {name!r}"
            given = entry.get("parameters") or {}
            if not isinstance(given, dict):
                raise ParameterError(f"{where}: 'parameters' must be a mapping of name: value")
            specs.append(ReportSpec(name, path, check_parameters(path, {**given, **expanded}, where=where)))
    if not specs:
        raise ParameterError(f"{grid}: no report to run (no concern of the registry is present in the data)")
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ParameterError(f"{grid}: report names must be unique; repeated: {dupes}")
    return specs, timeout


def _with_processed(spec: ReportSpec, processed: Path) -> ReportSpec:
    """Every report reads the same processed folder; the notebook must take `processed_dir`."""
    check_parameters(spec.notebook, {"processed_dir": str(processed)}, where=spec.name)
    return ReportSpec(spec.name, spec.notebook, {**spec.parameters, "processed_dir": str(processed)})


PROCESSED_NEEDS = ("manifest.json", "outcomes.parquet")  # what `outcomes clean` leaves in a complete folder


def _check_processed(processed: str | os.PathLike) -> Path:
    """The processed folder, resolved, if it holds cleaned data; one clear error before any report runs."""
    folder = Path(processed).resolve()
    if not folder.is_dir():
        raise ParameterError(f"processed-data folder {folder} not found; run `outcomes clean` (or `make report`)")
    missing = [name for name in PROCESSED_NEEDS if not (folder / name).is_file()]
    if missing:
        raise ParameterError(f"processed-data folder {folder} holds no processed data (no {' or '.join(missing)}); "
                             "run `outcomes clean` first")
    return folder


def _check_out(out: str | os.PathLike) -> Path:
    """The output folder, resolved, refused when it is not a folder we can write into."""
    folder = Path(out).resolve()
    if folder.exists() and not folder.is_dir():
        raise ParameterError(f"--out {folder} is a file, not a folder")
    try:
        for name in ("matplotlib", "ipython"):  # Jupyter's kernel lookup creates IPYTHONDIR otherwise
            (folder / ".cache" / name).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ParameterError(f"--out {folder}: cannot write there ({exc.strerror or exc})") from None
    return folder


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
    """The run's environment, whole: a fork server started by an earlier run has that run's."""
    os.environ.clear()
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


@contextmanager
def kernel_transport() -> Iterator[Any]:
    """Kernel sockets as Unix-domain socket files in a folder of this report's own (IPC transport).

    Why: over TCP, jupyter_client picks each kernel's five ports by binding port 0 and closing it;
    two reports starting their kernels at once can be handed the same port, and one kernel then
    dies on `Address already in use` while papermill waits KERNEL_START_TIMEOUT for it (seen on
    the default grid: 1 report in 29 failed after 120 s). Socket files in a folder of their own
    cannot collide. The folder is a fresh one under the system's temp dir, as a socket's path must
    stay within about 100 bytes (a report's work folder can be deeper); it is removed afterwards.
    TCP where there are no Unix sockets (Windows)."""
    import tempfile

    from traitlets.config import Config

    if os.name != "posix":
        yield Config()
        return
    with tempfile.TemporaryDirectory(prefix="outcomes-kernel-") as folder:
        yield Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(folder, "k")}})


def run_one(spec: ReportSpec, run_dir: Path, work_dir: Path, cell_timeout: int, manifest: dict | None) -> ReportResult:
    """Execute one report and make its PDF into RUN_DIR. Runs in a worker process; never raises."""
    import logging

    run_dir.mkdir(parents=True, exist_ok=True)
    work_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / f"{spec.name}.log"
    final_nb, final_pdf = run_dir / f"{spec.name}.ipynb", run_dir / f"{spec.name}.pdf"
    tmp_nb = work_dir / f"{spec.name}.ipynb"
    result = ReportResult(spec.name, "failed", 0.0, log=log_path, parameters=dict(spec.parameters),
                          snapshot=str((manifest or {}).get("snapshot", "")))
    start = time.perf_counter()

    # All output of this report, including the kernel's own stderr, goes to its log file (in append
    # mode: a kernel that outlives its dead worker for a moment must not overwrite the parent's note).
    log_file = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 - closed in finally
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
            with kernel_transport() as sockets:
                papermill.execute_notebook(
                    str(spec.notebook), str(tmp_nb), parameters=dict(spec.parameters),
                    kernel_name=config.KERNEL_NAME, execution_timeout=cell_timeout,
                    start_timeout=KERNEL_START_TIMEOUT, progress_bar=False, log_output=True, cwd=str(work_dir),
                    config=sockets,
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
    finally:
        result.duration = time.perf_counter() - start
        result.finished = datetime.now().isoformat(timespec="seconds")
        root.removeHandler(handler)
        sys.stdout.flush(), sys.stderr.flush()
        os.dup2(saved[0], 1), os.dup2(saved[1], 2)
        os.close(saved[0]), os.close(saved[1])
        log_file.close()
    return result


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # POSIX: signal 0 checks, sends nothing
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_for_run_end(run_pid: int) -> Callable[[], Any]:
    """A function that returns once process `run_pid` has ended: it waits on the run's pidfd
    (Linux), else checks once a second."""
    import select

    if os.name != "posix":  # spawn: the parent is the run itself (and os.kill would end it)
        def poll_parent() -> None:
            while os.getppid() == run_pid:
                time.sleep(1.0)
        return poll_parent
    try:
        pidfd = os.pidfd_open(run_pid)
    except ProcessLookupError:  # ended already
        return lambda: None
    except (AttributeError, OSError):  # no pidfds here (macOS, older kernels, some sandboxes)
        def poll_pid() -> None:
            while _pid_exists(run_pid):
                time.sleep(1.0)
        return poll_pid
    return lambda: select.select([pidfd], [], [])  # readable once the run has ended


def _die_with_run(run_pid: int) -> None:
    """End this worker when `outcomes report` (process `run_pid`) ends, even by ``kill -9``.

    A thread waits for the run's end (:func:`_wait_for_run_end`) and ends the worker. It watches
    the run, not the parent (so no parent-death signal): the parent is the run's fork server, which
    stays up as long as any worker does. The fork server is there for its preloaded imports, 1.45 s
    a report: the default grid took 122-127 s before, 84-87 s after (benchmarks/bench_reports.py). The worker's notebook kernel polls its own parent (ipykernel's JPY_PARENT_PID)
    and so ends with the worker."""
    wait = _wait_for_run_end(run_pid)

    def watch() -> None:
        wait()
        os._exit(1)

    threading.Thread(target=watch, name="run-watch", daemon=True).start()


def _worker(spec: ReportSpec, run_dir: Path, work_dir: Path, cell_timeout: int, manifest: dict | None,
            env: dict[str, str], run_pid: int) -> None:
    """A worker process: one report, its result recorded in RUN_DIR/.status/<name>.json."""
    _die_with_run(run_pid)
    try:
        _init_worker(env)
        result = run_one(spec, run_dir, work_dir, cell_timeout, manifest)
    except Exception as exc:  # noqa: BLE001 - run_one records report failures; this is its set-up failing
        result = ReportResult(spec.name, "failed", 0.0, error=f"worker: {type(exc).__name__}: {exc}",
                              parameters=dict(spec.parameters), finished=datetime.now().isoformat(timespec="seconds"))
    save_status(result, run_dir)


def _death(exitcode: int | None) -> str:
    """Why a worker ended without recording a result, in words."""
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = "unknown"
        return f"worker died (signal {-exitcode}, {name})"
    return f"worker ended without a result (exit code {exitcode})"


def _collect(spec: ReportSpec, exitcode: int | None, run_dir: Path, work_dir: Path, started: float,
             manifest: dict | None) -> ReportResult:
    """The result a worker recorded or, when it died first, a failed result saying how it died."""
    result = load_status(run_dir, spec.name)
    if result is not None:
        return result
    error = _death(exitcode)
    result = ReportResult(spec.name, "failed", time.perf_counter() - started, error=error,
                          parameters=dict(spec.parameters), finished=datetime.now().isoformat(timespec="seconds"),
                          snapshot=str((manifest or {}).get("snapshot", "")))
    partial = work_dir / f"{spec.name}.ipynb"  # papermill saves the notebook as it goes: keep it
    if partial.is_file():
        result.notebook = run_dir / partial.name
        os.replace(partial, result.notebook)
    result.log = run_dir / f"{spec.name}.log"
    with open(result.log, "a", encoding="utf-8") as log:
        log.write(f"\nreport {spec.name} FAILED: {error}\n")
    save_status(result, run_dir)
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

    def begin(self, run_dir: Path, jobs: int) -> None:
        self._write(f"Running {self.total} report{'s' if self.total != 1 else ''} with {jobs} job(s) into "
                    f"{_shown_path(run_dir)}/\n")

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


def _worker_context():
    """Where report workers come from: a fork server that has imported what every worker needs
    (:mod:`outcomes.reports.preload`: about 1.45 s saved per report), else spawn. Either way a
    fresh interpreter that shares no state with this process (a notebook kernel, a scheduler)."""
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():  # Windows
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["outcomes.reports.preload"])  # used when the server starts
    return ctx


def run_reports(
    specs: Sequence[ReportSpec],
    processed: str | os.PathLike,
    out: str | os.PathLike,
    jobs: int = 1,
    cell_timeout: int = DEFAULT_CELL_TIMEOUT,
    progress: Progress | None = None,
    day: str | None = None,
) -> list[ReportResult]:
    """Run checked reports, `jobs` at a time, each in its own process, into a new run folder
    OUT/<day>/<HHMMSS>/ (`day` defaults to today's date); returns their results.

    Nothing runs unless the processed data, the output folder and every report's parameters
    (plus ``processed_dir``) pass the checks.
    """
    import multiprocessing
    from multiprocessing.connection import wait

    from outcomes.loader import load_manifest

    processed = _check_processed(processed)
    specs = [_with_processed(s, processed) for s in specs]
    out = _check_out(out)
    _check_kernel()
    manifest = load_manifest(processed)
    try:
        run = runs.Run(out, day, reports=len(specs), snapshot=(manifest or {}).get("snapshot"))
    except OSError as exc:
        raise ParameterError(f"--out {out}: cannot create a run folder there ({exc.strerror or exc})") from None
    jobs = max(1, min(jobs, len(specs)))
    env = {**os.environ, **_quiet_environment(out, run.work, jobs)}
    progress = progress or Progress(len(specs))
    results: dict[str, ReportResult] = {}
    running: dict[int, tuple[ReportSpec, Any, float]] = {}  # sentinel -> (spec, process, start)
    try:
        runs.clean_leftovers(out)
        write_index([], run.path, manifest)
        runs.write_runs_index(out, file_mode())
        progress.begin(run.path, jobs)
        ctx = _worker_context()
        queue = list(specs)
        while queue or running:
            while queue and len(running) < jobs:
                spec = queue.pop(0)
                proc = ctx.Process(target=_worker, name=f"report-{spec.name}",
                                   args=(spec, run.path, run.work / spec.name, cell_timeout, manifest, env, os.getpid()))
                proc.start()
                running[proc.sentinel] = (spec, proc, time.perf_counter())
                progress.started(spec.name)
            for sentinel in wait(list(running), timeout=1.0):
                spec, proc, started = running.pop(sentinel)
                proc.join()
                result = _collect(spec, proc.exitcode, run.path, run.work / spec.name, started, manifest)
                results[spec.name] = result
                progress.finished(result)
                write_index(run_results(run.path), run.path, manifest)
            progress.tick()
        run.finish()
    finally:
        for _, proc, _ in running.values():  # interrupted (Ctrl-C): no report outlives the run
            proc.kill()
            proc.join()
        run.close()
        write_index(run_results(run.path), run.path, manifest)
        runs.point_latest(out)
        runs.write_runs_index(out, file_mode())
    return [results[s.name] for s in specs]


# --- reporting on the run -------------------------------------------------------------
_PATH_FIELDS = ("notebook", "pdf", "log")


def save_status(result: ReportResult, run_dir: Path) -> Path:
    """Record a report's result in its run folder (atomic): RUN_DIR/.status/<name>.json."""
    import dataclasses

    record = dataclasses.asdict(result)
    for key in _PATH_FIELDS:
        record[key] = record[key].name if record[key] else None  # names: the folder may be moved
    folder = run_dir / runs.STATUS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    runs.write_json(folder / f"{result.name}.json", record)
    return folder / f"{result.name}.json"


def load_status(run_dir: Path, name: str) -> ReportResult | None:
    """The result recorded for report `name` in this run folder, or None."""
    import json

    try:
        record = json.loads((run_dir / runs.STATUS_DIR / f"{name}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for key in _PATH_FIELDS:
        record[key] = run_dir / record[key] if record.get(key) else None
    return ReportResult(**record)


def run_results(run_dir: Path) -> list[ReportResult]:
    """Every result recorded in this run folder, by name."""
    found = (load_status(run_dir, p.stem) for p in sorted((run_dir / runs.STATUS_DIR).glob("*.json")))
    return [r for r in found if r is not None]


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


def write_index(results: Sequence[ReportResult], run_dir: Path, manifest: dict | None) -> Path:
    """RUN_DIR/index.html: the reports of this run, with links, status, timings and data snapshot
    (written atomically, again as each report ends)."""
    from outcomes import __version__

    def link(path: Path | None, label: str) -> str:
        return f'<a href="{html_text(path.name)}">{label}</a>' if path and path.exists() else ""

    rows = []
    for r in sorted(results, key=lambda r: r.name):
        params = ", ".join(f"{k}={v}" for k, v in r.parameters.items() if k != "processed_dir") or "defaults"
        rows.append(
            f'<tr class="{html_text(r.status)}"><td>{html_text(r.name)}</td><td>{html_text(r.status)}</td>'
            f"<td>{html_text(r.finished[11:16])}</td><td>{r.duration:.1f}s</td>"
            f"<td>{link(r.pdf, 'PDF')} {link(r.notebook, 'notebook')} {link(r.log, 'log')}</td>"
            f"<td>{html_text(params)}</td><td>{html_text(r.snapshot or '-')}</td><td>{html_text(r.error)}</td></tr>"
        )
    manifest = manifest or {}
    title = f"{run_dir.parent.name} {run_dir.name}"
    synthetic = "<p><strong>SYNTHETIC DEMO DATA</strong> (simulator output, not patients).</p>" if manifest.get("synthetic") else ""
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Reports {html_text(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border-bottom:1px solid #ccc;padding:.3em .8em;text-align:left}} tr.failed td{{background:#fdd}}</style></head>
<body><h1>Reports of the run {html_text(title)}</h1>{synthetic}
<p>The reports of this run ({len(results)} so far, {sum(r.ok for r in results)} ok); earlier runs keep
their own folders: <a href="../../{runs.INDEX}">all runs</a>.</p>
<p>Updated {datetime.now():%Y-%m-%d %H:%M}; data snapshot {html_text(manifest.get('snapshot', 'unknown'))}
(cleaned {html_text(manifest.get('created', 'unknown'))}); mesotherapy-outcomes {html_text(__version__)}.</p>
<table><thead><tr><th>report</th><th>status</th><th>finished</th><th>duration</th><th>files</th><th>parameters</th>
<th>data snapshot</th><th>error</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table></body></html>
"""
    runs.write_text(run_dir / runs.INDEX, page, file_mode())
    return run_dir / runs.INDEX


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

    Outputs go to a new run folder OUT/<day>/<HHMMSS>/, `day` defaulting to today's date."""
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
            specs, timeout = load_grid(grid, processed)
        results = run_reports(specs, processed, out, jobs=jobs, cell_timeout=timeout, day=day)
    except ParameterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    echo(format_summary(results))
    if results and results[0].log:
        echo(f"Index: {_shown_path(results[0].log.parent / runs.INDEX)} (all runs: "
             f"{_shown_path(results[0].log.parent.parent.parent / runs.INDEX)})")
    return 0 if all(r.ok for r in results) else 1


__all__ = [
    "ReportSpec", "ReportResult", "ParameterError", "load_grid", "single_spec", "run_reports", "run_one",
    "format_summary", "write_index", "save_status", "load_status", "run_results", "cli_report", "resolve_notebook",
    "report_name", "concern_metrics_present",
]
