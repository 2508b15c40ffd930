"""Aligning two photos of the same view: a similarity transform (shift, rotation, scale).

Used by the before/after panels (the latest photo is aligned onto the baseline photo) and by
the QC (`pose_error`: how far the framing moved since the baseline photo of the same view).

Method (Fourier-Mellin, Reddy & Chatterji 1996, *An FFT-based technique for translation,
rotation, and scale-invariant image registration*, IEEE TIP 5:1266): the magnitude of the
Fourier transform ignores shifts, and in log-polar coordinates a rotation and a scale become
shifts, found by phase correlation (skimage.registration); the moving photo is then un-rotated
and un-scaled and a second phase correlation finds the shift. The magnitude spectrum cannot
tell θ from θ + 180°, so both are tried and the one whose aligned image matches better is kept.
Work is done on the grey images at most ``WORK_SIDE`` px on their longer side; the result is in
pixels of the reference photo. A photo of another size is first brought to the reference's
width (the scale found is then the change of framing, not of camera resolution).

Convention: `moving` shows the scene of `reference` rotated by `rotation_deg` (counter-clockwise
as displayed) and scaled by `scale` about the image centre, then shifted by (`dx`, `dy`) px
(x to the right, y down).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

WORK_SIDE = 512  # longer side (px) of the grey images the transform is estimated on
# Below this normalised cross-correlation of the aligned photos no credible alignment was
# found (another view, another person, a blank frame): pose_error reports NO_MATCH_ERROR.
MIN_MATCH = 0.2
NO_MATCH_ERROR = 100.0


@dataclass(frozen=True)
class Similarity:
    """How `moving` is posed relative to `reference` (see the module's convention).

    `match`: normalised cross-correlation of the grey photos after alignment, on their overlap
    (1 identical; near 0 unrelated). `residual_px`: how far (reference px, at the worst frame
    corner) the refining pass still moved the first estimate: small when the estimate converged.
    """

    dx: float
    dy: float
    rotation_deg: float
    scale: float
    residual_px: float
    match: float
    reference_shape: tuple[int, int]  # (height, width) of the reference photo

    def matrix(self) -> np.ndarray:
        """3×3 map from reference pixel (x, y, 1) to the pixel of the moving photo (brought to
        the reference's frame) that shows the same point of skin."""
        h, w = self.reference_shape
        c = np.array([(w - 1) / 2, (h - 1) / 2])
        t, s = np.deg2rad(self.rotation_deg), self.scale
        a = s * np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])  # counter-clockwise as displayed
        m = np.eye(3)
        m[:2, :2], m[:2, 2] = a, c - a @ c + np.array([self.dx, self.dy])
        return m

    def apply(self, moving: np.ndarray, output_shape: tuple[int, int] | None = None) -> np.ndarray:
        """`moving` aligned onto the reference's frame (uint8, the reference's size, or
        `output_shape` (height, width) by resizing that); uncovered pixels are black."""
        from skimage.transform import AffineTransform, resize, warp

        framed = _to_frame(moving, self.reference_shape)
        out = warp(framed.astype(float) / 255.0, AffineTransform(matrix=self.matrix()), order=1,
                   mode="constant", cval=0.0, preserve_range=True)
        if output_shape is not None and tuple(output_shape[:2]) != tuple(self.reference_shape):
            out = resize(out, tuple(output_shape[:2]), anti_aliasing=True)
        return np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)

    def displacement_px(self) -> float:
        """The largest distance (reference px) any corner of the frame moves under the transform."""
        return _corner_shift(self.matrix(), self.reference_shape)


def _corner_shift(matrix: np.ndarray, shape: tuple[int, int]) -> float:
    h, w = shape
    corners = np.array([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1]], float)
    return float(np.max(np.linalg.norm((corners @ matrix.T)[:, :2] - corners[:, :2], axis=1)))


def _grey(rgb: np.ndarray) -> np.ndarray:
    from skimage.color import rgb2gray

    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an H×W×3 image, got shape {rgb.shape}")
    return rgb2gray(rgb)


