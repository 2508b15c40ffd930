"""Skin metrics from a photo: colour (CIELAB, ITA°, redness), spots, lines, roughness.

Why: clinics without a VISIA-style instrument still have photos. Each metric here is a documented,
cited method (docs/photos.md §metrics), computed on the colour-corrected skin region resampled to
REGION_PX × REGION_PX, which makes the texture metrics independent of the photo's resolution and
keeps a 12-megapixel photo well under a second. Keys are the metric registry's names.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from outcomes.photos.colour import (
    Box,
    ColourCorrection,
    detect_chart,
    fit_correction,
    linear_to_lab,
    uint8_to_linear,
)

REGION_PX = 256  # the skin region is resampled to this square before measuring
SPOT_DL, SPOT_DB = -5.0, 2.0  # a spot: L* at least 5 below the region's median skin, its mean b* 2 above
SPOT_OPEN_PX = 7  # px: structures thinner than this (lines) are not spots
SPOT_MIN_PX = 12  # smaller specks (at REGION_PX) are noise, not spots
SMOOTH_SIGMA = 1.0  # px: L* is smoothed this much before spots are segmented
LINE_SIGMAS = (2.0, 3.0)  # px: scales of the ridge filter (lines ~3-6 px wide at REGION_PX)
LINE_LOW, LINE_HIGH = 2.5, 3.0  # ridge response (L* units): hysteresis thresholds of a line
LINE_MIN_PX = 15  # skeleton pieces shorter than this (px) are relief, not lines
PLAIN_MARGIN_PX = 3  # px: colour and roughness are read this far from spots and lines
RELIEF_SIGMA = 4.0  # px: roughness is the RMS of L* above this scale (high-pass)
AUTO_REGION_SHARE = 0.5  # automatic region: a square of this share of the shorter side

METRIC_KEYS = ("cielab_l", "cielab_a", "cielab_b", "ita", "spot_area", "line_density", "roughness")


@dataclass(frozen=True)
class SkinMeasures:
    """What measure_skin found. `metrics` uses the registry's keys (units in docs/photos.md);
    without a chart the colour metrics are of the uncorrected image and chart_found is False."""

    metrics: dict[str, float]
    chart_found: bool
    color_delta_e: float
    region: Box
    correction: ColourCorrection | None


def ita_degrees(L: float, b: float) -> float:
    """Individual typology angle, ITA° = arctan((L* − 50) / b*) · 180/π (Chardon et al. 1991),
    as atan2 so that b* ≤ 0 stays defined."""
    return math.degrees(math.atan2(L - 50.0, b))


ITA_CATEGORIES = ((55.0, "very light"), (41.0, "light"), (28.0, "intermediate"), (10.0, "tan"),
                  (-30.0, "brown"))  # Del Bino et al. 2006, after Chardon et al. 1991


def ita_category(ita: float) -> str:
    """The published skin colour category of an ITA° value (> 55 very light ... < −30 dark)."""
    for lower, name in ITA_CATEGORIES:
        if ita > lower:
            return name
    return "dark"


def auto_region(shape: tuple[int, ...], chart_box: Box | None) -> Box:
    """A square of AUTO_REGION_SHARE of the shorter side: centred in the photo, or, with a chart
    in frame, centred in the wider part of the photo beside the chart (left or right of it)."""
    h, w = shape[:2]
    side = int(AUTO_REGION_SHARE * min(h, w))
    cx, cy = w / 2, h / 2
    if chart_box is not None:
        left, right = chart_box[0], w - chart_box[2]
        cx = chart_box[2] + right / 2 if right >= left else left / 2
        side = int(min(side, 0.9 * max(left, right)))
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    return (x0, y0, x0 + side, y0 + side)


def _checked_region(region: Box, shape: tuple[int, ...]) -> Box:
    h, w = shape[:2]
    x0, y0, x1, y1 = (int(v) for v in region)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 - x0 < 16 or y1 - y0 < 16:
        raise ValueError(f"skin region {tuple(region)} leaves less than 16 x 16 px inside a {w} x {h} photo")
    return (x0, y0, x1, y1)


def measure_skin(rgb: np.ndarray, region: Box | None = None) -> SkinMeasures:
    """Detect the chart, correct colour, pick the region (given, else `auto_region`), measure.

    rgb is uint8 H×W×3 sRGB. Raises ValueError for an image of the wrong shape or a region
    that leaves too little skin.
    """
    import cv2

    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected a uint8 H x W x 3 image, got {rgb.dtype} {rgb.shape}")
    reading = detect_chart(rgb)
    correction = fit_correction(reading) if reading is not None else None
    box = _checked_region(region if region is not None else auto_region(rgb.shape, reading.box if reading else None),
                          rgb.shape)
    crop = rgb[box[1]:box[3], box[0]:box[2]]
    crop = cv2.resize(crop, (REGION_PX, REGION_PX), interpolation=cv2.INTER_AREA
                      if crop.shape[0] >= REGION_PX else cv2.INTER_CUBIC)
    linear = uint8_to_linear(crop)
    if correction is not None:
        linear = correction.apply_linear(linear)
    lab = linear_to_lab(linear)
    return SkinMeasures(metrics=skin_metrics(lab), chart_found=correction is not None,
                        color_delta_e=correction.delta_e if correction is not None else float("nan"),
                        region=box, correction=correction)


def _spots(lab: np.ndarray, med: np.ndarray) -> np.ndarray:
    """Pigmented spots: blobs (not lines) of L* at least SPOT_DL below the median skin, whose mean
    b* is at least SPOT_DB above it (pigment is yellow-brown; a shadow is not)."""
    import cv2

    dark = cv2.GaussianBlur(lab[..., 0], (0, 0), SMOOTH_SIGMA) - med[0] <= SPOT_DL
    # opening removes thin structures (lines; also a spot's outermost pixel, consistently)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (SPOT_OPEN_PX, SPOT_OPEN_PX))
    blobs = cv2.morphologyEx(dark.astype(np.uint8), cv2.MORPH_OPEN, kernel)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(blobs, connectivity=8)
    # colour is judged per blob: JPEG keeps chroma at half resolution, so single pixels are unreliable
    sums = np.bincount(labels.ravel(), weights=(lab[..., 2] - med[2]).ravel(), minlength=n)
    mean_db = sums / np.maximum(stats[:, cv2.CC_STAT_AREA], 1)
    keep = (mean_db >= SPOT_DB) & (stats[:, cv2.CC_STAT_AREA] >= SPOT_MIN_PX)
    keep[0] = False
    return keep[labels]


def _drop_small(mask: np.ndarray, min_px: int) -> np.ndarray:
    import cv2

    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = np.zeros(n, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_px
    return keep[labels]


def skin_metrics(lab: np.ndarray) -> dict[str, float]:
    """The seven metrics of a CIELAB skin patch (REGION_PX square); see docs/photos.md §metrics."""
    import cv2
    from skimage.filters import apply_hysteresis_threshold, sato
    from skimage.morphology import skeletonize

    lab = lab.astype(np.float32)
    L = lab[..., 0]
    med = np.median(lab.reshape(-1, 3), axis=0)
    spots = _spots(lab, med)
    ridge = sato(L, sigmas=LINE_SIGMAS, black_ridges=True, mode="reflect")
    near_spot = cv2.dilate(spots.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    on_line = apply_hysteresis_threshold(np.where(near_spot, 0.0, ridge), LINE_LOW, LINE_HIGH)
    skeleton = _drop_small(skeletonize(on_line), LINE_MIN_PX)
    # lines hidden under spots are not seen: scale the length seen to the whole region
    line_length = _skeleton_length(skeleton) / max(1.0 - float(near_spot.mean()), 0.5)
    # plain skin: away from spots and lines (their soft edges would count as relief)
    plain = ~(_grow(spots, PLAIN_MARGIN_PX) | _grow(on_line, PLAIN_MARGIN_PX))
    if plain.sum() < 0.1 * plain.size:  # hardly any plain skin: use all of it rather than nothing
        plain = np.ones_like(plain)
    # mean, not median: the median of 8-bit values keeps their rounding, the mean averages it out
    Lp, ap, bp = (float(np.mean(lab[..., i][plain])) for i in range(3))
    highpass = L - cv2.GaussianBlur(L, (0, 0), RELIEF_SIGMA)
    return {
        "cielab_l": Lp,
        "cielab_a": ap,
        "cielab_b": bp,
        "ita": ita_degrees(Lp, bp),
        "spot_area": 100.0 * float(spots.mean()),
        "line_density": line_length / REGION_PX,
        "roughness": float(np.sqrt(np.mean(highpass[plain] ** 2))),
    }


def _grow(mask: np.ndarray, px: int) -> np.ndarray:
    import cv2

    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel) > 0


def _skeleton_length(skeleton: np.ndarray) -> float:
    """Length of a 1-px skeleton: its 8-neighbour links, straight ones 1 px, diagonal ones √2 px."""
    s = skeleton.astype(np.uint8)
    straight = (s[:, 1:] & s[:, :-1]).sum() + (s[1:, :] & s[:-1, :]).sum()
    diagonal = (s[1:, 1:] & s[:-1, :-1]).sum() + (s[1:, :-1] & s[:-1, 1:]).sum()
    return float(straight + math.sqrt(2) * diagonal)
