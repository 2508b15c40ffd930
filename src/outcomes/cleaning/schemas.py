"""pandera schemas: the raw tables after header mapping, and the processed tables.

Why both: the raw schemas state which columns a clinic must send (checked before any row is
read further); the processed schemas state what every consumer of data/processed may rely
on, and `clean` validates its own output against them before writing anything, so a bug in
the cleaner fails loudly instead of shipping a wrong table. Row-level problems in raw data
are *not* found here: those become rejections with reasons (see rejections.py).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow
import pyarrow.compute as pc
from pandera.errors import SchemaError

from outcomes import contract

# pandera loads its validation backends (and hypothesis, when installed) on the first validate;
# loading them with this module keeps that one-off library loading out of every clean's run time
pa.DataFrameSchema.register_default_backends(pd.DataFrame)


def raw_schema(table: str) -> pa.DataFrameSchema:
    """Columns of a raw table after alias mapping: required ones must exist; cells may be anything."""
    return pa.DataFrameSchema(
        {c.name: pa.Column(required=c.required, nullable=True) for c in contract.COLUMNS[table]},
        name=f"raw {table}", strict=False,
    )


def _str(*checks: pa.Check, nullable: bool = False) -> pa.Column:
    return pa.Column("str", checks=list(checks), nullable=nullable)


def _isin(values) -> pa.Check:
    return pa.Check.isin(list(values))


_SKIN = pa.Column(contract.SKIN_TYPE_DTYPE, nullable=True)
_SEX = _str(_isin(contract.SEXES))
_CONCERN = _str(_isin(contract.CONCERNS), nullable=True)
_AGE = pa.Column(float, pa.Check.in_range(*contract.AGE_RANGE))


def processed_schemas(metrics: list[str] | None = None) -> dict[str, pa.DataFrameSchema]:
    """Schemas of the processed tables (metric names from the registry in use)."""
    metrics = list(contract.METRICS) if metrics is None else metrics
    views = list(contract.VIEWS)
    return {
        "patients": pa.DataFrameSchema({
            "patient_id": _str(pa.Check(lambda s: s.is_unique, name="unique")),
            "age": _AGE, "sex": _SEX, "skin_type": _SKIN, "concern": _CONCERN,
            "clinic_id": _str(nullable=True),
            "first_session": pa.Column("datetime64[ns]", nullable=True),
            "n_sessions": pa.Column("int64", pa.Check.ge(0)),
        }, strict=True, ordered=True, name="patients"),
        "sessions": pa.DataFrameSchema({
            "patient_id": _str(),
            "session_date": pa.Column("datetime64[ns]"),
            "status": _str(_isin((*contract.SESSION_STATUSES, "unknown"))),  # unknown: an unreadable status
            "product": _str(nullable=True), "area": _str(nullable=True),
            "volume_ml": pa.Column(float, pa.Check.in_range(*contract.VOLUME_RANGE_ML, include_min=False), nullable=True),
            "practitioner_id": _str(nullable=True),
            "session_number": pa.Column("Int64", pa.Check.ge(1), nullable=True),
        }, strict=True, ordered=True, name="sessions"),
        "measurements": pa.DataFrameSchema({
            "patient_id": _str(), "photo_id": _str(),
            "taken_at": pa.Column("datetime64[ns]"),
            "metric": _str(_isin(metrics)), "view": _str(_isin(views)),
            "value": pa.Column(float),
            "device": _str(nullable=True),
            "color_delta_e": pa.Column(float, nullable=True),
            "head_yaw_deg": pa.Column(float, nullable=True),
            "makeup": pa.Column("boolean", nullable=True),
            "blur": pa.Column(float, pa.Check.in_range(0, 1), nullable=True),
            "sessions": pa.Column("int64", pa.Check.ge(0)),
        }, strict=True, ordered=True, name="measurements"),
        "outcomes": pa.DataFrameSchema({
            "patient_id": _str(),
            "metric": _str(_isin(metrics)), "view": _str(_isin(views)),
            "sessions": pa.Column("int64", pa.Check.ge(0)),
            "days_since_baseline": pa.Column(float, nullable=True),
            "baseline": pa.Column(float, nullable=True),
            "value": pa.Column(float),
            "change": pa.Column(float, nullable=True),
            "improvement_pct": pa.Column(float, nullable=True),
            "age": _AGE, "skin_type": _SKIN, "sex": _SEX, "concern": _CONCERN,
            "clinic_id": _str(nullable=True),
            "qc_ok": pa.Column(bool),
            "qc_reasons": pa.Column("str"),
            "taken_at": pa.Column("datetime64[ns]"),
            "photo_id": _str(), "device": _str(nullable=True),
            "days_since_last_session": pa.Column(float, pa.Check.ge(1), nullable=True),
        }, strict=True, ordered=True, name="outcomes"),  # one row per cell by construction (tested)
        "assessments": pa.DataFrameSchema({
            "patient_id": _str(),
            "assessed_at": pa.Column("datetime64[ns]"),
            "scale": _str(_isin(contract.SCALES)),
            "rater": _str(_isin(contract.RATERS), nullable=True),
            "score": pa.Column(float),
            "sessions": pa.Column("int64", pa.Check.ge(0)),
        }, strict=True, ordered=True, name="assessments"),
        "adverse_events": pa.DataFrameSchema({
            "patient_id": _str(),
            "event_date": pa.Column("datetime64[ns]"),
            "event": _str(_isin(contract.EVENTS)),
            "severity": _str(_isin(contract.SEVERITIES), nullable=True),
            "sessions": pa.Column("int64", pa.Check.ge(0)),
        }, strict=True, ordered=True, name="adverse_events"),
    }


SAMPLE_ROWS = 20_000  # pandera runs on at most this many rows of a big table (every row gets the vectorised checks)


def validate_processed(tables: dict[str, pd.DataFrame | pyarrow.Table], metrics: list[str] | None = None) -> None:
    """Raise pandera.errors.SchemaError(s) if a processed table breaks its contract.

    DataFrames are validated by pandera in full; arrow tables as by TableCheck.
    """
    schemas = processed_schemas(metrics)
    for name, table in tables.items():
        if isinstance(table, pd.DataFrame):
            schemas[name].validate(table, lazy=True)
            continue
        check = TableCheck(schemas[name], table.num_rows)
        for batch in table.to_batches() or [pyarrow.RecordBatch.from_pylist([], schema=table.schema)]:
            check.add(batch)
        check.finish()


class TableCheck:
    """Validates one processed arrow table arriving batch by batch.

    Every row gets the column checks its schema states (no missing values where none are
    allowed, vocabularies, uniqueness, ranges), computed by arrow from the pandera check
    objects; pandera validates an evenly spread sample of at most SAMPLE_ROWS rows (dtypes,
    column order, all the rest), or the whole table when it is no bigger.
    """

    def __init__(self, schema: pa.DataFrameSchema, rows: int):
        self.schema = schema
        self.step = max(1, -(-rows // SAMPLE_ROWS))
        self.seen = 0
        self.sample: list[pyarrow.RecordBatch] = []
        self.unique = {name: [] for name, column in schema.columns.items()  # checked across batches, at the end
                       if self.step > 1 and any(check.name == "unique" for check in column.checks)}

    def add(self, batch: pyarrow.RecordBatch) -> None:
        if self.step > 1:
            _check_every_row(self.schema, batch)
            for name, parts in self.unique.items():
                if name in batch.column_names:
                    parts.append(batch.column(name))
        first = -self.seen % self.step
        self.sample.append(batch.take(pyarrow.array(np.arange(first, batch.num_rows, self.step))) if self.step > 1 else batch)
        self.seen += batch.num_rows

    def finish(self) -> None:
        from outcomes.loader import frame_from_arrow

        for name, parts in self.unique.items():
            values = pyarrow.chunked_array(parts) if parts else None
            if values is not None and pc.count_distinct(values).as_py() != len(values) - values.null_count:
                raise SchemaError(self.schema, None, f"{self.schema.name}.{name}: values not unique", column_name=name)
        self.schema.validate(frame_from_arrow(pyarrow.Table.from_batches(self.sample)), lazy=True)


def _check_every_row(schema: pa.DataFrameSchema, table: pyarrow.Table | pyarrow.RecordBatch) -> None:
    """The column checks of `schema` (nullable, isin, ranges) done by arrow on every row."""
    for name, column in schema.columns.items():
        if name not in table.column_names:
            continue  # pandera reports it on the sample
        values = table.column(name)
        if not isinstance(values, pyarrow.ChunkedArray):
            values = pyarrow.chunked_array([values])
        failures = []
        if not column.nullable:
            missing = values.null_count
            if pyarrow.types.is_floating(values.type):
                missing += pc.sum(pc.is_nan(values)).as_py() or 0
            if missing:
                failures.append(f"{missing} missing values")
        for check in column.checks:
            stats = check.statistics or {}
            if check.name == "isin":  # of a dictionary column, its dictionary: a stricter check, and cheap
                used = ([c.dictionary for c in values.chunks] if pyarrow.types.is_dictionary(values.type)
                        else [values.unique()])
                outside = {v for part in used for v in part.drop_null().to_pylist()} - set(stats["allowed_values"])
                if outside:
                    failures.append(f"values outside {check.name}: {sorted(map(str, outside))[:5]}")
            elif check.name in ("in_range", "greater_than_or_equal_to"):
                low, high = _min_max(values)
                if low is None:
                    continue
                lo, hi = stats.get("min_value"), stats.get("max_value")
                below = lo is not None and (low < lo or (low == lo and not stats.get("include_min", True)))
                above = hi is not None and (high > hi or (high == hi and not stats.get("include_max", True)))
                if below or above:
                    failures.append(f"values outside {check.name} {stats}: min {low}, max {high}")
        if failures:
            raise SchemaError(schema, None, f"{schema.name}.{name}: " + "; ".join(failures), column_name=name)


def _min_max(values: pyarrow.ChunkedArray) -> tuple[Any, Any]:
    """Smallest and largest value, nulls (and NaN) left out; (None, None) when there is none.
    Floats by numpy (fmin/fmax skip NaN), twenty times faster than arrow's min_max there."""
    if not pyarrow.types.is_floating(values.type):
        low, high = pc.min_max(values).values()
        return low.as_py(), high.as_py()
    lows, highs = [], []
    for chunk in values.chunks:
        numbers = chunk.to_numpy(zero_copy_only=False)  # nulls become NaN
        if len(numbers):
            lows.append(np.fmin.reduce(numbers))
            highs.append(np.fmax.reduce(numbers))
    low, high = np.fmin.reduce(lows, initial=np.nan), np.fmax.reduce(highs, initial=np.nan)
    return (None, None) if np.isnan(low) else (float(low), float(high))