def _to_frame(moving: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """`moving` resized to the reference's width (aspect kept), then centre-cropped or padded
    (edge values) to the reference's (height, width)."""
    from skimage.transform import resize

    h, w = shape
    if moving.shape[:2] == (h, w):
        return moving
    mh, mw = moving.shape[:2]
    nh = max(1, round(mh * w / mw))
    resized = resize(moving, (nh, w) + moving.shape[2:], anti_aliasing=nh < mh, preserve_range=True)
    if nh >= h:
        top = (nh - h) // 2
        out = resized[top:top + h]
    else:
        before = (h - nh) // 2
        out = np.pad(resized, ((before, h - nh - before), (0, 0)) + ((0, 0),) * (moving.ndim - 2), mode="edge")
    return np.clip(np.rint(out), 0, 255).astype(moving.dtype) if moving.dtype == np.uint8 else out


@lru_cache(maxsize=8)
def _log_polar_grid(side: int) -> np.ndarray:
    """Where each pixel of the log-polar spectrum (half the angles, 360 × 720) is read in a `side`
    square spectrum: skimage.transform.warp_polar's map (scaling="log", 720 × 720, the same float
    operations), made once per size. Remade for every spectrum, it was about a tenth of a photo's
    CPU in a Dask worker (0.05 of 0.55 CPU-s, cProfile, after the reference was prepared once)."""
    radius = side // 2 - 1
    centre = np.array((side, side)) / 2 - 0.5
    k_angle, k_radius = 720 / (2 * np.pi), 720 / np.log(radius)
    rows, cols = np.indices((360, 720), dtype=float)
    angle = rows / k_angle
    grid = np.stack([np.exp(cols / k_radius) * np.sin(angle) + centre[0],
                     np.exp(cols / k_radius) * np.cos(angle) + centre[1]])
    grid.setflags(write=False)
    return grid


def _log_polar_spectrum(grey: np.ndarray) -> tuple[np.ndarray, float]:
    from scipy.fft import fft2, fftshift
    from skimage.filters import difference_of_gaussians, window
    from skimage.transform import warp

    side = min(grey.shape)
    top, left = (grey.shape[0] - side) // 2, (grey.shape[1] - side) // 2
    square = grey[top:top + side, left:left + side]
    band = difference_of_gaussians(square, 1, 8)
    spectrum = np.abs(fftshift(fft2(band * window("hann", band.shape))))
    # half the spectrum (it is symmetric), as warp_polar(spectrum, radius, (720, 720), "log", order=1)[:360]
    return warp(spectrum, _log_polar_grid(side), order=1), side // 2 - 1


def _match(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    if mask.sum() < 100:
        return 0.0
    x, y = a[mask] - a[mask].mean(), b[mask] - b[mask].mean()
    denom = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / denom) if denom > 0 else 0.0


def _similarity_matrix(theta_deg: float, scale: float, d, c) -> np.ndarray:
    t = np.deg2rad(theta_deg)
    a = scale * np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])  # counter-clockwise as displayed
    m = np.eye(3)
    m[:2, :2], m[:2, 2] = a, c - a @ c + np.asarray(d, float)
    return m


class Reference:
    """A reference photo prepared once for every photo compared with it: its grey working copy and
    the Fourier transforms the phase correlations need (its log-polar spectrum, its own spectrum).

    Why: `outcomes photos` compares every photo of a patient and view with the same baseline photo.
    Under cProfile the comparison was 0.30 s of a warm photo's 0.40-0.46 s (12-megapixel JPEGs of
    benchmarks/bench_photos.py, compared at 512 px), redoing the reference's share in both passes;
    prepared once, a comparison took 0.15 CPU-s instead of 0.25 (one thread). The same numbers:
    the same arrays go into the same functions (phase_cross_correlation with space="fourier" is
    what it computes from real images). Prepared lazily, on the first comparison."""

    def __init__(self, rgb: np.ndarray):
        self.rgb = rgb
        self.shape: tuple[int, int] = tuple(rgb.shape[:2])
        self._prepared: tuple | None = None

    def prepared(self) -> tuple[float, np.ndarray, np.ndarray, float, np.ndarray]:
        """(k, grey working copy, its spectrum, log-polar radius, spectrum of its log-polar spectrum)."""
        if self._prepared is None:
            from scipy.fft import fftn
            from skimage.transform import rescale

            ref = _grey(self.rgb)
            k = min(1.0, WORK_SIDE / max(self.shape))
            if k < 1:
                ref = rescale(ref, k, anti_aliasing=True)
            polar, radius = _log_polar_spectrum(ref)
            self._prepared = (k, ref, fftn(ref), radius, fftn(polar))
        return self._prepared


