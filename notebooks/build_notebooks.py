"""Write the report notebooks in this folder, clean (no outputs), from the cell lists below.

Why a script: notebooks are JSON that diffs badly; keeping their cells here makes review
easy and guarantees they are stored without outputs, with the `parameters` cell tagged
for papermill and the pinned kernel. Run it after editing:

    .venv/bin/python notebooks/build_notebooks.py

Editing a notebook in JupyterLab is fine too; then copy the change here (the test suite
checks the stored notebooks are clean, not that they match this file).
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
KERNEL = {"name": "mesotherapy-outcomes", "display_name": "Python (mesotherapy-outcomes)", "language": "python"}


def md(text: str, *tags: str):
    return new_markdown_cell(text.strip("\n"), metadata={"tags": list(tags)} if tags else {})


def code(text: str, *tags: str):
    return new_code_cell(text.strip("\n"), metadata={"tags": list(tags)} if tags else {})


SETUP = """
import warnings

import pandas as pd
from IPython.display import Markdown, display

import outcomes
from outcomes import contract, models, plots, privacy
from outcomes.reports import cohort as cohorts, show

warnings.filterwarnings("ignore", category=FutureWarning)
plots.style()
tables = cohorts.load(processed_dir)
findings = []  # plain-language findings, shown first in the PDF
"""

# --------------------------------------------------------------------------------------
EXPLORE = [
    md("""
# A tour of `outcomes` for analysts

This notebook walks through the package on the demo data: load the processed tables, look
at the cohort, fit the improvement model, and ask the practitioner's questions. It is a
starting point to copy from, not a report (the reports are the `10-`, `20-`, `30-` notebooks,
run by `outcomes report`).

Run it top to bottom with the project's kernel (*Python (mesotherapy-outcomes)*); no path
set-up is needed, the package is installed in the environment.
"""),
    code("""
processed_dir: str = ""  # processed-data folder; empty means data/processed
metric: str = "hydration"  # any metric in outcomes.contract.METRICS
""", "parameters"),
    code(SETUP),
    md("""
## 1. The processed tables

`outcomes.load_processed(folder)` returns a dict of typed DataFrames. `outcomes` has one row
per patient × metric × view × session count; `improvement_pct` is always *positive = better*.
"""),
    code("""
{name: table.shape for name, table in tables.items()}
"""),
    code("""
out = tables["outcomes"]
out.drop(columns=["patient_id"]).head()
"""),
    md("""
## 2. Who is in the data

Group statistics go through `outcomes.privacy`: groups with fewer than 5 patients are shown
as "<5". Use it for anything you share.
"""),
    code("""
patients = tables["patients"].assign(age_band=models.age_band(tables["patients"]["age"]).array)
privacy.suppress_counts(pd.crosstab(patients["age_band"], patients["skin_type"]))
"""),
    md("""
## 3. The improvement model

`models.improvement_model(outcomes, metric)` fits a mixed model: improvement against a smooth
function of the session count, age and skin type, with a random intercept and slope per
patient. Quality-flagged photos are left out by default; `dropped_` says what was left out.
"""),
    code("""
model = models.improvement_model(out, metric)
model
"""),
    code("""
model.dropped_
"""),
    code("""
model.fixed.head(8)
"""),
    code("""
model.plot();
"""),
    md("""
## 4. Why not just average per session?

Patients who see little gain stop coming, so the later sessions hold mostly responders.
Per-session means of the rows that exist climb for that reason alone; the mixed model uses
every patient's early visits and is not fooled in the same way.
"""),
    code("""
plots.naive_vs_model(models.naive_means(out, metric), model.marginal());
"""),
    md("""
## 5. The plateau

The first session after which one more adds less than 2 points, with a bootstrap interval.
"""),
    code("""
model.plateau(n_draws=200).head(8)
"""),
    md("""
## 6. Where next

- `models.fit_gee`, `models.fit_ordinal`, `models.sessions_to_response`, `models.predictive_model`
  (see `docs/models.md`);
- run a report from here: `outcomes report 20-sessions-response -p metric wrinkles`.
"""),
]

# --------------------------------------------------------------------------------------
DATA_QUALITY = [
    code("""
processed_dir: str = ""  # processed-data folder; empty means data/processed
min_cell: int = 5  # groups with fewer patients are shown as "<min_cell>"
""", "parameters"),
    code(SETUP + """
manifest = outcomes.reports.pdf.load_manifest(processed_dir) or {}
out = tables["outcomes"]
rejected_path = (cohorts.Path(processed_dir) if processed_dir else outcomes.config.PROCESSED_DIR) / "rejected.csv"
rejected = pd.read_csv(rejected_path, usecols=["table", "column", "reason"]) if rejected_path.is_file() else None
"""),
    code("""
