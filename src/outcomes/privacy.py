"""Keep people out of the reports: small groups suppressed, identifiers dropped.

Reports are read by people who were not meant to be able to recognise a patient. Two rules:

* any statistic about a group of fewer than ``min_cell`` distinct patients is not shown;
  the cell reads ``"<5"`` (for the default ``min_cell`` of 5) instead;
* cohort reports carry no patient ids and no raw identifiers (names, birth dates, photo ids,
  free-text values from rejected rows); a patient report shows only the pseudonymous
  ``patient_id``.

These helpers return *display* tables: suppressed cells become the string ``"<5"``, so the
result is for showing, not for further arithmetic.

Hiding the small cell is not enough when other figures give it back, so suppression is
*complementary*: a figure worked out from a hidden count (a percentage, a mean) is hidden with
it; a count that is the difference of two shown ones (``n_patients - n_yes``) is protected
like a shown one; and when the cells of a line (a column, a crosstab) have a total that a
reader knows, the hidden cells must not add up to 1..min_cell-1, so one more cell is hidden
(shown as ``"x"``) until they do not. A count written in a sentence goes through
:func:`count_text`. Ages of 90 and over are one group (HIPAA Safe Harbor): :func:`age_text`.
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


# A cell hidden only so that a total cannot give a small hidden cell back.
COMPLEMENT_LABEL = "x"
# HIPAA Safe Harbor: ages over 89 are reported as one group.
OLDEST_AGE = 90


def suppressed_label(min_cell: int = config.MIN_CELL) -> str:
    """The text shown instead of a suppressed statistic, e.g. ``"<5"``."""
    return f"<{min_cell}"


def check_min_cell(min_cell: int) -> int:
    """`min_cell` if a cohort report may use it; a ValueError below ``config.MIN_CELL_FLOOR``.

    Groups under 5 are never shown: the cover of every report says so, so a lower value would
    make it untrue. A higher value is allowed.
    """
    if isinstance(min_cell, bool) or not isinstance(min_cell, (int, np.integer)) or min_cell < config.MIN_CELL_FLOOR:
        raise ValueError(f"min_cell must be a whole number of at least {config.MIN_CELL_FLOOR} "
                         f"(groups under {config.MIN_CELL_FLOOR} patients are never shown), got {min_cell!r}")
    return int(min_cell)


def count_text(n: int, noun: str = "patients", min_cell: int = config.MIN_CELL) -> str:
    """A count of people for a sentence: ``"no patients"``, ``"fewer than 5 patients"``, ``"1,234 patients"``.

    `noun` is the plural. A count from 1 to ``min_cell - 1`` is never written out.
    """
    n = int(n)
    if n <= 0:
        return f"no {noun}"
    if n < min_cell:
        return f"fewer than {min_cell} {noun}"
    return f"{n:,} {noun}"


def share_text(n_yes: int, n_all: int, noun: str = "patients", min_cell: int = config.MIN_CELL) -> str:
    """``"12 of 96 patients (12.5%)"`` for a sentence, without giving a small count back.

    Neither ``n_yes`` nor ``n_all - n_yes`` nor ``n_all`` is written out when from 1 to
    ``min_cell - 1``, and the percentage is left out then (with the total it would give the
    count back): ``"fewer than 5 of 96 patients"``, ``"all but fewer than 5 of the 96 patients"``.
    """
    n_yes, n_all = int(n_yes), int(n_all)
    if n_all <= 0:
        return f"no {noun}"
    if n_all < min_cell:
        word = "none" if n_yes == 0 else "all" if n_yes == n_all else "some"
        return f"{word} of {count_text(n_all, noun, min_cell)}"
    if 0 < n_all - n_yes < min_cell:
        return f"all but fewer than {min_cell} of the {n_all:,} {noun}"
    if 0 < n_yes < min_cell:
        return f"fewer than {min_cell} of {n_all:,} {noun}"
    return f"{'none' if n_yes == 0 else f'{n_yes:,}'} of {n_all:,} {noun} ({100 * n_yes / n_all:.1f}%)"


def age_text(age: object) -> object:
    """An age to show or export: ``"90+"`` for 90 and over (HIPAA Safe Harbor), else unchanged.

    Text that reads as a number (``"101.0"``) is grouped too; other text is left as it is.
    """
    number = pd.to_numeric(pd.Series([age], dtype=object), errors="coerce").iloc[0]
    if pd.notna(number) and number >= OLDEST_AGE:
        return f"{OLDEST_AGE}+"
    return age


def group_old_ages(rows: pd.DataFrame, age_columns: Sequence[str] = ("age",)) -> pd.DataFrame:
    """A rejected.csv / data_quality.csv table with the quoted ``value`` of an age column grouped
    (:func:`age_text`): those files leave the raw folder, and the source row still points at the
    raw value for whoever fixes the export. Returns a new table."""
    out = rows.copy()
    if {"column", "value"} <= set(out.columns):
        ages = out["column"].isin(list(age_columns)).to_numpy(dtype=bool)
        if ages.any():
            out["value"] = out["value"].astype(object)
            out.loc[ages, "value"] = [age_text(v) for v in out.loc[ages, "value"]]
            out["value"] = out["value"].astype(rows["value"].dtype)
    return out


def complementary(counts: np.ndarray, hidden: np.ndarray, min_cell: int = config.MIN_CELL,
                  order: Sequence | None = None, link=None) -> np.ndarray:
    """Which cells to hide so that no line's hidden cells add up to 1..min_cell-1.

    `counts` is (groups x lines): each column a line of counts whose total a reader may know;
    `hidden` marks the cells hidden already (same shape). While a line's hidden cells add up to
    1..min_cell-1, its smallest shown non-zero cell is hidden too (ties broken by `order`, a
    sort key per group, so two tables of the same groups hide the same ones); lines are looked
    at in their order, so put the narrowest first. `link(hidden)` may spread a hidden cell to
    the cells of its row that would give it back. Returns the new mask.
    """
    counts = np.asarray(counts, dtype=float)
    counts = np.nan_to_num(counts[:, None] if counts.ndim == 1 else counts)
    hidden = np.asarray(hidden, dtype=bool).reshape(counts.shape).copy()
    rank = np.zeros(len(counts)) if order is None else pd.Series(list(order)).astype(str).rank(method="first").to_numpy()
    while True:
        before = hidden.copy()
        if link is not None:
            hidden = np.asarray(link(hidden), dtype=bool)
        for j in range(counts.shape[1]):
            total = counts[hidden[:, j], j].sum()
            if 0 < total < min_cell:
                candidates = np.flatnonzero(~hidden[:, j] & (counts[:, j] > 0))
                if len(candidates):
                    pick = candidates[np.lexsort((rank[candidates], counts[candidates, j]))[0]]
                    hidden[pick, j] = True
                    if link is not None:  # before the next line is looked at
                        hidden = np.asarray(link(hidden), dtype=bool)
        if (hidden == before).all():
            return hidden


def suppress_small_cells(
    table: pd.DataFrame,
    n_col: str = "n_patients",
    value_cols: Sequence[str] | None = None,
    min_cell: int = config.MIN_CELL,
    within: Sequence[str] = (),
) -> pd.DataFrame:
    """Blank every statistic of a row whose group has fewer than ``min_cell`` patients.

    ``n_col`` holds the number of distinct patients behind each row; ``value_cols`` are the
    statistics to hide (default: every column except ``n_col`` that is not a grouping key,
    i.e. every numeric column). The count itself is shown as ``"<5"`` too, except a true
    zero, which reveals nobody. The table's total is taken as known, and so is the subtotal
    of each group of the `within` columns (e.g. a clinic's, shown in a by-clinic table beside
    a clinic x device one): more rows read ``"x"`` until no hidden rows add up to 1..min_cell-1
    (:func:`complementary`). Returns a new DataFrame; the input is not changed.
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
    n = pd.to_numeric(table[n_col], errors="coerce").fillna(0).to_numpy(dtype=float)
    small = n < min_cell
    keys = [c for c in table.columns if c != n_col and c not in value_cols]
    order = table[keys].astype(str).agg("|".join, axis=1) if keys else None
    lines = []  # rows of each `within` group (the narrowest totals first), then of the whole table
    if within:
        groups = table[list(within)].astype(str).agg("|".join, axis=1).to_numpy()
        lines += [groups == g for g in pd.unique(groups)]
    lines.append(np.ones(len(n), dtype=bool))
    counts = np.column_stack([np.where(line, n, 0.0) for line in lines])
    hidden = complementary(counts, ((n > 0) & small)[:, None] & (counts > 0), min_cell, order,
                           link=lambda h: h.any(axis=1, keepdims=True) & (counts > 0))
    extra = hidden.any(axis=1) & ~small  # hidden so that a total cannot give a small row back
    out = table.copy()
    for col in [*value_cols, n_col]:
        shown = out[col].astype(object)
        hide = small & ~((n == 0) & (col == n_col))
        shown[hide] = label
        shown[extra] = COMPLEMENT_LABEL
        out[col] = shown
    return out


