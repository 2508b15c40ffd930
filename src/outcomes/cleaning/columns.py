"""Typed-column helpers the table cleaners share: ids, free text, patient links, duplicates.

Why here: every table needs the same few column operations, done the vectorised way (arrow
compute, one look-up per distinct value) rather than row by row.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from outcomes.cleaning.normalise import Texts, factorize, texts
from outcomes.cleaning.rejections import Ledger


def text_column(frame: pd.DataFrame, column: str) -> pd.Series:
    """Trimmed text (pandas `str`), NA for blank; numbers lose a trailing `.0` (ids from Excel)."""
    if column not in frame:
        return pd.Series(pd.NA, index=frame.index, dtype="str")
    return texts(frame[column]).strings().set_axis(frame.index)


@dataclass(frozen=True)
class PatientIds:
    """The patient ids the patients file named (`known`) and those that survived cleaning (`kept`)."""

    known: pa.Array
    kept: pa.Array

    def check(self, ledger: Ledger, ids: pd.Series | Texts) -> np.ndarray:
        """Reject rows with no, an unknown, or a rejected patient; return the kept-patient codes
        (position in `kept`, -1 when not kept)."""
        codes, uniques = (ids.codes, ids.uniques) if isinstance(ids, Texts) else factorize(ids)
        # each distinct id looked up once (kept position, -1 unknown, -2 known but rejected), then one look-up per row
        kept = pc.index_in(uniques, value_set=self.kept).fill_null(-1).to_numpy(zero_copy_only=False)
        known = pc.is_in(uniques, value_set=self.known).to_numpy(zero_copy_only=False)
        found = np.append(np.where((kept < 0) & known, -2, kept).astype(np.int32), np.int32(-1))[codes]
        missing = codes < 0
        ledger.reject(missing, "patient_id", "missing_patient_id")
        ledger.reject((found == -1) & ~missing, "patient_id", "unknown_patient")
        ledger.reject(found == -2, "patient_id", "patient_rejected")
        return np.maximum(found, -1, out=found)


def as_arrow(series: pd.Series) -> pa.Array:
    """The arrow array behind a pandas text column (no copy unless it is in pieces)."""
    if not hasattr(series.array, "__arrow_array__"):  # e.g. object dtype
        return pa.array(series.to_numpy(dtype=object), type=pa.large_string(), from_pandas=True)
    array = series.array.__arrow_array__()
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def duplicated(frame: pd.DataFrame, alive: np.ndarray) -> np.ndarray:
    """Rows (among `alive`) equal in every column to an earlier alive row."""
    result = np.zeros(len(alive), dtype=bool)
    if alive.any():
        rows = np.flatnonzero(alive)
        result[rows[frame.iloc[rows].duplicated(keep="first").to_numpy()]] = True
    return result


@dataclass
class Parsed:
    """One raw table after per-cell normalisation: typed values row-aligned with the raw rows,
    the normaliser's reason per cell, and the ledger that will record rejections."""

    values: pd.DataFrame
    reasons: dict[str, pd.Categorical]
    ledger: Ledger

    def reject_reasons(self, column: str, prefix: str = "", allow: tuple[str, ...] = ("",)) -> None:
        """Reject rows whose `column` did not normalise (reason renamed `prefix + reason`)."""
        reject_reasons(self.ledger, self.reasons[column], column, prefix, allow)


def reject_reasons(ledger: Ledger, reasons: pd.Categorical, column: str, prefix: str = "",
                   allow: tuple[str, ...] = ("",)) -> None:
    """Reject rows whose `column` did not normalise (reason `missing` becomes `missing_<column>`)."""
    codes = np.asarray(reasons.codes)
    for code, reason in enumerate(reasons.categories):
        if reason not in allow:
            name = {"missing": f"missing_{column}"}.get(reason, reason)
            ledger.reject(codes == code, column, prefix + name)


def new_ledger(raw: "RawTable") -> Ledger:  # noqa: F821 - forward ref to outcomes.raw_files.RawTable
    return Ledger(table=raw.name, source_file=raw.path.name, raw=raw.frame, source_rows=raw.source_rows)
