"""Registration of two photos of the same view (issue 13, points 4 and 5): a known shift,
rotation and scale is recovered to within 2 px; pose_error separates a repeat shot from a
clearly different pose."""
from __future__ import annotations

import numpy as np
import pytest
from skimage.transform import resize

from outcomes.contract import QC_MAX_POSE_ERROR as POSE_ERROR_LIMIT
from outcomes.photos.registration import NO_MATCH_ERROR, Similarity, pose_error, register
from photo_factory import posed, skin


def _misalignment(found: Similarity, dx, dy, rotation_deg, scale) -> float:
    """Largest distance (px) between where the found and the true transform put a frame corner."""
    true = Similarity(dx, dy, rotation_deg, scale, 0.0, 1.0, found.reference_shape)
    h, w = found.reference_shape
    corners = np.array([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1]], float)
    return float(np.max(np.linalg.norm(corners @ found.matrix().T - corners @ true.matrix().T, axis=1)))


@pytest.mark.parametrize("pose", [(10, -5, 0, 1.0), (0, 0, 6, 1.0), (0, 0, 0, 1.1), (12, 7, 8, 1.08),
                                  (-20, 15, -12, 0.9)], ids=str)
def test_known_shift_rotation_and_scale_recovered_within_2_px(pose):
    reference = skin((400, 300), seed=1)
    found = register(reference, posed(reference, *pose))
    assert _misalignment(found, *pose) <= 2.0
    assert found.match > 0.8


def test_registration_at_camera_resolution_and_across_cameras():
    reference = skin((800, 600), seed=4)
    pose = (15, -9, 4, 1.05)
    found = register(reference, posed(reference, *pose))
    assert _misalignment(found, *pose) <= 2.0
    # the same shot by a camera of 1.5× the resolution: the framing, not the pixel count, is compared
    bigger = resize(posed(reference, *pose), (900, 1200), preserve_range=True, anti_aliasing=False).astype(np.uint8)
    assert _misalignment(register(reference, bigger), *pose) <= 2.0


def test_apply_puts_the_moving_photo_onto_the_reference():
    reference = skin((400, 300), seed=2)
    moving = posed(reference, 14, -6, 7, 1.06)
    found = register(reference, moving)
    aligned = found.apply(moving)
    assert aligned.shape == reference.shape and aligned.dtype == np.uint8
    inner = (slice(40, 260), slice(50, 350))  # away from the uncovered border
    before = np.abs(moving[inner].astype(int) - reference[inner]).mean()
    after = np.abs(aligned[inner].astype(int) - reference[inner]).mean()
    assert after < 2.0 < before


def test_pose_error_flags_a_clearly_different_pose_not_a_repeat_shot():
    baseline = skin((400, 300), seed=3)
    repeat = posed(baseline, 4, -3, 1.5, 1.02)  # the same standardised shot, a little off
    different = posed(baseline, 45, 30, 18, 1.25)  # framed clearly otherwise
    assert pose_error(baseline, repeat) < POSE_ERROR_LIMIT / 2
    assert POSE_ERROR_LIMIT < pose_error(baseline, different) < NO_MATCH_ERROR  # measured, not given up on
    assert pose_error(baseline, skin((400, 300), seed=9)) == NO_MATCH_ERROR  # other skin: nothing aligns


def test_rendered_photos_under_other_light_are_registered_within_2_px():
    """The photo simulator: the same skin and chart under 6500 K and 3000 K, the second shot moved."""
    from outcomes.photos.simulate import Capture, SkinTruth, render_photo

    truth = SkinTruth(L=62, a=14, b=17, spot_fraction=4.0, line_density=3.0, roughness=2.0)
    reference = render_photo(truth, Capture(size=(400, 300)), texture_seed=1).rgb
    for shift, rotation, scale in [((8, 6), 4, 1.06), ((-12, 9), -8, 0.93)]:
        moving = render_photo(truth, Capture(cct_k=3000, shift_px=shift, rotation_deg=rotation, scale=scale,
                                             size=(400, 300), seed=5), texture_seed=1).rgb
        assert _misalignment(register(reference, moving), *shift, rotation, scale) <= 2.0


def test_a_reference_prepared_once_gives_the_same_pose_as_the_photo_itself(monkeypatch):
    """`outcomes photos` prepares the baseline photo once per patient and view (registration.Reference)
    and compares every later photo with it: the same Similarity and pose_error as comparing with
    the plain photo, photo after photo (nothing of one comparison leaks into the next), and the
    reference's share of the work is done once."""
    from outcomes.photos import registration
    from outcomes.photos.simulate import Capture, SkinTruth, render_photo

    truth = SkinTruth(L=58, a=13, b=16, spot_fraction=5.0, line_density=2.5, roughness=1.5)
    baseline = render_photo(truth, Capture(size=(640, 480)), texture_seed=2).rgb
    later = [render_photo(truth, Capture(cct_k=cct, shift_px=shift, rotation_deg=rotation, scale=scale,
                                         size=(640, 480), seed=i), texture_seed=2).rgb
             for i, (cct, shift, rotation, scale) in enumerate([(3000, (9, -6), 2.0, 1.02), (6500, (-14, 4), -3.0, 0.97),
                                                                  (4200, (3, 11), 0.5, 1.0)])]
    later.append(skin((640, 480), seed=9))  # nothing aligns: NO_MATCH_ERROR both ways
    plain = [(register(baseline, photo), pose_error(baseline, photo)) for photo in later]
    spectra = []
    counted = registration._log_polar_spectrum
    monkeypatch.setattr(registration, "_log_polar_spectrum", lambda grey: spectra.append(grey.shape) or counted(grey))
    reference = registration.Reference(baseline)
    prepared = [(register(reference, photo), pose_error(reference, photo)) for photo in later]
    for (want, want_error), (got, got_error) in zip(plain, prepared):
        assert np.allclose(
            [got.dx, got.dy, got.rotation_deg, got.scale, got.residual_px, got.match],
            [want.dx, want.dy, want.rotation_deg, want.scale, want.residual_px, want.match], rtol=0, atol=1e-9)
        assert got.reference_shape == want.reference_shape and got_error == pytest.approx(want_error, abs=1e-9)
    assert prepared[-1][1] == NO_MATCH_ERROR and prepared[0][1] < POSE_ERROR_LIMIT
    # 8 comparisons × 2 passes: the moving photo's log-polar spectrum each time, the reference's once
    # (unprepared, both were computed in every pass: 32)
    assert len(spectra) == 1 + 2 * 2 * len(later)


@pytest.mark.parametrize("side", [300, 511])
def test_the_log_polar_grid_made_once_reads_the_spectrum_as_warp_polar_does(side):
    from skimage.transform import warp, warp_polar

    from outcomes.photos.registration import _log_polar_grid

    spectrum = np.abs(np.random.default_rng(side).normal(size=(side, side))) ** 3
    expected = warp_polar(spectrum, radius=side // 2 - 1, output_shape=(720, 720), scaling="log", order=1)[:360]
    assert np.array_equal(warp(spectrum, _log_polar_grid(side), order=1), expected)
