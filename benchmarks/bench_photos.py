"""Benchmark: `outcomes photos` on 12-megapixel JPEGs, on local cores and on a Dask LocalCluster.

Generates N 4000×3000 JPEGs (H1's renderer: a skin with a colour chart under 2700-6500 K and
small pose changes, 4 photos per patient; a noisy texture of its own when the simulator is not
installed; cached under benchmarks/_work/photos: rendering takes about 10 s a photo), then measures them with the command's runner
(`outcomes.photos.command.run`): once on the local process pool (every core), once on a
`distributed.LocalCluster` with 2 worker processes of one thread. Prints photos per second for
both (target: at least 2 on a 2-core machine) and the peak memory (this process, and the
largest worker process).

The measurement is the project's (`command.measure_photo`: H1's measure_skin and H2's quality,
pose by H2's registration) when those modules are installed; otherwise a stand-in that reads
the same pixels (mean colour, gradient roughness, clipped share) and says so. Everything the
command does besides (hashing, header probe, decoding at the working size, orientation,
planning, writing) is the real thing either way.

    .venv/bin/python benchmarks/bench_photos.py [--photos 24] [--workers 2]
"""
from __future__ import annotations

import argparse
import io
import os
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / "_work" / "photos"
TARGET = 2.0  # photos per second on 2 cores
SIZE = (4000, 3000)


