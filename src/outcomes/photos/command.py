"""`outcomes photos`: a folder of photos and its index in, rows of the raw photo_metrics contract out.

Why this shape: measuring is the one step whose cost grows with a clinic network, so it is
planned in this process (index, hashes, capture times, what is already measured) and run as
independent tasks, one per patient and view, on all local cores (a process pool) or on a Dask
cluster (`--scheduler`). A task decodes each of its photos once: the earliest is the pose
reference of the others. The output is an ordinary raw file that `outcomes clean` reads like
any export; a photo that cannot be measured gives one row with `photo_error`, which clean
rejects with its reason, and never stops the run. See docs/photos.md §command.
"""
from __future__ import annotations

import hashlib
import math
import os
import re
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from datetime import datetime
from itertools import groupby
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd

from outcomes.escaping import spreadsheet_safe
from outcomes.photos import images
from outcomes.photos.images import Box, PhotoError
from outcomes.photos.index import Entry, PhotoIndexError, read_index, region_text
from outcomes.photos.registration import Reference

# the header of every file this command writes, in this order (also how it knows its own output)
COLUMNS = ("patient_id", "photo_id", "taken_at", "view", "metric", "value", "source", "photo_hash", "region",
           "chart", "color_delta_e", "blur", "clipped", "pose_error", "photo_error")
NUMBERS = ("value", "color_delta_e", "blur", "clipped", "pose_error")
WRITTEN_BY = b"outcomes photos"  # parquet output: its schema metadata says who wrote it
DEFAULT_SOURCE = "photos"
# pose is compared on copies whose long side is at least this (pose_error is in % of the diagonal,
# so the size does not change its unit; 1 px here is about 0.2% of it): registration of the whole
# working size took 1.5-1.8 s a photo on the benchmark, 0.6 s at this size (busy 2-core machine)
POSE_LONG_SIDE = 512


class OutputRefused(Exception):
    """--out is not this command's to replace (or is inside the photos folder): exit 2, nothing touched."""


@dataclass(frozen=True)
class Reading:
    """What one photo gives: the registry metrics and its quality readings."""

    metrics: dict[str, float]
    chart: bool  # a colour chart was found (the colour metrics are corrected)
    color_delta_e: float  # median ΔE2000 of the chart after correction (NaN without chart)
    blur: float  # 0 sharp .. 1 unusable
    clipped: float  # share of clipped pixels, 0..1


Measure = Callable[[np.ndarray, "Box | None"], Reading]
Pose = Callable[[Reference, np.ndarray], float]  # (the baseline photo prepared once, a photo) -> pose_error


def measure_photo(rgb: np.ndarray, region: Box | None) -> Reading:
    """The project's measurement of one photo: skin metrics (measure) and pixel quality (quality)."""
    from outcomes.photos import measure, quality

    skin = measure.measure_skin(rgb, region)
    return Reading(metrics=dict(skin.metrics), chart=bool(skin.chart_found), color_delta_e=float(skin.color_delta_e),
                   blur=float(quality.blur_score(rgb, skin.region)),
                   clipped=float(quality.clipped_fraction(rgb, skin.region)))


def pose_error(reference: Reference, moving: np.ndarray) -> float:
    """How far a photo's pose is from its baseline photo's (registration.pose_error)."""
    from outcomes.photos import registration

    return float(registration.pose_error(reference, moving))


# --- planning --------------------------------------------------------------------------
@dataclass(frozen=True)
class Photo:
    """One photo of a task."""

    entry: Entry
    taken_at: datetime
    sha256: str
    measure: bool  # False: already measured, decoded only as the pose reference of the others
    source: str


@dataclass(frozen=True)
class Task:
    """The photos of one patient and view, earliest first (the first usable one is the pose reference)."""

    photos: tuple[Photo, ...]

    @property
    def size(self) -> int:
        return sum(p.measure for p in self.photos)


@dataclass
class Plan:
    tasks: list[Task]
    rows: list[dict]  # rows known without measuring: planning errors, photos measured before
    photos: int  # photos in the index


def _row(entry: Entry, taken_at: datetime | None, source: str, sha256: str = "", **values) -> dict:
    row = {"patient_id": entry.patient_id, "photo_id": entry.photo_id, "taken_at": _stamp(taken_at),
           "view": entry.view, "source": source, "photo_hash": sha256, "region": region_text(entry.region),
           "_order": entry.row}
    row.update(values)
    return row


def _stamp(when: datetime | None) -> str:
    if when is None:
        return ""
    return when.strftime("%Y-%m-%d %H:%M:%S" if (when.hour, when.minute, when.second) != (0, 0, 0) else "%Y-%m-%d")