display(Markdown(
    "# Data quality\\n\\n"
    "What came into this snapshot, what was rejected and why, which photos were flagged "
    "by the quality checks (by clinic and device), and which patients have no baseline."
))
""", "cover"),
    md("""
## What came in

Each table of the clinic export: rows read, rows kept, rows rejected (with a reason,
below) and exact duplicates removed. Nothing is dropped without being counted here.
"""),
    code("""
counts = pd.DataFrame(manifest.get("tables", {})).T
if counts.empty:
    show.note("This snapshot has no manifest.json, so the input counts are unknown.", "warning")
else:
    counts = counts.rename_axis("table").reset_index()
    show.table(counts, "Rows per input table in this snapshot.")
    total_read = int(pd.to_numeric(counts.get("read"), errors="coerce").sum())
    total_rejected = int(pd.to_numeric(counts.get("rejected"), errors="coerce").sum())
    findings.append(f"{total_read:,} rows were read; {total_rejected:,} were rejected with a reason "
                    f"({100 * total_rejected / max(total_read, 1):.1f}%).")
"""),
    md("""
## What was rejected and why

Counts of rejected rows by table, column and reason. The rejected values themselves are not
shown here (they can hold identifiers); they are in `rejected.csv` in the processed folder.
"""),
    code("""
if rejected is None or rejected.empty:
    show.note("No rows were rejected.")
else:
    reasons = (rejected.fillna({"column": "(whole row)"}).groupby(["table", "column", "reason"]).size()
               .rename("rows").reset_index().sort_values("rows", ascending=False))
    show.table(reasons, "Rejected rows by table, column and reason (largest first).", max_rows=25)
    top = reasons.iloc[0]
    findings.append(f"The most common rejection: {top['reason']} in {top['table']}.{top['column']} "
                    f"({int(top['rows']):,} rows).")
"""),
    md("""
## Photo-quality flags by clinic and device

A photo is flagged when it breaks a capture rule (make-up, blur, head turned away from the
baseline pose, colour calibration off, a different view than the baseline). Flagged
measurements are left out of the models by default, so a clinic or camera with many flags
loses data. Shares are per measurement; groups with fewer than the minimum number of
patients are suppressed.
"""),
    code("""
rows = out.loc[out["sessions"] > 0].assign(flagged=lambda d: ~d["qc_ok"].astype(bool))
by_clinic = (rows.groupby("clinic_id", observed=True)
             .agg(n_patients=("patient_id", "nunique"), measurements=("flagged", "size"), pct_flagged=("flagged", "mean"))
             .reset_index())
by_clinic["pct_flagged"] = (100 * by_clinic["pct_flagged"]).round(1)
show.table(privacy.suppress_small_cells(by_clinic, "n_patients", ["measurements", "pct_flagged"], min_cell),
           "Share of follow-up measurements flagged by the photo-quality checks, by clinic.",
           labels={"clinic_id": "clinic", "pct_flagged": "% flagged"})
if "device" in rows:
    by_device = (rows.groupby(["clinic_id", "device"], observed=True)
                 .agg(n_patients=("patient_id", "nunique"), measurements=("flagged", "size"), pct_flagged=("flagged", "mean"))
                 .reset_index())
    by_device["pct_flagged"] = (100 * by_device["pct_flagged"]).round(1)
    show.table(privacy.suppress_small_cells(by_device, "n_patients", ["measurements", "pct_flagged"], min_cell),
               "Share flagged by clinic and device.", labels={"clinic_id": "clinic", "pct_flagged": "% flagged"})
worst = by_clinic.loc[by_clinic["n_patients"] >= min_cell].sort_values("pct_flagged").tail(1)
if not worst.empty:
    findings.append(f"Clinic {worst.iloc[0]['clinic_id']} has the most flagged photos: "
                    f"{worst.iloc[0]['pct_flagged']:.1f}% of its follow-up measurements.")
"""),
    code("""
reasons = rows.loc[rows["flagged"], "qc_reasons"].astype(str).str.split(";").explode()
reasons = reasons[reasons != ""]
if reasons.empty:
    show.note("No measurement was flagged.")
else:
    reason_counts = reasons.value_counts().rename_axis("reason").reset_index(name="measurements")
    reason_counts["% of flagged"] = (100 * reason_counts["measurements"] / rows["flagged"].sum()).round(1)
    show.table(reason_counts, "Why measurements were flagged (a measurement can have several reasons).")
"""),
    md("""
## Patients without a baseline

Improvement is measured against the patient's own baseline photo (taken before or on the day
of the first session). Without one, none of that patient's measurements can count.
"""),
    code("""
