"""Procedural skin photos for the photo tests (numpy only): a skin tone with mottling, pores,
pigmented spots and fine lines, so blur, clipping, registration and panels have texture to work
on. The photo simulator (outcomes.photos.simulate) renders whole photos with a chart and a recorded
truth; this is a smaller texture, quick to make at any size and tone."""
from __future__ import annotations

import numpy as np
from scipy import ndimage


def skin(size: tuple[int, int] = (400, 300), seed: int = 0, tone=(200, 150, 125)) -> np.ndarray:
    """A uint8 H×W×3 skin-like image of `size` (width, height); the same seed is the same skin."""
    w, h = size
    rng = np.random.default_rng(seed)
    mottle = ndimage.gaussian_filter(rng.normal(0, 1, (h, w)), 12)
    mottle /= mottle.std() + 1e-9
    pores = ndimage.gaussian_filter(rng.normal(0, 1, (h, w)), 1.0)
    pores /= pores.std() + 1e-9
    dark = np.zeros((h, w))
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(max(4, w * h // 8000)):  # pigmented spots
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(3, 10)
        dark = np.maximum(dark, np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r)))
    lines = np.zeros((h, w))
    for _ in range(max(3, w * h // 15000)):  # fine lines: short curved strokes
        x0, y0, ang = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0, np.pi)
        t = np.linspace(-1, 1, 400)
        length, bend = rng.uniform(40, 120), rng.uniform(-20, 20)
        px = x0 + length * t * np.cos(ang) - bend * t ** 2 * np.sin(ang)
        py = y0 + length * t * np.sin(ang) + bend * t ** 2 * np.cos(ang)
        ok = (px >= 0) & (px < w) & (py >= 0) & (py < h)
        lines[py[ok].astype(int), px[ok].astype(int)] = 1.0
    lines = ndimage.gaussian_filter(lines, 0.8) * 3
    shade = 1 + 0.04 * mottle + 0.03 * pores - 0.25 * dark - 0.35 * np.clip(lines, 0, 1)
    rgb = np.asarray(tone, float)[None, None, :] * shade[..., None]
    rgb[..., 0] += 6 * dark  # spots are browner (less red loss)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def blurred(rgb: np.ndarray, sigma: float) -> np.ndarray:
    """`rgb` under a Gaussian blur of `sigma` pixels (a defocused shot)."""
    if sigma <= 0:
        return rgb.copy()
    out = ndimage.gaussian_filter(rgb.astype(float), (sigma, sigma, 0))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def posed(rgb: np.ndarray, dx: float = 0.0, dy: float = 0.0, rotation_deg: float = 0.0, scale: float = 1.0,
          size: tuple[int, int] | None = None) -> np.ndarray:
    """`rgb` moved as the camera would move it: rotated by `rotation_deg` (counter-clockwise as
    displayed) and scaled by `scale` about the image centre, then shifted by (dx, dy) pixels;
    cropped to `size` (width, height; default the input's), edges filled by reflection."""
    from skimage.transform import SimilarityTransform, warp

    h, w = rgb.shape[:2]
    ow, oh = size or (w, h)
    c = np.array([(w - 1) / 2, (h - 1) / 2])
    centre = np.array([(ow - 1) / 2, (oh - 1) / 2])
    # forward map input -> output: to the centre, scale and rotate, then back to the output centre plus the shift
    fwd = (SimilarityTransform(translation=-c) + SimilarityTransform(scale=scale, rotation=np.deg2rad(-rotation_deg))
           + SimilarityTransform(translation=centre + np.array([dx, dy])))
    out = warp(rgb.astype(float) / 255, fwd.inverse, output_shape=(oh, ow), mode="reflect", order=3)
    return np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)
