"""Photos with recorded truth: rendered skin with a ColorChecker in frame, under varied light.

Why: every photo metric must be checked against a known answer. `render_photo` draws a skin
region whose colour, pigmented spots, lines and fine relief are known (`SkinTruth`), next to an
X-Rite ColorChecker Classic drawn from its reference values, then "photographs" it: a colour cast
from an illuminant of the given colour temperature (von Kries adaptation of the scene's
reflectance-like colours), exposure, shift/rotation/scale, optical blur, sensor noise and JPEG.
`simulate_photos` gives a sample of the cohort simulator's patients such photos at each visit, with
the skin changing as the cohort's truth says. Everything is in docs/photos.md §simulator.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from outcomes.photos.colour import Box, lab_to_linear, linear_to_srgb, reference_linear

# Scene layout, as fractions of the image height (skin box) or width/height (chart).
SKIN_SIDE = 0.5  # the skin box is a square of this share of the image height ...
SKIN_CENTRE = (0.70, 0.50)  # ... centred here (x as share of width, y of height)
CHART_AT = (0.06, 0.52, 0.38)  # chart's left, top (shares of width, height) and right; 3:2 as the real one
MIN_CANVAS_H = 1024  # texture is drawn at least this tall, then resampled to the output size
FEATURE_UNIT = 1 / 256  # feature sizes in shares of the skin box side (1 px at the measuring size)

# Texture constants (ASSUMPTIONS, chosen to look like facial skin at ~0.1 mm per unit)
SPOT_SIGMA = 4.0  # units: smoothing of the spot field (spots ~10-25 units across)
SPOT_DL, SPOT_DA, SPOT_DB = -10.0, 1.5, 6.0  # CIELAB change inside a spot (pigment: darker, yellower)
LINE_SIGMA = 1.5  # units: half-width (Gaussian sigma) of a line's profile
LINE_DL, LINE_DA, LINE_DB = -12.0, -0.5, -1.0  # CIELAB change at a line's centre (a shadow)
RELIEF_SIGMA = 1.0  # units: correlation length of the fine relief
RELIEF_HIGHPASS = 4.0  # units: relief is high-passed above this scale (no slow shading)
EXPOSURE_WHITE = 0.8  # linear level of a perfect white at exposure 1 in the brightest channel
NOISE_SD = 0.004  # sensor noise (sRGB-encoded 0..1) before quantisation
JPEG_QUALITY = 90
FRAME_REFLECTANCE = 0.03  # the chart's black frame (linear)
CARD_REFLECTANCE, CARD_MARGIN = 0.35, 0.3  # plain card around the chart: linear grey, margin in patch pitches


@dataclass(frozen=True)
class SkinTruth:
    """The truth of a skin region, in the units measure_skin reports (docs/photos.md §metrics).

    L, a, b: CIELAB (D65) of the skin between spots and lines; spot_fraction: % of the region
    covered by pigmented spots; line_density: total length of lines in the region divided by the
    region's side (dimensionless); roughness: RMS of the fine relief, in L* units.
    """

    L: float
    a: float
    b: float
    spot_fraction: float
    line_density: float
    roughness: float

    @property
    def ita(self) -> float:
        """ITA° = arctan((L* - 50) / b*) · 180/π (Chardon et al. 1991)."""
        return math.degrees(math.atan2(self.L - 50.0, self.b))


@dataclass(frozen=True)
class Capture:
    """How the photo is taken: illuminant colour temperature (K), exposure (1 = nominal), shift
    (output px), rotation (degrees, counter-clockwise), scale, Gaussian blur (output px), whether
    the chart is in frame, output size (width, height), and the noise seed."""

    cct_k: float = 6500.0
    exposure: float = 1.0
    shift_px: tuple[float, float] = (0.0, 0.0)
    rotation_deg: float = 0.0
    scale: float = 1.0
    blur_sigma_px: float = 0.0
    chart: bool = True
    size: tuple[int, int] = (1600, 1200)
    seed: int = 0


@dataclass(frozen=True)
class RenderedPhoto:
    """The photo as decoded from its JPEG (`rgb`, uint8), the JPEG bytes, and where the skin
    region and the chart are (output pixels; chart_box None without chart)."""

    rgb: np.ndarray
    skin_box: Box
    chart_box: Box | None
    jpeg: bytes = field(repr=False, default=b"")


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    import cv2

    noise = rng.standard_normal(shape).astype(np.float32)
    return cv2.GaussianBlur(noise, (0, 0), sigma) if sigma > 0 else noise


def _skin_geometry(w: int, h: int) -> tuple[float, float, float]:
    """Centre x, centre y and side of the skin box in a w x h canvas."""
    return SKIN_CENTRE[0] * w, SKIN_CENTRE[1] * h, SKIN_SIDE * h


def _lines(rng: np.random.Generator, cx: float, cy: float, side: float) -> list[np.ndarray]:
    """A pool of gently curved, mostly horizontal lines around the skin box (canvas px)."""
    pool = []
    for _ in range(200):
        length = side * rng.uniform(0.15, 0.5)
        angle = rng.normal(0, 0.35) + (np.pi / 2 if rng.random() < 0.15 else 0.0)
        x, y = cx + rng.uniform(-0.75, 0.75) * side, cy + rng.uniform(-0.75, 0.75) * side
        t = np.linspace(-0.5, 0.5, 40)[:, None] * length
        bend = rng.normal(0, 0.08) * length * (1 - (2 * t[:, 0] / length) ** 2)
        d = np.array([np.cos(angle), np.sin(angle)])
        nrm = np.array([-d[1], d[0]])
        pool.append(np.array([x, y]) + t * d + bend[:, None] * nrm)
    return pool


def _inside_length(points: np.ndarray, box: tuple[float, float, float, float]) -> float:
    mid = (points[1:] + points[:-1]) / 2
    seg = np.hypot(*(points[1:] - points[:-1]).T)
    inside = (mid[:, 0] >= box[0]) & (mid[:, 0] < box[2]) & (mid[:, 1] >= box[1]) & (mid[:, 1] < box[3])
    return float(seg[inside].sum())


def skin_lab(truth: SkinTruth, width: int, height: int, texture_seed: int) -> np.ndarray:
    """The skin texture in CIELAB on a width x height canvas (float32 H x W x 3).

    The same texture_seed gives the same layout of spots, lines and relief; the truth's numbers
    only set how much of it shows (spot threshold, how many of the pooled lines, relief amplitude).
    """
    import cv2

    rng = np.random.default_rng(texture_seed)
    cx, cy, side = _skin_geometry(width, height)
    unit = side * FEATURE_UNIT
    box = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
    bx = tuple(int(round(v)) for v in box)
    # spots: the top spot_fraction % of a smooth random field inside the skin box
    field_ = _smooth_noise(rng, (height, width), SPOT_SIGMA * unit)
    inside = field_[bx[1]:bx[3], bx[0]:bx[2]]
    spots = np.zeros((height, width), np.float32)
    if truth.spot_fraction > 0:
        threshold = np.quantile(inside, 1 - truth.spot_fraction / 100)
        spots = (field_ > threshold).astype(np.float32)
        spots = cv2.GaussianBlur(spots, (0, 0), 0.7 * unit)
    # lines: the pooled lines in order, until their length inside the box reaches the density
    canvas = np.zeros((height, width), np.float32)
    wanted, drawn = truth.line_density * side, 0.0
    for points in _lines(rng, cx, cy, side):
        if drawn >= wanted:
            break
        drawn += _inside_length(points, box)
        cv2.polylines(canvas, [np.round(points * 16).astype(np.int32)], False, 1.0, 1, cv2.LINE_AA, shift=4)
    sigma = LINE_SIGMA * unit
    lines = cv2.GaussianBlur(canvas, (0, 0), sigma) * (math.sqrt(2 * math.pi) * sigma)
    lines = np.minimum(lines, 1.0)
    # fine relief: band-passed noise with unit RMS, times the roughness (L* units)
    relief = _smooth_noise(rng, (height, width), RELIEF_SIGMA * unit)
    relief -= cv2.GaussianBlur(relief, (0, 0), RELIEF_HIGHPASS * unit)
    relief /= max(float(relief[bx[1]:bx[3], bx[0]:bx[2]].std()), 1e-9)
    lab = np.empty((height, width, 3), np.float32)
    lab[..., 0] = truth.L + truth.roughness * relief + SPOT_DL * spots + LINE_DL * lines
    lab[..., 1] = truth.a + SPOT_DA * spots + LINE_DA * lines
    lab[..., 2] = truth.b + SPOT_DB * spots + LINE_DB * lines
    return lab


def _draw_chart(scene: np.ndarray) -> Box:
    """Draw the 24 patches (reference linear sRGB) on a black frame, held on a plain grey card
    (so no skin blemish touches the frame); return the chart's box (frame, without the card)."""
    h, w = scene.shape[:2]
    x0, y0, x1 = CHART_AT[0] * w, CHART_AT[1] * h, CHART_AT[2] * w
    y1 = y0 + (x1 - x0) / 1.5
    pitch = (x1 - x0) / 6.3
    m = CARD_MARGIN * pitch
    scene[max(0, int(y0 - m)):int(y1 + m), max(0, int(x0 - m)):int(x1 + m)] = CARD_REFLECTANCE
    scene[int(y0):int(y1), int(x0):int(x1)] = FRAME_REFLECTANCE
    side = 0.84 * pitch
    ox, oy = x0 + 0.15 * pitch + (pitch - side) / 2, y0 + 0.15 * pitch + (pitch - side) / 2
    for k, colour_ in enumerate(reference_linear()):
        r, c = divmod(k, 6)
        px, py = ox + c * pitch, oy + r * pitch
        scene[int(round(py)):int(round(py + side)), int(round(px)):int(round(px + side))] = colour_
    return int(x0), int(y0), int(math.ceil(x1)), int(math.ceil(y1))


