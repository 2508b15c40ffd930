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
           "color_delta_e", "head_yaw_deg", "makeup", "blur", "chart", "clipped", "pose_error",
           "source", "photo_hash", "sessions")
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
    source: nz.Texts  # where the row comes from (the `source` cell, else the file's name part)
    photo_hash: pa.Array  # sha256 of the photo's bytes (null when not given)
    photo_error: np.ndarray  # bool: the photo could not be measured (the row is rejected)
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
        "source": lambda: _with_default(nz.texts(f["source"]) if "source" in f else None, n, raw.source),
        "photo_hash": lambda: nz.dense_texts(f["photo_hash"]) if "photo_hash" in f else pa.nulls(n, pa.large_string()),
        "photo_error": lambda: (nz.texts(f["photo_error"]).codes >= 0) if "photo_error" in f else np.zeros(n, bool),
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
        source=done["source"], photo_hash=done["photo_hash"], photo_error=done["photo_error"],
    )


def _with_default(found: nz.Texts | None, n: int, default: str) -> nz.Texts:
    """The texts with every blank (or the whole column when absent) set to `default`."""
    if found is None:
        return nz.Texts(np.zeros(n, np.int32), pa.array([default], pa.large_string()))
    uniques = found.uniques.to_pylist()
    if default not in uniques:
        uniques.append(default)
    codes = np.where(found.codes < 0, uniques.index(default), found.codes).astype(np.int32)
    return nz.Texts(codes, pa.array(uniques, pa.large_string()))


def _concat_texts(parts: list[nz.Texts]) -> nz.Texts:
    uniques = pa.concat_arrays([p.uniques.cast(pa.large_string()) for p in parts])
    offsets = np.cumsum([0] + [len(p.uniques) for p in parts[:-1]])
    encoded = pc.dictionary_encode(uniques)
    remap = np.append(encoded.indices.to_numpy(zero_copy_only=False).astype(np.int32), np.int32(-1))
    codes = np.concatenate([np.where(p.codes < 0, -1, p.codes + offset) for p, offset in zip(parts, offsets)])
    return nz.Texts(remap[codes], encoded.dictionary)


def concat(parts: list[Photos]) -> Photos:
    """photo_metrics read from several files as one table (each row keeps its file and row number)."""
    if len(parts) == 1:
        return parts[0]
    from pandas.api.types import union_categoricals

    cat = np.concatenate
    return Photos(
        ledger=Ledger.concat([p.ledger for p in parts]),
        reasons={c: union_categoricals([p.reasons[c] for p in parts]) for c in parts[0].reasons},
        patient=_concat_texts([p.patient for p in parts]), photo_id=pa.concat_arrays([p.photo_id for p in parts]),
        device=_concat_texts([p.device for p in parts]), taken_at=cat([p.taken_at for p in parts]),
        metric=cat([p.metric for p in parts]), view=cat([p.view for p in parts]), value=cat([p.value for p in parts]),
        quality={c: cat([p.quality[c] for p in parts]) for c in QC_NUMBERS},
        makeup=cat([p.makeup for p in parts]), chart=cat([p.chart for p in parts]),
        source=_concat_texts([p.source for p in parts]),
        photo_hash=pa.concat_arrays([p.photo_hash.cast(pa.large_string()) for p in parts]),
        photo_error=cat([p.photo_error for p in parts]),
    )


def check(photos: Photos, ids: PatientIds, registry: dict[str, contract.Metric]) -> None:
    """Reject unusable measurement rows (first failing check wins); blank impossible quality
    readings, then set each photo's own quality flags."""
    ledger, reasons = photos.ledger, photos.reasons
    ledger.reject(photos.photo_error, "photo_error", contract.PHOTO_ERROR_REASON)  # first: nothing else of it is usable
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
            "source": photos.source.dictionary(rows),
            "photo_hash": photos.photo_hash.take(pa.array(rows)),
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