no_base = out.assign(no_baseline=out["qc_reasons"].astype(str).str.contains("no_baseline"))
per_clinic = privacy.rate_summary(no_base, "clinic_id", "no_baseline", min_cell=min_cell)
show.table(per_clinic, "Patients with at least one metric lacking a baseline, by clinic.",
           labels={"clinic_id": "clinic", "n_yes": "without baseline", "pct": "%"})
n_no_base = int(no_base.groupby("patient_id")["no_baseline"].any().sum())
n_all = out["patient_id"].nunique()
findings.append(f"{n_no_base:,} of {n_all:,} patients ({100 * n_no_base / max(n_all, 1):.1f}%) lack a baseline "
                "for at least one metric; those measurements cannot show improvement.")
"""),
    md("""
## Sessions

Completed sessions count towards the session number of later measurements; cancelled sessions
and no-shows do not.
"""),
    code("""
sessions = tables["sessions"].merge(tables["patients"][["patient_id", "clinic_id"]], on="patient_id", how="left")
status = pd.crosstab(sessions["clinic_id"], sessions["status"]).reset_index().rename_axis(None, axis=1)
show.table(status, "Sessions by clinic and status.", labels={"clinic_id": "clinic"})
completed = tables["patients"]["n_sessions"]
findings.append(f"Patients completed a median of {completed.median():.0f} sessions "
                f"(middle half: {completed.quantile(0.25):.0f} to {completed.quantile(0.75):.0f}).")
"""),
    code("""
show.findings(findings)
""", "findings"),
]

# --------------------------------------------------------------------------------------
SESSIONS_RESPONSE = [
    code("""
processed_dir: str = ""  # processed-data folder; empty means data/processed
metric: str = "hydration"  # one of outcomes.contract.METRICS
concern: str = ""  # only patients with this concern; empty means all
clinic: str = ""  # only this clinic; empty means all clinics
date_from: str = ""  # first session on or after this date (YYYY-MM-DD); empty means no limit
date_to: str = ""  # first session on or before this date; empty means no limit
min_sessions: int = 0  # only patients with at least this many completed sessions
exclude_flagged: bool = True  # leave quality-flagged photos out of the models
response_threshold: float = 10.0  # improvement (%) that counts as a visible response
plateau_gain: float = 2.0  # one more session adding less than this (points) marks the plateau
cv_folds: int = 3  # cross-validation folds for the predictive models (more is slower)
min_cell: int = 5  # groups with fewer patients are shown as "<min_cell>"
""", "parameters"),
    code(SETUP + """
from outcomes.reports import fitting

info = contract.METRICS[cohorts.check_metric(metric)]
label = metric.replace("_", " ")
cohort = cohorts.select(tables, concern, clinic, date_from, date_to, min_sessions)
out = cohort["outcomes"]
measured = out.loc[(out["metric"] == metric) & (out["sessions"] > 0) & out["improvement_pct"].notna()]
n_measured = measured["patient_id"].nunique()
enough = n_measured >= 4 * min_cell
"""),
    code("""
display(Markdown(
    f"# Sessions and response: {label}\\n\\n"
    f"How much {label} improves after each mesotherapy session, and whether it depends on age and "
    f"skin type. Improvement is the change from the patient's own baseline in percent, positive = "
    f"better ({info.better} {label} is better). Selection: {cohort.description}."
))
""", "cover"),
    md("""
## The cohort

Who is in this report. Each patient counts once, however many photos they have.
"""),
    code("""
steps = cohort.steps.assign(patients_left=privacy.suppress_counts(cohort.steps["patients_left"], min_cell))
show.table(steps, "How the selection was made: patients left after each filter.", labels={"patients_left": "patients"})
patients = cohort.patients.assign(age_band=models.age_band(cohort.patients["age"]).array,
                                  skin=cohort.patients["skin_type"].astype(str).replace("nan", "unknown"))
counts = pd.crosstab(patients["age_band"], patients["skin"])
show.table(privacy.suppress_counts(counts, min_cell).reset_index(),
           f"Patients by age band and skin type (Fitzpatrick); counts under {min_cell} shown as <{min_cell}.",
           labels={"age_band": "age band"})
if not enough:
    show.note(f"Only {n_measured} patients in this selection have a {label} measurement after a session. "
              f"The models below need at least {4 * min_cell}, so this report stops here: widen the "
              "selection (clinic, concern, dates) or wait for more data.", "warning")
    findings.append(f"Too few patients ({n_measured}) with a {label} measurement after a session "
                    "for an honest analysis of this selection.")
"""),
    md("""
## Improvement after each session

The curves come from a mixed model: each patient has their own starting level and their own
rate of response, and the model estimates the average curve for a patient of a given age and
skin type. Shaded bands are 95% confidence intervals of that average. Quality-flagged photos
are left out unless the report was asked to keep them.
"""),
    code("""