def illuminant_matrix(cct_k: float) -> np.ndarray:
    """Scene linear sRGB -> camera linear RGB under a light of cct_k on the Planckian locus
    (Kang et al. 2002 chromaticity): von Kries adaptation of the D65 colours to that white, then the
    camera's Display P3 primaries (as phones encode; sRGB transfer curve), with no white balance.
    The brightest channel of a perfect white is 1."""
    import colour

    from outcomes.photos.colour import _RGB_TO_XYZ

    white = colour.xy_to_XYZ(colour.temperature.CCT_to_xy_Kang2002(cct_k))
    d65 = colour.xy_to_XYZ(colour.CCS_ILLUMINANTS["CIE 1931 2 Degree Standard Observer"]["D65"])
    cat = colour.adaptation.matrix_chromatic_adaptation_VonKries(d65, white, transform="Von Kries")
    m = colour.RGB_COLOURSPACES["Display P3"].matrix_XYZ_to_RGB @ cat @ _RGB_TO_XYZ
    return m / (m @ np.ones(3)).max()


def _transform(capture: Capture, w: int, h: int, canvas_scale: float) -> np.ndarray:
    """2x3 affine (canvas px -> canvas px) for the capture's scale, rotation and shift about the centre."""
    import cv2

    m = cv2.getRotationMatrix2D((w / 2, h / 2), capture.rotation_deg, capture.scale)
    m[:, 2] += np.array(capture.shift_px) * canvas_scale
    return m


