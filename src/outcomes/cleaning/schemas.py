"""pandera schemas: the raw tables after header mapping, and the processed tables.

Why both: the raw schemas state which columns a clinic must send (checked before any row is
read further); the processed schemas state what every consumer of data/processed may rely
on, and `clean` validates its own output against them before writing anything, so a bug in
the cleaner fails loudly instead of shipping a wrong table. Row-level problems in raw data
are *not* found here: those become rejections with reasons (see rejections.py).
"""
from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
import pyarrow

from outcomes import contract
from outcomes.loader import frame_from_arrow

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


FEW = 5  # failing values a SchemaErrors message shows per column and check (a million would be unreadable)


def _isin(values) -> pa.Check:
    return pa.Check.isin(list(values), n_failure_cases=FEW)


def _in_range(low: float, high: float, **kwargs) -> pa.Check:
    return pa.Check.in_range(low, high, n_failure_cases=FEW, **kwargs)


def _ge(low: float) -> pa.Check:
    return pa.Check.ge(low, n_failure_cases=FEW)


_SKIN = pa.Column(contract.SKIN_TYPE_DTYPE, nullable=True)
_SEX = _str(_isin(contract.SEXES))
_CONCERN = _str(_isin(contract.CONCERNS), nullable=True)
_AGE = pa.Column(float, _in_range(*contract.AGE_RANGE))


def processed_schemas(metrics: list[str] | None = None) -> dict[str, pa.DataFrameSchema]:
    """Schemas of the processed tables (metric names from the registry in use)."""
    metrics = list(contract.METRICS) if metrics is None else metrics
    views = list(contract.VIEWS)
    return {
        "patients": pa.DataFrameSchema({
            "patient_id": pa.Column("str", unique=True),
            "age": _AGE, "sex": _SEX, "skin_type": _SKIN, "concern": _CONCERN,
            "clinic_id": _str(nullable=True),
            "first_session": pa.Column("datetime64[ns]", nullable=True),
            "n_sessions": pa.Column("int64", _ge(0)),
        }, strict=True, ordered=True, name="patients"),
        "sessions": pa.DataFrameSchema({
            "patient_id": _str(),
            "session_date": pa.Column("datetime64[ns]"),
            "status": _str(_isin((*contract.SESSION_STATUSES, "unknown"))),  # unknown: an unreadable status
            "product": _str(nullable=True), "area": _str(nullable=True),
            "volume_ml": pa.Column(float, _in_range(*contract.VOLUME_RANGE_ML, include_min=False), nullable=True),
            "practitioner_id": _str(nullable=True),
            "session_number": pa.Column("Int64", _ge(1), nullable=True),
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
            "blur": pa.Column(float, _in_range(0, 1), nullable=True),
            "chart": pa.Column("boolean", nullable=True),
            "clipped": pa.Column(float, _in_range(0, 1), nullable=True),
            "pose_error": pa.Column(float, _ge(0), nullable=True),
            "source": _str(),
            "photo_hash": _str(nullable=True),
            "sessions": pa.Column("int64", _ge(0)),
        }, strict=True, ordered=True, name="measurements"),
        "outcomes": pa.DataFrameSchema({
            "patient_id": _str(),
            "metric": _str(_isin(metrics)), "view": _str(_isin(views)),
            "sessions": pa.Column("int64", _ge(0)),
            "days_since_baseline": pa.Column(float, nullable=True),
            "baseline": pa.Column(float, nullable=True),
            "value": pa.Column(float),
            "change": pa.Column(float, nullable=True),
            "improvement_pct": pa.Column(float, nullable=True),
            "improvement": pa.Column(float, nullable=True),
            "age": _AGE, "skin_type": _SKIN, "sex": _SEX, "concern": _CONCERN,
            "area": _str(nullable=True),  # the patient's treated area (sessions.treated_area)
            "clinic_id": _str(nullable=True),
            "qc_ok": pa.Column(bool),
            "qc_reasons": pa.Column("str"),
            "taken_at": pa.Column("datetime64[ns]"),
            "photo_id": _str(), "device": _str(nullable=True),
            "days_since_last_session": pa.Column(float, _ge(1), nullable=True),
        }, strict=True, ordered=True, name="outcomes"),  # one row per cell by construction (tested)
        "assessments": pa.DataFrameSchema({
            "patient_id": _str(),
            "assessed_at": pa.Column("datetime64[ns]"),
            "scale": _str(_isin(contract.SCALES)),
            "rater": _str(_isin(contract.RATERS), nullable=True),
            "score": pa.Column(float),
            "sessions": pa.Column("int64", _ge(0)),
        }, strict=True, ordered=True, name="assessments"),
        "adverse_events": pa.DataFrameSchema({
            "patient_id": _str(),
            "event_date": pa.Column("datetime64[ns]"),
            "event": _str(_isin(contract.EVENTS)),
            "severity": _str(_isin(contract.SEVERITIES), nullable=True),
            "sessions": pa.Column("int64", _ge(0)),
        }, strict=True, ordered=True, name="adverse_events"),
    }


def validate_processed(tables: dict[str, pd.DataFrame | pyarrow.Table], metrics: list[str] | None = None) -> None:
    """Raise pandera.errors.SchemaErrors if a processed table breaks its contract (every row checked)."""
    schemas = processed_schemas(metrics)
    for name, table in tables.items():
        validate(schemas[name], table)


def validate(schema: pa.DataFrameSchema, table: pd.DataFrame | pyarrow.Table | pyarrow.RecordBatch,
             first_row: int = 0) -> None:
    """pandera's validation of every row of `table` (or of one batch of it, whose first row is
    row `first_row` of the table: failures then give the table's row numbers).

    lazy: every failing column and check is reported in one SchemaErrors, with a few failing values.
    """
    # Cost on the 5-million-row benchmark (2026-11-27): 0.8 CPU-s of a 6 CPU-s clean (0.3 making
    # the frames, 0.5 pandera), clean 2.5-3.8 times the pandas read (best of 3-5, noisy 2-core
    # machine); the arrow checks on every row plus pandera on a 20k-row sample it replaces took 0.2.
    if isinstance(table, pd.DataFrame):
        schema.validate(table, lazy=True)
        return
    if isinstance(table, pyarrow.RecordBatch):
        table = pyarrow.Table.from_batches([table])
    frame = frame_from_arrow(table)  # the frame load_processed gives: that is what the schema is about
    frame.index = pd.RangeIndex(first_row, first_row + len(frame))
    schema.validate(frame, lazy=True, inplace=True)  # inplace: no copy of a frame made here for this
