"""Model benchmarks (printed figures, not tests).

1. coverage: 95% CI coverage of the session effect over many simulated cohorts
   (simulate -> clean -> fit_improvement), target 93-97%, printed with its Monte Carlo SE.
   The session effect is the contrast E[improvement | 4 sessions] - E[... | 1 session] for a
   45-year-old with skin type III, whose true value comes from truth.json.
2. fit-times: fit_improvement on 2,000 and 20,000 patients x 6 sessions, and fit_predictive
   on 2,000, wall time and the peak memory (max RSS) of a fresh process per run.
3. mixed-large: fit_mixed (random intercept and log1p slope, REML; the model and data of
   bench_vs_r.py) on 1,000,000 patients x 6 sessions in a fresh process: wall time of the fit
   and peak RSS of the whole process (data included), against the goal of < 60 s and < 8 GB.
   Not part of "all" (it needs ~3 GB and a minute).

Usage:  python benchmarks/bench_models.py [coverage|fit-times|mixed-large [n]] [--cohorts 200] [--patients 400]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

METRIC = "hydration"
CONTRASTS = {"sessions 4 vs 1": ((4, 45, "III"), (1, 45, "III")), "age 60 vs 35": ((3, 60, "III"), (3, 35, "III"))}


def one_cohort(seed: int, n_patients: int) -> dict:
    import outcomes
    from outcomes.models import fit_improvement
    from outcomes.simulation import expected_improvement

    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        cohort = outcomes.simulate(n_patients, seed=seed, out_dir=Path(tmp) / "raw", tidy=True)
        tables = outcomes.clean(Path(tmp) / "raw").tables
    m = fit_improvement(tables["outcomes"], METRIC, patients=tables["patients"])
    out = {"seed": seed, "converged": m.converged_}
    for name, (a, b) in CONTRASTS.items():
        c = m.contrast(m.frame(*a), m.frame(*b)).iloc[0]
        true = float(expected_improvement(cohort.truth, METRIC, *a) - expected_improvement(cohort.truth, METRIC, *b))
        out[name] = bool(c["ci_low"] <= true <= c["ci_high"])
        out[name + " error"] = float(c["estimate"] - true)
    return out


def coverage(n_cohorts: int, n_patients: int, workers: int = 2) -> None:
    t0 = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        rows = list(pool.map(one_cohort, range(1, n_cohorts + 1), [n_patients] * n_cohorts))
    res = pd.DataFrame(rows)
    print(f"== CI coverage over {n_cohorts} simulated cohorts of {n_patients} patients "
          f"({METRIC}, simulate -> clean -> fit_improvement; {time.perf_counter() - t0:.0f} s)")
    print(f"   converged: {res['converged'].mean():.1%}")
    for name in CONTRASTS:
        p = res[name].mean()
        se = np.sqrt(p * (1 - p) / len(res))
        bias = res[name + " error"].mean()
        print(f"   {name:16s} coverage {p:.1%} (Monte Carlo SE {se:.1%}; target 93-97%), "
              f"mean error {bias:+.3f} points")


def synthetic(n_patients: int, n_sessions: int = 6, seed: int = 0) -> pd.DataFrame:
    """outcomes-shaped rows: every patient measured after 1..n_sessions sessions (no dropout),
    truth of the domain's form (emax 30, k 0.55, age -1%/year, skin multipliers, r ~ N(1, 0.5))."""
    rng = np.random.default_rng(seed)
    skin_types = np.array(["I", "II", "III", "IV", "V", "VI"])
    age = np.clip(rng.normal(47, 9, n_patients), 25, 70).round()
    skin = rng.choice(skin_types, n_patients, p=[0.07, 0.28, 0.48, 0.10, 0.05, 0.02])
    mult = pd.Series(skin).map({"I": 1, "II": 1, "III": 1, "IV": 0.9, "V": 0.8, "VI": 0.8}).to_numpy()
    r = rng.normal(1, 0.5, n_patients)
    n = np.tile(np.arange(n_sessions + 1), n_patients)
    i = np.repeat(np.arange(n_patients), n_sessions + 1)
    mean = 30 * (1 - np.exp(-0.55 * n)) * (1 - 0.01 * (age[i] - 45)) * mult[i] * r[i]
    y = np.where(n == 0, 0.0, mean + rng.normal(0, 5, n.size))
    return pd.DataFrame({
        "patient_id": np.char.add("P", i.astype(str)), "metric": METRIC, "view": "front", "sessions": n,
        "improvement_pct": y, "improvement": y, "age": age[i], "skin_type": pd.Categorical(skin[i], categories=list(skin_types),
                                                                           ordered=True),
        "qc_ok": True, "qc_reasons": "",
    })


