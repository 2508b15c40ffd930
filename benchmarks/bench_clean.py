"""Benchmark: `outcomes clean` on a ~5 million row photo_metrics registry vs. only reading it.

Why: the cleaner should stay within 4x the time pandas (`read_csv(engine="pyarrow")`, default
dtypes, default allocator) needs just to read the same CSV files, and under 4 GB of memory. The
synthetic registry is cached under benchmarks/_work/ (git-ignored). Each timing runs in a fresh
subprocess so that its peak memory (ru_maxrss) and CPU time are its own; `outcomes clean` runs
the command's own code path (`cli_clean`: read, validate, link, write every output), and its
step timings are printed. Timings are wall-clock and shared machines are noisy, so both are
timed for several rounds, interleaved (read, clean, read, clean, ...; the load average is shown
with each) and the ratio is taken of the fastest of each: run it on an otherwise idle machine.
Imports are not timed on either side. CPU seconds (user + system, all threads) are printed
beside the wall-clock times: on a 2-core machine a wall-clock time can't be less than half of them.

    .venv/bin/python benchmarks/bench_clean.py [--rows 5000000] [--seed 7] [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work"
ROWS_PER_PATIENT = 110  # photo_metrics rows per simulated patient (measured on the default simulator)

READ = """
import resource, sys, time
from pathlib import Path
import pandas as pd
raw = Path(sys.argv[1])
cpu_after = lambda usage: usage.ru_utime + usage.ru_stime
cpu_before = cpu_after(resource.getrusage(resource.RUSAGE_SELF))
start = time.perf_counter()
frames = {p.name: pd.read_csv(p, engine="pyarrow", sep=";" if p.name.startswith("photo_metrics") else ",")
          for p in sorted(raw.glob("*.csv"))}
seconds = time.perf_counter() - start
rows = sum(len(f) for f in frames.values())
usage = resource.getrusage(resource.RUSAGE_SELF)
print(cpu_after(usage) - cpu_before, seconds, rows, usage.ru_maxrss)
"""

CLEAN = """
import contextlib, io, json, logging, resource, sys, time
from pathlib import Path
from outcomes.cleaning import cli_clean
logging.basicConfig(level=logging.DEBUG, format="  step %(message)s", stream=sys.stderr)
logging.getLogger("numexpr").setLevel(logging.WARNING)
cpu_after = lambda usage: usage.ru_utime + usage.ru_stime
cpu_before = cpu_after(resource.getrusage(resource.RUSAGE_SELF))
start = time.perf_counter()
with contextlib.redirect_stdout(io.StringIO()):  # the command's own summary is not timed output
    code = cli_clean(sys.argv[1], sys.argv[2])
seconds = time.perf_counter() - start
assert code == 0, code
rows = sum(t["read"] for t in json.loads((Path(sys.argv[2]) / "manifest.json").read_text())["tables"].values())
usage = resource.getrusage(resource.RUSAGE_SELF)
print(cpu_after(usage) - cpu_before, seconds, rows, usage.ru_maxrss)
"""


def cohort(rows: int, seed: int) -> Path:
    """Simulate (once) a cohort with about `rows` photo_metrics rows; return its raw folder."""
    n_patients = max(1, round(rows / ROWS_PER_PATIENT))
    raw = WORK / f"raw_{n_patients}_{seed}"
    if not (raw / "truth.json").is_file():
        from outcomes.simulation import simulate

        shutil.rmtree(raw, ignore_errors=True)
        start = time.perf_counter()
        simulate(n_patients=n_patients, seed=seed, out_dir=raw)
        print(f"simulated {n_patients} patients in {time.perf_counter() - start:.0f} s -> {raw}")
    return raw


def run(script: str, *args: str, steps: bool = False) -> tuple[float, int, float, float]:
    """(wall seconds, rows, peak GB, CPU seconds) of one fresh process running `script`."""
    out = subprocess.run([sys.executable, "-c", script, *args], check=True, capture_output=True, text=True)
    if steps:
        print("\n".join(line for line in out.stderr.splitlines() if line.startswith("  step ")))
    cpu, seconds, rows, maxrss_kb = out.stdout.split()[-4:]
    return float(seconds), int(rows), int(maxrss_kb) / 1024**2, float(cpu)


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000, help="photo_metrics rows to aim for")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=3, help="times each is timed; the fastest counts")
    args = parser.parse_args()
    raw = cohort(args.rows, args.seed)
    metrics_rows = sum(1 for _ in open(raw / "photo_metrics.csv", "rb")) - 1
    size = sum(p.stat().st_size for p in raw.glob("*.csv")) / 1024**2
    print(f"raw: {metrics_rows:,} photo_metrics rows; {size:,.0f} MB of CSV")
    reads, cleans = [], []
    for i in range(args.rounds):
        before = load()
        reads.append(run(READ, str(raw)))
        seconds, _, gb, cpu = reads[-1]
        print(f"round {i + 1}: read  {seconds:6.2f} s  cpu {cpu:5.2f} s  peak {gb:.2f} GB   (load average {before})")
        before = load()
        print("  outcomes clean, per step:")
        cleans.append(run(CLEAN, str(raw), str(WORK / "processed"), steps=True))
        seconds, _, gb, cpu = cleans[-1]
        print(f"round {i + 1}: clean {seconds:6.2f} s  cpu {cpu:5.2f} s  peak {gb:.2f} GB   (load average {before})")
    read_s, read_rows, read_gb, read_cpu = min(reads)
    clean_s, clean_rows, _, clean_cpu = min(cleans)
    clean_gb = max(c[2] for c in cleans)
    ratio = clean_s / read_s
    print(f"read  (pandas, engine=pyarrow): {read_s:6.2f} s  cpu {read_cpu:5.2f} s  {read_rows:,} rows"
          f"  peak {read_gb:.2f} GB  (fastest of {args.rounds})")
    print(f"clean (outcomes clean)        : {clean_s:6.2f} s  cpu {clean_cpu:5.2f} s  {clean_rows:,} rows"
          f"  peak {clean_gb:.2f} GB  (fastest of {args.rounds})")
    print(f"ratio clean/read: {ratio:.2f}  (target <= 4)   peak memory of clean: {clean_gb:.2f} GB (target <= 4)")
    print(json.dumps({"photo_metrics_rows": metrics_rows, "read_s": round(read_s, 2), "clean_s": round(clean_s, 2),
                      "read_cpu_s": round(read_cpu, 2), "clean_cpu_s": round(clean_cpu, 2), "ratio": round(ratio, 2),
                      "clean_peak_gb": round(clean_gb, 2), "read_peak_gb": round(read_gb, 2),
                      "read_all_s": [round(r[0], 2) for r in reads], "clean_all_s": [round(c[0], 2) for c in cleans]}))


if __name__ == "__main__":
    main()