if enough:
    spec = dict(include_flagged=not exclude_flagged)
    attempts = [
        ("age and skin type may change the shape of the curve",
         lambda: models.improvement_model(out, metric, **spec)),
        ("one curve shape, shifted by age and skin type",
         lambda: models.improvement_model(out, metric, interactions=(), **spec)),
        ("one curve shape, without a patient-specific rate",
         lambda: models.improvement_model(out, metric, interactions=(), random_slope=False, **spec)),
    ]
    model, chosen, problems = fitting.first_converged(attempts)
    if model is None:
        enough = False
        show.note("The model could not be fitted reliably on this selection (it did not converge), so no "
                  "curves are shown. " + " ".join(problems), "warning")
    else:
        if problems:
            show.note(f"The richest model did not converge on this selection; the report uses the simpler "
                      f"one ({chosen}).")
        n_model = model.n_patients_
        cells = (model.rows_.assign(age_band=models.age_band(model.rows_["age"]).array)
                 .groupby(["age_band", "skin_type"], observed=True)["patient_id"].nunique()
                 .rename("n_patients").reset_index())
        big = cells.loc[cells["n_patients"] >= min_cell]
        common_skin = str(model.rows_.drop_duplicates("patient_id")["skin_type"].mode().iloc[0])
        ax = model.plot(skin_type=common_skin)
        show.figure(ax.figure, f"Expected improvement in {label} (%) after each session for skin type {common_skin} "
                    "(the most common), one line per age band, with 95% confidence bands.")
"""),
    code("""
if enough:
    expected = model.expected()
    expected = expected.merge(cells, on=["age_band", "skin_type"], how="left")
    expected["n_patients"] = expected["n_patients"].fillna(0).astype(int)
    marks = [n for n in (1, 3, 6) if n <= model.max_sessions_] or [model.max_sessions_]
    wide = expected.loc[expected["sessions"].isin(marks)].copy()
    wide["value"] = wide.apply(lambda r: f"{r['estimate']:.1f} ({r['ci_low']:.1f} to {r['ci_high']:.1f})", axis=1)
    table = wide.pivot_table(index=["age_band", "skin_type", "n_patients"], columns="sessions", values="value",
                             aggfunc="first", observed=True).reset_index()
    table.columns = [f"after {c}" if isinstance(c, (int, float)) else c for c in table.columns]
    table = privacy.suppress_small_cells(table, "n_patients", [c for c in table.columns if str(c).startswith("after")],
                                         min_cell)
    show.table(table, f"Expected improvement in {label} (%, 95% CI) by age band and skin type after "
               f"{', '.join(map(str, marks))} sessions. Groups with fewer than {min_cell} patients are suppressed.",
               labels={"age_band": "age band", "skin_type": "skin type", "n_patients": "patients"})
    overall = model.marginal()
    at3 = overall.loc[overall["sessions"] == min(3, model.max_sessions_)].iloc[0]
    findings.append(f"After {int(at3['sessions'])} sessions, {label} improved by {at3['estimate']:.1f}% on average "
                    f"(95% CI {at3['ci_low']:.1f} to {at3['ci_high']:.1f}) across the {n_model:,} patients modelled.")
"""),
    md("""
### Why not simply average each session?

Patients who see little change tend to stop coming. The averages of the measurements that
exist after, say, five sessions then describe mostly the patients who responded, and climb for
that reason alone. The mixed model uses every patient's early visits too, so it is much less
misled by who stayed.
"""),
    code("""
if enough:
    naive = models.naive_means(out, metric, include_flagged=not exclude_flagged)
    ax = plots.naive_vs_model(naive, overall)
    show.figure(ax.figure, f"Average {label} improvement of the measurements that exist at each session count "
                "(points) against the mixed model's average curve (line, 95% band).")
    last = int(min(naive["sessions"].max(), overall["sessions"].max()))
    gap = float(naive.loc[naive["sessions"] == last, "estimate"].iloc[0]
                - overall.loc[overall["sessions"] == last, "estimate"].iloc[0])
    if abs(gap) >= 1:
        findings.append(f"Simple per-session averages overstate the gain after {last} sessions by {gap:.1f} points "
                        "(those who stayed longest responded best)." if gap > 0 else
                        f"Simple per-session averages understate the gain after {last} sessions by {-gap:.1f} points.")
"""),
    md("""
## The model in plain language

What age and skin type change, compared at the same number of sessions. Each difference comes
with a 95% confidence interval: an interval that includes 0 means the data cannot tell the
groups apart.
"""),
    code("""
