"""Before/after panel: the baseline and the latest photo of a view, side by side (issue 13, point 5).

Each photo is colour-corrected (the caller's correction, e.g. ``ColourCorrection.apply`` of
outcomes.photos.colour), the latest is aligned onto the baseline (outcomes.photos.registration),
both are cropped to the same box (the part the two photos share, within the skin region if one
is given), and the texts the caller gives (a label and metric values) are drawn under each.

Photos identify a person: a panel is for the patient report only (docs/reports.md). The PNG is
built from pixel arrays, so no EXIF (GPS, device serials) of the source files can reach it.
Every text is drawn as plain text through :func:`outcomes.escaping.plot_text` (no mathtext).
"""
from __future__ import annotations

import io
from collections.abc import Callable, Sequence

import numpy as np

from outcomes.escaping import plot_text
from outcomes.photos.images import Box
from outcomes.photos.registration import MIN_MATCH, Similarity, register
Correction = Callable[[np.ndarray], np.ndarray]  # float H×W×3 in 0..1 -> the same, corrected

MAX_SIDE = 700  # longer side (px) of each photo in the panel: a page column, not the camera's resolution
GAP = 12  # px of white between the two photos
DPI = 100  # of the text strip
PRINT_PT, PAGE_WIDTH_IN = 8.5, 6.7  # the texts print at 8.5 pt when the panel fills the page width (reports.show)


def font_pt(width: int) -> float:
    """Font size (pt at DPI) of the texts of a panel `width` px wide: 8.5 pt once printed page-wide."""
    return PRINT_PT * width / (PAGE_WIDTH_IN * DPI)


def _corrected(rgb: np.ndarray, correct: Correction | None) -> np.ndarray:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected a uint8 H×W×3 image, got {rgb.dtype} {rgb.shape}")
    if correct is None:
        return rgb
    out = np.asarray(correct(rgb.astype(float) / 255.0), dtype=float)
    return np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)


def shared_box(sim: Similarity, region: Box | None = None) -> Box:
    """The box (reference px) both photos cover once aligned, within `region` if given: the
    frame of the aligned photo is a tilted quadrilateral; this is the largest upright box whose
    sides stay inside its sides (exact for the small rotations of standardised photos)."""
    h, w = sim.reference_shape
    inverse = np.linalg.inv(sim.matrix())  # moving frame -> reference px
    tl, tr, bl, br = ((inverse @ np.array([x, y, 1.0]))[:2] for x, y in ((0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1)))
    x0, x1 = int(np.ceil(max(tl[0], bl[0], 0))), int(np.floor(min(tr[0], br[0], w - 1))) + 1
    y0, y1 = int(np.ceil(max(tl[1], tr[1], 0))), int(np.floor(min(bl[1], br[1], h - 1))) + 1
    if region is not None:
        x0, y0 = max(x0, int(region[0])), max(y0, int(region[1]))
        x1, y1 = min(x1, int(region[2])), min(y1, int(region[3]))
    if x1 - x0 < 16 or y1 - y0 < 16:
        raise ValueError("the two photos share too little of the frame to be shown side by side")
    return x0, y0, x1, y1


