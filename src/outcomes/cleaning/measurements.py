"""Photo metrics: one row per metric read off one photo (or one instrument reading).

Why codes and numbers only: a registry holds millions of these rows. Text cells arrive as
dictionaries (each distinct cell normalised once); from then on a row is integer codes and
floats, every check is an array operation, and text is only put back together, as arrow
dictionaries, in the tables written out. Photo ids (about one per two rows) are the only text
kept per row.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from outcomes import contract
from outcomes.cleaning import normalise as nz
from outcomes.cleaning import qc, timeline
from outcomes.cleaning.columns import PatientIds, new_ledger, reject_reasons
from outcomes.cleaning.rejections import Ledger
from outcomes.raw_files import RawTable

COLUMNS = ("patient_id", "photo_id", "taken_at", "metric", "view", "value", "device",
           "color_delta_e", "head_yaw_deg", "makeup", "blur", "chart", "clipped", "pose_error", "sessions")
QC_NUMBERS = {"color_delta_e": (0.0, np.inf), "head_yaw_deg": (-180.0, 180.0), "blur": (0.0, 1.0),
              "clipped": (0.0, 1.0), "pose_error": (0.0, np.inf)}
QC_YES_NO = ("makeup", "chart")  # yes/no readings: int8 -1 not recorded, 0 no, 1 yes
QUALITY_NOTE = "quality reading not usable; ignored"


@dataclass
class Photos:
    """photo_metrics after per-cell normalisation, row-aligned with the raw rows."""

    ledger: Ledger
    reasons: dict[str, pd.Categorical]  # the normaliser's reason per cell, per column
    patient: nz.Texts
    photo_id: pa.Array  # trimmed; null when blank
    device: nz.Texts
    taken_at: np.ndarray  # datetime64[ns]
    metric: np.ndarray  # position in the registry (-1 = unknown)
    view: np.ndarray  # position in contract.VIEWS (-1 = unknown)
    value: np.ndarray
    quality: dict[str, np.ndarray]  # QC_NUMBERS columns (NaN = none)
    makeup: np.ndarray  # int8: -1 not recorded, 0 no, 1 yes
    chart: np.ndarray  # int8: -1 not recorded, 0 no colour chart found in the photo, 1 found
    patient_codes: np.ndarray | None = None  # position among kept patients (-1), set by check
    own: np.ndarray | None = None  # the photo's own quality bits (qc.photo_flags), set by check


def _absent(n: int) -> pd.Categorical:
    return pd.Categorical.from_codes(np.zeros(n, np.int8), ["missing"])


def parse(raw: RawTable, registry: dict[str, contract.Metric], monthfirst: bool = False,
          until: np.datetime64 | None = None) -> Photos:
    """Normalise every cell of photo_metrics (no row is dropped here); ``until``: the export's day."""
    f, n = raw.frame, raw.rows
    names, views = list(registry), list(contract.VIEWS)
    missing = nz.Column(np.full(n, np.nan), _absent(n))
    jobs = {  # one column each
        "metric": lambda: nz.normalise_column(f["metric"], nz.metric_name, categories=names, registry=registry),
        "view": lambda: nz.normalise_column(f["view"], nz.view, categories=views) if "view" in f else nz.Column(
            pd.Categorical.from_codes(np.full(n, views.index(contract.DEFAULT_VIEW), np.int8), categories=views),
            pd.Categorical.from_codes(np.zeros(n, np.int8), [""])),
        **{c: (lambda c=c: nz.normalise_column(f[c], nz.yes_no, categories=[False, True]) if c in f
               else nz.Column(pd.Categorical.from_codes(np.full(n, -1, np.int8), categories=[False, True]), _absent(n)))
           for c in QC_YES_NO},
        "taken_at": lambda: nz.dates(f["taken_at"], monthfirst=monthfirst, until=until),
        "value": lambda: nz.numbers(f["value"], raw.decimal_comma),
        **{c: (lambda c=c: nz.numbers(f[c], raw.decimal_comma) if c in f else missing) for c in QC_NUMBERS},
        "patient_id": lambda: nz.texts(f["patient_id"]),
        "photo_id": lambda: nz.dense_texts(f["photo_id"]),
        "device": lambda: nz.texts(f["device"] if "device" in f else pd.Series(pd.NA, index=f.index, dtype="str")),
    }
    done = {column: job() for column, job in jobs.items()}
    return Photos(
        ledger=new_ledger(raw),
        reasons={c: done[c].reasons for c in ("taken_at", "metric", "value", "view", *QC_YES_NO, *QC_NUMBERS)},
        patient=done["patient_id"],
        photo_id=done["photo_id"],
        device=done["device"],
        taken_at=done["taken_at"].values,
        metric=np.asarray(done["metric"].values.codes),
        view=np.asarray(done["view"].values.codes),
        value=done["value"].values,
        quality={c: done[c].values for c in QC_NUMBERS},
        makeup=np.asarray(done["makeup"].values.codes).astype(np.int8),
        chart=np.asarray(done["chart"].values.codes).astype(np.int8),
    )