if enough:
    n_at = min(3, model.max_sessions_)
    ref_skin = common_skin
    older, younger = model.frame(n_at, 55, ref_skin), model.frame(n_at, 45, ref_skin)
    age_diff = model.contrast(older, younger).iloc[0]
    rows = [{"comparison": f"age 55 vs 45 (skin type {ref_skin})", **age_diff[["estimate", "ci_low", "ci_high"]].to_dict(),
             "n_patients": n_model}]
    skin_counts = model.rows_.drop_duplicates("patient_id")["skin_type"].value_counts()
    for skin in model.skin_types_:
        if skin == ref_skin:
            continue
        d = model.contrast(model.frame(n_at, 45, skin), younger).iloc[0]
        rows.append({"comparison": f"skin type {skin} vs {ref_skin} (age 45)",
                     **d[["estimate", "ci_low", "ci_high"]].to_dict(), "n_patients": int(skin_counts.get(skin, 0))})
    diffs = privacy.suppress_small_cells(pd.DataFrame(rows), "n_patients", ["estimate", "ci_low", "ci_high"], min_cell)
    show.table(diffs, f"Difference in expected improvement (percentage points) after {n_at} sessions.",
               labels={"estimate": "difference", "ci_low": "95% CI low", "ci_high": "95% CI high",
                       "n_patients": "patients"})
    word = "less" if age_diff["estimate"] < 0 else "more"
    clear = age_diff["ci_low"] > 0 or age_diff["ci_high"] < 0
    findings.append(f"A 55-year-old is expected to gain {abs(age_diff['estimate']):.1f} points {word} than a "
                    f"45-year-old after {n_at} sessions (95% CI {age_diff['ci_low']:.1f} to {age_diff['ci_high']:.1f})"
                    + ("." if clear else "; the data cannot rule out no difference."))
    spread = float(model.random.loc["sd(Intercept)", "estimate"]) if "sd(Intercept)" in model.random.index else float("nan")
    resid = float(model.random.loc["sd(Residual)", "estimate"])
    display(Markdown(
        f"Patients differ a lot: beyond age and skin type, a patient's own level typically sits about "
        f"{spread:.1f} points above or below the average curve, and single measurements vary by about "
        f"{resid:.1f} points from visit to visit (photo and instrument noise)."
    ))
"""),
    md("""
## The plateau

The plateau is the first session after which one more session adds less than the chosen gain
on average. Its interval comes from redrawing the model's estimates 200 times.
"""),
    code("""
if enough:
    plateau = model.plateau(gain=plateau_gain, n_draws=200).merge(cells, on=["age_band", "skin_type"], how="left")
    plateau["n_patients"] = plateau["n_patients"].fillna(0).astype(int)
    def _n(v):
        return "not reached" if v == float("inf") else f"{v:.0f}"
    plateau_shown = plateau.assign(plateau=plateau["plateau"].map(_n),
                                   interval=plateau["ci_low"].map(_n) + " to " + plateau["ci_high"].map(_n))
    plateau_shown = plateau_shown[["age_band", "skin_type", "n_patients", "plateau", "interval"]]
    show.table(privacy.suppress_small_cells(plateau_shown, "n_patients", ["plateau", "interval"], min_cell),
               f"Plateau session (one more session adds less than {plateau_gain:g} points) by age band and skin type.",
               labels={"age_band": "age band", "skin_type": "skin type", "n_patients": "patients"})
    main = plateau.loc[(plateau["skin_type"] == common_skin) & (plateau["n_patients"] >= min_cell)]
    if not main.empty:
        p = main.sort_values("n_patients").iloc[-1]
        after = _n(p["plateau"])
        group = f"For the largest group ({p['age_band']}, skin type {common_skin})"
        if after == "not reached":
            findings.append(f"{group} the gain has not levelled off within the sessions observed.")
        else:
            findings.append(f"{group} the gain levels off after {after} session{'' if after == '1' else 's'} "
                            f"(95% interval {_n(p['ci_low'])} to {_n(p['ci_high'])}).")
"""),
    md("""
## Sessions to a visible response

How many sessions until a patient first reaches the response threshold. Patients who stopped
before reaching it are *censored* (we do not know when they would have), not counted as
failures or successes.
"""),
    code("""