def plan(entries: list[Entry], earlier: pd.DataFrame | None, source: str = DEFAULT_SOURCE) -> Plan:
    """Hash and probe every photo (cheap: no pixels decoded), then group the rest into tasks.

    A photo whose bytes (sha256) are in `earlier` (this command's earlier output) is not measured
    again: its earlier rows are kept under the index's current ids, unless the pose reference of
    its patient and view has changed (a new earliest photo), in which case the whole group is
    measured again.
    """
    rows, ready = [], []
    for entry in entries:
        digest = ""
        try:
            data = images.read_bytes(entry.path)
            digest = hashlib.sha256(data).hexdigest()
            probe = images.probe(data)
        except PhotoError as exc:
            rows.append(_row(entry, entry.taken_at, source, digest, photo_error=exc.code))
            continue
        taken_at = entry.taken_at or probe.taken_at
        if taken_at is None:
            rows.append(_row(entry, None, source, digest, photo_error="no_capture_time"))
            continue
        if entry.region is not None and (entry.region[2] > probe.size[0] or entry.region[3] > probe.size[1]):
            rows.append(_row(entry, taken_at, source, digest, photo_error="region_outside"))
            continue
        ready.append(Photo(entry=entry, taken_at=taken_at, sha256=digest, measure=True, source=source))
    done, failed = _earlier(earlier)
    tasks = []
    key = lambda p: (p.entry.patient_id, p.entry.view)  # noqa: E731
    for _, group in groupby(sorted(ready, key=lambda p: (*key(p), p.taken_at, p.entry.row)), key=key):
        group = list(group)
        reference = next((p.sha256 for p in group if p.sha256 not in failed), None)
        photos = []
        for photo in group:
            old = failed.get(photo.sha256) or done.get((photo.sha256, region_text(photo.entry.region), reference))
            if old is not None:
                rows += [{**row, **_row(photo.entry, photo.taken_at, source, photo.sha256)} for row in old]
                photo = replace(photo, measure=False)
            photos.append(photo)
        if any(p.measure for p in photos):
            tasks.append(Task(photos=tuple(photos)))
    return Plan(tasks=tasks, rows=rows, photos=len(entries))


def _earlier(frame: pd.DataFrame | None) -> tuple[dict[tuple[str, str, str], list[dict]], dict[str, list[dict]]]:
    """From an earlier output: each measured photo's rows, by what they depend on (the photo's
    bytes, its region, and the bytes of the pose reference it was compared with: the earliest
    measured photo of its patient and view), and the rows of photos that failed, by their bytes.

    Only hashes and regions are compared, never ids: ids are data, and a CSV output holds some
    changed (`=cmd` is written `'=cmd`, see `spreadsheet_safe`)."""
    if frame is None or not len(frame):
        return {}, {}
    frame = frame.assign(_pos=np.arange(len(frame)))
    frame = frame.loc[frame["photo_hash"].fillna("") != ""]
    broken = frame["photo_error"].fillna("") != ""
    measured = ["metric", *NUMBERS, "chart", "photo_error"]

    def first_photo(rows: pd.DataFrame) -> list[dict]:  # one photo's rows (copies share bytes)
        return rows.loc[rows["photo_id"] == rows["photo_id"].iloc[0], measured].to_dict("records")

    failed = {photo: first_photo(rows) for photo, rows in frame.loc[broken].groupby("photo_hash", sort=False)}
    ok = frame.loc[~broken]
    ok = ok.assign(_when=pd.to_datetime(ok["taken_at"], errors="coerce")).sort_values(["_when", "_pos"], kind="stable")
    ok = ok.assign(_ref=ok.groupby(["patient_id", "view"], sort=False)["photo_hash"].transform("first"))
    done = {key: first_photo(rows.sort_values("_pos", kind="stable"))
            for key, rows in ok.groupby(["photo_hash", "region", "_ref"], sort=False)}
    return done, failed


