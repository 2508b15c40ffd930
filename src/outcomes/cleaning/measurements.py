"""Photo metrics: one row per metric read off one photo (or one instrument reading).

Why vectorised throughout: a registry holds millions of these rows; every check here is an
array operation, and text cells are normalised once per distinct value.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from outcomes import contract
from outcomes.cleaning import normalise as nz
from outcomes.cleaning import qc
from outcomes.cleaning.columns import Parsed, PatientIds, duplicated, new_ledger, text_column
from outcomes.io import RawTable

COLUMNS = ("patient_id", "photo_id", "taken_at", "metric", "view", "value", "device",
           "color_delta_e", "head_yaw_deg", "makeup", "blur", "sessions")
QC_NUMBERS = {"color_delta_e": (0.0, np.inf), "head_yaw_deg": (-180.0, 180.0), "blur": (0.0, 1.0)}


def parse(raw: RawTable, registry: dict[str, contract.Metric], monthfirst: bool = False) -> Parsed:
    """Normalise every cell of photo_metrics (no row is dropped here)."""
    f, n = raw.frame, raw.rows
    names, views = list(registry), list(contract.VIEWS)
    missing = pd.Categorical.from_codes(np.zeros(n, np.int8), ["missing"])
    jobs = {  # each normalises one column; arrow and numpy release the GIL, so two run at a time
        "metric": lambda: nz.normalise_column(f["metric"], nz.metric_name, categories=names, registry=registry),
        "view": lambda: nz.normalise_column(f["view"], nz.view, categories=views) if "view" in f else nz.Column(
            pd.Categorical.from_codes(np.full(n, views.index(contract.DEFAULT_VIEW)), categories=views),
            pd.Categorical.from_codes(np.zeros(n, np.int8), [""])),
        "taken_at": lambda: nz.dates(f["taken_at"], monthfirst=monthfirst),
        "value": lambda: nz.numbers(f["value"], raw.decimal_comma),
        "makeup": lambda: nz.normalise_column(f["makeup"], nz.yes_no, categories=[False, True]) if "makeup" in f
        else nz.Column(pd.Categorical.from_codes(np.full(n, -1), categories=[False, True]), missing),
        **{c: (lambda c=c: nz.numbers(f[c], raw.decimal_comma) if c in f else nz.Column(np.full(n, np.nan), missing))
           for c in QC_NUMBERS},
        **{c: (lambda c=c: text_column(f, c)) for c in ("patient_id", "photo_id", "device")},
    }
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = dict(zip(jobs, pool.map(lambda job: job(), jobs.values())))
    makeup = np.asarray(done["makeup"].values.codes)
    values = {
        "patient_id": done["patient_id"], "photo_id": done["photo_id"],
        "taken_at": done["taken_at"].values, "metric": done["metric"].values, "view": done["view"].values,
        "value": done["value"].values, "device": done["device"],
        **{c: done[c].values for c in QC_NUMBERS},
        "makeup": pd.arrays.BooleanArray(makeup == 1, makeup < 0),
    }
    reasons = {c: done[c].reasons for c in ("taken_at", "metric", "value", "view", "makeup", *QC_NUMBERS)}
    return Parsed(pd.DataFrame(values, index=f.index, copy=False), reasons, new_ledger(raw))


def check(parsed: Parsed, ids: PatientIds, registry: dict[str, contract.Metric]) -> np.ndarray:
    """Reject unusable measurement rows and mark exact duplicates; returns kept-patient codes."""
    v, ledger = parsed.values, parsed.ledger
    codes = ids.check(ledger, v["patient_id"])
    ledger.reject(v["photo_id"].isna().to_numpy(), "photo_id", "missing_photo_id")
    parsed.reject_reasons("taken_at")
    parsed.reject_reasons("metric")
    parsed.reject_reasons("value")
    metric_codes = v["metric"].cat.codes.to_numpy()
    low = np.array([m.low for m in registry.values()] + [np.nan])[metric_codes]
    high = np.array([m.high for m in registry.values()] + [np.nan])[metric_codes]
    value = v["value"].to_numpy()
    ledger.reject((metric_codes >= 0) & ~((value >= low) & (value <= high)) & ~np.isnan(value), "value", "out_of_range")
    parsed.reject_reasons("view")
    # quality readings that are not numbers or impossible are ignored (noted), not fatal
    cleaned = {}
    for column, (lo, hi) in QC_NUMBERS.items():
        numbers = v[column].to_numpy()
        with np.errstate(invalid="ignore"):
            impossible = ~np.isnan(numbers) & ((numbers < lo) | (numbers > hi))
        reasons = parsed.reasons[column]
        if impossible.any():
            reasons = reasons.add_categories(["impossible"]) if "impossible" not in reasons.categories else reasons
            reasons = reasons.copy()
            reasons[impossible] = "impossible"
            parsed.reasons[column] = reasons
            cleaned[column] = np.where(impossible, np.nan, numbers)
    if cleaned:
        parsed.values = v = v.assign(**cleaned)
    taken = v["taken_at"].to_numpy().view(np.int64)
    columns = {
        "patient": codes, "photo_id": v["photo_id"], "device": v["device"], "taken_at": taken,
        "metric": metric_codes, "view": v["view"].cat.codes.to_numpy(), "value": value,
        "makeup": v["makeup"].to_numpy(dtype="int8", na_value=-1),
        **{c: v[c].to_numpy() for c in QC_NUMBERS},
    }
    # equal rows have equal (patient, time, metric, value): mix those into one number (no text hashing)
    mixed = (codes.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ taken.astype(np.uint64)
    mixed = mixed * np.uint64(0xBF58476D1CE4E5B9) ^ (metric_codes.astype(np.uint64) + np.uint64(7))
    mixed = mixed * np.uint64(0x94D049BB133111EB) ^ np.nan_to_num(value, nan=-1.0).view(np.uint64)
    key = (mixed >> np.uint64(1)).astype(np.int64)
    with np.errstate(over="ignore"):
        ledger.mark_duplicates(duplicated(columns, ledger.ok, key=key))
    return codes


def note(parsed: Parsed) -> None:
    """Data-quality notes for kept rows whose quality readings were unreadable."""
    for column in (*QC_NUMBERS, "makeup"):
        parsed.ledger.note(parsed.reasons[column], column, "quality reading not usable; ignored")


def tidy(parsed: Parsed, codes: np.ndarray) -> pd.DataFrame:
    """Kept measurements in file order, with photo-quality bits and patient codes (for linking)."""
    ok = parsed.ledger.ok
    kept = parsed.values.loc[ok].reset_index(drop=True)
    makeup = kept["makeup"].to_numpy(dtype=bool, na_value=False)
    kept["_patient"] = codes[ok]
    kept["_qc"] = qc.photo_flags(makeup, kept["blur"].to_numpy(), kept["color_delta_e"].to_numpy())
    kept["_order"] = np.arange(len(kept), dtype=np.int64)
    return kept