if enough:
    response = models.sessions_to_response(out, metric, threshold=response_threshold, by="skin_type",
                                           include_flagged=not exclude_flagged)
    ax = response.plot()
    show.figure(ax.figure, f"Share of patients not yet showing a {response_threshold:g}% improvement in {label}, "
                "by number of sessions and skin type.")
    medians = response.summary.copy()
    for col in ("median_sessions", "ci_low", "ci_high"):
        medians[col] = medians[col].map(lambda v: "not reached" if v == float("inf") else f"{v:.0f}")
    medians["responded"] = privacy.suppress_counts(medians["responded"], min_cell)
    medians = privacy.suppress_small_cells(medians, "patients", ["responded", "median_sessions", "ci_low", "ci_high"],
                                           min_cell)
    show.table(medians, f"Median number of sessions to a {response_threshold:g}% improvement in {label}, with 95% CI, "
               "by skin type ('not reached': fewer than half got there within the sessions observed).",
               labels={"group": "skin type", "median_sessions": "median sessions", "ci_low": "95% CI low",
                       "ci_high": "95% CI high"})
    overall_share = 100 * response.data_["responded"].mean()
    findings.append(f"{overall_share:.0f}% of patients reached a {response_threshold:g}% improvement in {label} at some "
                    "visit during their course.")
"""),
    md("""
## GAIS responder rates

The clinician's Global Aesthetic Improvement Scale: 1 very much improved … 5 worse. A patient
counts as a responder at a visit when the grade is 3 (improved) or better.
"""),
    code("""
gais = models.ordinal.gais_frame(cohort["assessments"], cohort.patients) if "assessments" in cohort else pd.DataFrame()
if not enough or gais.empty or gais["patient_id"].nunique() < 4 * min_cell:
    show.note("Too few GAIS assessments in this selection to report responder rates.")
else:
    gais["responder"] = gais["score"] <= contract.GAIS_RESPONDER_MAX
    last = gais.sort_values("sessions").groupby("patient_id").tail(1)
    rates = privacy.rate_summary(last, "skin_type", "responder", min_cell=min_cell)
    show.table(rates, "Patients rated improved or better (GAIS 1-3) at their last assessment, by skin type.",
               labels={"skin_type": "skin type", "n_yes": "responders", "pct": "% responders"})
    ordinal = models.fit_ordinal(gais, group="patient_id")
    ax = ordinal.plot()
    show.figure(ax.figure, "Modelled probability of a GAIS of 3 (improved) or better by number of sessions (95% CI).")
    share = 100 * last["responder"].mean()
    findings.append(f"{share:.0f}% of patients were rated improved or better (GAIS 1-3) by the clinician at their "
                    "last assessment.")
"""),
    md("""
## A check: the population-average model (GEE)

Generalised estimating equations estimate the same average curve a different way, with
standard errors that stay valid even if the pattern of correlation between a patient's
visits is guessed wrong. If the two disagree clearly, dropout probably depends on the outcome
(which the mixed model handles better).
"""),
    code("""
if enough:
    gee_rows = model.rows_
    gee = models.fit_gee(gee_rows, "improvement_pct", "sessions", "patient_id", covariates=("age_c", "skin_type"),
                         time_transform="spline")
    grid = model.frame(list(range(1, model.max_sessions_ + 1)), 45, common_skin)
    both = pd.concat([
        model.predict(grid).assign(model="mixed model", sessions=grid["sessions"].to_numpy()),
        gee.predict(grid.drop(columns=["age"])).assign(model="GEE", sessions=grid["sessions"].to_numpy()),
    ])
    ax = plots.expected_curves(both, hue="model", title=f"{label}: mixed model and GEE, age 45, skin type {common_skin}")
    show.figure(ax.figure, "The two models' average curves for a 45-year-old of the most common skin type (95% bands).")
    n_last = model.max_sessions_
    m_last = both.loc[(both["model"] == "mixed model") & (both["sessions"] == n_last), "estimate"].iloc[0]
    g_last = both.loc[(both["model"] == "GEE") & (both["sessions"] == n_last), "estimate"].iloc[0]
    display(Markdown(f"After {n_last} sessions the mixed model expects {m_last:.1f}% and GEE {g_last:.1f}%."))
"""),
    md("""
## How well can one patient's result be predicted?

A gradient-boosting model and a regularised linear model predict a patient's improvement after
n sessions from age, skin type and other baseline facts. Accuracy is measured on patients the
model did not see (cross-validation grouped by patient), so it is honest about new patients.
"""),
    code("""
if enough:
    predictive, chosen, problems = fitting.first_converged([
        ("compared with the mixed model", lambda: models.predictive_model(
            out, metric, n_splits=cv_folds, include_flagged=not exclude_flagged)),
        ("without the mixed model", lambda: models.predictive_model(
            out, metric, n_splits=cv_folds, include_flagged=not exclude_flagged, compare_mixed=False)),
    ])
if enough and predictive is None:
    show.note("The predictive models could not be fitted on this selection. " + " ".join(problems), "warning")
