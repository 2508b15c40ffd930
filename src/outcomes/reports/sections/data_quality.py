"""The data-quality report: what came in, what was rejected and why, which photos were flagged.

Nothing may be dropped in silence, so this report accounts for every input row (read, kept,
rejected, duplicate) and shows where the photo-quality checks bite, by clinic and device:
a clinic whose photos are mostly flagged loses its data from the models. Rejected values
themselves are never shown (they can hold identifiers); they stay in ``rejected.csv``.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from outcomes import config, privacy
from outcomes.escaping import markdown_text
from outcomes.reports.sections import Report, Section, section

FLAG_COLUMNS = ["measurements", "pct_flagged"]
FLAG_LABELS = {"clinic_id": "clinic", "pct_flagged": "% flagged"}


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


class DataQuality(Report):
    """The sections of notebooks/10-data-quality.ipynb."""

    def __init__(self, tables: dict[str, pd.DataFrame], manifest: dict[str, Any] | None = None,
                 min_cell: int = config.MIN_CELL) -> None:
        super().__init__()
        self.tables, self.manifest, self.min_cell = tables, manifest, privacy.check_min_cell(min_cell)
        self.outcomes = tables["outcomes"]

    @classmethod
    def load(cls, processed_dir: str = "", **parameters: Any) -> DataQuality:
        """The report on a processed folder ("" means data/processed): its tables and manifest."""
        from outcomes.reports import cohort
        from outcomes.loader import load_manifest

        return cls(cohort.load(processed_dir), load_manifest(processed_dir), **parameters)

    @section
    def cover(self, sec: Section) -> None:
        sec.add_text("# Data quality\n\nWhat came into this snapshot, what was rejected and why, which photos were "
                     "flagged by the quality checks (by clinic and device), and which patients have no baseline.")

    @section
    def inputs(self, sec: Section) -> None:
        counts = input_counts(self.manifest)
        if counts.empty:
            sec.add_note("This snapshot has no manifest.json, so the input counts are unknown.", "warning")
            return
        sec.add_table(counts, "Rows per input table in this snapshot.")
        read = int(pd.to_numeric(counts.get("read"), errors="coerce").sum())
        rejected = int(pd.to_numeric(counts.get("rejected"), errors="coerce").sum())
        sec.add_finding(f"{read:,} rows were read; {rejected:,} were rejected with a reason "
                        f"({100 * rejected / max(read, 1):.1f}%).")

    @section
    def rejections(self, sec: Section) -> None:
        reasons = rejection_reasons(self.tables.get("rejected"))
        if reasons.empty:
            sec.add_note("No rows were rejected.")
        else:
            sec.add_table(reasons, "Rejected rows by table, column and reason (largest first).", max_rows=25)
            top = reasons.iloc[0]
            where = f"{markdown_text(top['table'])}.{markdown_text(top['column'])}"
            sec.add_finding(f"The most common rejection: {markdown_text(top['reason'])} in {where} "
                            f"({int(top['rows']):,} rows).")
        kept = kept_with_note(self.tables.get("data_quality"))
        if not kept.empty:
            sec.add_table(kept, "Values kept with a note (e.g. an unrecognised spelling read as unknown).",
                          max_rows=25)

    @section
    def photo_flags(self, sec: Section) -> None:
        by_clinic = flag_shares(self.outcomes, ["clinic_id"], self.min_cell)
        sec.add_table(by_clinic, "Share of follow-up measurements flagged by the photo-quality checks, by clinic.",
                      labels=FLAG_LABELS)
        if "device" in self.outcomes:
            sec.add_table(flag_shares(self.outcomes, ["clinic_id", "device"], self.min_cell),
                          "Share flagged by clinic and device.", labels=FLAG_LABELS)
        shown = by_clinic.loc[by_clinic["pct_flagged"].map(lambda v: not isinstance(v, str))]
        if not shown.empty:
            worst = shown.loc[shown["pct_flagged"].astype(float).idxmax()]
            sec.add_finding(f"Clinic {markdown_text(worst['clinic_id'])} has the most flagged photos: "
                            f"{worst['pct_flagged']:.1f}% of its follow-up measurements.")

    @section
    def why_flagged(self, sec: Section) -> None:
        reasons = flag_reasons(self.outcomes, self.min_cell)
        if reasons.empty:
            sec.add_note("No measurement was flagged.")
        else:
            sec.add_table(reasons, "Why measurements were flagged (a measurement can have several reasons).")

    @section
    def baselines(self, sec: Section) -> None:
        out = self.outcomes.assign(no_baseline=self.outcomes["qc_reasons"].astype(str).str.contains("no_baseline"))
        sec.add_table(privacy.rate_summary(out, "clinic_id", "no_baseline", min_cell=self.min_cell),
                      "Patients with at least one metric lacking a baseline, by clinic.",
                      labels={"clinic_id": "clinic", "n_yes": "without baseline", "pct": "%"})
        n_none = int(out.groupby("patient_id")["no_baseline"].any().sum())
        n_all = out["patient_id"].nunique()
        share = privacy.share_text(n_none, n_all, "patients", self.min_cell)
        sec.add_finding(f"{share[0].upper()}{share[1:]} lack a baseline for at least one metric; those "
                        "measurements cannot show improvement.")

    @section
    def sessions(self, sec: Section) -> None:
        patients = self.tables["patients"]
        sec.add_table(session_status(self.tables["sessions"], patients, self.min_cell),
                      "Sessions by clinic and status.", labels={"clinic_id": "clinic"})
        done = patients["n_sessions"]
        if patients["patient_id"].nunique() >= self.min_cell:  # a median of fewer is one patient's count
            sec.add_finding(f"Patients completed a median of {done.median():.0f} sessions "
                            f"(middle half: {done.quantile(0.25):.0f} to {done.quantile(0.75):.0f}).")
