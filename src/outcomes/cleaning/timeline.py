"""How measurements meet sessions: session counts, baselines, improvement.

Rules (the raw-data contract):
- a measurement's session count is the number of *completed* sessions strictly before its
  calendar day (a photo on a session day is taken before that day's injections);
- the baseline of a patient x metric x view is the latest measurement with count 0 taken at
  most 90 days before the first session;
- several measurements of one metric and view at the same count: the best quality one, then
  the latest;
- improvement_pct = 100 x (baseline - value) / baseline when lower is better, and
  100 x (value - baseline) / baseline when higher is better: positive is always better.

Why arrays and sorting rather than groupby-apply: this runs on millions of rows. Patients are
integer codes; a (patient, day) pair becomes one int64 key, so counting sessions before a date
is a binary search (np.searchsorted), and choosing one row per cell is one sort.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pyarrow as pa

from outcomes import contract
from outcomes.cleaning import qc
from outcomes.cleaning.columns import strings_from_codes

DAY_OFFSET = 40_000  # shifts day numbers (days since 1970) of 1900..2100 into 0..2^17
DAY_SPAN = 1 << 17


def day_numbers(values: np.ndarray | pd.Series) -> np.ndarray:
    """Calendar day (days since 1970-01-01) of datetime values."""
    return np.asarray(values, dtype="datetime64[ns]").astype("datetime64[D]").astype(np.int64)


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


def last_session_day(keys: np.ndarray, patient_codes: np.ndarray, sessions: np.ndarray) -> np.ndarray:
    """Day number of each patient's `sessions`-th completed session (NaN when sessions is 0):
    with `sessions` from count_sessions, the last completed session before the measurement."""
    patient_codes = np.asarray(patient_codes, np.int64)
    if not len(keys):
        return np.full(len(patient_codes), np.nan)
    index = _first_key_index(keys, patient_codes) + np.asarray(sessions, np.int64) - 1
    found = keys[np.clip(index, 0, len(keys) - 1)] - patient_codes * DAY_SPAN - DAY_OFFSET
    return np.where(np.asarray(sessions) > 0, found.astype(float), np.nan)


def completed_keys(sessions: pd.DataFrame, patient_ids: pd.Series) -> np.ndarray:
    """session_keys of the completed sessions, patients coded by their position in patient_ids."""
    done = sessions.loc[sessions["status"] == "completed"]
    codes = pd.Index(patient_ids).get_indexer(done["patient_id"])
    return session_keys(codes[codes >= 0], day_numbers(done["session_date"])[codes >= 0])


def _lookup(sorted_keys: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position of each wanted key in sorted_keys, and whether it is there."""
    where = np.searchsorted(sorted_keys, wanted)
    if not len(sorted_keys):
        return where, np.zeros(len(wanted), dtype=bool)
    return where, (where < len(sorted_keys)) & (sorted_keys[np.minimum(where, len(sorted_keys) - 1)] == wanted)


