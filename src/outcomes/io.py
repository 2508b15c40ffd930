"""Reading raw exports and writing/reading processed tables.

Why one module: every way a clinic export can be broken at the *file* level (missing,
empty, binary, not UTF-8, wrong delimiter, odd headers) is caught here, before any
row-level cleaning, with an error that names the file (and column). The processed folder is
switched to a new output in one atomic step, so no run (failed or killed) leaves half-new data.
"""
from __future__ import annotations

import csv
import glob
import gzip
import hashlib
import json
import mmap
import os
import re
import shutil
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from outcomes import contract, escaping

FIRST_DATA_ROW = 2  # source_row of the first data row: the header is row 1, as in a spreadsheet


class RawDataError(Exception):
    """A raw file (or a required column in it) is missing or cannot be read.

    Fatal: `outcomes clean` exits with code 2 and writes nothing.
    """

    def __init__(self, message: str, *, file: str | os.PathLike | None = None, column: str | None = None):
        self.file = str(file) if file is not None else None
        self.column = column
        self.message = message
        super().__init__(message)


class OutputError(Exception):
    """The output folder cannot be written safely (nothing was changed)."""


@dataclass
class RawTable:
    """One raw table after reading and header mapping; cells untouched (text or typed)."""

    name: str
    path: Path
    frame: pd.DataFrame  # canonical column names; string cells (CSV/xlsx) or typed (parquet)
    delimiter: str | None = None  # CSV only
    decimal_comma: bool = False  # numbers may use ',' as decimal mark (';'-delimited CSV)
    ignored_columns: list[str] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)  # raw header -> canonical name

    @property
    def rows(self) -> int:
        return len(self.frame)

    @cached_property
    def sha256(self) -> str:
        """The file's sha256 (for the manifest)."""
        return file_sha256(self.path)

    @property
    def source_rows(self) -> np.ndarray:
        """Row number of each data row as seen in the file (header = row 1)."""
        return np.arange(FIRST_DATA_ROW, FIRST_DATA_ROW + len(self.frame), dtype=np.int64)


# --- finding files ------------------------------------------------------------
def find_raw_file(raw_dir: Path, table: str) -> tuple[Path | None, list[Path]]:
    """The file holding `table` (first of .csv, .csv.gz, .parquet, .xlsx), plus any others ignored.

    File names are matched case-insensitively (`Patients.CSV` is fine).
    """
    by_lower = {p.name.lower(): p for p in sorted(raw_dir.iterdir()) if p.is_file()}
    found = [by_lower[table + suffix] for suffix in contract.SUFFIXES if table + suffix in by_lower]
    return (found[0] if found else None), found[1:]


# --- headers ------------------------------------------------------------------
def normalise_header(name: Any) -> str:
    """`' Patient ID'` -> `patient_id`: trim, lower case, spaces and hyphens to underscores."""
    text = str(name).replace("\ufeff", "").strip().lower()
    text = re.sub(r"[\s\-]+", "_", text)
    return re.sub(r"_+", "_", text)


def map_columns(table: str, headers: list[str], file: str | Path) -> tuple[dict[str, str], list[str]]:
    """Map raw headers to canonical names using the contract's aliases.

    Returns ({raw header: canonical}, [ignored raw headers]). A canonical name wins over an
    alias of it; the first of two headers that mean the same thing wins; unknown headers are
    ignored (and reported as a note). Raises RawDataError for missing required columns.
    """
    positions, ignored = _map_positions(table, headers, file)
    return {headers[p]: canonical for p, canonical in positions.items()}, ignored


def _map_positions(table: str, headers: list[str], file: str | Path) -> tuple[dict[int, str], list[str]]:
    """map_columns by position ({column position: canonical name}, in file order)."""
    columns = contract.COLUMNS[table]
    lookup: dict[str, str] = {}
    for col in columns:  # aliases first so that canonical names overwrite them
        for alias in col.aliases:
            lookup.setdefault(alias, col.name)
    priority = {col.name: 0 for col in columns}
    ranks: dict[str, tuple[int, int]] = {}
    for position, raw in enumerate(headers):
        key = normalise_header(raw)
        canonical = key if key in priority else lookup.get(key)
        if canonical is None:
            continue
        rank = (0 if key == canonical else 1, position)
        if canonical not in ranks or rank < ranks[canonical]:
            ranks[canonical] = rank
    positions = dict(sorted((position, canonical) for canonical, (_, position) in ranks.items()))
    ignored = [str(h) for i, h in enumerate(headers) if i not in positions]
    present = set(positions.values())
    shown = ", ".join(repr(h) for h in headers) or "none"
    for col in columns:
        if col.required and col.name not in present:
            aliases = f" (or {', '.join(col.aliases)})" if col.aliases else ""
            raise RawDataError(
                f"{Path(file).name}: required column '{col.name}'{aliases} is missing; "
                f"columns found: {shown}",
                file=file, column=col.name,
            )
    if table == "patients" and not present & set(contract.AGE_SOURCES):
        raise RawDataError(
            f"{Path(file).name}: needs a column 'age' or 'birth_date' (or dob, date_of_birth); "
            f"columns found: {shown}",
            file=file, column="age",
        )
    return positions, ignored


