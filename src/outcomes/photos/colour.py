"""Colour you can compare across visits: find the ColorChecker in frame and correct to its reference.

Why: a photo's colours depend on the light and the camera. An X-Rite ColorChecker Classic (24
patches) in frame has known colours, so a correction fitted to it maps every photo back to one
reference (linear sRGB, D65), and its residual ΔE2000 says how well that worked (docs/photos.md §colour).
Detection is colour-checker-detection's segmentation method (no model weights); the correction is
colour-science's root-polynomial fit (Finlayson, Mackiewicz & Hurlbert 2015).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from outcomes.photos.images import Box

CHECKER = "ColorChecker24 - After November 2014"
# Widths of the downscaled copies the chart is searched in (the library's working width; its
# default is 1440), tried in turn until one finds it. A 12-megapixel photo is shrunk first (area
# averaging, which also denoises), so one bilateral pass is enough (library default 5): ~0.1-0.2 s
# at 640 px instead of ~0.7 s at 1440. On simulated photos 640 px misses about 1 chart in 60 that
# 512 px finds (and the other way round), so a photo without a chart at 640 px is searched again
# at 512 px. The chart must span at least ~1/5 of the photo's width (patches ~20 px at 640 px).
WORKING_WIDTHS = (640, 512)
BILATERAL_ITERATIONS = 1
CORRECTION_METHOD = "Finlayson 2015"  # root-polynomial: exposure invariant (Finlayson et al. 2015)
CORRECTION_DEGREE = 1  # degree 1 = a 3x3 matrix on linear RGB; see docs/photos.md §colour
CLIPPED = 0.985  # a patch with a channel at or above this (sRGB-encoded 0..1) is left out of the fit
MIN_PATCHES = 12  # fewer usable patches than this: no correction

# linear sRGB (D65) <-> CIE XYZ (IEC 61966-2-1)
_RGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                        [0.2126729, 0.7151522, 0.0721750],
                        [0.0193339, 0.1191920, 0.9503041]])
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
_D65 = _RGB_TO_XYZ.sum(axis=1)  # white of linear sRGB (1, 1, 1)


def srgb_to_linear(v: np.ndarray) -> np.ndarray:
    """sRGB-encoded 0..1 -> linear (IEC 61966-2-1)."""
    v = np.asarray(v, dtype=np.float64)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(v: np.ndarray) -> np.ndarray:
    """Linear 0..1 -> sRGB-encoded 0..1 (clipped)."""
    v = np.clip(np.asarray(v, dtype=np.float64), 0.0, 1.0)
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055)


_U8_TO_LINEAR = srgb_to_linear(np.arange(256) / 255.0)


def uint8_to_linear(rgb: np.ndarray) -> np.ndarray:
    """uint8 sRGB -> linear float64 by table look-up (fast on large images)."""
    return _U8_TO_LINEAR[rgb]


def linear_to_lab(rgb: np.ndarray) -> np.ndarray:
    """Linear sRGB (..., 3) -> CIELAB (D65 white, 2° observer)."""
    xyz = np.asarray(rgb, dtype=np.float64) @ _RGB_TO_XYZ.T / _D65
    e, k = 216 / 24389, 24389 / 27
    f = np.where(xyz > e, np.cbrt(np.maximum(xyz, e)), (k * xyz + 16) / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def lab_to_linear(lab: np.ndarray) -> np.ndarray:
    """CIELAB (D65) (..., 3) -> linear sRGB (not clipped)."""
    lab = np.asarray(lab, dtype=np.float64)
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], axis=-1)
    e, k = 216 / 24389, 24389 / 27
    xyz = np.where(f ** 3 > e, f ** 3, (116 * f - 16) / k)
    xyz[..., 1] = np.where(lab[..., 0] > k * e, fy ** 3, lab[..., 0] / k)
    return (xyz * _D65) @ _XYZ_TO_RGB.T


def delta_e2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference (Sharma, Wu & Dalal 2005), via colour-science."""
    import colour

    return np.asarray(colour.delta_E(lab1, lab2, method="CIE 2000"))


def reference_linear() -> np.ndarray:
    """The 24 reference patches in linear sRGB (D65), as colour-checker-detection uses them:
    colour-science's xyY (D50) values adapted to D65 (CAT02)."""
    import colour

    chart = colour.CCS_COLOURCHECKERS[CHECKER]
    xyz = colour.xyY_to_XYZ(np.array(list(chart.data.values())))
    return np.asarray(colour.XYZ_to_RGB(xyz, "sRGB", chart.illuminant), dtype=np.float64)


@dataclass(frozen=True)
class ChartReading:
    """The 24 patches as read off the photo (row by row from brown, sRGB-encoded 0..1) and the
    chart's bounding box in the photo's pixels."""

    swatches: np.ndarray
    box: Box


