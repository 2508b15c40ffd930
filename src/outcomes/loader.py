"""Loading processed data: the one entry point for analysts, notebooks and reports.

Why one module: the processed folder is read in one place, with the contract's dtypes and one
clear error when `outcomes clean` has not run yet.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from outcomes import contract

_NULLABLE = {"session_number": "Int64", "makeup": "boolean", "chart": "boolean"}  # columns of pandas' nullable dtypes


def load_processed(processed_dir: str | os.PathLike | None = None) -> dict[str, pd.DataFrame]:
    """The processed tables (None or "": the project's data/processed) as a dict of DataFrames
    with their contract dtypes; FileNotFoundError saying what to do when there are none.

    Keys: patients, sessions, measurements, outcomes, rejected, and assessments /
    adverse_events / data_quality when present. `skin_type` is an ordered categorical
    I < ... < VI (NaN = unknown); text columns are pandas `str`.

    Parameters
    ----------
    processed_dir : str or path-like, optional
        A folder written by ``outcomes clean`` / :func:`outcomes.clean`.

    Returns
    -------
    dict of str to DataFrame

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import outcomes
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = outcomes.simulate(n_patients=60, seed=1, out_dir=Path(tmp) / "raw")
    ...     _ = outcomes.clean(Path(tmp) / "raw", Path(tmp) / "processed", as_of="2100-01-01")
    ...     tables = outcomes.load_processed(Path(tmp) / "processed")
    >>> sorted(tables)
    ['adverse_events', 'assessments', 'data_quality', 'measurements', 'outcomes', 'patients', 'rejected', 'sessions']
    >>> len(tables["patients"]), str(tables["patients"]["skin_type"].dtype)
    (60, 'category')
    """
    folder = _processed_folder(processed_dir)
    if not (folder / "outcomes.parquet").is_file():
        raise FileNotFoundError(
            f"{folder} holds no processed data (no outcomes.parquet); run `outcomes clean` (or `make data`) first"
        )
    tables: dict[str, pd.DataFrame] = {}
    for path in sorted(folder.glob("*.parquet")):
        tables[path.stem] = frame_from_arrow(pq.read_table(path))
    for stem in ("rejected", "data_quality"):
        path = folder / f"{stem}.csv"
        if path.is_file():
            tables[stem] = pd.read_csv(path, dtype={"value": "str", "source_row": "Int64"}, keep_default_na=False, na_values=[""])
    return tables


def load_manifest(processed_dir: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """The manifest.json of a processed folder (None or "": the project's data/processed), or
    None when there is none."""
    path = _processed_folder(processed_dir) / "manifest.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _processed_folder(processed_dir: str | os.PathLike | None) -> Path:
    from outcomes import config

    return Path(processed_dir) if processed_dir else config.PROCESSED_DIR


def frame_from_arrow(table: pa.Table) -> pd.DataFrame:
    """A processed table as pandas with the contract dtypes: text (stored as dictionaries) as
    `str`, `skin_type` as the ordered categorical, nullable integers/booleans where the contract has them."""
    columns = {}
    for name, column in zip(table.column_names, table.columns):
        kind = column.type
        if name == "skin_type":
            columns[name] = _skin_types(column)
        elif pa.types.is_dictionary(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind):
            text = column.cast(pa.large_string()) if column.num_chunks else pa.chunked_array([], pa.large_string())
            columns[name] = pd.array(text, dtype="str")
        elif name in _NULLABLE:
            mask = column.is_null().to_numpy(zero_copy_only=False)
            filled = column.fill_null(False if pa.types.is_boolean(kind) else 0).to_numpy(zero_copy_only=False)
            nullable = pd.arrays.BooleanArray if _NULLABLE[name] == "boolean" else pd.arrays.IntegerArray
            columns[name] = nullable(filled.astype(bool if _NULLABLE[name] == "boolean" else np.int64), mask)
        elif pa.types.is_timestamp(kind):
            columns[name] = column.to_numpy().astype("datetime64[ns]")
        else:
            columns[name] = column.to_numpy()
    return pd.DataFrame(columns, columns=table.column_names, copy=False)


def _skin_types(column: pa.ChunkedArray) -> pd.Categorical:
    dtype = contract.SKIN_TYPE_DTYPE
    if pa.types.is_dictionary(column.type) and column.num_chunks:
        column = column.unify_dictionaries() if column.num_chunks > 1 else column
        chunks = column.chunks
        position = np.array([list(dtype.categories).index(v) if v in dtype.categories else -1
                             for v in chunks[0].dictionary.to_pylist()] + [-1], dtype=np.int8)
        indices = pa.chunked_array([c.indices for c in chunks]).fill_null(-1).to_numpy().astype(np.int64)
        return pd.Categorical.from_codes(position[indices], dtype=dtype)
    return pd.Categorical(column.to_pandas(), dtype=dtype)