def aligned_pair(before: np.ndarray, after: np.ndarray, *, correct_before: Correction | None = None,
                 correct_after: Correction | None = None, region: Box | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The two photos as the panel shows them: corrected, `after` aligned onto `before`, both
    cropped to their :func:`shared_box` and scaled alike to at most MAX_SIDE px. A ValueError
    when they cannot be aligned credibly: two photos side by side unaligned would mislead."""
    from skimage.transform import resize

    first, latest = _corrected(before, correct_before), _corrected(after, correct_after)
    sim = register(first, latest)
    if sim.match < MIN_MATCH:
        raise ValueError("the two photos could not be aligned (another view, person or framing?)")
    x0, y0, x1, y1 = shared_box(sim, region)
    pair = [first[y0:y1, x0:x1], sim.apply(latest)[y0:y1, x0:x1]]
    factor = MAX_SIDE / max(y1 - y0, x1 - x0)
    if factor < 1:
        size = (max(1, round((y1 - y0) * factor)), max(1, round((x1 - x0) * factor)))
        pair = [np.clip(np.rint(resize(p, size, anti_aliasing=True, preserve_range=True)), 0, 255).astype(np.uint8)
                for p in pair]
    return pair[0], pair[1]


MARGIN = 4  # px of white left and right of each column's texts
MAX_TEXT = 160  # characters of one text at most (a registry line is ~50): only a hostile label is cut


def _fitted(text: str, room: float, measure: Callable[[str], float]) -> list[str]:
    """`text` as the lines it is drawn on, each at most `room` px wide by `measure` (the width of a
    text in the font that draws it): broken at spaces, a word wider than a line at characters.
    Nothing is dropped: the lines joined with spaces give `text` back (word breaks aside)."""
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        candidate = f"{current} {word}" if current else word
        if measure(candidate) <= room or not candidate.strip():
            current = candidate
            continue
        if current:
            lines.append(current)
        current = word
        while len(current) > 1 and measure(current) > room:  # a word wider than a line: cut where it fills one
            cut = 1
            while cut < len(current) - 1 and measure(current[:cut + 1]) <= room:
                cut += 1
            lines.append(current[:cut])
            current = current[cut:]
    lines.append(current)
    return lines


def _text_strip(width: int, half: int, columns: Sequence[Sequence[str]]) -> np.ndarray:
    """White strip of `width` px with each column's texts drawn as plain text under its photo; the
    first of each column in bold. A text wider than its photo goes on as many lines as it needs
    (widths measured by the renderer that draws them, in the font used), so a value is never cut."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.font_manager import FontProperties

    size = font_pt(width)
    line = size * DPI / 72 * 1.5  # px
    fig = Figure(figsize=(width / DPI, 1), dpi=DPI, facecolor="white")
    renderer = FigureCanvasAgg(fig).get_renderer()
    drawn: list[list[tuple[str, bool]]] = []
    for column in columns:
        pieces = []
        for j, text in enumerate(column):
            prop = FontProperties(family="DejaVu Sans", size=size, weight="bold" if j == 0 else "normal")
            # plot_text's one-line, bounded text; its only escape (\$ for $) undone to measure what is drawn
            plain = plot_text(text, max_length=MAX_TEXT).replace("\\$", "$")
            pieces += [(piece, j == 0) for piece in _fitted(
                plain, half - 2 * MARGIN, lambda s, p=prop: renderer.get_text_width_height_descent(s, p, ismath=False)[0])]
        drawn.append(pieces)
    height = int(line * max(len(c) for c in drawn) + line / 2)
    fig.set_size_inches(width / DPI, height / DPI)
    for i, pieces in enumerate(drawn):
        for j, (piece, bold) in enumerate(pieces):
            fig.text((i * (half + GAP) + MARGIN) / width, 1 - (line / 3 + j * line) / height,
                     plot_text(piece, max_length=MAX_TEXT), fontsize=size, family="DejaVu Sans",
                     fontweight="bold" if bold else "normal", ha="left", va="top", color="black")
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def before_after(before: np.ndarray, after: np.ndarray, *, correct_before: Correction | None = None,
                 correct_after: Correction | None = None, labels: tuple[str, str] = ("Before", "After"),
                 values: Sequence[tuple[str, str]] = (), region: Box | None = None) -> bytes:
    """PNG bytes of the before/after panel: the photos of :func:`aligned_pair` side by side,
    under each its label and, per row of `values`, the text for that photo (e.g.
    ("Redness a*: 14.2", "Redness a*: 11.0")). Texts are data: drawn literally."""
    from PIL import Image

    left, right = aligned_pair(before, after, correct_before=correct_before, correct_after=correct_after,
                               region=region)
    h, half = left.shape[:2]
    width = 2 * half + GAP
    photos = np.full((h, width, 3), 255, np.uint8)
    photos[:, :half], photos[:, half + GAP:] = left, right
    columns = [[labels[0], *(v[0] for v in values)], [labels[1], *(v[1] for v in values)]]
    strip = _text_strip(width, half, columns)
    panel = np.vstack([photos, strip[:, :width]])
    buf = io.BytesIO()
    Image.fromarray(panel, "RGB").save(buf, format="PNG")  # from pixels: no EXIF, no source metadata
    return buf.getvalue()