@dataclass(frozen=True)
class ColourCorrection:
    """A fitted correction. `apply` maps sRGB-encoded 0..1 images to the chart's reference;
    `delta_e` / `delta_e_before` are the median ΔE2000 of the fitted patches after / before."""

    matrix: np.ndarray
    delta_e: float
    delta_e_before: float
    patches_used: int

    def apply_linear(self, linear: np.ndarray) -> np.ndarray:
        """Linear RGB (..., 3) -> corrected linear RGB (not clipped)."""
        return _expand(linear) @ self.matrix.T

    def apply(self, rgb_float: np.ndarray) -> np.ndarray:
        """sRGB-encoded 0..1 (..., 3) -> corrected sRGB-encoded 0..1."""
        return linear_to_srgb(self.apply_linear(srgb_to_linear(rgb_float)))


def _expand(linear: np.ndarray) -> np.ndarray:
    """Root-polynomial terms of Finlayson et al. (2015) at CORRECTION_DEGREE (1: R, G, B)."""
    linear = np.asarray(linear, dtype=np.float64)
    if CORRECTION_DEGREE == 1:
        return linear
    r, g, b = (np.maximum(linear[..., i], 0.0) for i in range(3))
    return np.stack([r, g, b, np.sqrt(r * g), np.sqrt(g * b), np.sqrt(r * b)], axis=-1)


def detect_chart(rgb: np.ndarray) -> ChartReading | None:
    """Find a ColorChecker Classic in a uint8 sRGB image; None when there is none.

    The image is shrunk to each of WORKING_WIDTHS in turn (portrait images are turned on their
    side first, as the library expects landscape) and searched with
    `colour_checker_detection.detect_colour_checkers_segmentation`. A candidate counts only if
    its grey row gets darker from white to black; of several, the one closest to the reference
    colours wins.
    """
    import cv2
    from colour_checker_detection import detect_colour_checkers_segmentation

    h0, w0 = rgb.shape[:2]
    portrait = h0 > w0
    img = np.ascontiguousarray(np.rot90(rgb)) if portrait else rgb  # rot90: counter-clockwise
    h, w = img.shape[:2]
    for width in WORKING_WIDTHS:
        scale = width / w
        small = cv2.resize(img, (width, max(1, round(h * scale))),
                           interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
        try:
            found = detect_colour_checkers_segmentation(
                uint8_to_linear(small).astype(np.float32), additional_data=True, working_width=width,
                working_height=int(width * 4 / 6), bilateral_filter_iterations=BILATERAL_ITERATIONS)
        except (ValueError, IndexError, ZeroDivisionError, np.linalg.LinAlgError):  # degenerate contours
            found = ()
        if found:
            break
    reference = reference_linear()
    best, best_err = None, np.inf
    for data in found:
        sw = np.asarray(data.swatch_colours, dtype=np.float64)
        if sw.shape != (24, 3) or not np.all(np.isfinite(sw)) or not _grey_ramp(sw):
            continue
        # compare chromaticity-like (scale-free) so exposure does not decide
        err = np.mean((sw / max(sw.mean(), 1e-6) - reference / reference.mean()) ** 2)
        if err < best_err:
            best, best_err = data, err
    if best is None:
        return None
    quad = np.asarray(best.quadrilateral, dtype=np.float64) / scale  # x, y in the (turned) image
    if portrait:  # undo rot90: turned (x, y) came from original (w0 - 1 - y, x)
        quad = np.stack([w0 - 1 - quad[:, 1], quad[:, 0]], axis=1)
    x0, y0 = np.floor(quad.min(axis=0)).astype(int)
    x1, y1 = np.ceil(quad.max(axis=0)).astype(int) + 1
    box = (max(0, int(x0)), max(0, int(y0)), min(w0, int(x1)), min(h0, int(y1)))
    swatches = linear_to_srgb(np.asarray(best.swatch_colours, dtype=np.float64))
    return ChartReading(swatches=swatches, box=box)


def _grey_ramp(swatches: np.ndarray) -> bool:
    """The bottom row (white to black) must get darker in every channel: a cluster of skin
    blemishes that happens to look like 24 squares does not."""
    return bool(np.all(np.diff(swatches[18:24], axis=0) < 0))


def fit_correction(reading: ChartReading) -> ColourCorrection | None:
    """Fit the correction from the read patches to the reference (least squares on linear RGB).

    Clipped patches (a channel ≥ CLIPPED) are left out; with fewer than MIN_PATCHES left there
    is no trustworthy correction and None is returned.
    """
    import colour

    measured = np.asarray(reading.swatches, dtype=np.float64)
    usable = np.all(measured < CLIPPED, axis=1) & np.all(measured > 0.0, axis=1)
    if usable.sum() < MIN_PATCHES:
        return None
    reference = reference_linear()
    m_lin = srgb_to_linear(measured[usable])
    matrix = np.asarray(colour.matrix_colour_correction(
        m_lin, reference[usable], method=CORRECTION_METHOD, degree=CORRECTION_DEGREE), dtype=np.float64)
    ref_lab = linear_to_lab(reference[usable])
    fitted = _expand(m_lin) @ matrix.T
    after = float(np.median(delta_e2000(linear_to_lab(np.clip(fitted, 0, None)), ref_lab)))
    before = float(np.median(delta_e2000(linear_to_lab(m_lin), ref_lab)))
    return ColourCorrection(matrix=matrix, delta_e=after, delta_e_before=before, patches_used=int(usable.sum()))
