"""Keep people out of the reports: small groups suppressed, identifiers dropped.

Reports are read by people who were not meant to be able to recognise a patient. Two rules:

* any statistic about a group of fewer than ``min_cell`` distinct patients is not shown;
  the cell reads ``"<5"`` (for the default ``min_cell`` of 5) instead;
* cohort reports carry no patient ids and no raw identifiers (names, birth dates, photo ids,
  free-text values from rejected rows); a patient report shows only the pseudonymous
  ``patient_id``.

These helpers return *display* tables: suppressed cells become the string ``"<5"``, so the
result is for showing, not for further arithmetic.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from outcomes import config

# Columns that identify a person or a record directly. ``patient_id`` is pseudonymous but
# still points at one person, so it is kept out of cohort reports too.
IDENTIFIER_COLUMNS: tuple[str, ...] = (
    "patient_id", "photo_id", "practitioner_id", "birth_date", "dob", "date_of_birth",
    "name", "first_name", "last_name", "full_name", "surname", "email", "phone", "address",
    "source_row", "value_raw",
)


def suppressed_label(min_cell: int = config.MIN_CELL) -> str:
    """The text shown instead of a suppressed statistic, e.g. ``"<5"``."""
    return f"<{min_cell}"


def suppress_small_cells(
    table: pd.DataFrame,
    n_col: str = "n_patients",
    value_cols: Sequence[str] | None = None,
    min_cell: int = config.MIN_CELL,
) -> pd.DataFrame:
    """Blank every statistic of a row whose group has fewer than ``min_cell`` patients.

    ``n_col`` holds the number of distinct patients behind each row; ``value_cols`` are the
    statistics to hide (default: every column except ``n_col`` that is not a grouping key,
    i.e. every numeric column). The count itself is shown as ``"<5"`` too, except a true
    zero, which reveals nobody. Returns a new DataFrame; the input is not changed.
    """
    if n_col not in table.columns:
        raise KeyError(f"suppress_small_cells: the table has no patient-count column {n_col!r}")
    if min_cell < 1:
        raise ValueError("min_cell must be at least 1")
    if value_cols is None:
        value_cols = [c for c in table.columns if c != n_col and pd.api.types.is_numeric_dtype(table[c])
                      and not pd.api.types.is_bool_dtype(table[c])]
    missing = [c for c in value_cols if c not in table.columns]
    if missing:
        raise KeyError(f"suppress_small_cells: no such columns {missing}")
    label = suppressed_label(min_cell)
    n = pd.to_numeric(table[n_col], errors="coerce").fillna(0)
    small = (n < min_cell).to_numpy()
    out = table.copy()
    for col in [*value_cols, n_col]:
        shown = out[col].astype(object)
        hide = small & ~((n == 0).to_numpy() & (col == n_col))
        shown[hide] = label
        out[col] = shown
    return out


def suppress_counts(counts: pd.DataFrame | pd.Series, min_cell: int = config.MIN_CELL) -> pd.DataFrame | pd.Series:
    """A crosstab of patient counts for display: counts from 1 to ``min_cell - 1`` read ``"<5"``.

    Zeros are left visible (an empty cell identifies nobody).
    """
    label = suppressed_label(min_cell)

    def cell(v: object) -> object:
        if isinstance(v, (int, float, np.integer, np.floating)) and not pd.isna(v) and 0 < v < min_cell:
            return label
        return v

    return counts.astype(object).map(cell)  # element-wise for a Series and a DataFrame alike


def group_summary(
    data: pd.DataFrame,
    by: str | Sequence[str],
    value: str,
    patient_col: str = "patient_id",
    min_cell: int = config.MIN_CELL,
    decimals: int = 1,
) -> pd.DataFrame:
    """Mean of ``value`` per group with a 95% CI over patients, small groups suppressed.

    Each patient counts once: their rows are averaged first, so a patient with many photos
    does not weigh more (and ``n_patients`` is an honest group size). Columns: the group
    keys, ``n_patients``, ``mean``, ``ci_low``, ``ci_high``.
    """
    keys = [by] if isinstance(by, str) else list(by)
    rows = data.dropna(subset=[value])
    per_patient = rows.groupby([*keys, patient_col], observed=True, dropna=False)[value].mean().reset_index()
    grouped = per_patient.groupby(keys, observed=True, dropna=False)[value]
    table = grouped.agg(n_patients="count", mean="mean", sd="std").reset_index()
    se = table["sd"] / np.sqrt(table["n_patients"])
    table["ci_low"] = table["mean"] - 1.96 * se
    table["ci_high"] = table["mean"] + 1.96 * se
    table = table.drop(columns="sd")
    for col in ("mean", "ci_low", "ci_high"):
        table[col] = table[col].round(decimals)
    return suppress_small_cells(table, "n_patients", ["mean", "ci_low", "ci_high"], min_cell)


def rate_summary(
    data: pd.DataFrame,
    by: str | Sequence[str],
    flag: str,
    patient_col: str = "patient_id",
    min_cell: int = config.MIN_CELL,
) -> pd.DataFrame:
    """Share of patients with ``flag`` true (any of their rows), per group, small groups suppressed.

    Columns: the group keys, ``n_patients``, ``n_yes``, ``pct``. ``n_yes`` counts of 1-4 are
    shown as ``"<5"`` as well, since they can single people out even in a large group.
    """
    keys = [by] if isinstance(by, str) else list(by)
    per_patient = data.groupby([*keys, patient_col], observed=True, dropna=False)[flag].any().reset_index()
    table = per_patient.groupby(keys, observed=True, dropna=False)[flag].agg(n_patients="count", n_yes="sum").reset_index()
    table["pct"] = (100 * table["n_yes"] / table["n_patients"]).round(1)
    table = suppress_small_cells(table, "n_patients", ["n_yes", "pct"], min_cell)
    table["n_yes"] = suppress_counts(table["n_yes"], min_cell)
    return table


def drop_identifiers(data: pd.DataFrame, keep: Iterable[str] = ()) -> pd.DataFrame:
    """The table without identifying columns (see ``IDENTIFIER_COLUMNS``), except those in ``keep``.

    ``keep=("patient_id",)`` is what a single-patient report uses: the pseudonymous id only.
    """
    keep = set(keep)
    drop = [c for c in data.columns if str(c).lower() in IDENTIFIER_COLUMNS and c not in keep]
    return data.drop(columns=drop)


def check_no_identifiers(data: pd.DataFrame, allow: Iterable[str] = ()) -> pd.DataFrame:
    """Raise if a table about to be shown still holds identifying columns; else return it.

    A guard for report notebooks: ``display(check_no_identifiers(table))``.
    """
    allow = set(allow)
    found = [c for c in data.columns if str(c).lower() in IDENTIFIER_COLUMNS and c not in allow]
    if isinstance(data.index, pd.MultiIndex):
        names = list(data.index.names)
    else:
        names = [data.index.name]
    found += [n for n in names if n is not None and str(n).lower() in IDENTIFIER_COLUMNS and n not in allow]
    if found:
        raise ValueError(f"this table would show identifying columns {found}; drop them first")
    return data
