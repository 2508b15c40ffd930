"""Photo-quality flags: problems that do not reject a measurement but make it suspect.

Why flags, not rejections: a photo with make-up or a turned head still tells something, but
models leave flagged rows out by default. Flags are kept as a bit mask while computing
(fast on millions of rows) and written as `qc_reasons`, a ";"-joined text in a fixed order.
"""
from __future__ import annotations

import numpy as np

from outcomes import contract

# Fixed order of qc_reasons; each is one bit.
FLAGS = (
    "no_baseline",  # no baseline for this patient x metric x view (improvement is NaN)
    "baseline_zero",  # the baseline value is 0, so a percentage change is undefined
    "baseline_qc",  # the baseline photo itself has make-up, blur or a colour problem
    "makeup",  # make-up on the photo
    "blur",  # blur > 0.5
    "color_delta_e",  # colour-card ΔE > 5 against the reference
    "yaw_vs_baseline",  # head yaw differs from the baseline photo by more than 10°
    "view_differs_from_baseline",  # compared with the front baseline for lack of one in this view
    # measured from the pixels (outcomes photos, issue 13); last, so the earlier flags keep their bits
    "no_chart",  # a colour metric (contract.COLOUR_METRICS) of a photo without a colour chart: uncorrected
    "exposure",  # more than 2% of the skin region's pixels clipped
    "pose_vs_baseline",  # the face's pose differs from the baseline photo's by more than 0.10
)
BIT = {name: np.uint16(1 << i) for i, name in enumerate(FLAGS)}
# properties of the photo itself: they count in choosing one photo per cell, and a baseline with
# one of them flags the rows compared with it (baseline_qc). Pose is a comparison with the
# baseline photo (as yaw), so it is not one of them.
PHOTO_FLAGS = ("makeup", "blur", "color_delta_e", "no_chart", "exposure")
PHOTO_BITS = np.uint16(sum(int(BIT[f]) for f in PHOTO_FLAGS))


def photo_flags(makeup: np.ndarray, blur: np.ndarray, delta_e: np.ndarray, no_chart: np.ndarray | None = None,
                clipped: np.ndarray | None = None, pose_error: np.ndarray | None = None) -> np.ndarray:
    """Bit mask of the problems read off the photo's own row (its quality readings; pose_error is
    already measured against the baseline photo). NaN/unknown readings raise no flag."""
    mask = np.zeros(len(blur), dtype=np.uint16)
    add(mask, "makeup", np.asarray(makeup, dtype=bool))
    with np.errstate(invalid="ignore"):
        add(mask, "blur", blur > contract.QC_MAX_BLUR)
        add(mask, "color_delta_e", delta_e > contract.QC_MAX_DELTA_E)
        if no_chart is not None:
            add(mask, "no_chart", np.asarray(no_chart, dtype=bool))
        if clipped is not None:
            add(mask, "exposure", clipped > contract.QC_MAX_CLIPPED)
        if pose_error is not None:
            add(mask, "pose_vs_baseline", pose_error > contract.QC_MAX_POSE_ERROR)
    return mask


def add(mask: np.ndarray, flag: str, where: np.ndarray) -> None:
    """Set `flag` in the bit mask where `where` holds (in place)."""
    np.bitwise_or(mask, BIT[flag], out=mask, where=where)


def quality_rank(mask: np.ndarray) -> np.ndarray:
    """Number of the photo's own problems: lower is better quality (used to pick one photo)."""
    return _RANKS[mask]


_RANKS = np.array([bin(m & int(PHOTO_BITS)).count("1") for m in range(1 << len(FLAGS))], dtype=np.int8)  # by mask


def yaw_differs(yaw: np.ndarray, baseline_yaw: np.ndarray) -> np.ndarray:
    """Head yaw more than the threshold away from the baseline photo's (a missing reading: no)."""
    difference = yaw - baseline_yaw
    np.abs(difference, out=difference)
    with np.errstate(invalid="ignore"):
        return difference > contract.QC_MAX_YAW_DIFF_DEG


# qc_reasons text of every possible mask: REASON_TEXTS[mask]
REASON_TEXTS = [";".join(f for f in FLAGS if m & int(BIT[f])) for m in range(1 << len(FLAGS))]

