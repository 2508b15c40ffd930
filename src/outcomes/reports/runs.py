"""Where report runs go: each run its own folder, an index of runs, a `latest` pointer.

A rerun must never take away what an earlier run made (a failed afternoon rerun used to delete
the morning's good PDF), so every run writes into a folder of its own,
``OUT/<YYYY-MM-DD>/<HHMMSS>/`` (``<HHMMSS>-2``, ``-3``... for runs started in the same second;
the folder is created exclusively, so two runs never share one). It holds the run's reports,
its ``index.html``, ``run.json`` (when it started and finished) and, while the run lives,
``.work/`` (temporary files) and ``.lock``, which the live run holds with ``flock``: the
operating system releases it when the run dies, even by ``kill -9``. The next run removes a
``.work/`` whose lock nobody holds, and only in a folder that has this runner's ``run.json``.

``OUT/index.html`` lists every run (newest first) and ``OUT/latest`` is a symlink to the newest
finished run, replaced in one atomic rename.
"""
from __future__ import annotations

import fcntl
import itertools
import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

from outcomes.escaping import html_text

RUN_RECORD = "run.json"
LOCK = ".lock"
WORK = ".work"
STATUS_DIR = ".status"  # <run>/.status/<name>.json: each report's result, written when it ends
LATEST = "latest"
INDEX = "index.html"
_RUN_NAME = re.compile(r"(\d{6})(?:-(\d+))?")


class Run:
    """One run's own folder, locked while the run lives; `work` is its temporary folder."""

    def __init__(self, out: Path, day: str | None = None, now: datetime | None = None, **info: Any) -> None:
        now = now or datetime.now()
        self.path = _new_folder(out / (day or now.strftime("%Y-%m-%d")), now.strftime("%H%M%S"))
        self._lock: int | None = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        self.record = {"started": now.isoformat(timespec="seconds"), "finished": None, **info}
        write_json(self.path / RUN_RECORD, self.record)
        self.work = self.path / WORK
        self.work.mkdir()

    def finish(self) -> None:
        """Record that every report of the run has its result."""
        self.record["finished"] = datetime.now().isoformat(timespec="seconds")
        write_json(self.path / RUN_RECORD, self.record)

    def close(self) -> None:
        """Remove the work folder and release the lock (a run that never finished shows as interrupted)."""
        shutil.rmtree(self.work, ignore_errors=True)
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None


def _new_folder(day_dir: Path, stem: str) -> Path:
    day_dir.mkdir(parents=True, exist_ok=True)
    for n in itertools.count(1):
        path = day_dir / (stem if n == 1 else f"{stem}-{n}")
        try:
            path.mkdir()  # exclusive: a folder another run created is never shared
            return path
        except FileExistsError:
            continue
    raise AssertionError("unreachable")