# --- reading ------------------------------------------------------------------
# CSV text is read straight into arrow dictionaries (pandas categoricals): every distinct cell is
# then normalised once. Columns with about one distinct value per row are read as plain text.
_TEXT = pa.dictionary(pa.int32(), pa.large_string())
DENSE_COLUMNS = frozenset({"photo_id"})
_BOM = b"\xef\xbb\xbf"


def read_raw_table(path: str | os.PathLike, table: str) -> RawTable:
    """Read one raw file into a RawTable (canonical headers), or raise RawDataError naming it."""
    path = Path(path)
    data = _read_bytes(path)
    frame, headers, positions, ignored, delimiter = _parse(path, data, table)
    return RawTable(
        name=table, path=path, frame=frame, delimiter=delimiter,
        decimal_comma=delimiter == ";", ignored_columns=ignored,
        renamed={headers[p]: c for p, c in positions.items() if headers[p] != c},
    )


def _parse(path: Path, data, table: str | None) -> tuple[pd.DataFrame, list[str], dict[int, str], list[str], str | None]:
    """The frame (canonical columns when `table` is given), raw headers, their mapping, ignored headers, delimiter."""
    name = path.name.lower()
    if name.endswith((".parquet", ".xlsx")):
        frame = _read_parquet(path, data) if name.endswith(".parquet") else _read_xlsx(path, data)
        headers = [str(h) for h in frame.columns]
        if table is None:
            return frame.set_axis(headers, axis=1), headers, {}, [], None
        positions, ignored = _map_positions(table, headers, path)
        frame = frame.iloc[:, list(positions)].set_axis(list(positions.values()), axis=1)
        return frame, headers, positions, ignored, None
    if name.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zipfile.BadZipFile) as exc:
            raise RawDataError(f"{path.name}: not a readable gzip file ({exc})", file=path) from exc
    return _read_csv(path, data, table)


