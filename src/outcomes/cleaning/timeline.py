"""How measurements meet sessions: session counts, baselines, improvement.

Rules (the raw-data contract):
- a measurement's session count is the number of *completed* sessions strictly before its
  calendar day (a photo on a session day is taken before that day's injections);
- the baseline of a patient x metric x view is the latest measurement with count 0 taken at
  most 90 days before the first session;
- several measurements of one metric and view at the same count: the best quality one, then
  the latest;
- improvement is signed so that positive is always better: on a ratio scale
  improvement_pct = 100 x (baseline - value) / baseline when lower is better, and
  100 x (value - baseline) / baseline when higher is better; on an interval scale (CIELAB, ITA°,
  no true zero) there is no percentage (NaN) and the change is counted in the metric's own unit.
  `improvement`, what the models fit, is the one or the other.

Why arrays and sorting rather than groupby-apply: this runs on millions of rows. Patients are
integer codes; a (patient, day) pair becomes one int64 key, so counting sessions before a date
is a binary search (np.searchsorted); cell and preference become one int64 key, so choosing
one row per cell (and finding exact duplicates, which share cell and preference) is one
stable sort, which is nearly free on an export already sorted by patient and date.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from outcomes import contract
from outcomes.cleaning import qc
from outcomes.cleaning.columns import as_arrow
from outcomes.cleaning.normalise import narrowest_int

DAY_OFFSET = 40_000  # shifts day numbers (days since 1970) of 1900..2100 into 0..2^17
DAY_SPAN = 1 << 17
NS_PER_MINUTE = 60 * 10**9
NS_PER_DAY = 86_400 * 10**9


def day_numbers(values: np.ndarray | pd.Series) -> np.ndarray:
    """Calendar day (days since 1970-01-01) of datetime values (integer division: fast)."""
    return np.asarray(values, dtype="datetime64[ns]").view(np.int64) // NS_PER_DAY


def session_keys(patient_codes: np.ndarray, session_days: np.ndarray) -> np.ndarray:
    """Sorted (patient, day) keys of completed sessions, for count_sessions."""
    return np.sort(np.asarray(patient_codes, np.int64) * DAY_SPAN + np.asarray(session_days, np.int64) + DAY_OFFSET)


def _first_key_index(keys: np.ndarray, patient_codes: np.ndarray) -> np.ndarray:
    """Index in `keys` of each patient's first session key (one search per distinct patient)."""
    top = int(patient_codes.max()) + 1 if len(patient_codes) else 0
    starts = np.searchsorted(keys, np.arange(top + 1, dtype=np.int64) * DAY_SPAN, side="left")
    return starts[patient_codes]


def count_sessions(keys: np.ndarray, patient_codes: np.ndarray, days: np.ndarray, inclusive: bool = False) -> np.ndarray:
    """Completed sessions of each patient strictly before (or, inclusive, on or before) each day."""
    patient_codes = np.asarray(patient_codes, np.int64)
    end = np.searchsorted(keys, patient_codes * DAY_SPAN + np.asarray(days, np.int64) + DAY_OFFSET,
                          side="right" if inclusive else "left")
    return end - _first_key_index(keys, patient_codes)


def completed_keys(sessions: pd.DataFrame, patient_ids: pd.Series) -> np.ndarray:
    """session_keys of the completed sessions, patients coded by their position in patient_ids."""
    done = sessions.loc[(sessions["status"] == "completed").to_numpy(dtype=bool, na_value=False)]
    codes = pc.index_in(as_arrow(done["patient_id"]), value_set=as_arrow(patient_ids))
    codes = codes.fill_null(-1).to_numpy(zero_copy_only=False)
    return session_keys(codes[codes >= 0], day_numbers(done["session_date"])[codes >= 0])


@dataclass
class Linked:
    """Measurements as integer codes and numbers (no text), row-aligned with the raw rows.

    Rows where `usable` is false (rejected) are carried along, not gathered out (gathering
    millions of rows column by column costs more than it saves); their values mean nothing.
    """

    usable: np.ndarray  # bool: the row was not rejected
    patient: np.ndarray  # position among the kept (sorted) patients (0 where not usable)
    metric: np.ndarray  # position in the metric registry
    view: np.ndarray  # position in contract.VIEWS
    taken: np.ndarray  # datetime64[ns]
    value: np.ndarray
    yaw: np.ndarray  # head yaw in degrees (NaN = not recorded)
    own: np.ndarray  # the photo's own quality bits (qc.photo_flags)
    day: np.ndarray  # day number of the measurement (int32)
    sessions: np.ndarray  # completed sessions before the measurement day (int32)
    last_day: np.ndarray  # day number of the last of those sessions (int32; meaningless when sessions is 0)


