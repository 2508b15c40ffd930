"""Patients: one row per pseudonymous patient, with age at first session and no birth date.

Why two steps: age may have to be derived from birth_date at the *first session*, which is
only known once the sessions (and photos) are read; so `parse` + `check` run first, then
`finish` derives ages and drops birth_date for good.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from outcomes import contract
from outcomes.cleaning import normalise as nz
from outcomes.cleaning.columns import Parsed, duplicated, new_ledger, text_column
from outcomes.raw_files import RawTable

COLUMNS = ("patient_id", "age", "sex", "skin_type", "concern", "clinic_id", "first_session", "n_sessions")


def _absent(n: int, default: object = None) -> nz.Column:
    values = np.empty(n, dtype=object)
    values[:] = default
    return nz.Column(values, pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), categories=["missing"]))


def parse(raw: RawTable, monthfirst: bool = False) -> Parsed:
    """Normalise every cell of the patients table (no row is dropped here)."""
    f, n = raw.frame, raw.rows
    age = nz.numbers(f["age"], raw.decimal_comma) if "age" in f else nz.Column(np.full(n, np.nan), _absent(n).reasons)
    if "birth_date" in f:
        birth = nz.dates(f["birth_date"], monthfirst=monthfirst)
    else:
        birth = nz.Column(np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]"), _absent(n).reasons)
    sex = nz.normalise_column(f["sex"], nz.sex) if "sex" in f else _absent(n, "unknown")
    skin = nz.normalise_column(f["skin_type"], nz.skin_type) if "skin_type" in f else _absent(n)
    concern = nz.normalise_column(f["concern"], nz.concern) if "concern" in f else _absent(n)
    values = pd.DataFrame({
        "patient_id": text_column(f, "patient_id"),
        "age": age.values,
        "birth_date": birth.values,
        "sex": pd.Series(sex.values, index=f.index, dtype="str"),
        "skin_type": pd.Categorical(skin.values, dtype=contract.SKIN_TYPE_DTYPE),
        "concern": pd.Series(concern.values, index=f.index, dtype="str"),
        "clinic_id": text_column(f, "clinic_id"),
    }, index=f.index)
    reasons = {"age": age.reasons, "birth_date": birth.reasons, "sex": sex.reasons,
               "skin_type": skin.reasons, "concern": concern.reasons}
    return Parsed(values, reasons, new_ledger(raw))


def check(parsed: Parsed) -> None:
    """Reject unusable patient rows and mark duplicates (an id seen again with the same values)."""
    v, r, ledger = parsed.values, parsed.reasons, parsed.ledger
    ledger.reject(v["patient_id"].isna().to_numpy(), "patient_id", "missing_patient_id")
    age_reason = np.asarray(r["age"]).astype(str)
    birth_reason = np.asarray(r["birth_date"]).astype(str)
    age = v["age"].to_numpy()
    ledger.reject(age_reason == "not_a_number", "age", "age_not_a_number")
    low, high = contract.AGE_RANGE
    ledger.reject((age_reason == "") & ~((age >= low) & (age <= high)), "age", "age_out_of_range")
    no_age = age_reason == "missing"
    ledger.reject(no_age & (birth_reason == "missing"), "age", "missing_age")
    for reason in np.unique(birth_reason[no_age]):
        if reason not in ("", "missing"):
            ledger.reject(no_age & (birth_reason == reason), "birth_date", f"birth_date_{reason}")
    ledger.mark_duplicates(duplicated(v, ledger.ok))
    alive = ledger.ok
    again = np.zeros(len(v), dtype=bool)
    again[alive] = v["patient_id"][alive].duplicated().to_numpy()
    ledger.reject(again, "patient_id", "duplicate_patient_id")


def finish(parsed: Parsed, reference_dates: pd.Series) -> None:
    """Derive age at the first session from birth_date where age is not given, and check it.

    `reference_dates`: per patient_id the date age refers to (first completed session, else
    first booked session, else first photo).
    """
    v, ledger = parsed.values, parsed.ledger
    need = ledger.ok & nz.has_reason(parsed.reasons["age"], "missing")
    if not need.any():
        return
    ref = reference_dates.reindex(v["patient_id"]).to_numpy(dtype="datetime64[ns]")
    ledger.reject(need & np.isnat(ref), "birth_date", "no_date_for_age")
    birth = pd.DatetimeIndex(v["birth_date"].to_numpy())
    when = pd.DatetimeIndex(ref)
    before_birthday = (when.month < birth.month) | ((when.month == birth.month) & (when.day < birth.day))
    derived = (when.year - birth.year - before_birthday.astype(int)).to_numpy(dtype=float)
    low, high = contract.AGE_RANGE
    ledger.reject(need & ~np.isnat(ref) & ~((derived >= low) & (derived <= high)), "birth_date", "age_out_of_range")
    parsed.values = v.assign(age=np.where(need, derived, v["age"].to_numpy()))


def note(parsed: Parsed) -> None:
    """Data-quality notes for kept rows: odd sex, skin type or concern spellings became unknown."""
    ledger = parsed.ledger
    ledger.note(parsed.reasons["skin_type"], "skin_type", "unrecognised skin type; kept as unknown")
    ledger.note(parsed.reasons["sex"], "sex", "unrecognised sex; kept as unknown")
    ledger.note(parsed.reasons["concern"], "concern", "unrecognised concern; kept as unknown")


def tidy(parsed: Parsed, sessions: pd.DataFrame) -> pd.DataFrame:
    """The kept patients, without birth_date, with first_session and n_sessions (completed)."""
    kept = parsed.values.loc[parsed.ledger.ok].drop(columns="birth_date")
    completed = sessions.loc[sessions["status"] == "completed"]
    by_patient = completed.groupby("patient_id", sort=False)
    kept = kept.assign(
        # reindex, not map: Series.map with an empty datetime mapper fails in pandas 3
        first_session=by_patient["session_date"].min().reindex(kept["patient_id"]).to_numpy(dtype="datetime64[ns]"),
        n_sessions=by_patient.size().reindex(kept["patient_id"], fill_value=0).to_numpy(dtype="int64"),
    )
    return kept.sort_values("patient_id", kind="stable").reset_index(drop=True)[list(COLUMNS)]
