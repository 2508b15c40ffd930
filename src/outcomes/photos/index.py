"""The photo index (`index.csv` in the photos folder): which photo is whose, when, and which view.

Why strict: the index is the one place a person types paths. A bad row stops the run before any
photo is measured, with an error naming the file, the row and the column (exit 2); a path that
leaves the photos folder (absolute, `..`, a link pointing outside) is refused, since the command
reads what the index names. Cells are otherwise data: any text is a valid id.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath, PureWindowsPath

from outcomes import contract
from outcomes.cleaning import normalise as nz
from outcomes.photos.images import Box
from outcomes.raw_files import FIRST_DATA_ROW, normalise_header

INDEX_NAME = "index.csv"
REQUIRED = ("patient_id", "photo_id", "file")
OPTIONAL = ("taken_at", "view", "region")


class PhotoIndexError(Exception):
    """A problem in the index: `file`, `row` (header = 1, as in a spreadsheet) and `column` say where."""

    def __init__(self, message: str, *, file: Path, row: int | None = None, column: str | None = None):
        self.file, self.row, self.column = file, row, column
        where = file.name + (f", row {row}" if row is not None else "") + (f", column '{column}'" if column else "")
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Entry:
    """One row of the index, validated."""

    row: int  # as in a spreadsheet (header = row 1)
    patient_id: str
    photo_id: str
    taken_at: datetime | None  # None: EXIF DateTimeOriginal is used
    view: str  # one of contract.VIEWS
    file: str  # as written in the index (relative to the photos folder)
    path: Path  # photos folder / file
    region: Box | None  # full-resolution pixels of the oriented photo, x1/y1 exclusive


def read_index(photos: Path) -> list[Entry]:
    """Read and validate `photos/index.csv` (PhotoIndexError naming file, row and column)."""
    photos = Path(photos)
    path = photos / INDEX_NAME
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise PhotoIndexError(f"not found in {photos}", file=path) from None
    except UnicodeDecodeError as exc:
        raise PhotoIndexError(f"not UTF-8 text (byte offset {exc.start})", file=path) from None
    except OSError as exc:
        raise PhotoIndexError(f"cannot be read ({exc.strerror})", file=path) from None
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise PhotoIndexError("the first line holds no column names", file=path, row=1)
    headers = [normalise_header(h) for h in rows[0]]
    for column in REQUIRED:
        if column not in headers:
            raise PhotoIndexError(f"required column '{column}' is missing; columns found: "
                              + ", ".join(repr(h) for h in rows[0]), file=path, row=1, column=column)
    position = {name: headers.index(name) for name in (*REQUIRED, *OPTIONAL) if name in headers}
    root = photos.resolve()
    entries, seen = [], {}
    for number, cells in enumerate(rows[1:], start=FIRST_DATA_ROW):
        if not any(cell.strip() for cell in cells):
            continue  # a blank line
        if len(cells) != len(headers):
            raise PhotoIndexError(f"{len(cells)} fields where the header has {len(headers)}", file=path, row=number)
        cell = {name: cells[i].strip() for name, i in position.items()}

        def fail(column: str, message: str) -> PhotoIndexError:
            return PhotoIndexError(message, file=path, row=number, column=column)

        for column in REQUIRED:
            if not cell[column]:
                raise fail(column, "blank")
        if cell["photo_id"] in seen:
            raise fail("photo_id", f"photo id already used on row {seen[cell['photo_id']]}")
        seen[cell["photo_id"]] = number
        entries.append(Entry(
            row=number, patient_id=cell["patient_id"], photo_id=cell["photo_id"],
            taken_at=_taken_at(cell.get("taken_at", ""), fail), view=_view(cell.get("view", ""), fail),
            file=cell["file"], path=_inside(root, cell["file"], fail), region=_region(cell.get("region", ""), fail),
        ))
    return entries


def _inside(root: Path, name: str, fail) -> Path:
    """photos folder / name, refused when it is absolute, climbs with `..`, or resolves outside."""
    if PurePosixPath(name).is_absolute() or PureWindowsPath(name).drive or PureWindowsPath(name).root:
        raise fail("file", "an absolute path; give the path relative to the photos folder")
    if ".." in PureWindowsPath(name).parts or ".." in PurePosixPath(name).parts:
        raise fail("file", "'..' is not allowed: the file must be inside the photos folder")
    if "\x00" in name:
        raise fail("file", "a NUL character in the path")
    path = root / name
    resolved = path.resolve()  # follows links, also of folders on the way
    if resolved != root and root not in resolved.parents:
        raise fail("file", "leads outside the photos folder (through a symbolic link)")
    return path


def _taken_at(text: str, fail) -> datetime | None:
    if not text:
        return None
    parsed = nz.parse_date(text)
    if parsed.value is None:
        raise fail("taken_at", f"{parsed.reason}: use YYYY-MM-DD or YYYY-MM-DD HH:MM:SS, or leave blank for EXIF")
    return parsed.value.to_pydatetime()


def _view(text: str, fail) -> str:
    parsed = nz.view(text)
    if parsed.value is None:
        raise fail("view", "unknown view; one of " + ", ".join(contract.VIEWS))
    return parsed.value


def region_text(region: Box | None) -> str:
    """A region as index.csv (and `outcomes photos`' output) write it: `x0,y0,x1,y1`, blank for the
    automatic one; :func:`_region` reads it back."""
    return "" if region is None else ",".join(str(v) for v in region)


def _region(text: str, fail) -> Box | None:
    if not text:
        return None
    parts = [p.strip() for p in text.split(",")]
    try:
        x0, y0, x1, y1 = (int(p) for p in parts)
    except ValueError:
        raise fail("region", "expected four whole numbers x0,y0,x1,y1 (pixels)") from None
    if not (0 <= x0 < x1 and 0 <= y0 < y1):
        raise fail("region", "expected 0 <= x0 < x1 and 0 <= y0 < y1")
    return (x0, y0, x1, y1)
