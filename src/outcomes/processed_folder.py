"""Writing the processed folder: parquet tables, the two CSVs and the manifest, switched in at once.

Why one module: readers (analysts, reports) must only ever see a complete output. A run writes a
new version beside the current one and switches `--out` to it in one atomic step
(`ProcessedWriter`), so no run, failed or killed, leaves half-new data; and it replaces only what
`outcomes clean` wrote itself.
"""
from __future__ import annotations

import glob
import json
import os
import re
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from outcomes.escaping import spreadsheet_safe
from outcomes.raw_files import DENSE_COLUMNS

class OutputError(Exception):
    """The output folder cannot be written safely (nothing was changed)."""


OUTPUT_FILES = (
    "patients.parquet", "sessions.parquet", "measurements.parquet", "outcomes.parquet",
    "assessments.parquet", "adverse_events.parquet", "rejected.csv", "data_quality.csv",
    "manifest.json",
)
PARQUET_COMPRESSION = "snappy"
# Readings have a fixed number of decimals, so a few thousand distinct values among millions of
# rows: dictionary pages make them less than half the size and faster to write than plain
# numbers (measured on a 5-million-row registry). Parquet falls back to plain pages by itself
# when a row group's dictionary grows too big.
READING_COLUMNS = frozenset({"value", "change"})


def _write_parquet(table: pa.Table | pd.DataFrame, path: Path) -> None:
    if isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table, preserve_index=False).replace_schema_metadata(None)
    pq.write_table(table, path, **_parquet_options(table.schema))


def _parquet_options(schema: pa.Schema) -> dict[str, Any]:
    """Dictionary pages for repetitive text (arrow dictionaries are written as they are) and for
    readings (READING_COLUMNS), statistics only for columns whose ranges a reader can use (not
    codes, not ids: costly on millions of rows)."""
    fields = list(schema)
    return {
        "compression": PARQUET_COMPRESSION,
        "use_dictionary": [f.name for f in fields
                           if ((_is_text(f.type) or pa.types.is_dictionary(f.type)) and f.name not in DENSE_COLUMNS)
                           or f.name in READING_COLUMNS],
        "write_statistics": [f.name for f in fields if not pa.types.is_dictionary(f.type) and f.name not in DENSE_COLUMNS],
        "write_batch_size": 1 << 16,  # rows encoded at a time (default 1024): less overhead per row, same file
    }


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