def read_raw_frame(path: str | os.PathLike) -> tuple[pd.DataFrame, str]:
    """Read any supported raw file without header mapping (for side files such as metrics.csv)."""
    path = Path(path)
    data = _read_bytes(path)
    frame = _parse(path, data, None)[0]
    return frame.rename(columns=normalise_header), file_sha256(path)


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, as hex."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _read_bytes(path: Path):
    """The file's bytes, memory-mapped (no copy of a big export); raises RawDataError when empty."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
    except OSError as exc:
        raise RawDataError(f"{path.name}: cannot be read ({exc.strerror})", file=path) from exc
    blank = _BOM + b" \t\r\n"
    if not data[:4096].strip(blank) and not bytes(data).strip(blank):
        raise RawDataError(f"{path.name}: the file is empty", file=path)
    return data


def _utf8_error(path: Path, data) -> RawDataError | None:
    try:
        str(memoryview(data), "utf-8")
    except UnicodeDecodeError as exc:
        data = bytes(data[: exc.start + 1])
        line = data.count(b"\n", 0, exc.start) + 1
        byte = data[exc.start]
        hint = " (it looks like Latin-1/Windows-1252)" if byte >= 0x80 else ""
        return RawDataError(
            f"{path.name}: not UTF-8 text: byte 0x{byte:02x} at offset {exc.start} (line {line}) "
            f"cannot be decoded{hint}; save the export as UTF-8 (in Excel: 'CSV UTF-8')",
            file=path,
        )
    return None


def _read_csv(path: Path, data, table: str | None) -> tuple[pd.DataFrame, list[str], dict[int, str], list[str], str]:
    buffer = pa.py_buffer(data)
    if data[:3] == _BOM:
        buffer = buffer.slice(3)
    head = buffer.slice(0, min(65536, buffer.size)).to_pybytes()
    if not head.strip():
        raise RawDataError(f"{path.name}: the file is empty", file=path)
    if b"\x00" in head:
        if head.startswith((b"\xff\xfe", b"\xfe\xff")) or head[1:2] == b"\x00":
            why = "looks like UTF-16 text"
        elif head.startswith((b"PK\x03\x04", b"PAR1", b"\x1f\x8b")):
            why = "is a zip/xlsx, parquet or gzip file with a .csv name"
        else:
            why = "is binary, not CSV text"
        raise RawDataError(f"{path.name}: {why}; expected UTF-8 CSV", file=path)
    end = head.find(b"\n")
    header_bytes = head if end < 0 else head[:end]
    error = _utf8_error(path, header_bytes)
    if error is not None:
        raise error
    header_line = header_bytes.decode("utf-8").rstrip("\r")
    delimiter = ";" if header_line.count(";") > header_line.count(",") else ","
    headers = next(iter(csv.reader([header_line], delimiter=delimiter)), [])
    if not [h for h in headers if h.strip()]:
        raise RawDataError(f"{path.name}: the first line holds no column names", file=path)
    if table is None:
        positions, ignored = {i: h for i, h in enumerate(headers)}, []
    else:
        positions, ignored = _map_positions(table, headers, path)  # a missing column fails before the work
    # unique names for arrow; duplicates keep their position
    names = [f"{h}\x00{i}" if headers.index(h) != i else h for i, h in enumerate(headers)]
    wanted = [names[i] for i in positions]
    try:
        read = pacsv.read_csv(
            buffer,
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1, block_size=16 << 20),
            parse_options=pacsv.ParseOptions(delimiter=delimiter),
            convert_options=pacsv.ConvertOptions(
                include_columns=wanted,
                column_types={names[i]: pa.large_string() if c in DENSE_COLUMNS else _TEXT for i, c in positions.items()},
                null_values=contract.missing_text_spellings(), strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
    except pa.ArrowInvalid as exc:
        error = _utf8_error(path, data) if "UTF8" in str(exc) or "utf8" in str(exc).lower() else None
        if error is not None:
            raise error from exc
        raise RawDataError(f"{path.name}: cannot be parsed as CSV ({exc})", file=path) from exc
    frame = _raw_frame(read).set_axis(list(positions.values()), axis=1)
    return frame, headers, positions, ignored, delimiter


def _raw_frame(table: pa.Table) -> pd.DataFrame:
    """pandas view of the cells read: dictionaries become categoricals (codes + the distinct
    texts, nothing copied per row), plain text the `str` dtype."""
    def column_of(column: pa.ChunkedArray):
        if pa.types.is_dictionary(column.type):
            return _categorical(column)
        # one buffer, not one per block: later steps use it as it is (no second copy)
        return pd.array(column.cast(pa.large_string()).combine_chunks() if column.num_chunks
                        else pa.array([], pa.large_string()), dtype="str")

    return pd.DataFrame(dict(enumerate(map(column_of, table.columns))), copy=False)


def _categorical(column: pa.ChunkedArray) -> pd.Categorical:
    """A dictionary column read in blocks (each block has its own dictionary) as one categorical:
    arrow unifies the dictionaries, pandas keeps the codes in the narrowest integer type."""
    column = column.unify_dictionaries()
    if not column.num_chunks:
        return pd.Categorical.from_codes([], categories=pd.Index([], dtype="str"))
    codes = pa.chunked_array([c.indices for c in column.chunks]).fill_null(-1).to_numpy()
    categories = pd.Index(pd.array(column.chunk(0).dictionary.cast(pa.large_string()), dtype="str"))
    return pd.Categorical.from_codes(codes, categories=categories, validate=False)


def _read_parquet(path: Path, data) -> pd.DataFrame:
    try:
        table = pq.read_table(pa.BufferReader(pa.py_buffer(data)))
    except (pa.ArrowException, OSError) as exc:
        raise RawDataError(f"{path.name}: cannot be read as parquet ({exc})", file=path) from exc
    columns = []
    for col in table.columns:
        if pa.types.is_string(col.type):
            col = col.cast(pa.large_string())  # what pandas' str dtype holds
        columns.append(col)
    return pa.table(columns, names=table.column_names).to_pandas()


def _read_xlsx(path: Path, data) -> pd.DataFrame:
    import io as _io

    try:
        frame = pd.read_excel(_io.BytesIO(data), sheet_name=0, dtype=object, engine="openpyxl")
    except Exception as exc:  # openpyxl raises many kinds for a broken workbook
        raise RawDataError(f"{path.name}: cannot be read as an Excel workbook ({exc})", file=path) from exc
    if frame.columns.empty:
        raise RawDataError(f"{path.name}: the first sheet is empty", file=path)
    out = {}
    for i, name in enumerate(frame.columns):
        col = frame.iloc[:, i]
        values = col.dropna()
        kinds = {type(v) for v in values}
        if kinds and all(issubclass(k, (pd.Timestamp, np.datetime64)) or k.__name__ == "datetime" for k in kinds):
            out[i] = pd.to_datetime(col)
        else:
            out[i] = col.map(_excel_text, na_action="ignore").astype("str")
    return pd.DataFrame(out).set_axis(list(frame.columns), axis=1)


def _excel_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# --- writing ------------------------------------------------------------------
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


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with every text cell passed through :func:`outcomes.escaping.csv_cell`.

    Every CSV the project writes goes through here: a person opens these files in a
    spreadsheet, and a raw value such as ``=HYPERLINK(...)`` must show as text, not run. Only
    cells that start like a formula are looked at one by one (a vectorised test picks them),
    so a big table costs one pass per text column.
    """
    out = frame.copy(deep=False)
    for name in out.columns:
        column = out[name]
        if not (pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column)
                or isinstance(column.dtype, pd.CategoricalDtype)):
            continue
        text = column.astype("str")
        risky = text.str.startswith(escaping.FORMULA_START).fillna(False).to_numpy(dtype=bool)
        if risky.any():
            column = column.astype(object)
            column[risky] = [escaping.csv_cell(v) for v in column[risky]]
            out[name] = column
    return out


