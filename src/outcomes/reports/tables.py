"""The report tables, as pure functions of the data: privacy rules applied, nothing displayed.

Each function returns the DataFrame a report notebook passes to ``show.table``; counts of
1..min_cell-1 patients never leave here (``outcomes.privacy``). Rejected values themselves are
never tabulated (they can hold identifiers); they stay in ``rejected.csv``.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from outcomes import config, contract, models, privacy

FLAG_COLUMNS = ["measurements", "pct_flagged"]


def sessions_text(value: float) -> str:
    """A session count for a table, or "not reached" for inf."""
    return "not reached" if value == float("inf") else f"{value:.0f}"


# -- data quality ---------------------------------------------------------------------------------
def input_counts(manifest: dict[str, Any] | None) -> pd.DataFrame:
    """Rows read, kept, rejected and duplicated per input table (from the manifest)."""
    counts = pd.DataFrame((manifest or {}).get("tables", {})).T
    return counts.rename_axis("table").reset_index() if not counts.empty else counts


def rejection_reasons(rejected: pd.DataFrame | None) -> pd.DataFrame:
    """Rejected rows counted by table, column and reason, largest first (no raw values)."""
    if rejected is None or rejected.empty:
        return pd.DataFrame(columns=["table", "column", "reason", "rows"])
    return (rejected.fillna({"column": "(whole row)"}).groupby(["table", "column", "reason"]).size()
            .rename("rows").reset_index().sort_values("rows", ascending=False, kind="stable"))


def kept_with_note(notes: pd.DataFrame | None) -> pd.DataFrame:
    """Values kept but changed (e.g. an unrecognised skin type read as unknown), counted by
    table, column and note; the values themselves stay in data_quality.csv."""
    if notes is None or notes.empty:
        return pd.DataFrame(columns=["table", "column", "note", "rows"])
    rows = pd.to_numeric(notes["rows"], errors="coerce").fillna(1)
    return (notes.assign(rows=rows).fillna({"column": "(whole file)"}).groupby(["table", "column", "note"])["rows"]
            .sum().astype(int).reset_index().sort_values("rows", ascending=False, kind="stable"))


def flag_shares(outcomes: pd.DataFrame, by: list[str], min_cell: int = config.MIN_CELL) -> pd.DataFrame:
    """Share of follow-up measurements flagged by the photo checks, per group; groups with
    fewer than `min_cell` patients suppressed (per clinic too when `by` is clinic and device:
    the by-clinic table gives each clinic's total). ``pct_flagged`` in percent."""
    rows = outcomes.loc[outcomes["sessions"] > 0].assign(flagged=lambda d: ~d["qc_ok"].astype(bool))
    table = (rows.groupby(by, observed=True)
             .agg(n_patients=("patient_id", "nunique"), measurements=("flagged", "size"),
                  pct_flagged=("flagged", "mean"))
             .reset_index())
    table["pct_flagged"] = (100 * table["pct_flagged"]).round(1)
    return privacy.suppress_small_cells(table, "n_patients", FLAG_COLUMNS, min_cell, within=by[:-1])


def session_status(sessions: pd.DataFrame, patients: pd.DataFrame, min_cell: int = config.MIN_CELL) -> pd.DataFrame:
    """Sessions by clinic (rows) and status (columns), for display.

    A clinic with fewer than `min_cell` patients shows no count at all (``"<5"`` across its
    row), a cell whose sessions belong to 1..min_cell-1 patients reads ``"<5"``, and the
    hidden cells never add up to 1..min_cell-1 sessions (``"x"``, :func:`privacy.complementary`).
    """
    rows = sessions.merge(patients[["patient_id", "clinic_id"]], on="patient_id", how="left")
    counts = pd.crosstab(rows["clinic_id"], rows["status"])
    people = rows.groupby(["clinic_id", "status"], observed=True)["patient_id"].nunique().unstack(fill_value=0)
    people = people.reindex(index=counts.index, columns=counts.columns, fill_value=0)
    clinic_size = patients.groupby("clinic_id")["patient_id"].nunique().reindex(counts.index, fill_value=0)
    small = ((people > 0) & (people < min_cell)).to_numpy() | (clinic_size < min_cell).to_numpy()[:, None]
    hidden = privacy.complementary(counts.to_numpy().ravel(), small.ravel(), min_cell).reshape(small.shape)
    shown = counts.astype(object).to_numpy().copy()
    shown[hidden] = privacy.COMPLEMENT_LABEL
    shown[small] = privacy.suppressed_label(min_cell)
    table = pd.DataFrame(shown, index=counts.index, columns=counts.columns)
    return table.reset_index().rename_axis(None, axis=1)


def flag_reasons(outcomes: pd.DataFrame, min_cell: int = config.MIN_CELL) -> pd.DataFrame:
    """Why follow-up measurements were flagged (one measurement can have several reasons), with
    the patients behind each reason; reasons of fewer than `min_cell` patients suppressed."""
    rows = outcomes.loc[(outcomes["sessions"] > 0) & ~outcomes["qc_ok"].astype(bool)]
    reasons = rows.assign(reason=rows["qc_reasons"].astype(str).str.split(";")).explode("reason")
    reasons = reasons.loc[reasons["reason"] != ""]
    counts = (reasons.groupby("reason").agg(patients=("patient_id", "nunique"), measurements=("reason", "size"))
              .reset_index().sort_values(["measurements", "reason"], ascending=[False, True], kind="stable"))
    counts["% of flagged"] = (100 * counts["measurements"] / max(len(rows), 1)).round(1)
    return privacy.suppress_small_cells(counts.reset_index(drop=True), "patients", ["measurements", "% of flagged"],
                                        min_cell)


def without_baseline(outcomes: pd.DataFrame, min_cell: int = config.MIN_CELL) -> pd.DataFrame:
    """Patients with at least one metric lacking a baseline, by clinic (rates suppressed)."""
    out = outcomes.assign(no_baseline=outcomes["qc_reasons"].astype(str).str.contains("no_baseline"))
    return privacy.rate_summary(out, "clinic_id", "no_baseline", min_cell=min_cell)


def gais_last(gais: pd.DataFrame, by: str = "skin_type", min_cell: int = config.MIN_CELL) -> pd.DataFrame:
    """Patients rated improved or better (GAIS <= 3) at their last clinician assessment, by `by`."""
    gais = gais.assign(responder=gais["score"] <= contract.GAIS_RESPONDER_MAX)
    last = gais.sort_values("sessions", kind="stable").groupby("patient_id").tail(1)
    return privacy.rate_summary(last, by, "responder", min_cell=min_cell)


# -- the cohort of a sessions-response report ------------------------------------------------------
def selection_steps(steps: pd.DataFrame, min_cell: int = config.MIN_CELL) -> pd.DataFrame:
    """Patients left after each filter of a selection (small counts and differences hidden)."""
    return steps.assign(patients_left=privacy.suppress_steps(steps["patients_left"], min_cell))


def patients_by_band_and_skin(patients: pd.DataFrame, min_cell: int = config.MIN_CELL) -> pd.DataFrame:
    """Patients per age band (rows) and skin type (columns, 'unknown' included); 1..min_cell-1 shown as "<5"
    (and enough more as "x" that the selection's size cannot give them back)."""
    skin = patients["skin_type"].astype(str).replace("nan", "unknown")
    counts = pd.crosstab(models.age_band(patients["age"]), skin).rename_axis(index="age_band", columns=None)
    return privacy.suppress_counts(counts, min_cell).reset_index()


def model_cells(model: models.ImprovementModel) -> pd.DataFrame:
    """Patients the model saw in each age band x skin type (``n_patients``, for suppression)."""
    rows = model.rows_
    return (rows.assign(age_band=models.age_band(rows["age"])).groupby(["age_band", "skin_type"], observed=True)
            ["patient_id"].nunique().rename("n_patients").reset_index())


def shown_sessions(model: models.ImprovementModel) -> list[int]:
    """Session counts the tables show: 1, 3 and the last the model reaches."""
    last = model.max_sessions_
    return sorted({n for n in (1, 3, last) if n <= last})


def expected_table(expected: pd.DataFrame, cells: pd.DataFrame, sessions: list[int],
                   min_cell: int = config.MIN_CELL) -> pd.DataFrame:
    """Expected improvement "estimate (ci_low to ci_high)" after each of `sessions`, one row per
    age band x skin type the model saw patients in, with their number; small groups suppressed."""
    wide = expected.merge(cells, on=["age_band", "skin_type"], how="inner")
    wide = wide.loc[wide["sessions"].isin(sessions)]
    wide["value"] = [f"{e:.1f} ({lo:.1f} to {hi:.1f})" for e, lo, hi in
                     zip(wide["estimate"], wide["ci_low"], wide["ci_high"])]
    table = wide.pivot_table(index=["age_band", "skin_type", "n_patients"], columns="sessions", values="value",
                             aggfunc="first", observed=True).reset_index().rename_axis(columns=None)
    after = {n: f"after {n}" for n in sessions}
    table = table.rename(columns=after)
    return privacy.suppress_small_cells(table, "n_patients", [c for c in after.values() if c in table], min_cell)


def plateau_table(plateau: pd.DataFrame, cells: pd.DataFrame, min_cell: int = config.MIN_CELL) -> pd.DataFrame:
    """The plateau session and its interval per age band x skin type the model saw patients in
    (`cells`: :func:`model_cells`)."""
    plateau = plateau.merge(cells, on=["age_band", "skin_type"], how="inner")
    shown = plateau.assign(plateau=plateau["plateau"].map(sessions_text),
                           interval=plateau["ci_low"].map(sessions_text) + " to " + plateau["ci_high"].map(sessions_text))
    shown = shown[["age_band", "skin_type", "n_patients", "plateau", "interval"]]
    return privacy.suppress_small_cells(shown, "n_patients", ["plateau", "interval"], min_cell)


def response_medians(medians: pd.DataFrame, min_cell: int = config.MIN_CELL) -> pd.DataFrame:
    """Median sessions to a response per group ("not reached" for inf), small groups suppressed."""
    medians = medians.copy()
    for col in ("median_sessions", "ci_low", "ci_high"):
        medians[col] = medians[col].map(sessions_text)
    return privacy.suppress_rates(medians, "patients", "responded",
                                  other_cols=["median_sessions", "ci_low", "ci_high"], min_cell=min_cell)


def response_curves(response, min_cell: int = config.MIN_CELL) -> pd.DataFrame:
    """Kaplan-Meier curves of the groups of at least `min_cell` patients (a smaller group's
    curve shows each of its patients' responses)."""
    big = response.medians_.loc[response.medians_["patients"] >= min_cell, "group"]
    return response.curves_.loc[response.curves_["group"].isin(big)]


def naive_means(naive: pd.DataFrame, min_cell: int = config.MIN_CELL) -> pd.DataFrame:
    """Per-session means of at least `min_cell` patients (a mean of fewer is not shown)."""
    return naive.loc[naive["n"] >= min_cell]


def common_skin(model: models.ImprovementModel) -> str:
    """The most common skin type among the modelled patients: the reference of the figures."""
    return str(model.rows_.drop_duplicates("patient_id")["skin_type"].mode().iloc[0])


def comparisons(model: models.ImprovementModel, at: int, reference_age: float = 45, older_age: float = 55,
                min_cell: int = config.MIN_CELL) -> pd.DataFrame:
    """Difference in expected improvement after `at` sessions: an older patient against the
    reference one, and each skin type against the most common; small groups suppressed."""
    ref = common_skin(model)
    reference = model.frame(at, reference_age, ref)
    cols = ["estimate", "ci_low", "ci_high"]
    age = model.contrast(model.frame(at, older_age, ref), reference).iloc[0]
    rows = [{"comparison": f"age {older_age:g} vs {reference_age:g} (skin type {ref})", **age[cols].to_dict(),
             "n_patients": model.n_patients_}]
    per_skin = model.rows_.drop_duplicates("patient_id")["skin_type"].value_counts()
    for skin in model.skin_types_:
        if skin != ref:
            diff = model.contrast(model.frame(at, reference_age, skin), reference).iloc[0]
            rows.append({"comparison": f"skin type {skin} vs {ref} (age {reference_age:g})", **diff[cols].to_dict(),
                         "n_patients": int(per_skin.get(skin, 0))})
    return privacy.suppress_small_cells(pd.DataFrame(rows), "n_patients", cols, min_cell)


def spread(model: models.ImprovementModel, at: int, reference_age: float = 45) -> tuple[float, float]:
    """(between-patient sd of the improvement after `at` sessions, visit-to-visit sd), in points."""
    import numpy as np

    reference = model.frame(at, reference_age, common_skin(model))
    z = model.mixed_.re_design_.build(reference).to_numpy()[0]  # the patient's own effects at `at` sessions
    between = float(np.sqrt(z @ model.mixed_.cov_re_.to_numpy() @ z))
    return between, float(model.random_["estimate"]["sd(Residual)"])


def gee_and_mixed(model: models.ImprovementModel, gee, grid: pd.DataFrame) -> pd.DataFrame:
    """The mixed model's and the GEE's average curves on `grid` (``model.frame(...)``), stacked
    with a ``model`` column, for ``plots.expected_curves(hue="model")``."""
    sessions = grid["sessions"].to_numpy()
    return pd.concat([model.predict(grid).assign(model="mixed model", sessions=sessions),
                      gee.predict(grid.drop(columns=["age"])).assign(model="GEE", sessions=sessions)])