elif enough:
    if problems:
        show.note("The mixed model could not be fitted in every cross-validation fold of this selection, so it is "
                  "left out of the comparison.")
    scores = predictive.summary.reset_index().rename(columns={"index": "model"})
    show.table(scores, "Prediction error on unseen patients: mean absolute error (MAE, points) and R², "
               f"mean and standard deviation over {cv_folds} cross-validation folds.",
               labels={"mae": "MAE", "mae_sd": "MAE sd", "r2": "R²", "r2_sd": "R² sd"}, decimals=2)
    ax = predictive.plot()
    show.figure(ax.figure, "Mean absolute error of each model in each cross-validation fold (grouped by patient).")
    best = scores.sort_values("mae").iloc[0]
    findings.append(f"Predicting one new patient's {label} improvement is hard: the best model ({best['model']}) is off "
                    f"by {best['mae']:.1f} points on average (R² {best['r2']:.2f}).")
"""),
    md("""
## Limitations

- These are observational data from routine care: there is no untreated comparison group, so
  part of any improvement may come from the procedure itself, the season or regression to the
  mean, not from the product.
- Photo-derived scores depend on capture conditions; flagged photos are left out, but
  unflagged ones still carry noise.
- Skin type is recorded by the clinic (Fitzpatrick typing is reliable to about one type).
- Patients who stopped early are in the model with the visits they had; if they stopped for
  reasons the data do not show, some bias can remain.
- Groups with fewer than the minimum number of patients are not shown, to protect privacy and
  because such estimates are unstable.
"""),
    code("""
show.findings(findings)
""", "findings"),
]

# --------------------------------------------------------------------------------------
PATIENT = [
    code("""
processed_dir: str = ""  # processed-data folder; empty means data/processed
patient_id: str = ""  # pseudonymous patient id; empty means pick an eligible patient
pick: int = 0  # with an empty patient_id: which eligible patient, 0 for the first by id
metrics: str = "hydration,wrinkles,elasticity_r7,brown_spots"  # comma-separated metrics to show
exclude_flagged: bool = True  # leave quality-flagged photos out
""", "parameters"),
    code(SETUP + """
from outcomes.reports import fitting, patient

wanted = [m.strip() for m in metrics.split(",") if m.strip()]
for m in wanted:
    cohorts.check_metric(m)
out = tables["outcomes"]
pid = patient.choose_patient(out, wanted, patient_id, pick)
me = tables["patients"].loc[tables["patients"]["patient_id"] == pid].iloc[0]
band = str(models.age_band(pd.Series([me["age"]])).iloc[0])
skin = None if pd.isna(me["skin_type"]) else str(me["skin_type"])
mine = out.loc[(out["patient_id"] == pid) & out["metric"].isin(wanted) & (out["view"] == contract.DEFAULT_VIEW)]
"""),
    code("""
display(Markdown(
    f"# Patient progress: {pid}\\n\\n"
    f"One patient's course against what the clinic's data lead us to expect for a patient of the same age "
    f"band ({band}) and skin type ({skin or 'unknown'}). Concern: {str(me['concern']).replace('_', ' ')}."
))
""", "cover"),
    md("""
## The course

Sessions are numbered among completed ones; weeks count from the first session.
"""),
    code("""
course = tables["sessions"].loc[tables["sessions"]["patient_id"] == pid].sort_values("session_date")
start = pd.to_datetime(me["first_session"])
course = course.assign(week=((pd.to_datetime(course["session_date"]) - start).dt.days / 7).round(1))
cols = [c for c in ("session_number", "week", "status", "product", "area", "volume_ml") if c in course]
show.table(privacy.drop_identifiers(course[cols]), "Sessions of this patient.",
           labels={"session_number": "session", "volume_ml": "volume (ml)"})
findings.append(f"Patient {pid} ({band}, skin type {skin or 'unknown'}) completed {int(me['n_sessions'])} sessions.")
"""),
    md("""
## Progress against the expected course

Each panel shows this patient's improvement from their own baseline (points; positive = better)
after each session, against the cohort model's expected course for their age and skin type.
The dark band is the 95% confidence interval of the expected average; the light band is where
95% of comparable patients' single measurements fall. A point outside the light band is
unusual, not necessarily wrong.
"""),
    code("""
shown = [m for m in wanted if mine.loc[(mine["metric"] == m) & (mine["sessions"] > 0), "improvement_pct"].notna().any()]
if not shown or skin is None:
    show.note("This patient has no measured improvement after a session in the chosen metrics "
              "(or an unknown skin type), so there is nothing to compare.", "warning")