class ParquetStream:
    """One parquet file written batch by batch (one row group each), so a big table is never in
    memory whole.

    Columns named in `required` are declared non-nullable, as are floating-point columns (a
    missing number is NaN, never an arrow null): parquet then stores no definition levels for
    them (a fifth of the encoding time of the big tables). A null in such a column stops the
    write with an error; it is never written silently.
    """

    def __init__(self, path: Path, required: frozenset[str] = frozenset()):
        self.path = path
        self.required = required
        self._schema: pa.Schema | None = None
        self._writer: pq.ParquetWriter | None = None

    def write(self, batch: pa.RecordBatch) -> None:
        if self._writer is None:
            self._schema = pa.schema([f.with_nullable(f.name not in self.required and not pa.types.is_floating(f.type))
                                      for f in batch.schema])
            self._writer = pq.ParquetWriter(self.path, self._schema, **_parquet_options(self._schema))
        self._writer.write_batch(pa.RecordBatch.from_arrays(batch.columns, schema=self._schema))

    def close(self) -> None:
        """Finish the file."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class ProcessedWriter:
    """Writes the processed folder so that readers only ever see a complete output.

    `--out` (say `data/processed`) becomes a symbolic link to a versioned sibling folder
    (`.processed.v-<time>-<random>`). A run writes a new version beside it, then switches the
    link to it with one rename (`os.replace`), the only atomic switch POSIX has: a kill at any
    instant leaves the complete old or the complete new output. Every folder a run makes holds
    MARKER from its first moment, so the next run can remove what a killed one left behind.

    It replaces only its own output: an empty folder, or one holding only the files clean
    writes with a manifest that says `"written_by": "outcomes clean"`. Anything else (foreign
    files, hidden sub-folders such as .git/ or .ssh/) is refused with OutputError before the
    work starts, and nothing is touched. A symlink at `--out` that is not clean's own is
    followed: the output goes where it points, and the link stays as it is.

    `write` writes one table, `stream` gives a table written batch by batch, `write_csv` writes
    a CSV; `commit` writes the manifest and switches; `abort` (or any exception inside `with`)
    removes the new version, leaving the earlier output untouched.
    """

    def __init__(self, out_dir: str | os.PathLike):
        out = _location(Path(out_dir).absolute())
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create {out.parent}: {exc.strerror}") from exc
        self.out = out
        self.tmp: Path | None = None
        self._link: Path | None = None
        self._swapped = False
        self._lock = _lock(out.parent)
        try:
            _undo_half_switch(out)
            _replaceable(out)  # refuse before the work
            _remove_leftovers(out)
            stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            self.tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.v-{stamp}-", dir=out.parent))
            (self.tmp / MARKER).write_text(MARKER_TEXT, encoding="utf-8")
            umask = os.umask(0o022)
            os.umask(umask)
            os.chmod(self.tmp, 0o777 & ~umask)  # mkdtemp makes it private; the result is an ordinary folder
            _step("created")
        except OSError as exc:
            self.abort()
            raise OutputError(f"cannot write beside {out}: {exc.strerror or exc}") from exc
        except BaseException:
            self.abort()
            raise
        self._streams: list[ParquetStream] = []

    def write(self, name: str, table: pa.Table | pd.DataFrame) -> None:
        """Write <name>.parquet into the temporary folder."""
        _write_parquet(table, self.tmp / f"{name}.parquet")

    def stream(self, name: str, required: frozenset[str] = frozenset()) -> ParquetStream:
        """<name>.parquet in the temporary folder, to be written batch by batch (then closed)."""
        self._streams.append(ParquetStream(self.tmp / f"{name}.parquet", required=required))
        return self._streams[-1]

    def write_csv(self, name: str, frame: pd.DataFrame) -> None:
        """Write <name>.csv into the temporary folder, its text cells made safe for a spreadsheet (:func:`spreadsheet_safe`)."""
        spreadsheet_safe(frame).to_csv(self.tmp / f"{name}.csv", index=False, lineterminator="\n")

    def commit(self, manifest: dict[str, Any]) -> Path:
        """Write manifest.json and switch `out` to the new version."""
        out = self.out
        try:
            for stream in self._streams:
                stream.close()
            manifest["written_by"] = WRITTEN_BY
            (self.tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8")
            _step("written")
            old = _replaceable(out)  # again: nothing foreign arrived during the work
            if old is not None and (old / ".gitkeep").is_file():
                shutil.copy2(old / ".gitkeep", self.tmp / ".gitkeep")
            self._link = out.parent / f".{out.name}.link-{self.tmp.name.rsplit('-', 1)[-1]}"
            os.symlink(self.tmp.name, self._link)  # relative: the data folder can be moved as a whole
            _step("linked")
            if old is None or out.is_symlink():
                os.replace(self._link, out)  # the switch: one rename over the old link
            else:  # first run on a plain folder (clean's own, or empty): the link takes its place
                (out / MARKER).write_text(MARKER_TEXT, encoding="utf-8")
                _step("marked")
                old = _swap_in(self._link, out)
            self._swapped = True
            _step("swapped")
            if old is not None:
                _remove_if_own(old)
        except BaseException:
            self.abort()
            raise
        self._unlock()
        return out

    def abort(self) -> None:
        """Remove this run's new version (unless it is already the output)."""
        for stream in getattr(self, "_streams", []):
            try:
                stream.close()
            except Exception:  # noqa: BLE001 - a half-written file is removed with its folder below
                pass
        if not self._swapped:
            self._discard()
        self._unlock()

    def _discard(self) -> None:
        if self._link is not None and self._link.is_symlink():
            self._link.unlink()
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _unlock(self) -> None:
        if self._lock is not None:
            os.close(self._lock)  # closing releases the lock (as a kill does)
            self._lock = None

    def __enter__(self) -> ProcessedWriter:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is not None:
            self.abort()
        self._unlock()


# --- the output folder's ownership and the switch ------------------------------------------------
WRITTEN_BY = "outcomes clean"  # manifest.json's "written_by": the folder is clean's to replace
MARKER = ".written-by-outcomes-clean"  # in every folder clean makes, from its first moment
MARKER_TEXT = "Made by `outcomes clean`; the next run removes this folder unless --out points at it.\n"
OWN_FILES = frozenset(OUTPUT_FILES) | {MARKER, ".gitkeep"}
# manifests written before "written_by" existed all hold these keys
_LEGACY_MANIFEST_KEYS = frozenset({"contract_version", "package_version", "snapshot", "inputs", "outputs"})


def _step(name: str) -> None:
    """A named point of the output switch: `created`, `written`, `linked`, `marked`, `aside`,
    `swapped`. Does nothing; tests inject a kill here."""


