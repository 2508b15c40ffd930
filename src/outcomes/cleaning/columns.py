"""Typed-column helpers the table cleaners share: ids, free text, patient links, duplicates.

Why here: every table needs the same few column operations on up to millions of rows, done
the vectorised way (arrow compute, hashing) rather than row by row.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from outcomes.cleaning.rejections import Ledger


def text_column(frame: pd.DataFrame, column: str) -> pd.Series:
    """Trimmed text (pandas `str`), NA for blank; numbers lose a trailing `.0` (ids from Excel)."""
    if column not in frame:
        return pd.Series(pd.NA, index=frame.index, dtype="str")
    series = frame[column]
    if pd.api.types.is_float_dtype(series.dtype):
        as_int = series.dropna()
        if (as_int == np.floor(as_int)).all():
            series = series.astype("Int64")
    if not pd.api.types.is_string_dtype(series.dtype) or series.dtype == object:
        series = series.astype("str").where(series.notna())
    array = series.array.__arrow_array__()
    array = pc.utf8_trim_whitespace(array)
    array = pc.if_else(pc.equal(array, ""), pa.scalar(None, pa.large_string()), array)
    return pd.Series(pd.array(array, dtype="str"), index=frame.index)


@dataclass(frozen=True)
class PatientIds:
    """The patient ids the patients file named (`known`) and those that survived cleaning (`kept`)."""

    known: pa.Array
    kept: pa.Array

    def codes(self, ids: pd.Series) -> np.ndarray:
        """Position of each id in `kept` (-1 when not kept), looking up each distinct id once."""
        codes, uniques = factorize(ids)
        index = pc.index_in(uniques, value_set=self.kept).fill_null(-1).to_numpy(zero_copy_only=False)
        return np.append(index.astype(np.int64), -1)[codes]

    def check(self, ledger: Ledger, ids: pd.Series) -> np.ndarray:
        """Reject rows with no, an unknown, or a rejected patient; return the kept-patient codes."""
        codes = self.codes(ids)
        missing = ids.isna().to_numpy()
        ledger.reject(missing, "patient_id", "missing_patient_id")
        lost = (codes < 0) & ~missing
        if lost.any():
            known = pc.is_in(_arrow(ids), value_set=self.known).fill_null(False)
            known = known.to_numpy(zero_copy_only=False).astype(bool)
            ledger.reject(lost & ~known, "patient_id", "unknown_patient")
            ledger.reject(lost & known, "patient_id", "patient_rejected")
        return codes


def _arrow(series: pd.Series) -> pa.Array:
    array = series.array.__arrow_array__()
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def factorize(series: pd.Series) -> tuple[np.ndarray, pa.Array]:
    """Integer code of each text (-1 for NA) and the distinct texts, via arrow (fast)."""
    from outcomes.cleaning.normalise import factorize as _factorize

    return _factorize(series)


def duplicated(columns: dict[str, np.ndarray], alive: np.ndarray, key: np.ndarray | None = None) -> np.ndarray:
    """Rows (among `alive`) equal in every column to an earlier alive row.

    Candidates are rows sharing an int64 `key` (default: a hash of every column); only the
    candidates are then compared exactly, column by column.
    """
    if not alive.any():
        return np.zeros(len(alive), dtype=bool)
    if key is None:
        key = pd.util.hash_pandas_object(pd.DataFrame(columns, copy=False), index=False, categorize=False).to_numpy()
    key = key[alive]
    candidate = pd.Series(key).duplicated(keep=False).to_numpy()
    result = np.zeros(len(alive), dtype=bool)
    if candidate.any():
        rows = np.flatnonzero(alive)[candidate]
        subset = pd.DataFrame({name: values[rows] if isinstance(values, np.ndarray)
                               else pd.Series(values).iloc[rows].to_numpy() for name, values in columns.items()})
        result[rows[subset.duplicated(keep="first").to_numpy()]] = True
    return result


def strings_from_codes(codes: np.ndarray, categories: list[str] | pd.Index) -> pd.Series:
    """A `str` column from integer codes into a few categories (-1 = NA), built in arrow (fast)."""
    indices = pa.array(np.asarray(codes, dtype=np.int32), mask=np.asarray(codes) < 0)
    dictionary = pa.array([str(c) for c in categories], type=pa.large_string())
    return pd.Series(pd.array(pa.DictionaryArray.from_arrays(indices, dictionary).cast(pa.large_string()), dtype="str"))


@dataclass
class Parsed:
    """One raw table after per-cell normalisation: typed values row-aligned with the raw rows,
    the normaliser's reason per cell, and the ledger that will record rejections."""

    values: pd.DataFrame
    reasons: dict[str, pd.Categorical]
    ledger: Ledger

    def reject_reasons(self, column: str, prefix: str = "", allow: tuple[str, ...] = ("",)) -> None:
        """Reject rows whose `column` did not normalise (reason renamed `prefix + reason`)."""
        reasons = self.reasons[column]
        codes = np.asarray(reasons.codes)
        for code, reason in enumerate(reasons.categories):
            if reason not in allow:
                name = {"missing": f"missing_{column}"}.get(reason, reason)
                self.ledger.reject(codes == code, column, prefix + name)


def new_ledger(raw: "RawTable") -> Ledger:  # noqa: F821 - forward ref to outcomes.io.RawTable
    return Ledger(table=raw.name, source_file=raw.path.name, raw=raw.frame, source_rows=raw.source_rows)