def fit_time_child(n_patients: int, what: str = "improvement") -> None:
    """Runs in a fresh process: prints one JSON line (time, peak RSS)."""
    from outcomes.models import fit_improvement, fit_mixed, fit_predictive

    if what == "mixed":
        from bench_vs_r import simulate  # this script's folder is on sys.path when run as a script

        data = simulate(n_patients)
    else:
        data = synthetic(n_patients)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    if what == "mixed":
        m = fit_mixed(data, "improvement", "sessions", "patient_id", covariates=("age_c", "skin_type"),
                      time_transform="log1p", random_slope=True, reml=True)
        extra = {"rows": m.n_obs_, "converged": m.converged_, "optimizers": m.attempts_["optimizer"].tolist()}
    elif what == "predictive":
        m = fit_predictive(data, METRIC)
        extra = {"rows": len(m.rows_), "converged": True, "optimizers": ["5 folds"]}
    else:
        m = fit_improvement(data, METRIC)
        extra = {"rows": m.mixed_.n_obs_, "converged": m.converged_,
                 "optimizers": m.mixed_.attempts_["optimizer"].tolist()}
    seconds = time.perf_counter() - t0
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"what": what, "patients": n_patients, "seconds": seconds, "peak_rss_mib": peak_kib / 1024,
                      "rss_before_fit_mib": rss_before / 1024, **extra}))


def fit_times(sizes=(2_000, 20_000)) -> None:
    print("== fit times: fit_improvement (spline x age x skin type interactions, random intercept + slope);"
          " fit_predictive (5 patient-grouped folds, each with its mixed model)")
    for what, n in [*(("improvement", n) for n in sizes), ("predictive", sizes[0])]:
        out = subprocess.run([sys.executable, __file__, "_child", str(n), "--model", what],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"   {what:>11} {r['patients']:>6,} patients x 6 sessions ({r['rows']:,} rows): {r['seconds']:.1f} s, "
              f"peak RSS {r['peak_rss_mib']:.0f} MiB (process before the fit: {r['rss_before_fit_mib']:.0f} MiB), "
              f"converged={r['converged']}, steps: {', '.join(r['optimizers'])}")


def mixed_large(n_patients: int = 1_000_000, max_seconds: float = 60, max_gb: float = 8) -> None:
    print(f"== fit_mixed on {n_patients:,} patients x 6 sessions (improvement ~ log1p(sessions) + age_c + skin_type"
          " + (log1p(sessions) | patient), REML), fresh process")
    out = subprocess.run([sys.executable, __file__, "_child", str(n_patients), "--model", "mixed"],
                         capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    peak_gb = r["peak_rss_mib"] * 2**20 / 1e9
    met = r["seconds"] < max_seconds and peak_gb < max_gb
    print(f"   {r['rows']:,} rows: fit {r['seconds']:.1f} s, peak RSS {peak_gb:.2f} GB (whole process, data included; "
          f"{r['rss_before_fit_mib'] * 2**20 / 1e9:.2f} GB before the fit), converged={r['converged']}, "
          f"steps: {', '.join(r['optimizers'])}; goal < {max_seconds:.0f} s and < {max_gb:.0f} GB: "
          f"{'met' if met else 'NOT met'}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", nargs="?", default="all", choices=["all", "coverage", "fit-times", "mixed-large", "_child"])
    ap.add_argument("n", nargs="?", type=int)
    ap.add_argument("--cohorts", type=int, default=200)
    ap.add_argument("--patients", type=int, default=400)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--model", default="improvement", choices=["improvement", "predictive", "mixed"],
                    help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.what == "_child":
        fit_time_child(args.n, args.model)
        return
    if args.what == "mixed-large":
        mixed_large(args.n or 1_000_000)
        return
    if args.what in ("all", "fit-times"):
        fit_times()
    if args.what in ("all", "coverage"):
        coverage(args.cohorts, args.patients, args.workers)


if __name__ == "__main__":
    main()
