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

from outcomes.escaping import plot_text
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



def _strip(half: int, columns, monkeypatch) -> tuple[np.ndarray, list[str]]:
    """The text strip under photos `half` px wide, and the texts it drew (as matplotlib got them)."""
    drawn = []
    original = Figure.text

    def text(self, x, y, s, *args, **kwargs):
        drawn.append(s)
        return original(self, x, y, s, *args, **kwargs)

    monkeypatch.setattr(Figure, "text", text)
    strip = panels._text_strip(2 * half + panels.GAP, half, columns).astype(float).mean(axis=2)
    monkeypatch.undo()
    return strip, drawn


def _inside_the_columns(grey: np.ndarray, half: int) -> bool:
    """No ink in the gap between the two columns nor at the strip's right edge (where a text too
    long for the right column would be clipped)."""
    return grey[:, half:half + panels.GAP].min() > 250 and grey[:, -panels.MARGIN + 1:].min() > 250


@pytest.mark.parametrize("half", [panels.MAX_SIDE, panels.MAX_SIDE * 3 // 4, 300])  # landscape, portrait, a small crop
def test_every_registry_metric_line_is_drawn_in_full_under_its_photo(half, monkeypatch):
    """The report's value lines (patient._photo_values, as the panel gets them) are drawn whole within
    their photo's width, each on one line under a photo of full size: the old estimate of a character's width cut
    'Individual typology angle (ITA°): 45.1 degrees' with '…'."""
    import pandas as pd

    from outcomes import contract
    from outcomes.reports import patient

    names = [*contract.PHOTO_MEASURED_METRICS, *(m for m in contract.METRICS if m not in contract.PHOTO_MEASURED_METRICS)]
    me = patient.Patient("P001", "35-44", "III", "fine_lines", 4, 40.0, pd.Timestamp("2025-01-06"), {})
    for start in range(0, len(names), patient.PANEL_VALUES):
        chunk = names[start:start + patient.PANEL_VALUES]
        me.tables["outcomes"] = pd.DataFrame({"patient_id": "P001", "photo_id": ["ph-1", "ph-2"] * len(chunk),
                                              "metric": [m for m in chunk for _ in (0, 1)],
                                              "value": [-0.0123, -123.4] * len(chunk)})
        values = patient._photo_values(me, ("ph-1", "ph-2"), [])
        assert [v[0].split(":")[0] for v in values] == [contract.METRICS[m].label for m in chunk]
        columns = [["Baseline: week 0", *(v[0] for v in values)], ["Latest: week 12", *(v[1] for v in values)]]
        grey, drawn = _strip(half, columns, monkeypatch)
        texts = [plot_text(t) for column in columns for t in column]
        assert " ".join(drawn) == " ".join(texts)  # every text whole, no '…'
        if half >= panels.MAX_SIDE * 3 // 4:  # a photo of the panel's full size: each on one line
            assert drawn == texts
        assert _inside_the_columns(grey, half)


def test_a_text_wider_than_its_photo_goes_on_to_further_lines_in_full(monkeypatch):
    label = "Hydration of the lower eyelid, the clinic's own probe: 123 AU (corneometer, probe 2, left side)"
    hostile = "$x^2$" * 30  # one 150-character word: cut at characters, still drawn literally
    grey, drawn = _strip(300, [["Before", label], ["After", hostile]], monkeypatch)
    assert _inside_the_columns(grey, 300)
    size = panels.font_pt(grey.shape[1])
    assert _literal(label, False, size).shape[1] > 300  # the test's point: it does not fit on one line
    pieces = drawn[1:drawn.index("After")]
    assert len(pieces) >= 2 and " ".join(pieces) == label
    pieces = drawn[drawn.index("After") + 1:]
    assert len(pieces) >= 2 and "".join(pieces) == plot_text(hostile, max_length=len(hostile))
