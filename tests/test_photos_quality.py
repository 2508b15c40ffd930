"""Quality flags from the pixels (issue 13, point 4): blur and exposure clipping."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from outcomes import contract
from outcomes.photos.quality import blur_score, clipped_fraction
from photo_factory import blurred, skin


def _shot(seed: int, width: int, sigma_at_400: float, tone) -> np.ndarray:
    """A skin photo of `width` px blurred by sigma (in px at a 400-px region), with sensor noise."""
    rng = np.random.default_rng(seed + 1000)
    rgb = blurred(skin((width, width * 3 // 4), seed, tone), sigma_at_400 * width / 400)
    noisy = rgb + rng.normal(0, 2.0, rgb.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def test_blur_flag_separates_blurred_from_sharp_photos():
    tones = [(200, 150, 125), (120, 80, 60), (235, 200, 180)]
    sharp = [_shot(s, w, sig, tones[s % 3]) for s, (w, sig) in enumerate([(300, 0), (600, 0), (300, 0.7), (600, 0.7)] * 3)]
    blurry = [_shot(s, w, sig, tones[s % 3]) for s, (w, sig) in enumerate([(300, 3), (600, 3), (300, 5), (600, 5)] * 3)]
    scores = np.array([blur_score(x) for x in sharp + blurry])
    truth = np.r_[np.zeros(len(sharp)), np.ones(len(blurry))]
    assert roc_auc_score(truth, scores) >= 0.95
    flagged = scores > contract.QC_MAX_BLUR  # the existing QC threshold is where the flag belongs
    assert (flagged == truth.astype(bool)).mean() >= 0.9
    assert ((0 <= scores) & (scores <= 1)).all()


def test_blur_flag_separates_blurred_from_sharp_rendered_photos():
    """Photos rendered by the simulator (chart in frame, illuminants 2700-6500 K, exposure, small poses): the
    skin region of sharp shots against defocused ones (sigma 3.5-5 px at the 400-px working size)."""
    from outcomes.photos.simulate import Capture, SkinTruth, render_photo

    truth = SkinTruth(L=62, a=14, b=17, spot_fraction=4.0, line_density=3.0, roughness=2.0)
    scores, blurred_truth = [], []
    for i in range(12):
        blur = [0.0, 0.6, 3.5, 5.0][i % 4]
        capture = Capture(cct_k=[2700, 4000, 5000, 6500][i // 3], exposure=[0.85, 1.0, 1.15][i % 3],
                          shift_px=(3 * (i % 3), -2.0 * (i % 2)), rotation_deg=i % 5 - 2, blur_sigma_px=blur,
                          size=(640, 480), seed=i)
        photo = render_photo(truth, capture, texture_seed=i)
        scores.append(blur_score(photo.rgb, photo.skin_box))
        blurred_truth.append(blur > 1)
    assert roc_auc_score(blurred_truth, scores) >= 0.95
    assert ((np.array(scores) > contract.QC_MAX_BLUR) == np.array(blurred_truth)).mean() >= 0.9


def test_blur_score_is_judged_relative_to_the_region_not_the_camera():
    """The same framing at 400 and 1200 px, blurred alike relative to its size, scores alike."""
    for sigma in (0.0, 3.0):
        small, large = (blur_score(blurred(skin((w, w * 3 // 4), 5), sigma * w / 400)) for w in (400, 1200))
        assert abs(small - large) < 0.1


def test_blur_score_reads_only_the_region():
    sharp = skin((400, 300), 2)
    half = sharp.copy()
    half[:, 200:] = blurred(sharp, 4)[:, 200:]
    assert blur_score(half, (0, 0, 200, 300)) < contract.QC_MAX_BLUR < blur_score(half, (200, 0, 400, 300))
    with pytest.raises(ValueError, match="not inside"):
        blur_score(half, (0, 0, 500, 300))


def test_clipped_fraction_counts_pixels_with_any_channel_at_the_limits():
    rgb = np.full((100, 200, 3), 128, np.uint8)
    rgb[:10, :, :] = 255  # 2000 pixels burnt out
    rgb[10:15, :, 0] = 0  # 1000 pixels with one channel crushed
    rgb[15:20, :, 1] = 254  # near the limit is not clipped
    assert clipped_fraction(rgb) == pytest.approx(3000 / 20000)
    assert clipped_fraction(rgb, (0, 20, 200, 100)) == 0.0
    assert clipped_fraction(rgb, (0, 0, 100, 20)) == pytest.approx(15 / 20)
