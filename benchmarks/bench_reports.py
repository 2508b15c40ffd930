"""Benchmark: the default report grid on the 2,000-patient demo cohort, raw CSV to all PDFs.

Runs what `make report` runs, as the scheduler would (subprocesses, no terminal, CI=true):
`outcomes clean` on the raw CSV export, then `outcomes report --grid reports.yml --jobs 2`.
Prints the total time (target: under 3 minutes on a 2-core machine), the time per report,
and the share of each report's time spent making the PDF (read from the reports' logs).

    .venv/bin/python benchmarks/bench_reports.py [--patients 2000] [--jobs 2]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / "_work" / "reports"
OUTCOMES = Path(sys.executable).with_name("outcomes")
TARGET_SECONDS = 180


def run(args: list[str], env: dict[str, str], ok: tuple[int, ...] = (0,)) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    proc = subprocess.run([str(OUTCOMES), *args], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode not in ok:
        sys.exit(f"`outcomes {' '.join(args)}` exited {proc.returncode}:\n{proc.stderr}{proc.stdout}")
    return elapsed, proc


def seconds(log: str, what: str) -> float:
    match = re.search(rf"{what} in ([0-9.]+)s", log)
    return float(match.group(1)) if match else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--jobs", type=int, default=2)
    opts = parser.parse_args()

    shutil.rmtree(WORK, ignore_errors=True)
    raw, processed, out = WORK / "raw", WORK / "processed", WORK / "reports"
    env = {**os.environ, "CI": "true"}

    sim_s, _ = run(["simulate", "--patients", str(opts.patients), "--out", str(raw)], env)
    clean_s, _ = run(["clean", "--raw", str(raw), "--out", str(processed)], env)
    report_s, proc = run(["report", "--grid", str(ROOT / "reports.yml"), "--processed", str(processed),
                          "--out", str(out), "--jobs", str(opts.jobs)], env, ok=(0, 1))
    total = clean_s + report_s

    print(f"Report benchmark: {opts.patients:,} simulated patients, --jobs {opts.jobs}, {os.cpu_count()} CPUs")
    print(f"  simulate (not counted)   {sim_s:7.1f} s")
    print(f"  clean raw CSV            {clean_s:7.1f} s")
    print(f"  report grid              {report_s:7.1f} s")
    print(f"  TOTAL raw CSV -> PDFs    {total:7.1f} s   (target < {TARGET_SECONDS} s: "
          f"{'met' if total < TARGET_SECONDS else 'NOT met'})")
    print()
    print(f"  {'report':32} {'status':7} {'total':>7} {'execute':>8} {'pdf':>6} {'pdf share':>9}")
    day = (out / "latest").resolve()  # this run's own folder, OUT/<date>/<HHMMSS>/
    rows = []
    for log_path in sorted(day.glob("*.log")):
        log = log_path.read_text()
        execute, pdf = seconds(log, "executed"), seconds(log, "PDF written")
        ok = (day / f"{log_path.stem}.pdf").exists()
        rows.append((log_path.stem, "ok" if ok else "FAILED", execute, pdf))
    for name, status, execute, pdf in rows:
        both = execute + (pdf if pdf == pdf else 0.0)
        share = f"{100 * pdf / both:8.1f}%" if pdf == pdf else "       -"
        print(f"  {name:32} {status:7} {both:6.1f}s {execute:7.1f}s {pdf:5.1f}s {share}")
    pdf_total = sum(p for *_, p in rows if p == p)
    work_total = sum(e + (p if p == p else 0) for *_, e, p in rows)
    print(f"  all reports: {work_total:.1f} s of work on {opts.jobs} jobs; PDF making {pdf_total:.1f} s "
          f"({100 * pdf_total / work_total:.1f}%)")
    if proc.returncode:
        print("\nSome reports failed:\n" + proc.stdout)


if __name__ == "__main__":
    main()