def _rendered(i: int) -> bytes:
    """Photo i: H1's renderer, 4 captures per skin (illuminant 2700-6500 K, small shifts and turns)."""
    from outcomes.photos.simulate import Capture, SkinTruth, render_photo

    rng = np.random.default_rng(i // 4)
    truth = SkinTruth(L=rng.uniform(45, 70), a=rng.uniform(8, 16), b=rng.uniform(12, 20),
                      spot_fraction=rng.uniform(1, 8), line_density=rng.uniform(0.5, 3), roughness=rng.uniform(0.5, 2))
    visit = np.random.default_rng(1000 + i)
    capture = Capture(cct_k=float(visit.uniform(2700, 6500)), shift_px=tuple(visit.uniform(-40, 40, 2)),
                      rotation_deg=float(visit.uniform(-2, 2)), size=SIZE, seed=i)
    return render_photo(truth, capture, texture_seed=i // 4).jpeg


def _own(i: int) -> bytes:
    """Photo i without the simulator: a noisy skin-like texture with a colour chart."""
    from PIL import Image

    rng = np.random.default_rng(i)
    small = rng.normal(0, 1, (SIZE[1] // 8, SIZE[0] // 8, 3))
    base = np.array([205, 160, 135]) * (0.9 + 0.2 * rng.random())
    tile = np.clip(base + 12 * small + rng.normal(0, 4, small.shape), 0, 255).astype(np.uint8)
    pixels = np.asarray(Image.fromarray(tile).resize(SIZE, Image.BILINEAR)).copy()
    pixels += rng.integers(0, 6, pixels.shape, dtype=np.uint8)  # sensor noise: realistic JPEG sizes
    for k in range(24):  # a colour chart, 6×4 patches, bottom right
        x, y = 2900 + (k % 6) * 170, 2300 + (k // 6) * 170
        pixels[y:y + 150, x:x + 150] = rng.integers(30, 230, 3)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def make_photos(folder: Path, n: int) -> str:
    """n 12-megapixel JPEGs and their index, kept between runs (same n and kind, same files)."""
    from concurrent.futures import ProcessPoolExecutor

    try:
        import outcomes.photos.simulate  # noqa: F401
        kind, make = "rendered by outcomes.photos.simulate (colour chart, 2700-6500 K, small pose changes)", _rendered
    except ImportError:
        kind, make = "own noisy texture with a chart (outcomes.photos.simulate not installed)", _own
    stamp = folder / "made.txt"
    if stamp.is_file() and stamp.read_text() == f"{n} {kind}":
        return kind
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        for i, data in enumerate(pool.map(make, range(n))):
            (folder / f"photo{i:04d}.jpg").write_bytes(data)
    rows = ["patient_id,photo_id,taken_at,view,file"]
    rows += [f"B{i // 4:04d},ph{i:04d},2025-{1 + i % 4:02d}-15,front,photo{i:04d}.jpg" for i in range(n)]
    (folder / "index.csv").write_text("\n".join(rows) + "\n")
    stamp.write_text(f"{n} {kind}")
    return kind


def stand_in_measure(rgb: np.ndarray, region):
    """Reads the pixels as a measurement would (colour, gradients, clipping) when H1's is absent."""
    from outcomes.photos.command import Reading

    part = rgb.astype(np.float32) / 255.0
    grey = part.mean(axis=2)
    gy, gx = np.gradient(grey)
    return Reading(metrics={"texture": float(np.hypot(gx, gy).mean()), "wrinkles": float(grey.std())},
                   chart=False, color_delta_e=float("nan"), blur=0.0,
                   clipped=float(((rgb == 0) | (rgb == 255)).any(axis=2).mean()))


def stand_in_pose(reference: np.ndarray, moving: np.ndarray) -> float:
    return float(abs(reference.mean() - moving.mean()))


def stand_in_with_quality(rgb: np.ndarray, region):
    """The stand-in skin metrics, with H2's real blur and clipping readings."""
    from outcomes.photos import quality

    reading = stand_in_measure(rgb, region)
    return type(reading)(metrics=reading.metrics, chart=False, color_delta_e=float("nan"),
                         blur=quality.blur_score(rgb, region), clipped=quality.clipped_fraction(rgb, region))


def measurement():
    """The project's measurement where its modules are installed, a stand-in for the parts that are not."""
    from outcomes.photos import command

    def installed(name: str) -> bool:
        try:
            __import__(f"outcomes.photos.{name}")
        except ImportError:
            return False
        return True

    if installed("measure") and installed("quality") and installed("registration"):
        return command.measure_photo, command.pose_error, "the project's (measure_skin, quality, pose_error)"
    if installed("quality") and installed("registration"):
        return (stand_in_with_quality, command.pose_error,
                "stand-in skin metrics (outcomes.photos.measure not installed); the project's blur, clipping and pose_error")
    return stand_in_measure, stand_in_pose, "stand-in (outcomes.photos.measure/quality/registration not installed)"


def peak_gb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024**2


class Workers:
    """Samples this process's descendants (pool workers, Dask workers) every 0.1 s: the peak
    resident memory of the largest, and the CPU seconds they used (psutil, a dependency of distributed)."""

    def __init__(self):
        import threading

        import psutil

        self.me, self.peak, self.first, self.last = psutil.Process(), 0, {}, {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self.done.wait(0.1):
            for child in self.me.children(recursive=True):
                try:
                    self.peak = max(self.peak, child.memory_info().rss)
                    times = child.cpu_times()
                    self.first.setdefault(child.pid, times.user + times.system)
                    self.last[child.pid] = times.user + times.system
                except psutil.Error:
                    pass

    @property
    def cpu(self) -> float:
        """CPU seconds the descendants used while sampled (a process's first 0.1 s may be missed)."""
        return sum(self.last[pid] - self.first[pid] for pid in self.last)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=24)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    from distributed import LocalCluster

    from outcomes.photos import command

    photos = WORK / "in"
    start = time.perf_counter()
    kind = make_photos(photos, args.photos)
    megabytes = sum(p.stat().st_size for p in photos.glob("*.jpg")) / 1e6
    print(f"{args.photos} photos of {SIZE[0]}×{SIZE[1]}, {kind} ({megabytes:.0f} MB of JPEG) ready in "
          f"{time.perf_counter() - start:.1f} s; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    measure, pose, which = measurement()
    print(f"measurement: {which}")
    figures = {}
    for name in ("local", "dask"):
        out = WORK / f"photo_metrics.{name}.csv"
        out.unlink(missing_ok=True)  # the benchmark's own file: every photo is measured
        if name == "local":
            with Workers() as workers:
                start, cpu = time.perf_counter(), time.process_time()
                result = command.run(photos, out, measure=measure, pose=pose, workers=args.workers)
                took, cpu = time.perf_counter() - start, time.process_time() - cpu
        else:
            with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
                with Workers() as workers:
                    start, cpu = time.perf_counter(), time.process_time()
                    result = command.run(photos, out, measure=measure, pose=pose, scheduler=cluster.scheduler_address)
                    took, cpu = time.perf_counter() - start, time.process_time() - cpu
        assert result.failed == 0 and result.measured == args.photos, (result.failed, result.measured)
        figures[name] = args.photos / took
        worker_cpu = workers.cpu
        print(f"{name:>5}: {args.photos} photos in {took:.1f} s = {figures[name]:.2f} photos/s "
              f"(target >= {TARGET}): {'ok' if figures[name] >= TARGET else 'BELOW TARGET'}; "
              f"CPU {(cpu + worker_cpu) / args.photos:.2f} s a photo (this process {cpu / args.photos:.2f}), "
              f"so about {os.cpu_count() * args.photos / (cpu + worker_cpu):.1f} photos/s on {os.cpu_count()} idle cores; "
              f"largest worker process peak {workers.peak / 1024**3:.2f} GB (sampled)")
    print(f"peak memory of this process: {peak_gb(resource.RUSAGE_SELF):.2f} GB")
    print(f"load average at the end {os.getloadavg()[0]:.1f} (other jobs share the cores: wall-clock figures fall with it)")


if __name__ == "__main__":
    sys.exit(main())