def measurement_days(taken: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Day numbers (int32; 0 where not usable)."""
    day = (np.asarray(taken, dtype="datetime64[ns]").view(np.int64) // NS_PER_DAY).astype(np.int32)
    day[~usable] = 0
    return day


def sessions_before(keys: np.ndarray, patient_codes: np.ndarray, days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """count_sessions (strictly before each day), and the day of the last of those sessions
    (meaningless where the count is 0), both int32.

    An export lists a patient's visit as a run of rows with the same (patient, day): only the
    first row of each run is searched for (any order is right; sorted rows are fastest).
    """
    wanted = np.asarray(patient_codes).astype(np.int64)
    wanted *= DAY_SPAN
    wanted += days
    wanted += DAY_OFFSET
    starts = np.ones(len(wanted), dtype=bool)
    np.not_equal(wanted[1:], wanted[:-1], out=starts[1:])
    starts = np.flatnonzero(starts)
    lengths = np.diff(starts, append=len(wanted))
    first = wanted[starts]
    end = np.searchsorted(keys, first, side="left")
    if len(keys):
        last = keys[np.maximum(end - 1, 0)]
        np.remainder(last, DAY_SPAN, out=last)  # a key is patient * DAY_SPAN + day + DAY_OFFSET
        last -= DAY_OFFSET
        last_day = last.astype(np.int32)
    else:
        last_day = np.zeros(len(end), dtype=np.int32)
    end -= _first_key_index(keys, first // DAY_SPAN)
    return np.repeat(end.astype(np.int32), lengths), np.repeat(last_day, lengths)


@dataclass
class CellOrder:
    """The usable measurements sorted by cell (patient, metric, view, sessions), the preferred
    row of each cell last: an eligible baseline, then the best quality, then the latest, then
    the last in the file."""

    order: np.ndarray  # row positions in sorted order
    cell: np.ndarray  # per sorted position: its cell number
    span: int  # cells per patient x metric x view (max sessions + 1): block = cell // span
    eligible: np.ndarray  # row-aligned: a count-0 row at most 90 days before the first session
    tied: np.ndarray  # per sorted position: same cell and preference as the previous one


def cell_order(m: Linked, first_session: np.ndarray, n_metrics: int) -> CellOrder:
    """Sort the usable measurements by cell, then preference (eligible baseline, quality, time),
    then file order (a stable sort)."""
    first = np.asarray(first_session, dtype="datetime64[ns]")
    first_day = np.where(np.isnat(first), np.iinfo(np.int64).max // 2, day_numbers(first))  # none: never eligible
    first_day = np.append(first_day, 0)  # rows not usable may point one past the patients
    patient = m.patient.astype(np.int64)
    eligible = (first_day[patient] - m.day <= contract.BASELINE_MAX_DAYS_BEFORE_FIRST_SESSION) & (m.sessions == 0)
    span = int(np.max(m.sessions, where=m.usable, initial=0)) + 1
    cell = ((patient * n_metrics + m.metric) * len(contract.VIEWS) + m.view) * span + m.sessions
    cell[~m.usable] = np.iinfo(np.int64).max  # rejected rows sort last, and are cut off
    quality = 3 - np.minimum(qc.quality_rank(m.own), 3)  # 3 = no problem ... 0 = three or more
    minute = m.taken.view(np.int64) // NS_PER_MINUTE
    order = np.lexsort((minute, quality, eligible, cell))[:int(m.usable.sum())]  # stable: ties keep file order
    cell = cell[order]
    tied = np.zeros(len(order), dtype=bool)  # same cell and preference as the row before
    tied[1:] = cell[1:] == cell[:-1]
    for key in (eligible[order], quality[order], minute[order]):
        tied[1:] &= key[1:] == key[:-1]
    return CellOrder(order=order, cell=cell, span=span, eligible=eligible, tied=tied)


def exact_duplicates(cells: CellOrder, columns: dict[str, np.ndarray | Callable]) -> np.ndarray:
    """Per sorted position: a row equal in every column to an earlier row. A column is an
    array (row-aligned), or a function giving the values of some rows (text, fetched only for
    the rows compared).

    Equal rows share cell and preference, so only rows tied in the sort are compared; ties keep
    file order, so the first of equal rows is the one kept.
    """
    duplicate = np.zeros(len(cells.order), dtype=bool)
    if not cells.tied.any():
        return duplicate
    candidates = np.flatnonzero(cells.tied | np.r_[cells.tied[1:], False])  # every run of ties, with its first row
    group = np.cumsum(~cells.tied[candidates])  # a new run starts at each row not tied to the one before
    rows = cells.order[candidates]
    frame = pd.DataFrame({"group": group, **{
        name: pd.array(values(rows), dtype="str") if callable(values) else values[rows] for name, values in columns.items()}})
    duplicate[candidates[frame.duplicated(keep="first").to_numpy()]] = True
    return duplicate


def _lookup(sorted_keys: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position of each wanted key in sorted_keys, and whether it is there."""
    where = np.searchsorted(sorted_keys, wanted)
    if not len(sorted_keys):
        return where, np.zeros(len(wanted), dtype=bool)
    return where, (where < len(sorted_keys)) & (sorted_keys[np.minimum(where, len(sorted_keys) - 1)] == wanted)


@dataclass
class Chosen:
    """One measurement per cell and its baseline (row positions; base -1 when none)."""

    rows: np.ndarray  # sorted by patient, metric, view, sessions
    base: np.ndarray  # the baseline row of each chosen row, or -1
    front_fallback: np.ndarray  # compared with the front baseline for lack of one in its own view


def choose(m: Linked, cells: CellOrder, duplicate: np.ndarray) -> Chosen:
    """The preferred non-duplicate row of each cell, and the baseline each is compared with.
    `duplicate`: per sorted position (exact_duplicates)."""
    cell = cells.cell
    last = np.ones(len(cell), dtype=bool)
    np.not_equal(cell[1:], cell[:-1], out=last[:-1])
    if duplicate.any():
        # a duplicate is never chosen. It follows the row it copies in the same cell (equal rows
        # tie in the sort, which keeps file order), so where one ends its cell, the cell's last
        # row that is not a duplicate is a step or a few back
        ends = np.flatnonzero(last & duplicate)
        last[ends] = False
        ends -= 1
        while (back := duplicate[ends]).any():
            ends[back] -= 1
        last[ends] = True
    rows = cells.order[last]
    block = cell[last]
    block //= cells.span  # patient x metric x view
    is_base = m.sessions[rows] == 0
    is_base &= cells.eligible[rows]
    # rows are sorted by block, then sessions: a block's own baseline is its first row
    base = np.full(len(rows), -1, dtype=np.int64)
    if len(rows):
        starts = np.flatnonzero(np.r_[True, block[1:] != block[:-1]])
        lengths = np.diff(starts, append=len(rows))
        base = np.repeat(np.where(is_base[starts], rows[starts], -1), lengths)
    # a view without its own baseline falls back to the front baseline (flagged)
    front = contract.VIEWS.index(contract.DEFAULT_VIEW)
    view = m.view[rows]
    fallback = np.zeros(len(rows), dtype=bool)
    need = np.flatnonzero((base < 0) & (view != front))
    if len(need):
        base_blocks, base_at = block[is_base], np.flatnonzero(is_base)
        where, found = _lookup(base_blocks, block[need] - view[need] + front)
        base[need[found]] = rows[base_at[where[found]]]
        fallback[need[found]] = True
    return Chosen(rows=rows, base=base, front_fallback=fallback)


def dictionary(codes: np.ndarray, values: pa.Array | list, ordered: bool = False,
               complete: bool = False) -> pa.DictionaryArray:
    """An arrow dictionary column from integer codes (-1 = missing, unless `complete`): text
    without a copy per row, in the narrowest index type."""
    codes = np.asarray(codes)
    if not isinstance(values, pa.Array):
        values = pa.array([str(v) for v in values], type=pa.large_string())
    indices = pa.array(codes.astype(narrowest_int(len(values)), copy=False), mask=None if complete else codes < 0)
    return pa.DictionaryArray.from_arrays(indices, values, ordered=ordered)


def patient_columns(patients: pd.DataFrame) -> dict[str, tuple[np.ndarray, pa.Array]]:
    """Per kept patient (in code order): codes into the distinct values of each text column."""
    from outcomes.cleaning.normalise import factorize

    out = {}
    for column in ("patient_id", "sex", "concern", "clinic_id"):
        codes, uniques = factorize(patients[column])
        if isinstance(uniques, pa.Array) and pa.types.is_dictionary(uniques.type):
            uniques = uniques.dictionary_decode()
        if not isinstance(uniques, pa.Array):
            uniques = pa.array([str(u) for u in uniques], type=pa.large_string())
        out[column] = (np.asarray(codes), uniques.cast(pa.large_string()))
    return out


BATCH_ROWS = 1 << 19  # output rows built (and written) at a time: small arrays are reused, not faulted in anew


def outcome_batches(
    m: Linked,
    chosen: Chosen,
    patients: pd.DataFrame,
    registry: dict[str, contract.Metric],
    photo_id: pa.Array,
    device: tuple[np.ndarray, pa.Array],
    size: int = BATCH_ROWS,
) -> Iterator[pa.RecordBatch]:
    """outcomes.parquet, one batch of rows at a time (at least one batch, maybe empty).

    `patients`: the tidy patients table (row i = patient code i); `photo_id` and `device`
    (codes, distinct texts) row-aligned with `m`.
    """
    per_patient = patient_columns(patients)  # and the numbers, looked up once, not per batch:
    per_patient["age"] = patients["age"].to_numpy(dtype=float)
    per_patient["skin_type"] = np.asarray(patients["skin_type"].cat.codes)
    for start in range(0, max(len(chosen.rows), 1), size):
        part = slice(start, start + size)
        yield _outcome_batch(m, chosen.rows[part], chosen.base[part], chosen.front_fallback[part],
                             per_patient, registry, photo_id, device)


def _outcome_batch(m: Linked, rows: np.ndarray, base: np.ndarray, front_fallback: np.ndarray, per_patient: dict,
                   registry: dict[str, contract.Metric], photo_id: pa.Array,
                   device: tuple[np.ndarray, pa.Array]) -> pa.RecordBatch:
    """One row per chosen measurement: its cell, baseline, improvement and quality flags."""
    has_base = base >= 0
    base = np.maximum(base, 0)
    patient = m.patient[rows].astype(np.intp)  # an index for six look-ups: converted once
    metric, sessions = m.metric[rows], m.sessions[rows]
    value = m.value[rows]
    base_value = m.value[base]
    base_value[~has_base] = np.nan
    change = value - base_value
    with np.errstate(divide="ignore", invalid="ignore"):
        improvement = change / base_value
    improvement *= 100.0
    lower_is_better = np.array([mt.sign < 0 for mt in registry.values()])[metric]
    np.negative(improvement, out=improvement, where=lower_is_better)  # positive is better
    interval = np.array([mt.scale == "interval" for mt in registry.values()])[metric]
    zero_base = base_value == 0
    zero_base &= ~interval  # a zero is an ordinary value on an interval scale
    improvement[zero_base] = np.nan
    improvement += 0.0  # no -0.0
    # on an interval scale: no percentage of the baseline; the signed change in the metric's own unit
    gained = np.where(lower_is_better, -change, change)
    gained += 0.0
    improvement_pct = np.where(interval, np.nan, improvement)
    improvement = np.where(interval, gained, improvement)
    day = m.day[rows]
    days_since = (day - m.day[base]).astype(float)
    days_since[~has_base] = np.nan

    own = m.own
    flags = own[rows]
    qc.add(flags, "no_baseline", ~has_base)
    qc.add(flags, "baseline_zero", zero_base)
    flawed = (own[base] & qc.PHOTO_BITS) > 0
    flawed &= has_base
    flawed &= base != rows
    qc.add(flags, "baseline_qc", flawed)
    yaw = qc.yaw_differs(m.yaw[rows], m.yaw[base])
    yaw &= has_base
    qc.add(flags, "yaw_vs_baseline", yaw)
    qc.add(flags, "view_differs_from_baseline", front_fallback)

    def of_patient(column: str) -> pa.DictionaryArray:
        codes, values = per_patient[column]
        return dictionary(codes[patient], values, complete=column == "patient_id")

    columns = {
        "patient_id": of_patient("patient_id"),
        "metric": dictionary(metric, list(registry), complete=True),
        "view": dictionary(m.view[rows], contract.VIEWS, complete=True),
        "sessions": pa.array(sessions.astype(np.int64)),
        "days_since_baseline": pa.array(days_since),
        "baseline": pa.array(base_value),
        "value": pa.array(value),
        "change": pa.array(change),
        "improvement_pct": pa.array(improvement_pct),
        "improvement": pa.array(improvement),
        "age": pa.array(per_patient["age"][patient]),
        "skin_type": dictionary(per_patient["skin_type"][patient],
                                pa.array(contract.SKIN_TYPES, type=pa.string()), ordered=True),
        "sex": of_patient("sex"),
        "concern": of_patient("concern"),
        "clinic_id": of_patient("clinic_id"),
        "qc_ok": pa.array(flags == 0),
        "qc_reasons": dictionary(flags, qc.REASON_TEXTS, complete=True),
        "taken_at": pa.array(m.taken[rows]),
        "photo_id": photo_id.take(pa.array(rows)),
        "device": dictionary(device[0][rows], device[1]),
        "days_since_last_session": pa.array(np.where(sessions > 0, day - m.last_day[rows], np.nan)),
    }
    return pa.record_batch(columns)
