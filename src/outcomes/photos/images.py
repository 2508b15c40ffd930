"""Loading one photo: bytes in, an oriented uint8 RGB array at the working size out, or a reason code.

Why one module: every way an image file can be unusable (missing, not an image, corrupt,
truncated, too small, too large) becomes a `PhotoError` with a short code here, so the photos
command writes a row that `outcomes clean` rejects with that code, and the run goes on.

Working size: a photo is measured at a reduced size, not its full resolution. The factor is the
largest of 1, 2, 4, 8 that keeps the long side at least `WORKING_LONG_SIDE` pixels (a 4000×3000
12-megapixel photo is measured at 2000×1500). JPEGs are decoded straight at that size (PIL's
draft mode: the decoder scales the DCT blocks, four times less work than a full decode); other
formats are decoded whole and reduced by the same factor (box average), so one photo gives the
same working size in any format. Regions given in full-resolution pixels are scaled alike.

From EXIF only the orientation (applied, then dropped) and DateTimeOriginal are read; nothing
else (GPS, serial numbers) leaves this module, not even through a log: PIL logs the value of every
EXIF tag it reads at DEBUG, so its TIFF reader's logger is kept at INFO.
"""
from __future__ import annotations

import io
import logging
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels, x1 and y1 exclusive

WORKING_LONG_SIDE = 1600  # pixels: the long side a photo is measured at (at least; see above)
MIN_SIDE = 200  # pixels: a shorter side below this holds no usable chart and skin region
MAX_PIXELS = 120_000_000  # a 100-megapixel medium-format photo passes; beyond, a decompression bomb
Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # PIL's own guard agrees with ours (it refuses twice this at open)
logging.getLogger("PIL.TiffImagePlugin").setLevel(logging.INFO)  # its DEBUG records hold EXIF values

_EXIF_IFD = 0x8769
_DATE_TIME_ORIGINAL = 0x9003
_ORIENTATION = 0x0112

# the reason codes a photo can fail with (docs/photos.md §command lists them for the reader)
ERRORS = {
    "missing_file": "the file named in the index does not exist",
    "unreadable": "the file exists but cannot be read (permissions, a folder, an I/O error)",
    "not_an_image": "not an image in a format read here (JPEG, PNG, TIFF, HEIC), or its header is broken",
    "corrupt": "the image data cannot be decoded",
    "truncated": "the file ends before the image data does",
    "too_small": f"the shorter side is under {MIN_SIDE} pixels",
    "too_large": f"more than {MAX_PIXELS:,} pixels",
    "no_capture_time": "no taken_at in the index and no EXIF DateTimeOriginal in the file",
    "region_outside": "the index's region is not inside the photo (full-resolution pixels, as displayed)",
    "measure_failed": "the image was read but the measurement failed on it",
}


class PhotoError(Exception):
    """A photo that cannot be measured; `code` is one of ERRORS."""

    def __init__(self, code: str):
        assert code in ERRORS, code
        self.code = code
        super().__init__(f"{code}: {ERRORS[code]}")


def _register_heif() -> None:
    from pillow_heif import register_heif_opener

    register_heif_opener()


_register_heif()


@dataclass(frozen=True)
class Probe:
    """What a photo's header says, without decoding the pixels."""

    size: tuple[int, int]  # (width, height) at full resolution, EXIF orientation applied
    taken_at: datetime | None  # EXIF DateTimeOriginal


@dataclass(frozen=True)
class Loaded:
    """A decoded photo at its working size."""

    rgb: np.ndarray  # uint8 H×W×3, EXIF orientation applied
    full_size: tuple[int, int]  # (width, height) at full resolution, oriented

    def scale_box(self, box: Box | None) -> Box | None:
        """A box in full-resolution pixels as the same box in working pixels (clipped to the image)."""
        if box is None:
            return None
        height, width = self.rgb.shape[:2]
        fx, fy = width / self.full_size[0], height / self.full_size[1]
        x0, y0, x1, y1 = box
        return (min(int(x0 * fx), width - 1), min(int(y0 * fy), height - 1),
                max(min(math.ceil(x1 * fx), width), 1), max(min(math.ceil(y1 * fy), height), 1))


