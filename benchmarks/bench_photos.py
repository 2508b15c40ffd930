"""Benchmark: `outcomes photos` on 12-megapixel JPEGs, on local cores and on a Dask LocalCluster.

Generates N 4000×3000 JPEGs with the photo simulator (a skin with a colour chart under
2700-6500 K and small pose changes, 4 photos per patient; cached under benchmarks/_work/photos:
rendering takes about 10 s a photo), then measures them with the command's runner
(`outcomes.photos.command.run`, the project's measurement: measure_skin, blur, clipping, pose):
on the local process pool (every core) and on a `distributed.LocalCluster` with 2 worker
processes of one thread, with Dask's default settings. Prints photos per second for each (target: at
least 2 on a 2-core machine), the CPU seconds a photo, the peak memory (this process, and the
largest worker process), and the CPU a photo of a warm worker. Figures: docs/photos.md §speed.

    .venv/bin/python benchmarks/bench_photos.py [--photos 24] [--workers 2]
"""
from __future__ import annotations

import argparse
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
KIND = "rendered by outcomes.photos.simulate (colour chart, 2700-6500 K, small pose changes)"


def _rendered(i: int) -> bytes:
    """Photo i: 4 captures per skin (illuminant 2700-6500 K, small shifts and turns)."""
    from outcomes.photos.simulate import Capture, SkinTruth, render_photo

    rng = np.random.default_rng(i // 4)
    truth = SkinTruth(L=rng.uniform(45, 70), a=rng.uniform(8, 16), b=rng.uniform(12, 20),
                      spot_fraction=rng.uniform(1, 8), line_density=rng.uniform(0.5, 3), roughness=rng.uniform(0.5, 2))
    visit = np.random.default_rng(1000 + i)
    capture = Capture(cct_k=float(visit.uniform(2700, 6500)), shift_px=tuple(visit.uniform(-40, 40, 2)),
                      rotation_deg=float(visit.uniform(-2, 2)), size=SIZE, seed=i)
    return render_photo(truth, capture, texture_seed=i // 4).jpeg


def make_photos(folder: Path, n: int) -> None:
    """n 12-megapixel JPEGs and their index, kept between runs (same n, same files)."""
    from concurrent.futures import ProcessPoolExecutor

    stamp = folder / "made.txt"
    if stamp.is_file() and stamp.read_text() == f"{n} {KIND}":
        return
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        for i, data in enumerate(pool.map(_rendered, range(n))):
            (folder / f"photo{i:04d}.jpg").write_bytes(data)
    rows = ["patient_id,photo_id,taken_at,view,file"]
    rows += [f"B{i // 4:04d},ph{i:04d},2025-{1 + i % 4:02d}-15,front,photo{i:04d}.jpg" for i in range(n)]
    (folder / "index.csv").write_text("\n".join(rows) + "\n")
    stamp.write_text(f"{n} {KIND}")


def steady_cpu(folder: Path, n: int = 8) -> float:
    """CPU seconds a photo once a worker is warm (imports done): decode, pose against the first
    photo and measure, in this process, on n photos. Over many photos a run tends to this figure;
    on a few, the workers' start (imports, about 1.5 CPU-s each) adds to it."""
    from threadpoolctl import threadpool_limits

    from outcomes.photos import command, images
    from outcomes.photos.registration import Reference

    files = sorted(folder.glob("*.jpg"))[:n]
    reference = Reference(images.shrink(images.decode(files[0].read_bytes()).rgb, command.POSE_LONG_SIDE))  # as run_task
    command.measure_photo(images.decode(files[0].read_bytes()).rgb, None)  # warm-up: imports
    start = time.process_time()
    with threadpool_limits(limits=1):  # as command.run_task
        for path in files[1:]:
            loaded = images.decode(path.read_bytes())
            command.pose_error(reference, images.shrink(loaded.rgb, command.POSE_LONG_SIDE))
            command.measure_photo(loaded.rgb, None)
    return (time.process_time() - start) / (len(files) - 1)


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
    make_photos(photos, args.photos)
    megabytes = sum(p.stat().st_size for p in photos.glob("*.jpg")) / 1e6
    print(f"{args.photos} photos of {SIZE[0]}×{SIZE[1]}, {KIND} ({megabytes:.0f} MB of JPEG) ready in "
          f"{time.perf_counter() - start:.1f} s; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    figures = {}
    for name in ("local", "dask"):
        out = WORK / f"photo_metrics.{name}.csv"
        out.unlink(missing_ok=True)  # the benchmark's own file: every photo is measured
        if name == "local":
            with Workers() as workers:
                start, cpu = time.perf_counter(), time.process_time()
                result = command.run(photos, out, workers=args.workers)
                took, cpu = time.perf_counter() - start, time.process_time() - cpu
        else:
            with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
                with Workers() as workers:
                    start, cpu = time.perf_counter(), time.process_time()
                    result = command.run(photos, out, scheduler=cluster.scheduler_address)
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
    warm = steady_cpu(photos)
    print(f"steady state (a warm worker, one photo after another in this process): {warm:.2f} CPU-s a photo, "
          f"so about {(os.cpu_count() or 1) / warm:.1f} photos/s on {os.cpu_count()} idle cores over many photos")
    print(f"load average at the end {os.getloadavg()[0]:.1f} (other jobs share the cores: wall-clock figures fall with it)")


if __name__ == "__main__":
    sys.exit(main())