def render_photo(truth: SkinTruth, capture: Capture, texture_seed: int) -> RenderedPhoto:
    """Render one photo of `truth`'s skin as `capture` says; same texture_seed, same skin."""
    import cv2
    from PIL import Image

    out_w, out_h = capture.size
    canvas_scale = max(1.0, MIN_CANVAS_H / out_h)
    w, h = int(round(out_w * canvas_scale)), int(round(out_h * canvas_scale))
    scene = lab_to_linear(skin_lab(truth, w, h, texture_seed)).astype(np.float32)
    chart_box = _draw_chart(scene) if capture.chart else None
    scene = scene @ (illuminant_matrix(capture.cct_k) * EXPOSURE_WHITE * capture.exposure).T.astype(np.float32)
    m = _transform(capture, w, h, canvas_scale)
    scene = cv2.warpAffine(scene, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    if (w, h) != (out_w, out_h):
        scene = cv2.resize(scene, (out_w, out_h), interpolation=cv2.INTER_AREA)
    if capture.blur_sigma_px > 0:
        scene = cv2.GaussianBlur(scene, (0, 0), capture.blur_sigma_px)
    rng = np.random.default_rng(capture.seed)
    encoded = linear_to_srgb(scene) + rng.normal(0, NOISE_SD, scene.shape)
    rgb = np.clip(np.rint(encoded * 255), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=JPEG_QUALITY)
    jpeg = buf.getvalue()
    decoded = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))

    def place(box: tuple[float, float, float, float]) -> Box:
        corners = np.array([[box[0], box[1]], [box[2], box[1]], [box[0], box[3]], [box[2], box[3]]])
        moved = (corners @ m[:, :2].T + m[:, 2]) / canvas_scale
        x0, y0 = moved.min(axis=0)
        x1, y1 = moved.max(axis=0)
        return (max(0, int(math.floor(x0))), max(0, int(math.floor(y0))),
                min(out_w, int(math.ceil(x1))), min(out_h, int(math.ceil(y1))))

    cx, cy, side = _skin_geometry(w, h)
    centre = m[:, :2] @ np.array([cx, cy]) + m[:, 2]
    half = side * capture.scale / 2
    sx, sy = centre / canvas_scale
    skin_box = (int(round(sx - half / canvas_scale)), int(round(sy - half / canvas_scale)),
                int(round(sx + half / canvas_scale)), int(round(sy + half / canvas_scale)))
    return RenderedPhoto(rgb=decoded, skin_box=skin_box,
                         chart_box=place(chart_box) if chart_box else None, jpeg=jpeg)