def _location(out: Path) -> Path:
    """Where the output goes: `out`, or, when `out` is a symlink that is not clean's own, the
    place it points to (followed link by link; the user's links are never replaced)."""
    for _ in range(40):
        if not out.is_symlink() or _own_link(out):
            return out
        out = Path(os.path.normpath(os.path.join(out.parent.resolve(), os.readlink(out))))
    raise OutputError(f"{out}: too many levels of symbolic links")


def _own_link(path: Path) -> bool:
    """A symlink made by clean: it points to a `.<name>.v-*` folder beside it."""
    return path.is_symlink() and re.fullmatch(rf"\.{re.escape(path.name)}\.v-[^/]+", os.readlink(path)) is not None


def _replaceable(out: Path) -> Path | None:
    """The folder holding the current output (to remove after the switch), or None when there is
    none. Raises OutputError unless that folder is clean's own or empty."""
    if _own_link(out):
        current = out.parent / os.readlink(out)
        if not current.exists() and not current.is_symlink():
            return None  # dangling: nothing to keep
    elif not out.exists():
        return None
    else:
        current = out
    if current.is_symlink() or not current.is_dir():
        raise OutputError(f"{out} exists and is not a folder")
    entries = sorted(current.iterdir())
    foreign = [p.name + ("/" if p.is_dir() else "") for p in entries
               if p.name not in OWN_FILES or p.is_symlink() or not p.is_file()]
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise OutputError(f"refusing to replace {out}: it holds {shown}, not written by `outcomes clean`; "
                          "move them away or choose another --out (nothing was changed)")
    if any(p.name in OUTPUT_FILES for p in entries) and not _written_by_clean(current):
        raise OutputError(f"refusing to replace {out}: its files have no manifest.json written by "
                          "`outcomes clean`; move them away or choose another --out (nothing was changed)")
    return current


def _written_by_clean(folder: Path) -> bool:
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and (manifest.get("written_by") == WRITTEN_BY
                                           or _LEGACY_MANIFEST_KEYS <= manifest.keys())


def _is_own_leftover(folder: Path) -> bool:
    """A folder a clean run made (MARKER, or the `.new-` name of versions before it) holding only
    files clean writes."""
    try:
        entries = list(folder.iterdir())
    except OSError:
        return False
    marked = any(p.name == MARKER for p in entries) or ".new-" in folder.name
    return marked and all(p.name in OWN_FILES and p.is_file() and not p.is_symlink() for p in entries)


def _remove_leftovers(out: Path) -> None:
    """Remove what killed runs left beside `out`: their temporary links, and their folders when
    they are clean's own (see `_is_own_leftover`); never the current output, nothing else."""
    pattern = re.compile(rf"\.{re.escape(out.name)}\.(v|link|new)-.+")
    current = out.parent / os.readlink(out) if _own_link(out) else None
    for path in out.parent.iterdir():
        if not pattern.fullmatch(path.name) or path == current:
            continue
        if path.is_symlink():
            if ".link-" in path.name:
                path.unlink()
        elif path.is_dir() and _is_own_leftover(path):
            shutil.rmtree(path)


def _undo_half_switch(out: Path) -> None:
    """Where a first switch took two renames (see `_swap_in`) and was killed between them, put the
    old folder back at `out`."""
    if out.exists() or out.is_symlink():
        return
    for aside in sorted(out.parent.glob(f".{glob.escape(out.name)}.link-*-old")):
        if aside.is_dir() and not aside.is_symlink() and _is_own_leftover(aside):
            os.rename(aside, out)
            return


def _remove_if_own(folder: Path) -> None:
    """Remove the replaced output, if it still holds only clean's files (else the next run looks again)."""
    if _is_own_leftover(folder):
        shutil.rmtree(folder, ignore_errors=True)


def _swap_in(link: Path, out: Path) -> Path:
    """Put `link` where the plain folder `out` is, in one step where the system can
    (renameat2 RENAME_EXCHANGE: Linux, local file systems). Returns where the old folder went.
    Elsewhere two renames, with a moment without `out`; this happens once, on the first run."""
    if _exchange(link, out):
        return link
    aside = link.with_name(link.name + "-old")
    os.rename(out, aside)
    _step("aside")
    try:
        os.replace(link, out)
    except BaseException:
        os.rename(aside, out)
        raise
    return aside


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with renameat2(RENAME_EXCHANGE); False where unsupported."""
    import ctypes
    import errno

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _lock(folder: Path) -> int:
    """One clean at a time per output folder's parent (so no run removes another's work in
    progress); released when the descriptor closes, also when the process dies."""
    import fcntl

    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError as exc:
        raise OutputError(f"cannot open {folder}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise OutputError(f"another `outcomes clean` is writing into {folder}; run again when it has finished") from None
    return fd