def _estimate(reference: Reference, mov: np.ndarray, both_ways: bool) -> tuple[np.ndarray, float]:
    """One Fourier-Mellin pass: the matrix (working px) posing `mov` relative to the reference, and
    the match of the aligned images (with `both_ways`, θ and θ + 180° are tried)."""
    from scipy.fft import fftn
    from skimage.registration import phase_cross_correlation
    from skimage.transform import AffineTransform, warp

    _, ref, ref_freq, radius, ref_polar_freq = reference.prepared()
    mov_polar, _ = _log_polar_spectrum(mov)
    shifts, _, _ = phase_cross_correlation(ref_polar_freq, fftn(mov_polar), upsample_factor=20,
                                           normalization=None, space="fourier")
    angle, scale = 360.0 / 720 * shifts[0], float(np.exp(shifts[1] * np.log(radius) / 720))
    h, w = ref.shape
    c = np.array([(w - 1) / 2, (h - 1) / 2])
    best = (-np.inf, np.eye(3))
    for theta in ((angle, angle + 180.0) if both_ways else (angle,)):
        about = _similarity_matrix(theta, scale, (0, 0), c)
        unposed = warp(mov, AffineTransform(matrix=about), order=1, mode="constant", cval=np.nan)
        fill = np.where(np.isnan(unposed), np.nanmean(unposed), unposed)
        shift, _, _ = phase_cross_correlation(ref_freq, fftn(fill), upsample_factor=20, normalization=None,
                                              space="fourier")
        e = -shift[::-1]  # (x, y): reference(x) = unposed(x + e)
        m = about @ np.r_[np.c_[np.eye(2), e], [[0, 0, 1]]]
        aligned = warp(mov, AffineTransform(matrix=m), order=1, mode="constant", cval=np.nan)
        match = _match(ref, np.nan_to_num(aligned), ~np.isnan(aligned))
        if match > best[0]:
            best = (match, m)
    return best[1], best[0]


def register(reference: np.ndarray | Reference, moving: np.ndarray) -> Similarity:
    """The similarity transform posing `moving` relative to `reference` (uint8 H×W×3 photos of
    the same view, the reference as an array or prepared once as a `Reference`; see the module's
    note for the method and the convention). A second pass on the aligned photo corrects what the
    first left (the log-polar grid is coarse far out)."""
    from skimage.transform import AffineTransform, rescale, warp

    if not isinstance(reference, Reference):
        reference = Reference(reference)
    shape = reference.shape
    k = reference.prepared()[0]
    mov = _grey(_to_frame(moving, shape))
    if k < 1:
        mov = rescale(mov, k, anti_aliasing=True)
    first, _ = _estimate(reference, mov, both_ways=True)
    aligned = warp(mov, AffineTransform(matrix=first), order=1, mode="edge")
    second, match = _estimate(reference, aligned, both_ways=False)
    # reference px -> working px (pixel centres, as rescale maps them), and back
    to_work = np.array([[k, 0, (k - 1) / 2], [0, k, (k - 1) / 2], [0, 0, 1]])
    scaled = np.linalg.inv(to_work) @ first @ second @ to_work
    h, w = shape
    c = np.array([(w - 1) / 2, (h - 1) / 2])
    a = scaled[:2, :2]
    scale = float(np.sqrt(abs(np.linalg.det(a))))
    theta = float(np.degrees(np.arctan2(a[0, 1], a[0, 0])))
    d = scaled[:2, 2] - (c - a @ c)
    residual = _corner_shift(np.linalg.inv(to_work) @ second @ to_work, shape)
    return Similarity(float(d[0]), float(d[1]), theta, scale, float(residual), float(match), tuple(shape))


def pose_error(reference: np.ndarray | Reference, moving: np.ndarray) -> float:
    """How far the framing of `moving` is from that of `reference` (its baseline photo of the
    same view, as an array or a `Reference` prepared once): the largest displacement of a frame
    corner under the estimated transform, in % of the reference's diagonal; ``NO_MATCH_ERROR`` (100) when no credible alignment exists.
    The QC flags `pose_vs_baseline` above ``contract.QC_MAX_POSE_ERROR`` (10; docs/photos.md §quality)."""
    sim = register(reference, moving)
    if sim.match < MIN_MATCH:
        return NO_MATCH_ERROR
    h, w = sim.reference_shape
    return min(NO_MATCH_ERROR, 100.0 * sim.displacement_px() / float(np.hypot(h - 1, w - 1)))
