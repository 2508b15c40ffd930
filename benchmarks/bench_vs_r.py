"""fit_ordinal, fit_gee and fit_mixed against R's ordinal::clm, geepack::geeglm and lme4::lmer.

Same simulated data in both (default 20,000 patients x 6 sessions = 120,000 rows, written to a
temporary CSV), same models:

    ordinal  score ~ sessions + age_c + skin_type                      (clm, logit)
    gee      improvement ~ log1p(sessions) + age_c + skin_type, id = patient, exchangeable,
             robust SEs                                                 (geeglm)
    mixed    improvement ~ log1p(sessions) + age_c + skin_type + (log1p(sessions) | patient), REML
                                                                        (lmer)

Prints the best wall time of ``--repeats`` fits in each language (data already in memory, the
libraries already loaded: the fit itself, as an analyst waits for it) and the largest
differences between the estimates. R is optional: where ``Rscript`` or one of the R packages
is missing, its column says so and the Python figures are still printed. To measure:
``apt-get install r-base-core r-cran-ordinal r-cran-geepack r-cran-lme4``.

Usage:  python benchmarks/bench_vs_r.py [--patients 20000] [--repeats 3] [--models ordinal,gee,mixed]
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

MODELS = ("ordinal", "gee", "mixed")
SKIN = {"II": 0.0, "III": -0.3, "IV": -0.8, "V": -1.5}
R_PACKAGES = {"ordinal": "ordinal", "gee": "geepack", "mixed": "lme4"}

R_SCRIPT = r"""
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1], stringsAsFactors = FALSE)
models <- strsplit(args[2], ",")[[1]]
repeats <- as.integer(args[3])
d$skin_type <- factor(d$skin_type)
d$patient_id <- factor(d$patient_id, levels = unique(d$patient_id))
best <- function(expr) {  # best elapsed time of `repeats` evaluations (each one a full fit)
  e <- substitute(expr)
  env <- parent.frame()
  min(sapply(seq_len(repeats), function(i) system.time(eval(e, env))[["elapsed"]]))
}
emit <- function(model, what, values) {
  cat(sprintf("%s\t%s\t%s\t%.17g\n", model, what, names(values), values), sep = "")
}
if ("ordinal" %in% models) {
  if (!requireNamespace("ordinal", quietly = TRUE)) cat("ordinal\tmissing\tordinal\t0\n") else {
    d$grade <- factor(d$score, ordered = TRUE)
    t <- best(fit <- ordinal::clm(grade ~ sessions + age_c + skin_type, data = d))
    emit("ordinal", "time", c(seconds = t))
    emit("ordinal", "estimate", coef(fit))
    emit("ordinal", "std_error", sqrt(diag(vcov(fit))))
    emit("ordinal", "loglik", c(loglik = as.numeric(logLik(fit))))
    emit("ordinal", "iterations", c(newton = fit$niter[1]))
  }
}
if ("gee" %in% models) {
  if (!requireNamespace("geepack", quietly = TRUE)) cat("gee\tmissing\tgeepack\t0\n") else {
    t <- best(fit <- geepack::geeglm(improvement ~ log1p(sessions) + age_c + skin_type, id = patient_id,
                                     data = d, family = gaussian, corstr = "exchangeable"))
    s <- summary(fit)$coefficients
    emit("gee", "time", c(seconds = t))
    emit("gee", "estimate", setNames(s[, "Estimate"], rownames(s)))
    emit("gee", "std_error", setNames(s[, "Std.err"], rownames(s)))
    emit("gee", "alpha", c(alpha = fit$geese$alpha[[1]]))
  }
}
if ("mixed" %in% models) {
  if (!requireNamespace("lme4", quietly = TRUE)) cat("mixed\tmissing\tlme4\t0\n") else {
    t <- best(fit <- lme4::lmer(improvement ~ log1p(sessions) + age_c + skin_type + (log1p(sessions) | patient_id),
                                data = d, REML = TRUE))
    emit("mixed", "time", c(seconds = t))
    emit("mixed", "estimate", lme4::fixef(fit))
    emit("mixed", "std_error", sqrt(diag(as.matrix(vcov(fit)))))
    emit("mixed", "reml_criterion", c(reml = as.numeric(lme4::REMLcrit(fit))))
  }
}
"""


def simulate(n_patients: int, seed: int = 12) -> pd.DataFrame:
    """Patients x 6 sessions: improvement with a random intercept and log1p slope; a 1-5 GAIS
    grade from a logistic latent (lower = better) that improves with sessions."""
    rng = np.random.default_rng(seed)
    sessions = np.tile(np.arange(1, 7), n_patients)
    pid = np.repeat(np.arange(n_patients), 6)
    age_c = np.repeat(np.round(rng.normal(0.2, 0.9, n_patients), 2), 6)
    skin = np.repeat(rng.choice(list(SKIN), n_patients, p=[0.3, 0.45, 0.17, 0.08]), 6)
    shift = pd.Series(skin).map(SKIN).to_numpy()
    b0 = np.repeat(rng.normal(0, 3, n_patients), 6)
    b1 = np.repeat(rng.normal(0, 2, n_patients), 6)
    s = np.log1p(sessions)
    improvement = 2 + (6 + b1) * s - 1.2 * age_c + 2 * shift + b0 + rng.normal(0, 3, len(s))
    latent = -0.5 * sessions + 0.3 * age_c - shift + np.repeat(rng.normal(0, 1, n_patients), 6) + rng.logistic(size=len(s))
    score = 1 + np.searchsorted(np.array([-3.5, -2.0, -0.5, 1.0]), latent)
    return pd.DataFrame({"patient_id": [f"P{i:06d}" for i in pid], "sessions": sessions, "age_c": age_c,
                         "skin_type": skin, "improvement": improvement.round(4), "score": score})


def r_name(term: str) -> str:
    """Python's term names as R prints them: np.log1p(sessions) -> log1p(sessions),
    skin_type[T.III] -> skin_typeIII, Intercept -> (Intercept)."""
    term = term.replace("np.", "")
    term = re.sub(r"\[T\.([^\]]+)\]", r"\1", term)
    return "(Intercept)" if term == "Intercept" else term


def python_fits(d: pd.DataFrame, models: list[str], repeats: int) -> dict:
    from outcomes.models import fit_gee, fit_mixed, fit_ordinal

    fits = {
        "ordinal": lambda: fit_ordinal(d, "score", ("sessions", "age_c", "skin_type")),
        "gee": lambda: fit_gee(d, "improvement", "sessions", "patient_id", covariates=("age_c", "skin_type"),
                               time_transform="log1p"),
        "mixed": lambda: fit_mixed(d, "improvement", "sessions", "patient_id", covariates=("age_c", "skin_type"),
                                   time_transform="log1p", random_slope=True, reml=True),
    }
    out = {}
    for name in models:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m = fits[name]()
            times.append(time.perf_counter() - t0)
        table = m.fixed_ if name != "ordinal" else pd.concat([m.thresholds_, m.fixed_])
        res = {"seconds": min(times), "estimate": {r_name(t): v for t, v in table["estimate"].items()},
               "std_error": {r_name(t): v for t, v in table["std_error"].items()}, "converged": bool(m.converged_)}
        if name == "ordinal":
            res["loglik"], res["iterations"] = m.llf_, getattr(m, "iterations_", None)
        if name == "gee":
            res["alpha"] = m.dependence_
        if name == "mixed":
            res["reml_criterion"] = -2 * m.llf_
        out[name] = res
    return out


def r_fits(csv: Path, models: list[str], repeats: int) -> tuple[dict, str | None]:
    if shutil.which("Rscript") is None:
        return {}, "Rscript not found (install r-base-core r-cran-ordinal r-cran-geepack r-cran-lme4 to compare)"
    with tempfile.NamedTemporaryFile("w", suffix=".R", delete=False) as f:
        f.write(R_SCRIPT)
    proc = subprocess.run(["Rscript", f.name, str(csv), ",".join(models), str(repeats)], capture_output=True, text=True)
    Path(f.name).unlink()
    if proc.returncode != 0:
        return {}, f"Rscript failed: {proc.stderr.strip()[-500:]}"
    out: dict = {}
    for line in proc.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) != 4:
            continue
        model, what, name, value = parts
        res = out.setdefault(model, {})
        if what == "missing":
            res["missing"] = name
        elif what in ("estimate", "std_error"):
            res.setdefault(what, {})[name] = float(value)
        else:  # time (seconds), loglik, iterations, alpha, reml_criterion
            res["seconds" if what == "time" else what] = float(value)
    return out, None


def max_rel_diff(a: dict, b: dict) -> tuple[float, list[str]]:
    """Largest |a - b| / |b| over the terms both have, and the terms only one has."""
    common = sorted(set(a) & set(b))
    only = sorted(set(a) ^ set(b))
    diffs = [abs(a[t] - b[t]) / max(abs(b[t]), 1e-300) for t in common]
    return (max(diffs) if diffs else float("nan")), only


def report(py: dict, r: dict, note: str | None, n_patients: int, n_rows: int) -> None:
    import outcomes

    print(f"== {n_patients:,} patients x 6 sessions ({n_rows:,} rows); outcomes from {Path(outcomes.__file__).parent}")
    if note:
        print(f"   R skipped: {note}")
    print(f"{'model':<9}{'Python s':>10}{'R s':>9}{'R/Python':>10}  estimates (max rel. diff), SEs, fit statistic")
    for name, p in py.items():
        rr = r.get(name, {})
        if "missing" in rr:
            print(f"{name:<9}{p['seconds']:>10.3f}{'-':>9}{'-':>10}  R package {rr['missing']} not installed")
            continue
        if "seconds" not in rr:
            print(f"{name:<9}{p['seconds']:>10.3f}{'-':>9}{'-':>10}")
            continue
        est, only = max_rel_diff(p["estimate"], rr["estimate"])
        se, _ = max_rel_diff(p["std_error"], rr["std_error"])
        extra = ""
        if name == "ordinal":
            extra = (f"logLik Python {p['loglik']:.10f} R {rr['loglik']:.10f} (diff {p['loglik'] - rr['loglik']:+.2e}); "
                     f"Newton steps Python {p['iterations']} R {rr.get('iterations', float('nan')):.0f}")
        elif name == "gee":
            extra = f"alpha diff {p['alpha'] - rr['alpha']:+.2e}"
        elif name == "mixed":
            extra = f"REML criterion Python - R {p['reml_criterion'] - rr['reml_criterion']:+.2e}"
        print(f"{name:<9}{p['seconds']:>10.3f}{rr['seconds']:>9.3f}{rr['seconds'] / p['seconds']:>10.2f}  "
              f"est {est:.1e}, SE {se:.1e}; {extra}" + (f"; unmatched terms {only}" if only else ""))
        if not p["converged"]:
            print(f"         (Python fit reports converged=False)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--patients", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    models = [m for m in args.models.split(",") if m]
    unknown = set(models) - set(MODELS)
    if unknown:
        ap.error(f"unknown models {sorted(unknown)}; choose from {MODELS}")
    d = simulate(args.patients)
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "bench.csv"
        d.to_csv(csv, index=False)
        r, note = r_fits(csv, models, args.repeats)
    py = python_fits(d, models, args.repeats)
    report(py, r, note, args.patients, len(d))
    if args.json:
        args.json.write_text(json.dumps({"python": py, "r": r, "note": note}, indent=1, default=float))


if __name__ == "__main__":
    main()