@contextmanager
def replacing(path: Path, mode: int | None = None) -> Iterator[Path]:
    """A temporary file beside `path` to write into; when the block succeeds it takes `path`'s
    place in one rename (`os.replace`: a reader sees the old or the new file, never half of one),
    with permissions `mode` if given; when it fails, it is removed. The one atomic file write."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f"{path.suffix}.tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path: Path, record: dict[str, Any]) -> None:
    """`record` as JSON at `path`, atomically (a reader sees the old or the new file)."""
    with replacing(path) as tmp:
        tmp.write_text(json.dumps(record, default=str), encoding="utf-8")


def write_text(path: Path, text: str, mode: int) -> None:
    """`text` at `path` with permissions `mode`, atomically."""
    with replacing(path, mode) as tmp:
        tmp.write_text(text, encoding="utf-8")


def owner_alive(run_dir: Path) -> bool:
    """Whether a live run holds this run folder's lock."""
    try:
        fd = os.open(run_dir / LOCK, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also releases the probe's own lock
    return False


def clean_leftovers(out: Path) -> list[Path]:
    """Remove the `.work/` folders of runs that died (their lock is free); returns what was removed.

    Only folders this runner made are touched: a `.work` beside a `run.json` and a `.lock`.
    """
    removed = []
    for work in sorted(out.glob(f"*/*/{WORK}")):
        run_dir = work.parent
        if work.is_symlink() or not work.is_dir() or not (run_dir / RUN_RECORD).is_file():
            continue
        if not (run_dir / LOCK).is_file() or owner_alive(run_dir):
            continue
        shutil.rmtree(work, ignore_errors=True)
        removed.append(work)
    return removed


@dataclass(frozen=True)
class RunSummary:
    """One run as the index of runs shows it."""

    path: Path
    started: str
    finished: str | None
    state: str  # "finished", "running" or "interrupted"
    ok: int
    failed: int
    total: int

    def sort_key(self) -> tuple[str, str, int]:
        match = _RUN_NAME.fullmatch(self.path.name)
        return self.path.parent.name, match.group(1), int(match.group(2) or 1)


def list_runs(out: Path) -> list[RunSummary]:
    """Every run folder under OUT, oldest first."""
    runs = []
    for record_path in out.glob(f"*/*/{RUN_RECORD}"):
        run_dir = record_path.parent
        if not _RUN_NAME.fullmatch(run_dir.name):
            continue
        try:
            record = json.loads(record_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        statuses = []
        for path in (run_dir / STATUS_DIR).glob("*.json"):
            try:
                statuses.append(json.loads(path.read_text(encoding="utf-8")).get("status"))
            except (OSError, ValueError):
                continue
        finished = record.get("finished")
        state = "finished" if finished else ("running" if owner_alive(run_dir) else "interrupted")
        runs.append(RunSummary(run_dir, str(record.get("started", "")), finished, state, statuses.count("ok"),
                               len(statuses) - statuses.count("ok"), int(record.get("reports") or len(statuses))))
    return sorted(runs, key=RunSummary.sort_key)


def point_latest(out: Path) -> Path | None:
    """Point OUT/latest at the newest finished run (one atomic rename); its target, or None.

    A `latest` that is not a symlink was not made here and is left alone."""
    finished = [r for r in list_runs(out) if r.state == "finished"]
    link = out / LATEST
    if not finished or (link.exists() and not link.is_symlink()):
        return None
    target = finished[-1].path.relative_to(out)
    tmp = out / f".{LATEST}-{os.getpid()}.tmp"
    if tmp.is_symlink():
        tmp.unlink()
    os.symlink(target, tmp, target_is_directory=True)
    os.replace(tmp, link)
    return target


def write_runs_index(out: Path, mode: int) -> Path:
    """OUT/index.html: every run, newest first, with its state, counts and a link to its index."""
    rows = []
    for run in reversed(list_runs(out)):
        rel = run.path.relative_to(out).as_posix()
        rows.append(
            f'<tr class="{html_text(run.state)}{" failed" if run.failed else ""}">'
            f"<td>{html_text(run.path.parent.name)}</td><td>{html_text(run.started[11:19])}</td>"
            f"<td>{html_text(run.state)}</td><td>{run.ok}</td><td>{run.failed}</td><td>{run.total}</td>"
            f'<td><a href="{html_text(rel)}/{INDEX}">{html_text(rel)}</a></td></tr>'
        )
    latest = out / LATEST
    pointer = f'<p><a href="{LATEST}/{INDEX}">The newest finished run</a>.</p>' if latest.is_symlink() else ""
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Report runs</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border-bottom:1px solid #ccc;padding:.3em .8em;text-align:left}} tr.failed td,tr.interrupted td{{background:#fdd}}</style></head>
<body><h1>Report runs</h1>{pointer}
<p>Every run has its own folder; a later run never replaces an earlier run's files.</p>
<table><thead><tr><th>date</th><th>started</th><th>state</th><th>ok</th><th>failed</th><th>reports</th><th>folder</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table></body></html>
"""
    write_text(out / INDEX, page, mode)
    return out / INDEX