else:
    ncols = 2 if len(shown) > 1 else 1
    nrows = -(-len(shown) // ncols)
    fig, axes = patient.subplots(nrows, ncols, figsize=(6.7, 2.6 * nrows), squeeze=False)
    summary = []
    for ax, m in zip(axes.ravel(), shown):
        model, chosen, problems = fitting.first_converged([
            ("full", lambda: models.improvement_model(out, m, include_flagged=not exclude_flagged)),
            ("simpler", lambda: models.improvement_model(out, m, interactions=(), include_flagged=not exclude_flagged)),
        ])
        points = mine.loc[(mine["metric"] == m) & (mine["sessions"] > 0)].dropna(subset=["improvement_pct"])
        if model is None:
            ax.set_title(f"{m}: cohort model unavailable")
            continue
        band_table = patient.expected_course(model, float(me["age"]), skin)
        patient.plot_course(band_table, points, ax=ax, title=m.replace("_", " "))
        latest = points.sort_values("sessions").iloc[-1]
        row = band_table.loc[band_table["sessions"] == latest["sessions"]]
        if not row.empty:
            r = row.iloc[0]
            where = ("below" if latest["improvement_pct"] < r["pred_low"] else
                     "above" if latest["improvement_pct"] > r["pred_high"] else "within")
            summary.append({"metric": m.replace("_", " "), "sessions": int(latest["sessions"]),
                            "patient": float(latest["improvement_pct"]), "expected": float(r["estimate"]),
                            "usual range": f"{r['pred_low']:.1f} to {r['pred_high']:.1f}", "verdict": where})
    for ax in axes.ravel()[len(shown):]:
        ax.set_visible(False)
    fig.tight_layout()
    show.figure(fig, "This patient's improvement (points; crosses = quality-flagged photos) against the expected course "
                "(line), its 95% confidence band (dark) and the range of comparable patients (light).")
    if summary:
        table = pd.DataFrame(summary)
        show.table(table, "Latest measurement against the expected course for this age band and skin type.",
                   labels={"patient": "this patient (%)", "expected": "expected (%)"})
        for r in summary:
            findings.append(f"{r['metric'].capitalize()}: {r['patient']:.1f}% after {r['sessions']} sessions, "
                            f"{r['verdict']} the usual range for comparable patients ({r['usual range']}%).")
"""),
    md("""
## Adverse events and GAIS

Adverse events recorded for this patient, with the number of sessions done by then, and the
clinician's and patient's Global Aesthetic Improvement Scale ratings (1 very much improved …
5 worse).
"""),
    code("""
events = tables.get("adverse_events")
if events is None or events.loc[events["patient_id"] == pid].empty:
    show.note("No adverse events were recorded for this patient.")
else:
    ev = events.loc[events["patient_id"] == pid]
    ev = ev.groupby(["event", "severity"], observed=True).agg(times=("event", "size"),
                                                             first_after_session=("sessions", "min")).reset_index()
    show.table(ev, "Adverse events of this patient.", labels={"first_after_session": "first after session"})
    serious = ev.loc[ev["severity"].astype(str).isin(["moderate", "severe"])]
    findings.append(f"{int(ev['times'].sum())} adverse events recorded"
                    + (f", {int(serious['times'].sum())} moderate or severe." if not serious.empty else ", all mild."))
"""),
    code("""
assess = tables.get("assessments")
g = assess.loc[(assess["patient_id"] == pid) & (assess["scale"] == "gais")] if assess is not None else pd.DataFrame()
if g.empty:
    show.note("No GAIS ratings were recorded for this patient.")
else:
    g = g.sort_values("assessed_at")
    g = g.assign(week=((pd.to_datetime(g["assessed_at"]) - start).dt.days / 7).round(1))
    show.table(g[["sessions", "week", "rater", "score"]], "GAIS ratings (1 very much improved … 5 worse).",
               labels={"sessions": "after session", "score": "GAIS"})
    last = g.loc[g["rater"] == "clinician"].tail(1)
    if not last.empty:
        s = int(last["score"].iloc[0])
        findings.append(f"Latest clinician GAIS: {s} ({contract.SCALES['gais'].meaning.split(', ')[s - 1][2:]}).")
"""),
    code("""
show.findings(findings)
""", "findings"),
]


NOTEBOOKS = {
    "00-explore.ipynb": EXPLORE,
    "10-data-quality.ipynb": DATA_QUALITY,
    "20-sessions-response.ipynb": SESSIONS_RESPONSE,
    "30-patient-progress.ipynb": PATIENT,
}


def build(folder: Path = HERE) -> list[Path]:
    written = []
    for name, cells in NOTEBOOKS.items():
        nb = new_notebook(cells=cells, metadata={
            "kernelspec": KERNEL,
            "language_info": {"name": "python"},
        })
        for i, cell in enumerate(nb.cells):
            cell["id"] = f"{Path(name).stem[:2]}-{i:02d}"
        nbformat.validate(nb)
        path = folder / name
        nbformat.write(nb, path)
        written.append(path)
    return written


if __name__ == "__main__":
    for path in build(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE):
        print("wrote", path)
