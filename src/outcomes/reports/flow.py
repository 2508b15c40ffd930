"""Where the patients went, and who was modelled: a report's flow table and baseline table.

A cohort report selects N patients and models fewer; a reader must see why, as a clinical study
report shows it: all patients -> with a baseline -> with a follow-up -> photo quality checks
passed -> modelled, each step with its count and the reasons patients left before it. Each
step is a subset of the one before, so each count is the previous one less the leavers, and
"modelled" is exactly the patients :func:`outcomes.models.fit_improvement` keeps with the same
options (its row filters, :func:`outcomes.models.improvement.model_rows` and
:func:`~outcomes.models.improvement.thin_skin_types`), so the last count is its ``n_patients_``.

The baseline table describes the patients modelled (Table 1 of a study): age as median (IQR),
sex, skin type, concern, treated area, product and clinic as n (%). Both tables come in two
forms: numbers (for tests and further work) and a suppressed display form (outcomes.privacy).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from outcomes import config, contract
from outcomes.cleaning.qc import FLAGS
from outcomes.models.improvement import MIN_PATIENTS_PER_SKIN_TYPE, OUTCOME, attach_columns, thin_skin_types
from outcomes.privacy import (COMPLEMENT_LABEL, age_text, complementary, suppress_counts, suppress_steps,
                              suppressed_label)

STEPS = ("All patients", "With a baseline measurement", "With a follow-up measurement during the course",
         "Photo quality checks passed", "Modelled")
# a quality flag in words, for the reason a patient left at the photo-quality step
FLAG_WORDS = {
    "no_baseline": "no baseline", "baseline_zero": "baseline value of 0",
    "baseline_qc": "the baseline photo failed the quality checks", "makeup": "make-up on the photos",
    "blur": "blurred photos", "color_delta_e": "colour card off (ΔE > 5)",
    "yaw_vs_baseline": "head turned from the baseline pose (> 10°)",
    "view_differs_from_baseline": "view differs from the baseline",
    "no_chart": "no colour chart in the photo (colour not corrected)",
    "exposure": f"over- or under-exposed photos (> {contract.QC_MAX_CLIPPED:.0%} of the skin clipped)",
    "pose_vs_baseline": "face posed differently from the baseline photo",
}
UNKNOWN = "unknown"


def _stages(tables: Mapping[str, pd.DataFrame], metric: str, view: str | None, include_flagged: bool,
            covariates: Sequence[str], interactions: Sequence[str], time_transform: str, spline_df: int
            ) -> list[tuple[str, pd.Index, pd.Series]]:
    """[(step, its patients, why each patient of the previous step left)] in order."""
    patients, sessions = tables["patients"], tables.get("sessions")
    ids = pd.Index(patients["patient_id"].drop_duplicates())
    n_sessions = patients.drop_duplicates("patient_id").set_index("patient_id")["n_sessions"]
    rows = tables["outcomes"]
    rows = rows.loc[rows["metric"] == metric]
    if view is not None and "view" in rows:
        rows = rows.loc[rows["view"] == view]
    done = rows["patient_id"].map(n_sessions)
    has_baseline = rows["baseline"].notna()
    in_course = has_baseline & (rows["sessions"] >= 1) & ~(rows["sessions"] >= done).fillna(False).astype(bool)
    checked = in_course & rows[OUTCOME].notna() & (True if include_flagged else rows["qc_ok"].astype(bool))
    known = checked & rows["skin_type"].notna() & rows["age"].notna()
    with_cov = attach_columns(rows.loc[known], covariates, patients, sessions)
    complete = with_cov[list(covariates)].notna().all(axis=1) if covariates else pd.Series(True, index=with_cov.index)
    thin, _ = thin_skin_types(with_cov.loc[complete], interactions, time_transform, spline_df)
    modelled_rows = with_cov.loc[complete].loc[~thin]

    def having(mask: pd.Series) -> pd.Index:
        return pd.Index(rows.loc[mask, "patient_id"].unique())

    measured, based, followed = having(pd.Series(True, index=rows.index)), having(has_baseline), having(in_course)
    passed = having(checked)
    modelled = pd.Index(modelled_rows["patient_id"].unique())

    def why(left: pd.Index, rules: list[tuple[str, pd.Index | None]], rest: str) -> pd.Series:
        """A reason per leaver: the first rule whose patients hold them, else `rest`."""
        reasons = pd.Series(rest, index=left, dtype=object)
        for reason, who in reversed(rules):
            reasons[left.isin(who)] = reason
        return reasons

    n_done = n_sessions.reindex(ids)
    no_session = pd.Index(n_done.index[n_done.fillna(0) < 1])
    one_session = pd.Index(n_done.index[n_done.fillna(0) < 2])
    after_only = having(has_baseline & (rows["sessions"] >= 1))
    view_words = f" ({view} view)" if view is not None else ""
    # at the quality step: the patient's most frequent flag among their follow-up rows
    flags = rows.loc[in_course & ~checked, ["patient_id", "qc_reasons"]]
    flags = flags.assign(flag=flags["qc_reasons"].astype(str).str.split(";")).explode("flag")
    flags = flags.loc[flags["flag"].isin(FLAGS)]
    flags["order"] = flags["flag"].map({f: i for i, f in enumerate(FLAGS)})
    top = (flags.groupby(["patient_id", "flag", "order"]).size().rename("n").reset_index()
           .sort_values(["patient_id", "n", "order"], ascending=[True, False, True]).drop_duplicates("patient_id")
           .set_index("patient_id")["flag"])
    passed_q = followed.difference(passed)
    quality = pd.Series([f"photo quality: {FLAG_WORDS.get(top.get(p), 'flagged')}" for p in passed_q],
                        index=passed_q, dtype=object)
    known_ids = having(known)
    known_skin = having(checked & rows["skin_type"].notna())
    cov_ids = pd.Index(with_cov.loc[complete, "patient_id"].unique())
    return [
        (STEPS[0], ids, pd.Series(dtype=object)),
        (STEPS[1], ids.intersection(based, sort=False),
         why(ids.difference(based, sort=False), [("no completed session", no_session),
                                                 (f"no {metric} measurement{view_words}", ids.difference(measured))],
             "no baseline measurement (none in the 90 days before the first session)")),
        (STEPS[2], followed,
         why(based.difference(followed, sort=False), [("one completed session only", one_session),
                                                      ("measured only after the course ended", after_only)],
             "no measurement after the first session")),
        (STEPS[3], passed, quality),
        (STEPS[4], modelled,
         why(passed.difference(modelled, sort=False), [
             ("unknown skin type", passed.difference(known_skin)), ("age missing", passed.difference(known_ids)),
             (f"missing {', '.join(covariates)}", passed.difference(cov_ids))],
             f"skin type with too few patients (under {MIN_PATIENTS_PER_SKIN_TYPE}) or visits for its own curve")),
    ]


def patient_flow(
    tables: Mapping[str, pd.DataFrame],
    metric: str,
    *,
    view: str | None = contract.DEFAULT_VIEW,
    include_flagged: bool = False,
    covariates: Sequence[str] = (),
    interactions: Sequence[str] = ("age", "skin_type"),
    time_transform: str = "spline",
    spline_df: int = 3,
) -> pd.DataFrame:
    """The flow of the report's patients to the model of ``metric``, with reasons.

    ``tables`` are the processed tables of the report's patients; the options are
    :func:`outcomes.models.fit_improvement`'s (same defaults), so that the last step holds
    the model's ``n_patients_``. Rows, in order: each step (``kind`` ``"step"``, ``reason`` empty)
    preceded by the patients who left before it, one row per reason (``kind`` ``"left"``).
    Columns: ``step``, ``kind``, ``reason``, ``patients``.
    """
    out = []
    for step, ids, reasons in _stages(tables, metric, view, include_flagged, covariates, interactions,
                                      time_transform, spline_df):
        for reason, n in reasons.value_counts(sort=False).items():
            out.append((step, "left", reason, int(n)))
        out.append((step, "step", "", len(ids)))
    return pd.DataFrame(out, columns=["step", "kind", "reason", "patients"])


def modelled_patients(tables: Mapping[str, pd.DataFrame], metric: str, **options) -> pd.Index:
    """The ids of the patients :func:`patient_flow` counts as modelled (options as there)."""
    return _stages(tables, metric, options.get("view", contract.DEFAULT_VIEW), options.get("include_flagged", False),
                   options.get("covariates", ()), options.get("interactions", ("age", "skin_type")),
                   options.get("time_transform", "spline"), options.get("spline_df", 3))[-1][1]


def suppress_flow(flow: pd.DataFrame, min_cell: int = config.MIN_CELL) -> pd.DataFrame:
    """The flow for display: no count from 1 to ``min_cell - 1`` can be read or worked out.

    Step counts follow :func:`outcomes.privacy.suppress_steps` (a small one reads ``"<5"``; an
    earlier one reads ``"x"`` when two shown steps differ by 1..min_cell-1). The reasons between
    two shown steps add up to their difference, so a small reason reads ``"<5"`` and more read
    ``"x"`` until the hidden ones never add up to 1..min_cell-1.
    """
    out = flow.copy()
    is_step = (out["kind"] == "step").to_numpy()
    n = out["patients"].to_numpy(dtype=float)
    steps = suppress_steps(out.loc[is_step, "patients"], min_cell)
    shown_step = ~steps.isin([suppressed_label(min_cell), COMPLEMENT_LABEL]).to_numpy()
    # the reasons between two consecutive shown steps form one line with a known total
    segment, line = np.zeros(len(out), dtype=int), 0
    step_seen = 0
    for i in range(len(out)):
        if is_step[i]:
            if shown_step[step_seen]:
                line += 1
            step_seen += 1
        segment[i] = line
    reasons = ~is_step
    lines = np.unique(segment[reasons])
    counts = np.column_stack([np.where(reasons & (segment == s), n, 0.0) for s in lines]) if len(lines) \
        else np.zeros((len(out), 1))
    small = reasons & (n > 0) & (n < min_cell)
    hidden = complementary(counts, small[:, None] & (counts > 0), min_cell, order=out["reason"]).any(axis=1)
    shown = out["patients"].astype(object).to_numpy().copy()
    shown[hidden] = COMPLEMENT_LABEL
    shown[small] = suppressed_label(min_cell)
    shown[is_step] = steps.to_numpy()
    out["patients"] = shown
    return out


def display_flow(flow: pd.DataFrame, min_cell: int = config.MIN_CELL) -> pd.DataFrame:
    """The flow as a reader sees it, suppressed (:func:`suppress_flow`): each step's label and
    patients, preceded by an indented ``"left out: <reason>"`` line per reason."""
    shown = suppress_flow(flow, min_cell)
    labels = np.where(shown["kind"] == "step", shown["step"], "\u2003left out: " + shown["reason"].astype(str))
    return pd.DataFrame({"step": labels, "patients": shown["patients"].to_numpy()})


def _first_session_values(tables: Mapping[str, pd.DataFrame], column: str) -> pd.Series:
    """The patient's ``column`` at their first completed session (product, area)."""
    sessions = tables.get("sessions")
    if sessions is None or column not in sessions:
        return pd.Series(dtype=object)
    done = sessions.dropna(subset=["session_number"]).sort_values(["patient_id", "session_number"])
    return done.drop_duplicates("patient_id").set_index("patient_id")[column]