class ParquetStream:
    """One parquet file written batch by batch in a background thread (parquet encoding releases
    the GIL); at most `ahead` batches wait, so memory stays bounded.

    Columns named in `required` are declared non-nullable, as are floating-point columns (a
    missing number is NaN, never an arrow null): parquet then stores no definition levels for
    them (a fifth of the encoding time of the big tables). A null in such a column stops the
    write with an error; it is never written silently.
    """

    def __init__(self, path: Path, ahead: int = 2, required: frozenset[str] = frozenset()):
        self.path = path
        self.ahead = ahead
        self.required = required
        self._schema: pa.Schema | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"write-{path.stem}")
        self._pending: list = []
        self._writer: pq.ParquetWriter | None = None

    def write(self, batch: pa.RecordBatch) -> None:
        self._pending.append(self._thread.submit(self._write, batch))
        while len(self._pending) > self.ahead:
            self._pending.pop(0).result()

    def _write(self, batch: pa.RecordBatch) -> None:
        if self._writer is None:
            self._schema = pa.schema([f.with_nullable(f.name not in self.required and not pa.types.is_floating(f.type))
                                      for f in batch.schema])
            self._writer = pq.ParquetWriter(self.path, self._schema, **_parquet_options(self._schema))
        self._writer.write_batch(pa.RecordBatch.from_arrays(batch.columns, schema=self._schema))

    def close(self) -> None:
        """Finish the file once the batches before are written (`wait` waits for that)."""
        self._pending.append(self._thread.submit(lambda: self._writer.close() if self._writer else None))

    def wait(self) -> None:
        try:
            for job in self._pending:
                job.result()
        finally:
            self._pending.clear()
            self._thread.shutdown(wait=True, cancel_futures=True)


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

    `write` starts writing one table in the background (parquet encoding releases the GIL, so
    it overlaps the rest of the work), `write_csv` writes a CSV; `commit` waits for the parquet
    files, writes the manifest and switches; `abort` (or any exception inside `with`) removes
    the new version, leaving the earlier output untouched.
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
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="write-parquet")
        self._jobs: list = []
        self._streams: list[ParquetStream] = []

    def write(self, name: str, table: pa.Table | pd.DataFrame) -> None:
        """Start writing <name>.parquet into the temporary folder."""
        self._jobs.append(self._pool.submit(_write_parquet, table, self.tmp / f"{name}.parquet"))

    def stream(self, name: str, required: frozenset[str] = frozenset()) -> ParquetStream:
        """<name>.parquet in the temporary folder, to be written batch by batch (then closed)."""
        self._streams.append(ParquetStream(self.tmp / f"{name}.parquet", required=required))
        return self._streams[-1]

    def write_csv(self, name: str, frame: pd.DataFrame) -> None:
        """Write <name>.csv into the temporary folder (now, in the calling thread), its text
        cells made safe for a spreadsheet (:func:`spreadsheet_safe`)."""
        spreadsheet_safe(frame).to_csv(self.tmp / f"{name}.csv", index=False, lineterminator="\n")

    def commit(self, manifest: dict[str, Any]) -> Path:
        """Finish the parquet files, write manifest.json, and switch `out` to the new version."""
        out = self.out
        try:
            for job in self._jobs:
                job.result()
            for stream in self._streams:
                stream.wait()
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
        self._pool.shutdown()
        self._unlock()
        return out

    def abort(self) -> None:
        """Stop the writers and remove this run's new version (unless it is already the output)."""
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)  # no writer may still be busy in the folder
        for stream in getattr(self, "_streams", []):
            stream._thread.shutdown(wait=True, cancel_futures=True)
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


