"""Before/after panels (issue 13, point 5): a PNG whose halves are the registered, corrected
photos cropped alike, with no EXIF, and hostile texts drawn literally."""
from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image
from skimage.feature import match_template

from outcomes.photos import panels
from photo_factory import posed, skin

HOSTILE = ("Baseline $x^2$ <b>bold</b>", r"Latest $\frac{1}{0")


def _split(png: bytes, half: int, rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    pixels = np.asarray(image.convert("RGB"))
    return pixels[:rows, :half], pixels[:rows, half + panels.GAP:], pixels[rows:]


def test_halves_are_the_registered_photos_cropped_alike():
    before = skin((400, 300), seed=6)
    after = posed(before, 16, -8, 6, 1.05)
    left, right = panels.aligned_pair(before, after)
    assert left.shape == right.shape and left.shape[0] < 300 and left.shape[1] < 400  # cropped to what both cover
    # the left half is a piece of the baseline as taken; the right half shows the same skin there
    found = match_template(before.astype(float).mean(axis=2), left.astype(float).mean(axis=2))
    y, x = np.unravel_index(np.argmax(found), found.shape)
    assert found[y, x] > 0.99
    assert np.abs(right.astype(int) - left).mean() < 3.0 < np.abs(after[y:y + left.shape[0], x:x + left.shape[1]]
                                                                   .astype(int) - left).mean()
    png = panels.before_after(before, after, labels=("Before", "After"), values=[("a: 1", "a: 2")])
    shown_left, shown_right, _ = _split(png, left.shape[1], left.shape[0])
    np.testing.assert_array_equal(shown_left, left)
    np.testing.assert_array_equal(shown_right, right)


def test_corrections_are_applied_to_their_own_photo():
    before = skin((400, 300), seed=7)
    left, right = panels.aligned_pair(before, before.copy(), correct_after=lambda rgb: rgb * 0.5)
    assert np.abs(right.astype(float) - np.rint(left * 0.5)).mean() < 1.0
    with pytest.raises(ValueError, match="uint8"):
        panels.aligned_pair(before.astype(float), before)


def test_png_has_no_exif_even_from_a_photo_that_had_it(tmp_path):
    before = skin((400, 300), seed=8)
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "LeakyCam", "SerialX-123"  # make, model
    source = tmp_path / "with_exif.jpg"
    Image.fromarray(before).save(source, exif=exif)
    loaded = np.asarray(Image.open(source).convert("RGB"))
    png = panels.before_after(loaded, posed(loaded, 5, 3, 2, 1.0), labels=("Before", "After"))
    image = Image.open(io.BytesIO(png))
    assert not image.getexif() and "exif" not in image.info
    assert b"LeakyCam" not in png and b"SerialX" not in png and b"eXIf" not in png


def _literal(text: str, bold: bool, size: float) -> np.ndarray:
    """`text` drawn by matplotlib with math parsing off: how it looks when taken literally."""
    fig = Figure(figsize=(12, 1), dpi=panels.DPI, facecolor="white")
    FigureCanvasAgg(fig)
    fig.text(0.01, 0.5, text, fontsize=size, family="DejaVu Sans", fontweight="bold" if bold else "normal",
             va="center", parse_math=False)
    fig.canvas.draw()
    grey = np.asarray(fig.canvas.buffer_rgba())[..., :3].mean(axis=2)
    ink = np.argwhere(grey < 250)
    (y0, x0), (y1, x1) = ink.min(axis=0), ink.max(axis=0) + 1
    return grey[y0 - 1:y1 + 1, x0 - 1:x1 + 1]


def test_hostile_texts_are_drawn_literally():
    before = skin((400, 300), seed=9)
    png = panels.before_after(before, before.copy(), labels=HOSTILE, values=[("Redness: <i>12</i>", "=1+1 & $$")])
    left, _ = panels.aligned_pair(before, before.copy())
    _, _, strip = _split(png, left.shape[1], left.shape[0])
    grey = strip.astype(float).mean(axis=2)
    size = panels.font_pt(strip.shape[1])
    for text, bold in [(HOSTILE[0], True), (HOSTILE[1], True), ("Redness: <i>12</i>", False), ("=1+1 & $$", False)]:
        assert match_template(grey, _literal(text, bold, size)).max() > 0.95, text
    # the check can fail: the same label typeset as mathtext (x squared) is not what the panel shows
    typeset = Figure(figsize=(12, 1), dpi=panels.DPI, facecolor="white")
    FigureCanvasAgg(typeset)
    typeset.text(0.01, 0.5, HOSTILE[0], fontsize=size, family="DejaVu Sans", fontweight="bold", va="center")
    typeset.canvas.draw()
    maths = np.asarray(typeset.canvas.buffer_rgba())[..., :3].mean(axis=2)
    ink = np.argwhere(maths < 250)
    (y0, x0), (y1, x1) = ink.min(axis=0), ink.max(axis=0) + 1
    assert match_template(grey, maths[y0 - 1:y1 + 1, x0 - 1:x1 + 1]).max() < 0.9


def test_photos_that_cannot_be_aligned_are_not_paired():
    with pytest.raises(ValueError, match="could not be aligned"):
        panels.aligned_pair(skin((400, 300), seed=10), skin((400, 300), seed=11))
