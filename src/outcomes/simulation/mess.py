"""Turn the clean cohort into a messy clinic export, with every kind of mess at a documented share.

The shares below are recorded in truth.json["messiness"] and tabled in docs/simulator.md, so the
cleaner's tests can check that each kind of mess is caught about as often as it was made.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from outcomes.contract import METRICS, SKIN_TYPES
from outcomes.simulation.cohort import Cohort, iso_dates

# share of rows (patients: of patients) that carry each kind of mess
SHARES: dict[str, dict[str, float]] = {
    "patients": {
        "skin_type_variant": 0.30, "skin_type_unparseable": 0.01, "sex_variant": 0.30,
        "sex_blank": 0.008, "concern_variant": 0.20, "birth_date_instead_of_age": 0.15,
        "duplicate_rows": 0.005,
    },
    "sessions": {
        "day_first_dates": 0.08, "datetime_with_time": 0.15, "volume_out_of_range": 0.003,
        "unknown_patient_rows": 0.002, "duplicate_rows": 0.01,
    },
    "photo_metrics": {
        "day_first_dates": 0.05, "datetime_with_time": 0.70, "metric_case_space_variant": 0.05,
        "unknown_metric": 0.001, "non_numeric_value": 0.0005, "value_out_of_range": 0.001,
        "unknown_patient_rows": 0.002, "duplicate_rows": 0.005,
    },
    "assessments": {"day_first_dates": 0.08, "duplicate_rows": 0.01},
    "adverse_events": {"day_first_dates": 0.08, "duplicate_rows": 0.01},
}
# header as written -> contract name (aliases, case, spaces and hyphens)
HEADERS: dict[str, dict[str, str]] = {
    "patients": {"Patient ID": "patient_id", "Age": "age", "Birth Date": "birth_date", "Sex": "sex",
                 "Fitzpatrick": "skin_type", "Concern": "concern", "Clinic": "clinic_id"},
    "sessions": {"pid": "patient_id", "visit_date": "session_date", "Status": "status", "Product": "product",
                 "Area": "area", "Volume ml": "volume_ml", "Practitioner ID": "practitioner_id"},
    "photo_metrics": {"Patient ID": "patient_id", "Photo ID": "photo_id", "captured_at": "taken_at",
                      "Metric": "metric", "Value": "value", "View": "view", "Device": "device",
                      "Color Delta E": "color_delta_e", "Head-Yaw Deg": "head_yaw_deg", "Makeup": "makeup",
                      "Blur": "blur"},
    "assessments": {"subject_id": "patient_id", "Date": "assessed_at", "Scale": "scale", "Rater": "rater",
                    "Score": "score"},
    "adverse_events": {"Patient": "patient_id", "date": "event_date", "Event": "event", "SEVERITY": "severity"},
}
DELIMITERS = {"photo_metrics": ";"}  # that table also uses decimal commas

ROMAN = {s: i + 1 for i, s in enumerate(SKIN_TYPES)}
SKIN_TYPE_VARIANTS = ("{r_lower}", "{n}", "type {n}", "Type {r}", "Fitzpatrick {n}", "FST-{n}", "{n}.0")
SKIN_TYPE_UNPARSEABLE = ("?", "unknown", "n/a", "olive")
SEX_VARIANTS = {"F": ("female", "Female", "woman", "f"), "M": ("male", "Male", "man", "m"), "X": ("x",)}
CONCERN_VARIANTS = {
    "fine_lines": ("Fine lines", "wrinkles", "FINE LINES"), "skin_quality": ("Skin quality", "Skin Quality"),
    "pigmentation": ("melasma", "Pigmentation"), "acne_scars": ("Acne scars",), "hair_loss": ("Hair loss",),
    "cellulite": ("Cellulite",), "localized_fat": ("Localized fat",),
}
UNKNOWN_METRICS = ("glow_score", "redness", "wrinkle depth")
NON_NUMERIC = ("n/a", "#VALUE!", "ERR", "?")


def messiness_record() -> dict[str, Any]:
    """What truth.json says about the mess (shares are of rows; for patients, of patients)."""
    return {
        "shares": {t: dict(s) for t, s in SHARES.items()},
        "headers": {t: dict(h) for t, h in HEADERS.items()},
        "delimiters": {t: DELIMITERS.get(t, ",") for t in HEADERS},
        "decimal_comma_tables": list(DELIMITERS),
        "date_formats": {"iso": "2025-03-04", "datetime_with_time": "2025-03-04 10:30",
                         "day_first_dates": "04/03/2025"},
        "skin_type_variants": list(SKIN_TYPE_VARIANTS), "skin_type_unparseable": list(SKIN_TYPE_UNPARSEABLE),
        "sex_variants": {k: list(v) for k, v in SEX_VARIANTS.items()},
        "concern_variants": {k: list(v) for k, v in CONCERN_VARIANTS.items()},
        "unknown_metrics": list(UNKNOWN_METRICS), "non_numeric_values": list(NON_NUMERIC),
        "out_of_range": "bounded metrics 1.2-2x their maximum, others negative; volume_ml 0 or 25-60",
        "duplicates": "exact copies of a row, written right after it",
        "unknown_patients": "copies of real rows with a patient id not in patients",
    }


def _format_dates(iso: np.ndarray, minutes: np.ndarray, mode: np.ndarray) -> np.ndarray:
    """mode 0: ISO date, 1: ISO date with time, 2: day-first date."""
    s = pd.Series(iso, dtype=str)
    hhmm = pd.Series(np.char.zfill((minutes // 60).astype(str), 2), dtype=str) + ":" + \
        pd.Series(np.char.zfill((minutes % 60).astype(str), 2), dtype=str)
    dayfirst = s.str.slice(8, 10) + "/" + s.str.slice(5, 7) + "/" + s.str.slice(0, 4)
    out = np.where(mode == 1, (s + " " + hhmm).to_numpy(), s.to_numpy())
    return np.where(mode == 2, dayfirst.to_numpy(), out).astype(object)


def _date_modes(rng: np.random.Generator, n: int, shares: dict[str, float]) -> np.ndarray:
    u = rng.random(n)
    mode = np.zeros(n, int)
    mode[u < shares.get("datetime_with_time", 0) + shares["day_first_dates"]] = 1
    mode[u < shares["day_first_dates"]] = 2
    return mode


def _with_duplicates(rng: np.random.Generator, n: int, share: float) -> np.ndarray:
    """Row order with exact duplicates placed right after their original."""
    dup = rng.choice(n, size=int(round(n * share)), replace=False)
    return np.sort(np.concatenate([np.arange(n), dup]), kind="stable")


def _unknown_ids(rng: np.random.Generator, known: np.ndarray, k: int) -> np.ndarray:
    digits = len(known[0]) - 1
    pool = rng.choice(10**digits - 1, size=2 * k + 10, replace=False) + 1
    cand = np.char.add("P", np.char.zfill(pool.astype(str), digits))
    return cand[~np.isin(cand, known)][:k]


def _rename(df: pd.DataFrame, table: str) -> pd.DataFrame:
    back = {canon: written for written, canon in HEADERS[table].items()}
    return df.rename(columns=back)


def messy_patients(c: Cohort, rng: np.random.Generator) -> pd.DataFrame:
    t = c.tables["patients"]
    sh = SHARES["patients"]
    n = len(t)
    skin = np.array(SKIN_TYPES, dtype=object)[c.skin_type]
    u = rng.random(n)
    variant = rng.integers(0, len(SKIN_TYPE_VARIANTS), n)
    for i in np.flatnonzero(u < sh["skin_type_variant"]):
        r = skin[i]
        skin[i] = SKIN_TYPE_VARIANTS[variant[i]].format(r=r, r_lower=r.lower(), n=ROMAN[r])
    bad = (u >= sh["skin_type_variant"]) & (u < sh["skin_type_variant"] + sh["skin_type_unparseable"])
    skin[bad] = rng.choice(np.array(SKIN_TYPE_UNPARSEABLE, dtype=object), bad.sum())

    sex = t["sex"].astype(str).to_numpy(dtype=object)
    sex[sex == "unknown"] = ""
    change = rng.random(n) < sh["sex_variant"]
    for i in np.flatnonzero(change & (sex != "")):
        sex[i] = SEX_VARIANTS[sex[i]][rng.integers(len(SEX_VARIANTS[sex[i]]))]

    concern = t["concern"].astype(str).to_numpy(dtype=object)
    for i in np.flatnonzero(rng.random(n) < sh["concern_variant"]):
        v = CONCERN_VARIANTS[concern[i]]
        concern[i] = v[rng.integers(len(v))]

    # birth_date instead of age: a date that makes the age at the first session exactly `age`
    use_bd = rng.random(n) < sh["birth_date_instead_of_age"]
    first = pd.DatetimeIndex(c.first_session[use_bd].astype("datetime64[ns]"))
    age = c.age[use_bd]
    day = np.where((first.month == 2) & (first.day == 29), 28, first.day)
    hi = pd.to_datetime(pd.DataFrame({"year": first.year - age, "month": first.month, "day": day}))
    lo = pd.to_datetime(pd.DataFrame({"year": first.year - age - 1, "month": first.month, "day": day}))
    span = (hi - lo).dt.days.to_numpy()
    birth = lo + pd.to_timedelta(rng.integers(1, span + 1), unit="D")
    feb29 = (birth.dt.month == 2) & (birth.dt.day == 29)
    birth = birth.where(~feb29, birth - pd.Timedelta(days=1))
    birth_str = np.full(n, None, dtype=object)
    birth_str[use_bd] = birth.dt.strftime("%Y-%m-%d").to_numpy()
    ages = pd.array(np.where(use_bd, 0, c.age), dtype="Int64")
    ages[use_bd] = pd.NA

    df = pd.DataFrame({
        "patient_id": t["patient_id"].to_numpy(), "age": ages, "birth_date": birth_str, "sex": sex,
        "skin_type": skin, "concern": concern, "clinic_id": t["clinic_id"].astype(str).to_numpy(),
    })
    df = df.iloc[_with_duplicates(rng, n, sh["duplicate_rows"])].reset_index(drop=True)
    return _rename(df, "patients")


def messy_sessions(c: Cohort, rng: np.random.Generator) -> pd.DataFrame:
    t = c.tables["sessions"]
    sh = SHARES["sessions"]
    n = len(t)
    df = pd.DataFrame({col: (t[col].astype(str) if isinstance(t[col].dtype, pd.CategoricalDtype) else t[col])
                       for col in t.columns})
    mode = _date_modes(rng, n, sh)
    df["session_date"] = _format_dates(t["session_date"].to_numpy(), rng.integers(8 * 60, 18 * 60, n), mode)
    oor = np.flatnonzero(df["volume_ml"].notna().to_numpy() & (rng.random(n) < sh["volume_out_of_range"]))
    vol = df["volume_ml"].to_numpy(copy=True)
    vol[oor] = np.where(rng.random(oor.size) < 0.3, 0.0, rng.uniform(25, 60, oor.size).round(1))
    df["volume_ml"] = vol
    order = _with_duplicates(rng, n, sh["duplicate_rows"])
    k = max(1, int(round(n * sh["unknown_patient_rows"])))
    src = rng.choice(n, k, replace=False)
    unknown = df.iloc[src].copy()
    unknown["patient_id"] = rng.choice(_unknown_ids(rng, c.patient_ids, max(1, k // 3)), k)
    df = pd.concat([df.iloc[order], unknown], ignore_index=True)
    return _rename(df, "sessions")


def messy_dated(c: Cohort, rng: np.random.Generator, table: str, date_col: str) -> pd.DataFrame:
    t = c.tables[table]
    sh = SHARES[table]
    n = len(t)
    df = pd.DataFrame({col: (t[col].astype(str) if isinstance(t[col].dtype, pd.CategoricalDtype) else t[col])
                       for col in t.columns})
    df[date_col] = _format_dates(t[date_col].to_numpy(), np.zeros(n, int), _date_modes(rng, n, sh))
    df = df.iloc[_with_duplicates(rng, n, sh["duplicate_rows"])].reset_index(drop=True)
    return _rename(df, table)


def _num_strings(x: np.ndarray) -> pa.Array:
    """Numbers as text with decimal commas; NaN -> empty."""
    return pc.replace_substring(pc.cast(pa.array(x, from_pandas=True), pa.string()), ".", ",")


def _dict(codes: np.ndarray, categories) -> pa.DictionaryArray:
    codes = np.asarray(codes, dtype=np.int32)
    return pa.DictionaryArray.from_arrays(pa.array(codes, mask=codes < 0), pa.array(list(categories), pa.string()))


def messy_photo_metrics(c: Cohort, rng: np.random.Generator) -> pd.DataFrame:
    t = c.tables["photo_metrics"]
    sh = SHARES["photo_metrics"]
    n = len(t)
    src = _with_duplicates(rng, n, sh["duplicate_rows"])
    k_unknown = max(1, int(round(n * sh["unknown_patient_rows"])))
    src = np.concatenate([src, np.sort(rng.choice(n, k_unknown, replace=False))])
    m = src.size

    pid_cats = list(t["patient_id"].cat.categories)
    unknown = _unknown_ids(rng, c.patient_ids, max(1, k_unknown // 25))
    pid = t["patient_id"].cat.codes.to_numpy()[src].astype(np.int64)
    pid[-k_unknown:] = len(pid_cats) + rng.integers(0, unknown.size, k_unknown)

    # dates: one format per visit (a camera exports a whole session the same way)
    v_date, v_min = c.extra["visit_date"], c.extra["visit_minute"]
    v_mode = _date_modes(rng, v_date.size, sh)
    v_str = pa.array(_format_dates(iso_dates(v_date), v_min, v_mode), pa.string())
    taken = pc.take(v_str, pa.array(c.extra["row_visit"][src]))

    metric_names = list(t["metric"].cat.categories)
    variants = [(m_.replace("_", " ").title(), m_.upper(), f" {m_} ") for m_ in metric_names]
    metric_cats = metric_names + [v for vs in variants for v in vs] + list(UNKNOWN_METRICS)
    mcode = t["metric"].cat.codes.to_numpy()[src].astype(np.int64)
    u = rng.random(m)
    var = u < sh["metric_case_space_variant"]
    out_code = mcode.copy()
    out_code[var] = len(metric_names) + 3 * mcode[var] + rng.integers(0, 3, var.sum())
    unk = (u >= sh["metric_case_space_variant"]) & (u < sh["metric_case_space_variant"] + sh["unknown_metric"])
    out_code[unk] = len(metric_names) + 3 * len(metric_names) + rng.integers(0, len(UNKNOWN_METRICS), unk.sum())

    value = t["value"].to_numpy()[src].copy()
    u = rng.random(m)
    oor = u < sh["value_out_of_range"]
    high = np.array([METRICS[x].high for x in metric_names])[mcode]
    value[oor] = np.where(np.isfinite(high[oor]), np.round(high[oor] * rng.uniform(1.2, 2.0, oor.sum()), 2),
                          -value[oor] - 1)
    nonnum = (u >= sh["value_out_of_range"]) & (u < sh["value_out_of_range"] + sh["non_numeric_value"])
    value_str = _num_strings(value)
    bad = pa.array(rng.choice(np.array(NON_NUMERIC, dtype=object), m), pa.string())
    value_str = pc.if_else(pa.array(nonnum), bad, value_str)

    def codes(col: str) -> np.ndarray:
        return t[col].cat.codes.to_numpy()[src]

    table = pa.table({
        "Patient ID": _dict(pid, pid_cats + list(unknown)),
        "Photo ID": _dict(codes("photo_id"), t["photo_id"].cat.categories),
        "captured_at": taken,
        "Metric": _dict(out_code, metric_cats),
        "Value": value_str,
        "View": _dict(codes("view"), t["view"].cat.categories),
        "Device": _dict(codes("device"), t["device"].cat.categories),
        "Color Delta E": _num_strings(t["color_delta_e"].to_numpy()[src]),
        "Head-Yaw Deg": _num_strings(t["head_yaw_deg"].to_numpy()[src]),
        "Makeup": _dict(codes("makeup"), t["makeup"].cat.categories),
        "Blur": _num_strings(t["blur"].to_numpy()[src]),
    })
    assert list(table.column_names) == list(HEADERS["photo_metrics"])
    return table.to_pandas()


def make_messy(c: Cohort, rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    """All five tables as a messy clinic export would hold them (every value as written)."""
    return {
        "patients": messy_patients(c, rng),
        "sessions": messy_sessions(c, rng),
        "photo_metrics": messy_photo_metrics(c, rng),
        "assessments": messy_dated(c, rng, "assessments", "assessed_at"),
        "adverse_events": messy_dated(c, rng, "adverse_events", "event_date"),
    }
