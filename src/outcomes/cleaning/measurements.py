"""Photo metrics: one row per metric read off one photo (or one instrument reading).

Why vectorised throughout: a registry holds millions of these rows; every check here is an
array operation, and text cells are normalised once per distinct value.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from outcomes import contract
from outcomes.cleaning import normalise as nz
from outcomes.cleaning import qc
from outcomes.cleaning.columns import Parsed, PatientIds, duplicated, factorize, new_ledger, text_column
from outcomes.io import RawTable

COLUMNS = ("patient_id", "photo_id", "taken_at", "metric", "view", "value", "device",
           "color_delta_e", "head_yaw_deg", "makeup", "blur", "sessions")
QC_NUMBERS = {"color_delta_e": (0.0, np.inf), "head_yaw_deg": (-180.0, 180.0), "blur": (0.0, 1.0)}


def parse(raw: RawTable, registry: dict[str, contract.Metric], monthfirst: bool = False) -> Parsed:
    """Normalise every cell of photo_metrics (no row is dropped here)."""
    f, n = raw.frame, raw.rows
    names = list(registry)
    metric = nz.normalise_column(f["metric"], nz.metric_name, categories=names, registry=registry)
    views = list(contract.VIEWS)
    view = nz.normalise_column(f["view"], nz.view, categories=views) if "view" in f else nz.Column(
        pd.Categorical.from_codes(np.full(n, views.index(contract.DEFAULT_VIEW)), categories=views),
        pd.Categorical.from_codes(np.zeros(n, np.int8), [""]))
    when = nz.dates(f["taken_at"], monthfirst=monthfirst)
    value = nz.numbers(f["value"], raw.decimal_comma)
    reasons = {"taken_at": when.reasons, "metric": metric.reasons, "value": value.reasons, "view": view.reasons}
    values = {
        "patient_id": text_column(f, "patient_id"),
        "photo_id": text_column(f, "photo_id"),
        "taken_at": when.values,
        "metric": metric.values,
        "view": view.values,
        "value": value.values,
        "device": text_column(f, "device"),
    }
    for column in QC_NUMBERS:
        if column in f:
            parsed = nz.numbers(f[column], raw.decimal_comma)
        else:
            parsed = nz.Column(np.full(n, np.nan), pd.Categorical.from_codes(np.zeros(n, np.int8), ["missing"]))
        values[column], reasons[column] = parsed
    if "makeup" in f:
        makeup = nz.normalise_column(f["makeup"], nz.yes_no, categories=[False, True])
        codes = np.asarray(makeup.values.codes)
        values["makeup"] = pd.arrays.BooleanArray(codes == 1, codes < 0)
        reasons["makeup"] = makeup.reasons
    else:
        values["makeup"] = pd.arrays.BooleanArray(np.zeros(n, dtype=bool), np.ones(n, dtype=bool))
        reasons["makeup"] = pd.Categorical.from_codes(np.zeros(n, np.int8), ["missing"])
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
    photo = factorize(v["photo_id"])[0]
    n_metrics = len(registry)
    key = photo * n_metrics + metric_codes  # photo x metric: equal rows share it
    columns = {
        "patient": codes,
        "photo": photo,
        "device": factorize(v["device"])[0],
        "taken_at": v["taken_at"].to_numpy().view(np.int64),
        "metric": metric_codes,
        "view": v["view"].cat.codes.to_numpy(),
        "value": value,
        "makeup": v["makeup"].to_numpy(dtype="int8", na_value=-1),
        **{c: v[c].to_numpy() for c in QC_NUMBERS},
    }
    ledger.mark_duplicates(duplicated(columns, ledger.ok, key=np.where(key >= 0, key, 0)))
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