def baseline_characteristics(tables: Mapping[str, pd.DataFrame], patient_ids: Sequence[str] | pd.Index,
                             min_cell: int = config.MIN_CELL) -> pd.DataFrame:
    """Table 1 of the patients ``patient_ids`` (e.g. :func:`modelled_patients`), for display.

    Rows: ``Patients`` (their number), ``Age, years`` (median (IQR), ages 90 and over as
    ``90+``), then ``n (%)`` for each level of sex, skin type, concern, area and product (those of
    the first completed session) and clinic; a missing value is ``unknown``; levels nobody has
    are left out. Columns: ``characteristic``, ``level``, ``value``. Each characteristic's counts
    add up to the number of patients, so they are suppressed as one crosstab line
    (:func:`outcomes.privacy.suppress_counts`): a count of 1..min_cell-1 and its percentage read
    ``"<5"``, and further cells ``"x"`` until the hidden ones never add up to 1..min_cell-1.
    With fewer than ``min_cell`` patients nothing but ``"<5"`` is shown.
    """
    patients = tables["patients"].drop_duplicates("patient_id").set_index("patient_id")
    ids = pd.Index(patient_ids).intersection(patients.index, sort=False)
    chosen = patients.loc[ids]
    total = len(chosen)
    label = suppressed_label(min_cell)
    rows = [("Patients", "", f"{total:,}" if total >= min_cell or total == 0 else label)]
    ages = pd.to_numeric(chosen["age"], errors="coerce").dropna()
    if len(ages) >= min_cell:
        q1, med, q3 = np.quantile(ages, [0.25, 0.5, 0.75])
        rows.append(("Age, years", "median (IQR)", f"{age_text(round(med))} ({age_text(round(q1))}–{age_text(round(q3))})"))
    else:
        rows.append(("Age, years", "median (IQR)", label if len(ages) else "–"))
    characteristics = [
        ("Sex", chosen["sex"], list(contract.SEXES)),
        ("Skin type", chosen["skin_type"], list(contract.SKIN_TYPES)),
        ("Concern", chosen["concern"], list(contract.CONCERNS)),
        ("Treated area", _first_session_values(tables, "area").reindex(ids), None),
        ("Product", _first_session_values(tables, "product").reindex(ids), None),
        ("Clinic", chosen["clinic_id"], None),
    ]
    for name, values, order in characteristics:
        values = values.astype(object).where(values.notna(), UNKNOWN).astype(str)
        counts = values.value_counts()
        if order is None:
            levels = sorted(counts.index, key=lambda v: (v == UNKNOWN, v))
        else:
            levels = [v for v in order if v in counts.index] + sorted(set(counts.index) - set(order) - {UNKNOWN}) \
                + ([UNKNOWN] if UNKNOWN in counts.index and UNKNOWN not in order else [])
        counts = counts.reindex(levels)
        shown = suppress_counts(counts, min_cell, total_known=True)
        for level, n, cell in zip(levels, counts, shown):
            text = cell if isinstance(cell, str) and total >= min_cell else (
                label if total < min_cell else f"{int(n):,} ({100 * n / total:.1f}%)")
            rows.append((name, level, text))
    return pd.DataFrame(rows, columns=["characteristic", "level", "value"])