def check(photos: Photos, ids: PatientIds, registry: dict[str, contract.Metric]) -> None:
    """Reject unusable measurement rows (first failing check wins); blank impossible quality
    readings, then set each photo's own quality flags."""
    ledger, reasons = photos.ledger, photos.reasons
    photos.patient_codes = ids.check(ledger, photos.patient)
    ledger.reject(photos.photo_id.is_null().to_numpy(zero_copy_only=False), "photo_id", "missing_photo_id")
    for column in ("taken_at", "metric", "value"):
        reject_reasons(ledger, reasons[column], column)
    metric, value = photos.metric, photos.value
    # each row's bounds, looked up by arrow with the narrow codes as they are (numpy would first
    # widen them to 64-bit indices); 0 = unknown metric, NaN bounds
    index = pa.array(metric.astype(np.int16) + 1)
    low, high = (pc.take(pa.array([np.nan] + [getattr(m, side) for m in registry.values()]), index).to_numpy()
                 for side in ("low", "high"))
    with np.errstate(invalid="ignore"):  # comparisons with NaN (no value, or no bounds) are false: not out of range
        outside = value < low
        outside |= value > high
    ledger.reject(outside, "value", "out_of_range")
    reject_reasons(ledger, reasons["view"], "view")
    # quality readings that are not numbers or impossible are ignored (noted), not fatal
    for column, (lo, hi) in QC_NUMBERS.items():
        numbers = photos.quality[column]
        with np.errstate(invalid="ignore"):  # NaN (no reading) compares false: never impossible
            impossible = numbers < lo
            impossible |= numbers > hi
        if impossible.any():
            found = reasons[column]
            found = found.add_categories(["impossible"]) if "impossible" not in found.categories else found.copy()
            found[impossible] = "impossible"
            reasons[column] = found
            photos.quality[column] = np.where(impossible, np.nan, numbers)
    colour = np.array([m in contract.COLOUR_METRICS for m in registry] + [False])[metric]  # -1 (unknown): False
    q = photos.quality
    photos.own = qc.photo_flags(photos.makeup == 1, q["blur"], q["color_delta_e"], no_chart=colour & (photos.chart == 0),
                                clipped=q["clipped"], pose_error=q["pose_error"])


def link(photos: Photos, keys: np.ndarray, patients: pd.DataFrame,
         registry: dict[str, contract.Metric]) -> tuple[timeline.Linked, timeline.CellOrder, np.ndarray]:
    """Count sessions, sort into cells and mark exact duplicates (in the ledger; returned per
    sorted position, for timeline.choose).

    `keys`: timeline.completed_keys of the tidy sessions; `patients`: the tidy patients table
    (row i is patient code i).
    """
    ledger, q = photos.ledger, photos.quality
    usable = ledger.ok  # not rejected; duplicates are found below
    patient = np.where(usable, photos.patient_codes, np.int32(0)).astype(np.int32, copy=False)
    day = timeline.measurement_days(photos.taken_at, usable)
    sessions, last_day = timeline.sessions_before(keys, patient, day)
    linked = timeline.Linked(
        usable=usable, patient=patient, metric=photos.metric, view=photos.view, taken=photos.taken_at,
        value=photos.value, yaw=q["head_yaw_deg"],
        own=photos.own,
        day=day, sessions=sessions, last_day=last_day,
    )
    cells = timeline.cell_order(linked, patients["first_session"].to_numpy(dtype="datetime64[ns]"), len(registry))
    # equal rows share cell and preference; the rest of the row is compared only for ties
    duplicate = timeline.exact_duplicates(cells, {
        "photo_id": lambda rows: photos.photo_id.take(pa.array(rows)),
        "device": photos.device.codes, "taken": photos.taken_at.view(np.int64), "value": photos.value,
        "makeup": photos.makeup, "chart": photos.chart, **q,
    })
    marked = np.zeros(len(usable), dtype=bool)
    marked[cells.order[duplicate]] = True
    ledger.mark_duplicates(marked)
    return linked, cells, duplicate


def batches(photos: Photos, linked: timeline.Linked, patients: pd.DataFrame,
            registry: dict[str, contract.Metric], size: int = timeline.BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    """measurements.parquet, one batch at a time: every kept row, in file order, with its session count."""
    kept = np.flatnonzero(photos.ledger.ok)
    ids, id_texts = timeline.patient_columns(patients)["patient_id"]
    q = photos.quality
    for start in range(0, max(len(kept), 1), size):
        rows = kept[start:start + size]
        makeup, chart = photos.makeup[rows], photos.chart[rows]
        yield pa.record_batch({
            "patient_id": timeline.dictionary(ids[linked.patient[rows]], id_texts, complete=True),
            "photo_id": photos.photo_id.take(pa.array(rows)),
            "taken_at": pa.array(photos.taken_at[rows]),
            "metric": timeline.dictionary(photos.metric[rows], list(registry), complete=True),
            "view": timeline.dictionary(photos.view[rows], contract.VIEWS, complete=True),
            "value": pa.array(photos.value[rows]),
            "device": photos.device.dictionary(rows),
            "color_delta_e": pa.array(q["color_delta_e"][rows]),
            "head_yaw_deg": pa.array(q["head_yaw_deg"][rows]),
            "makeup": pa.array(makeup == 1, mask=makeup < 0),
            "blur": pa.array(q["blur"][rows]),
            "chart": pa.array(chart == 1, mask=chart < 0),
            "clipped": pa.array(q["clipped"][rows]),
            "pose_error": pa.array(q["pose_error"][rows]),
            "sessions": pa.array(linked.sessions[rows].astype(np.int64)),
        })


def outcome_batches(photos: Photos, linked: timeline.Linked, chosen: timeline.Chosen, patients: pd.DataFrame,
                    registry: dict[str, contract.Metric]) -> Iterator[pa.RecordBatch]:
    """outcomes.parquet (timeline.outcome_batches) from the linked measurements."""
    return timeline.outcome_batches(linked, chosen, patients, registry, photos.photo_id,
                                    (photos.device.codes, photos.device.uniques))


def note(photos: Photos) -> None:
    """Data-quality notes for kept rows whose quality readings were unreadable."""
    for column in (*QC_NUMBERS, *QC_YES_NO):
        photos.ledger.note(photos.reasons[column], column, QUALITY_NOTE)