# --- reading processed data -----------------------------------------------------
_NULLABLE = {"session_number": "Int64", "makeup": "boolean"}  # columns of pandas' nullable dtypes


def load_processed(processed_dir: str | os.PathLike | None = None) -> dict[str, pd.DataFrame]:
    """The processed tables (None or "": the project's data/processed) as a dict of DataFrames
    with their contract dtypes; FileNotFoundError saying what to do when there are none.

    Keys: patients, sessions, measurements, outcomes, rejected, and assessments /
    adverse_events / data_quality when present. `skin_type` is an ordered categorical
    I < ... < VI (NaN = unknown); text columns are pandas `str`.
    """
    folder = _processed_folder(processed_dir)
    if not (folder / "outcomes.parquet").is_file():
        raise FileNotFoundError(
            f"{folder} holds no processed data (no outcomes.parquet); run `outcomes clean` (or `make data`) first"
        )
    tables: dict[str, pd.DataFrame] = {}
    for path in sorted(folder.glob("*.parquet")):
        tables[path.stem] = frame_from_arrow(pq.read_table(path))
    for stem in ("rejected", "data_quality"):
        path = folder / f"{stem}.csv"
        if path.is_file():
            tables[stem] = pd.read_csv(path, dtype={"value": "str", "source_row": "Int64"}, keep_default_na=False, na_values=[""])
    return tables


def load_manifest(processed_dir: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """The manifest.json of a processed folder (None or "": the project's data/processed), or
    None when there is none."""
    path = _processed_folder(processed_dir) / "manifest.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _processed_folder(processed_dir: str | os.PathLike | None) -> Path:
    from outcomes import config

    return Path(processed_dir) if processed_dir else config.PROCESSED_DIR


def frame_from_arrow(table: pa.Table) -> pd.DataFrame:
    """A processed table as pandas with the contract dtypes: text (stored as dictionaries) as
    `str`, `skin_type` as the ordered categorical, nullable integers/booleans where the contract has them."""
    columns = {}
    for name, column in zip(table.column_names, table.columns):
        kind = column.type
        if name == "skin_type":
            columns[name] = _skin_types(column)
        elif pa.types.is_dictionary(kind) or _is_text(kind):
            text = column.cast(pa.large_string()) if column.num_chunks else pa.chunked_array([], pa.large_string())
            columns[name] = pd.array(text, dtype="str")
        elif name in _NULLABLE:
            mask = column.is_null().to_numpy(zero_copy_only=False)
            filled = column.fill_null(False if pa.types.is_boolean(kind) else 0).to_numpy(zero_copy_only=False)
            nullable = pd.arrays.BooleanArray if _NULLABLE[name] == "boolean" else pd.arrays.IntegerArray
            columns[name] = nullable(filled.astype(bool if _NULLABLE[name] == "boolean" else np.int64), mask)
        elif pa.types.is_timestamp(kind):
            columns[name] = column.to_numpy().astype("datetime64[ns]")
        else:
            columns[name] = column.to_numpy()
    return pd.DataFrame(columns, columns=table.column_names, copy=False)


def _skin_types(column: pa.ChunkedArray) -> pd.Categorical:
    dtype = contract.SKIN_TYPE_DTYPE
    if pa.types.is_dictionary(column.type) and column.num_chunks:
        column = column.unify_dictionaries() if column.num_chunks > 1 else column
        chunks = column.chunks
        position = np.array([list(dtype.categories).index(v) if v in dtype.categories else -1
                             for v in chunks[0].dictionary.to_pylist()] + [-1], dtype=np.int8)
        indices = pa.chunked_array([c.indices for c in chunks]).fill_null(-1).to_numpy().astype(np.int64)
        return pd.Categorical.from_codes(position[indices], dtype=dtype)
    return pd.Categorical(column.to_pandas(), dtype=dtype)