def read_bytes(path: Path) -> bytes:
    """The file's bytes, or PhotoError missing_file / unreadable."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise PhotoError("missing_file") from exc
    except OSError as exc:  # a folder, permissions, an I/O error
        raise PhotoError("unreadable") from exc


def _open(data: bytes) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise PhotoError("too_large") from exc
    except (UnidentifiedImageError, SyntaxError, ValueError, EOFError, OSError) as exc:
        raise PhotoError("not_an_image") from exc
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise PhotoError("too_large")
    if min(width, height) < MIN_SIDE:
        raise PhotoError("too_small")
    return image


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(_ORIENTATION, 1))
    except Exception:  # a broken EXIF block is no orientation
        return 1


def probe(data: bytes) -> Probe:
    """The photo's oriented size and capture time from its header (PhotoError when it is no usable image)."""
    image = _open(data)
    width, height = image.size
    if _orientation(image) in (5, 6, 7, 8):  # a quarter turn: width and height swap
        width, height = height, width
    return Probe(size=(width, height), taken_at=capture_time(image))


def capture_time(image: Image.Image) -> datetime | None:
    """EXIF DateTimeOriginal ("YYYY:MM:DD HH:MM:SS"), or None when absent or not a date."""
    try:
        value = image.getexif().get_ifd(_EXIF_IFD).get(_DATE_TIME_ORIGINAL)
        text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
        return datetime.strptime(text.strip("\x00 ")[:19], "%Y:%m:%d %H:%M:%S")
    except Exception:  # absent, blank ("    :  :     :  :  "), or not a date
        return None


def working_factor(width: int, height: int) -> int:
    """The largest of 1, 2, 4, 8 keeping the long side at least WORKING_LONG_SIDE pixels."""
    factor = 1
    while factor < 8 and max(width, height) // (factor * 2) >= WORKING_LONG_SIDE:
        factor *= 2
    return factor


def shrink(rgb: np.ndarray, long_side: int) -> np.ndarray:
    """`rgb` reduced by the largest whole factor keeping its long side at least `long_side` (box average)."""
    factor = max(1, max(rgb.shape[:2]) // long_side)
    if factor == 1:
        return rgb
    return np.asarray(Image.fromarray(rgb).reduce(factor))


def decode(data: bytes) -> Loaded:
    """Decode a photo at its working size, oriented, as uint8 RGB (PhotoError when it cannot be)."""
    image = _open(data)
    width, height = image.size
    factor = working_factor(width, height)
    try:
        if factor > 1 and image.format == "JPEG":
            image.draft("RGB", (math.ceil(width / factor), math.ceil(height / factor)))
        image.load()
        oriented = ImageOps.exif_transpose(image)  # the orientation tag is applied and dropped
        if oriented.mode != "RGB":
            oriented = oriented.convert("RGB")
        target = max(width, height) / factor
        if max(oriented.size) >= 2 * target - 1:  # not scaled by the decoder (PNG, TIFF, HEIC)
            oriented = oriented.reduce(factor)
        rgb = np.asarray(oriented, dtype=np.uint8)
    except PhotoError:
        raise
    except (EOFError, OSError) as exc:  # PIL: "image file is truncated", or a decoder error
        raise PhotoError("truncated" if isinstance(exc, EOFError) or "truncat" in str(exc).lower()
                         else "corrupt") from exc
    except Exception as exc:  # SyntaxError (broken PNG chunk), ValueError, struct.error, ...
        raise PhotoError("corrupt") from exc
    full = (height, width) if _orientation(image) in (5, 6, 7, 8) else (width, height)
    return Loaded(rgb=np.ascontiguousarray(rgb), full_size=full)