def build_outcomes(
    measurements: pd.DataFrame,
    patients: pd.DataFrame,
    keys: np.ndarray,
    registry: dict[str, contract.Metric],
) -> pd.DataFrame:
    """One row per patient x metric x view x session count, with baseline and improvement.

    `measurements`: kept rows with `_patient` (position in `patients`), `_day` (day number of
    `taken_at`), `sessions`, `_qc`
    (photo's own quality bits) and `_order` (file order). `patients`: tidy patients table.
    """
    n_metrics, n_views = len(registry), len(contract.VIEWS)
    patient = measurements["_patient"].to_numpy(np.int64)
    metric = measurements["metric"].cat.codes.to_numpy().astype(np.int64)
    view = measurements["view"].cat.codes.to_numpy().astype(np.int64)
    sessions = measurements["sessions"].to_numpy(np.int64)
    taken = measurements["taken_at"].to_numpy(dtype="datetime64[ns]")
    day = measurements["_day"].to_numpy(np.int64)
    first = day_numbers(patients["first_session"].to_numpy())  # NaT -> very negative
    has_first = ~np.isnat(patients["first_session"].to_numpy(dtype="datetime64[ns]"))
    eligible = (sessions == 0) & has_first[patient] & (first[patient] - day <= contract.BASELINE_MAX_DAYS_BEFORE_FIRST_SESSION)
    own = measurements["_qc"].to_numpy()

    # choose one row per cell: eligible baseline first, then best quality, then latest, then last in file
    max_sessions = int(sessions.max()) + 1 if len(sessions) else 1
    block = (patient * n_metrics + metric) * n_views + view  # patient x metric x view
    cell = block * max_sessions + sessions
    minutes = (taken.astype("datetime64[m]").astype(np.int64) + 70 * 525_960).clip(0, (1 << 27) - 1)
    order = measurements["_order"].to_numpy(np.int64)
    order_bits = max(1, int(len(order)).bit_length())
    preference = (((eligible.astype(np.int64) << 2 | (3 - np.minimum(qc.quality_rank(own), 3))) << 27 | minutes) << order_bits) | order
    sort = np.lexsort((preference, cell))
    cell_sorted = cell[sort]
    last = np.ones(len(sort), dtype=bool)
    last[:-1] = cell_sorted[1:] != cell_sorted[:-1]
    rows = sort[last]  # one measurement per cell, sorted by patient, metric, view, sessions

    # baselines: the sessions-0 row of a block, if eligible
    block_r, sessions_r = block[rows], sessions[rows]
    is_base = (sessions_r == 0) & eligible[rows]
    base_blocks, base_rows = block_r[is_base], rows[is_base]  # sorted by block
    where, found = _lookup(base_blocks, block_r)
    # a view without its own baseline falls back to the front baseline (flagged)
    front = contract.VIEWS.index(contract.DEFAULT_VIEW)
    where_front, found_front = _lookup(base_blocks, block_r - view[rows] + front)
    found_front &= ~found
    base_index = np.where(found, where, np.where(found_front, where_front, -1))
    has_base = base_index >= 0
    base = np.where(has_base, base_rows[np.maximum(base_index, 0)] if len(base_rows) else 0, 0)

    value = measurements["value"].to_numpy()[rows]
    base_value = np.where(has_base, measurements["value"].to_numpy()[base], np.nan)
    change = value - base_value
    sign = np.array([m.sign for m in registry.values()], dtype=float)[metric[rows]]
    with np.errstate(divide="ignore", invalid="ignore"):
        improvement = np.where(base_value != 0, sign * 100.0 * change / base_value, np.nan) + 0.0  # no -0.0
    days_since = np.where(has_base, (day[rows] - day[base]).astype(float), np.nan)

    flags = own[rows].copy()
    flags |= np.where(~has_base, qc.BIT["no_baseline"], 0).astype(np.uint16)
    flags |= np.where(has_base & (base_value == 0), qc.BIT["baseline_zero"], 0).astype(np.uint16)
    flags |= np.where(has_base & (base != rows) & ((own[base] & qc.PHOTO_BITS) > 0), qc.BIT["baseline_qc"], 0).astype(np.uint16)
    yaw = measurements["head_yaw_deg"].to_numpy()
    flags |= np.where(has_base, qc.yaw_flag(yaw[rows], yaw[base]), 0).astype(np.uint16)
    flags |= np.where(found_front, qc.BIT["view_differs_from_baseline"], 0).astype(np.uint16)

    chosen = pa.array(patient[rows])

    def per_patient(column: str) -> pd.Series:  # arrow take: far faster than DataFrame.iloc for text
        return pd.Series(pd.array(patients[column].array.__arrow_array__().take(chosen), dtype="str"))

    def per_row(column: str) -> pd.Series:
        return pd.Series(pd.array(measurements[column].array.__arrow_array__().take(pa.array(rows)), dtype="str"))

    # text columns are materialised by arrow, which releases the GIL: build them two at a time
    texts = {
        "patient_id": lambda: per_patient("patient_id"),
        "metric": lambda: strings_from_codes(metric[rows], list(registry)),
        "view": lambda: strings_from_codes(view[rows], contract.VIEWS),
        "sex": lambda: per_patient("sex"),
        "concern": lambda: per_patient("concern"),
        "clinic_id": lambda: per_patient("clinic_id"),
        "qc_reasons": lambda: strings_from_codes(flags, qc.REASON_TEXTS),
        "photo_id": lambda: per_row("photo_id"),
        "device": lambda: per_row("device"),
    }
    with ThreadPoolExecutor(max_workers=2) as pool:
        text = dict(zip(texts, pool.map(lambda make: make(), texts.values())))
    out = pd.DataFrame({
        "patient_id": text["patient_id"],
        "metric": text["metric"],
        "view": text["view"],
        "sessions": sessions_r,
        "days_since_baseline": days_since,
        "baseline": base_value,
        "value": value,
        "change": change,
        "improvement_pct": improvement,
        "age": patients["age"].to_numpy()[patient[rows]],
        "skin_type": pd.Categorical.from_codes(patients["skin_type"].cat.codes.to_numpy()[patient[rows]],
                                               dtype=contract.SKIN_TYPE_DTYPE),
        "sex": text["sex"],
        "concern": text["concern"],
        "clinic_id": text["clinic_id"],
        "qc_ok": flags == 0,
        "qc_reasons": text["qc_reasons"],
        "taken_at": taken[rows],
        "photo_id": text["photo_id"],
        "device": text["device"],
        "days_since_last_session": (day[rows] - last_session_day(keys, patient[rows], sessions_r)),
    }, copy=False)  # no block consolidation: saves a copy of every column
    return out