def suppress_counts(counts: pd.DataFrame | pd.Series, min_cell: int = config.MIN_CELL,
                    total_known: bool = True) -> pd.DataFrame | pd.Series:
    """A crosstab (or list) of patient counts for display: counts from 1 to ``min_cell - 1`` read ``"<5"``.

    Zeros are left visible (an empty cell identifies nobody). With `total_known` (the number
    of patients in the table is stated elsewhere, or can be), enough further cells read
    ``"x"`` that the hidden ones never add up to 1..min_cell-1.
    """
    values = counts.to_numpy(dtype=object)
    numbers = pd.to_numeric(pd.Series(values.ravel()), errors="coerce").to_numpy(dtype=float)
    small = (numbers > 0) & (numbers < min_cell)
    hidden = complementary(numbers, small, min_cell)[:, 0] if total_known else small
    shown = np.where(small, suppressed_label(min_cell), np.where(hidden, COMPLEMENT_LABEL, values.ravel()))
    out = counts.astype(object).copy()
    if isinstance(out, pd.Series):
        out[:] = shown
    else:
        out.iloc[:, :] = shown.reshape(values.shape)
    return out


def suppress_steps(counts: pd.Series, min_cell: int = config.MIN_CELL) -> pd.Series:
    """Patients left after each filter of a selection, for display.

    A count from 1 to ``min_cell - 1`` reads ``"<5"``. Two shown steps must not differ by 1 to
    ``min_cell - 1`` either (the patients a filter removed): the earlier step then reads ``"x"``.
    Steps are checked from the last, which stays as shown (it is the selection's size, told
    in the cover through :func:`count_text`).
    """
    values = pd.to_numeric(counts, errors="coerce").fillna(0).to_numpy(dtype=float)
    shown = counts.astype(object).to_numpy().copy()
    later = None  # the nearest later step that is shown
    for i in range(len(values) - 1, -1, -1):
        v = values[i]
        if 0 < v < min_cell:
            shown[i] = suppressed_label(min_cell)
        elif later is not None and 0 < v - later < min_cell:
            shown[i] = COMPLEMENT_LABEL
        else:
            later = v
    return pd.Series(shown, index=counts.index, name=counts.name, dtype=object)


