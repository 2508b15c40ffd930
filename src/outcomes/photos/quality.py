"""Quality of a photo read from its pixels: blur and exposure clipping (issue 13, point 4).

Both feed the existing QC rules: ``blur`` is compared with ``contract.QC_MAX_BLUR`` (0.5), and
``clipped`` with the exposure threshold of the cleaner. See docs/photos.md §quality.

Blur is the no-reference "blur effect" of Crété-Roffet et al. (2007, *The blur effect:
perception and estimation with a new no-reference perceptual blur metric*, SPIE 6492):
the image is blurred again and the loss of neighbour differences is measured; a sharp image
loses much (score near 0), an already blurred one little (near 1). It is computed on the grey
region resampled so that its longer side is at most ``WORK_SIDE`` pixels, so the same framing
scores the same at any camera resolution (blur is judged relative to the region's size), after a
3×3 median filter: sensor and JPEG noise is sharp and would otherwise hide a blur.
Calibration (the score, by Gaussian blur sigma in px at the 400-px working size; sharp = 0):
textured skin with sensor noise (tests/photo_factory.py; sizes 300-1200 px, three tones): sharp
0.30-0.37, 0.7 px 0.31-0.40, 1.5 px 0.38-0.51, 2 px 0.43-0.61, 3 px 0.49-0.72, 5 px 0.51-0.77;
rendered photos (photos.simulate, skin region): 0.28-0.32, 0.30-0.34, 0.37-0.41, 0.43-0.46,
0.53-0.57, 0.56-0.66. So the QC threshold 0.5 sits at sigma ~2-2.5 px at 400 px (about 0.6% of
the region's side, 10 px on a 1600-px region): beyond it fine lines one or two pixels wide (what
line density counts) are smeared out.
The score is the larger of that reading and the same measure at ``COARSE_SIDE`` (100 px, no
filter): a blur so heavy that only sensor noise is left at the fine scale (noise looks sharp) still
shows there, while a sharp photo stays sharp when scaled down. A region with no texture at all
also scores high: there is nothing in it to measure lines on.
"""
from __future__ import annotations

import numpy as np

from outcomes.photos.images import Box

WORK_SIDE = 400  # longer side (px) of the grey region the blur is judged on
COARSE_SIDE = 100  # ... and again at this size, where a heavy blur shows through the noise


def _region(rgb: np.ndarray, region: Box | None) -> np.ndarray:
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an H×W×3 image, got shape {rgb.shape}")
    if region is None:
        return rgb
    x0, y0, x1, y1 = (int(v) for v in region)
    h, w = rgb.shape[:2]
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise ValueError(f"region {region} is not inside the {w}×{h} image")
    return rgb[y0:y1, x0:x1]


def blur_score(rgb: np.ndarray, region: Box | None = None) -> float:
    """Blur of `rgb` (uint8 sRGB) in `region` (x0, y0, x1, y1), 0 sharp .. 1 unusable; above
    0.5 (``contract.QC_MAX_BLUR``) the photo is too blurred to measure (see the module's note)."""
    from skimage.color import rgb2gray
    from skimage.measure import blur_effect
    from scipy.ndimage import median_filter
    from skimage.transform import rescale

    grey = rgb2gray(_region(rgb, region))
    if min(grey.shape) < 16:
        raise ValueError(f"region of {grey.shape[1]}×{grey.shape[0]} px is too small to judge blur")

    def at(side: int) -> np.ndarray:  # downsample only: a small region is judged at the detail it has
        factor = side / max(grey.shape)
        return rescale(grey, factor, anti_aliasing=True) if factor < 1 else grey

    fine = blur_effect(median_filter(at(WORK_SIDE), size=3))
    coarse = blur_effect(at(COARSE_SIDE))
    return float(np.clip(max(fine, coarse), 0.0, 1.0))


def clipped_fraction(rgb: np.ndarray, region: Box | None = None) -> float:
    """Share of the pixels of `region` with a channel at 0 or 255 (under- or over-exposed),
    0..1; those pixels have lost their colour, so colour metrics on them are biased."""
    pixels = _region(rgb, region)
    if pixels.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {pixels.dtype}")
    clipped = ((pixels == 0) | (pixels == 255)).any(axis=2)
    return float(clipped.mean())
