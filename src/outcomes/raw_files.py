"""Reading raw clinic exports: finding each table's file, mapping its headers, reading its cells.

Why one module: every way a clinic export can be broken at the *file* level (missing, empty,
binary, not UTF-8, wrong delimiter, odd headers) is caught here, before any row-level cleaning,
with an error that names the file (and column). Cells come out untouched: the cleaning modules
normalise them.
"""
from __future__ import annotations

import csv
import gzip
import hashlib
import mmap
import os
import re
import zipfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from outcomes import contract

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
    source: str = contract.DEFAULT_SOURCE  # photo_metrics.<source>.csv: the name part (else "export")

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


def find_sourced_files(raw_dir: Path, table: str) -> dict[str, tuple[Path, list[Path]]]:
    """Every `<table>.<source>.<suffix>` file in `raw_dir` (several photo_metrics files, one per
    source): {source: (the file read, other formats of it ignored)}, sources in name order.

    `source` is letters, digits, `_` and `-`; matched case-insensitively, kept as written.
    """
    pattern = re.compile(re.escape(table) + r"\.([A-Za-z0-9_-]+)(" + "|".join(map(re.escape, contract.SUFFIXES)) + ")",
                         re.IGNORECASE)
    found: dict[str, list[tuple[int, Path]]] = {}
    for path in sorted(raw_dir.iterdir()):
        match = pattern.fullmatch(path.name)
        if match and path.is_file():
            found.setdefault(match.group(1), []).append((contract.SUFFIXES.index(match.group(2).lower()), path))
    return {source: (min(paths)[1], [p for _, p in sorted(paths)[1:]]) for source, paths in sorted(found.items())}


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
