"""Time measure_skin on a 12-megapixel simulated photo (decode excluded), one core.

Usage: .venv/bin/python benchmarks/time_measure_skin.py [repeats]
Prints seconds per photo for: chart found at the first working width, and no chart (both widths tried).
"""
from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import cv2  # noqa: E402

cv2.setNumThreads(1)

from outcomes.photos.measure import measure_skin  # noqa: E402
from outcomes.photos.simulate import Capture, SkinTruth, render_photo  # noqa: E402


def main(repeats: int = 5) -> None:
    skin = SkinTruth(L=62.0, a=12.0, b=17.0, spot_fraction=4.0, line_density=4.0, roughness=1.5)
    for chart in (True, False):
        photo = render_photo(skin, Capture(cct_k=3500.0, size=(4000, 3000), chart=chart, rotation_deg=1.0), texture_seed=1)
        measure_skin(photo.rgb, photo.skin_box)  # warm-up: imports
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            m = measure_skin(photo.rgb, photo.skin_box)
            times.append(time.perf_counter() - start)
        times.sort()
        print(f"12 MP ({photo.rgb.shape[1]}x{photo.rgb.shape[0]}), chart {'in frame' if chart else 'absent'}: "
              f"median {times[len(times) // 2]:.3f} s, best {times[0]:.3f} s per photo "
              f"(chart found: {m.chart_found}, JPEG {len(photo.jpeg) / 1e6:.1f} MB)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