def suppress_rates(table: pd.DataFrame, n_col: str, yes_col: str, rate_cols: Sequence[str] = (),
                   other_cols: Sequence[str] = (), min_cell: int = config.MIN_CELL) -> pd.DataFrame:
    """A table of groups with ``n_col`` patients of whom ``yes_col`` have some property, for display.

    Neither ``yes_col`` nor ``n_col - yes_col`` may be read or worked out when from 1 to
    ``min_cell - 1``: such a ``yes_col`` reads ``"<5"`` or ``"x"`` and the `rate_cols` (its
    percentage) are hidden with it. A group under ``min_cell`` is hidden as a whole row
    (`other_cols` too, e.g. medians). Each column's total is taken as known, so hidden cells
    never add up to 1..min_cell-1 (:func:`complementary`).
    """
    n = pd.to_numeric(table[n_col], errors="coerce").fillna(0).to_numpy(dtype=float)
    yes = pd.to_numeric(table[yes_col], errors="coerce").fillna(0).to_numpy(dtype=float)
    lines = np.column_stack([n, yes, n - yes])
    small = (lines > 0) & (lines < min_cell)

    def link(hidden: np.ndarray) -> np.ndarray:
        hidden = hidden | hidden[:, [0]]         # a hidden group hides all of its row
        part = hidden[:, 1] | hidden[:, 2]         # yes and n - yes give each other back
        hidden[:, 1], hidden[:, 2] = part, part
        return hidden

    keys = [c for c in table.columns if c not in (n_col, yes_col, *rate_cols, *other_cols)]
    order = table[keys].astype(str).agg("|".join, axis=1) if keys else None
    hidden = complementary(lines, small, min_cell, order, link)
    label = suppressed_label(min_cell)
    row_small = small[:, 0]
    out = table.copy()

    def put(col: str, hide: np.ndarray, small_here: np.ndarray) -> None:
        shown = out[col].to_numpy(dtype=object).copy()
        shown[hide] = COMPLEMENT_LABEL
        shown[hide & (small_here | row_small)] = label
        out[col] = shown

    put(n_col, hidden[:, 0], small[:, 0])
    put(yes_col, hidden[:, 1], small[:, 1])
    for col in rate_cols:
        put(col, hidden[:, 1], np.zeros(len(n), dtype=bool))
    for col in other_cols:
        put(col, hidden[:, 0], np.zeros(len(n), dtype=bool))
    return out


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

    Columns: the group keys, ``n_patients``, ``n_yes``, ``pct``. ``n_yes`` counts of 1-4 (and
    of all but 1-4) are hidden with their percentage, since they can single people out even in
    a large group (:func:`suppress_rates`).
    """
    keys = [by] if isinstance(by, str) else list(by)
    per_patient = data.groupby([*keys, patient_col], observed=True, dropna=False)[flag].any().reset_index()
    table = per_patient.groupby(keys, observed=True, dropna=False)[flag].agg(n_patients="count", n_yes="sum").reset_index()
    table["pct"] = (100 * table["n_yes"] / table["n_patients"]).round(1)
    return suppress_rates(table, "n_patients", "n_yes", ["pct"], min_cell=min_cell)


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