# --- measuring (runs in the workers) ---------------------------------------------------------
def run_task(task: Task, measure: Measure = measure_photo, pose: Pose = pose_error) -> list[dict]:
    """Measure the photos of one task; an unusable photo gives one `photo_error` row, never an exception.

    The BLAS / OpenMP pools run one thread: the parallelism is one task per core. With OpenBLAS's
    default threads a photo took 0.61-0.72 CPU-s, with one 0.41 (the same results; its idle threads
    spin), on benchmarks/bench_photos.py's 12-megapixel photos, one process, warm.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return _run_task(task, measure, pose)


def _run_task(task: Task, measure: Measure, pose: Pose) -> list[dict]:
    rows: list[dict] = []
    reference = None
    for photo in task.photos:
        entry, digest = photo.entry, photo.sha256
        try:
            data = images.read_bytes(entry.path)
            digest = hashlib.sha256(data).hexdigest()  # the bytes measured (the file may have changed)
            loaded = images.decode(data)
        except PhotoError as exc:
            if photo.measure:
                rows.append(_row(entry, photo.taken_at, photo.source, digest, photo_error=exc.code))
            continue
        first = reference is None
        if first:  # prepared once for all the task's photos (registration.Reference: why)
            reference = Reference(images.shrink(loaded.rgb, POSE_LONG_SIDE))
        if not photo.measure:
            continue
        try:
            pose_value = 0.0 if first else float(pose(reference, images.shrink(loaded.rgb, POSE_LONG_SIDE)))
            reading = measure(loaded.rgb, loaded.scale_box(entry.region))
        except ImportError:  # the measurement is not installed: no photo's fault, stop
            raise
        except Exception:  # a measurement crashing on one photo must not stop the run
            rows.append(_row(entry, photo.taken_at, photo.source, digest, photo_error="measure_failed"))
            continue
        quality = {"chart": "yes" if reading.chart else "no", "color_delta_e": reading.color_delta_e,
                   "blur": reading.blur, "clipped": reading.clipped, "pose_error": pose_value, "photo_error": ""}
        rows += [_row(entry, photo.taken_at, photo.source, digest, metric=name, value=float(value), **quality)
                 for name, value in reading.metrics.items()]
    return rows


def execute(tasks: list[Task], measure: Measure = measure_photo, pose: Pose = pose_error, *,
            scheduler: str | None = None, workers: int | None = None, progress: bool = False) -> list[dict]:
    """Run the tasks: on the Dask scheduler at `scheduler`, else on `workers` local processes
    (default: every core; 1: in this process). `progress`: a bar on stderr, counting photos."""
    from tqdm import tqdm

    rows: list[dict] = []
    bar = tqdm(total=sum(t.size for t in tasks), unit="photo", file=sys.stderr, disable=not progress,
               desc="measuring photos")
    with bar:
        if scheduler is not None:
            from distributed import Client, as_completed as dask_completed

            with Client(scheduler) as client:  # closing the client leaves the cluster running
                futures = client.map(run_task, tasks, measure=measure, pose=pose, pure=False)
                sizes = {f.key: t.size for f, t in zip(futures, tasks)}
                for future in dask_completed(futures):
                    rows += future.result()
                    bar.update(sizes[future.key])
        elif (workers or os.cpu_count() or 1) == 1 or len(tasks) <= 1:
            for task in tasks:
                rows += run_task(task, measure, pose)
                bar.update(task.size)
        else:
            workers = min(workers or os.cpu_count() or 1, len(tasks))
            # one task per core (issue 13: all local cores by default): 4.72-5.00 photos/s on 2 cores against
            # about 3.5 for one warm process (0.28 CPU-s a photo), benchmarks/bench_photos.py, docs/photos.md
            # forkserver: no fork of a process that has threads (arrow, tqdm)
            with ProcessPoolExecutor(workers, mp_context=get_context("forkserver")) as pool:
                futures = {pool.submit(run_task, task, measure, pose): task.size for task in tasks}
                for future in as_completed(futures):
                    rows += future.result()
                    bar.update(futures[future])
    return rows


# --- the output file -------------------------------------------------------------------------
def source_of(out: Path) -> str:
    """`photo_metrics.<source>.csv` -> source; any other name -> DEFAULT_SOURCE."""
    match = re.fullmatch(r"photo_metrics\.([A-Za-z0-9_-]+)\.(csv|csv\.gz|parquet|xlsx)", out.name, re.IGNORECASE)
    return match.group(1) if match else DEFAULT_SOURCE


def read_own(out: Path, photos: Path) -> pd.DataFrame | None:
    """This command's earlier output at `out` (None when absent); OutputRefused when `out` is
    anything else: a file it did not write, a folder, a link, or a place inside the photos folder."""
    if out.suffix.lower() not in (".csv", ".parquet"):
        raise OutputRefused(f"--out {out}: the name must end in .csv or .parquet")
    root = photos.resolve()
    where = out.parent.resolve() / out.name
    if where == root or root in where.parents:
        raise OutputRefused(f"--out {out} is inside the photos folder {photos}, which is never written to")
    if out.is_symlink() or (out.exists() and not out.is_file()):
        raise OutputRefused(f"--out {out} is a link or a folder, not a file this command wrote; left as it is")
    if not out.exists():
        return None
    if out.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        try:
            schema = pq.read_schema(out)
        except Exception:
            schema = None
        if schema is None or (schema.metadata or {}).get(b"written_by") != WRITTEN_BY:
            raise OutputRefused(f"--out {out} exists and was not written by `outcomes photos`; left as it is")
        return pd.read_parquet(out).astype({c: "str" for c in COLUMNS if c not in NUMBERS})
    with open(out, "rb") as handle:
        header = handle.readline().rstrip(b"\r\n")
    if header != ",".join(COLUMNS).encode():
        raise OutputRefused(f"--out {out} exists and was not written by `outcomes photos` (its header differs); "
                            "left as it is")
    return pd.read_csv(out, dtype="str", keep_default_na=False)


def frame_of(rows: Iterable[dict]) -> pd.DataFrame:
    """The rows in index order (each photo's metrics in the order measured), with the output's columns."""
    frame = pd.DataFrame(list(rows), columns=[*COLUMNS, "_order"])
    frame = frame.sort_values("_order", kind="stable").drop(columns="_order").reset_index(drop=True)
    for column in NUMBERS:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    text = [c for c in COLUMNS if c not in NUMBERS]
    frame[text] = frame[text].fillna("").astype("str")
    return frame


def write_atomically(frame: pd.DataFrame, out: Path) -> None:
    """Write beside `out`, then rename over it: a reader sees the old file or the new one, never half."""
    out.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp", delete=False)
    tmp = Path(handle.name)
    try:
        with handle:
            if out.suffix.lower() == ".parquet":
                import pyarrow as pa
                import pyarrow.parquet as pq

                table = pa.Table.from_pandas(frame, preserve_index=False)
                pq.write_table(table.replace_schema_metadata({b"written_by": WRITTEN_BY}), handle)
            else:
                spreadsheet_safe(frame).to_csv(handle, index=False, lineterminator="\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# --- the command -------------------------------------------------------------------------------
@dataclass
class Result:
    frame: pd.DataFrame
    photos: int  # in the index
    measured: int  # measured in this run (the others were measured before, or could not be read)
    failed: int  # photos with photo_error


def run(photos: str | Path, out: str | Path, *, measure: Measure | None = None, pose: Pose | None = None,
        scheduler: str | None = None, workers: int | None = None, progress: bool = False) -> Result:
    """Measure every photo of `photos/index.csv` into `out` (see the module docstring).

    `measure`, `pose`: default measure_photo and pose_error (looked up when called). Raises
    PhotoIndexError (a bad index) or OutputRefused (`out` not this command's) before anything
    is measured or written. The photos are only read.
    """
    measure, pose = measure or measure_photo, pose or pose_error
    photos, out = Path(photos), Path(out)
    if not photos.is_dir():
        raise PhotoIndexError("the photos folder does not exist", file=photos)
    earlier = read_own(out, photos)
    entries = read_index(photos)
    work = plan(entries, earlier, source_of(out))
    rows = work.rows + execute(work.tasks, measure, pose, scheduler=scheduler, workers=workers, progress=progress)
    frame = frame_of(rows)
    read_own(out, photos)  # still ours (or absent) just before it is replaced
    write_atomically(frame, out)
    failed = frame.loc[frame["photo_error"] != "", "photo_id"].nunique()
    return Result(frame=frame, photos=work.photos, measured=sum(task.size for task in work.tasks), failed=int(failed))


def cli_photos(photos: Path, out: Path, *, scheduler: str | None = None, workers: int | None = None,
               quiet: bool = False) -> int:
    """Run `run` for the command line: print a summary; return the exit code (0, or 2 bad input)."""
    try:
        result = run(photos, out, scheduler=scheduler, workers=workers, progress=not quiet and sys.stderr.isatty())
    except (PhotoIndexError, OutputRefused) as exc:
        print(f"outcomes photos: error: {exc}", file=sys.stderr)
        print("Nothing was written.", file=sys.stderr)
        return 2
    except OSError as exc:  # the scheduler cannot be reached, the output folder cannot be written
        print(f"outcomes photos: error: {exc}", file=sys.stderr)
        return 2
    print(f"{result.photos} photos in the index, {result.measured} measured in this run; {result.failed} could not "
          "be measured (rows with photo_error: `outcomes clean` lists them in rejected.csv).")
    print(f"Wrote {out}")
    return 0
