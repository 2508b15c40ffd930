"""Sessions: one row per booked treatment session; only completed ones count.

Why the duplicate rule matters: session counts drive every outcome, so the same patient on
the same calendar day is one session (a duplicate), keeping a completed row over others.
Why a bad volume or status does not reject the row: the session is still on record, and
rejecting it would change the session counts of every later measurement of the patient; the
bad value is left empty (status `unknown`, never counted as completed) and noted instead.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from outcomes import contract
from outcomes.cleaning import normalise as nz
from outcomes.cleaning.columns import Parsed, PatientIds, new_ledger, text_column
from outcomes.raw_files import RawTable

UNKNOWN_STATUS = "unknown"  # a status spelling that could not be read: kept, never counted as completed
COLUMNS = ("patient_id", "session_date", "status", "product", "area", "volume_ml", "practitioner_id", "session_number")


def parse(raw: RawTable, monthfirst: bool = False, until: np.datetime64 | None = None) -> Parsed:
    """Normalise every cell of the sessions table (no row is dropped here); ``until``: the export's day."""
    f, n = raw.frame, raw.rows
    when = nz.dates(f["session_date"], monthfirst=monthfirst, until=until)
    if "status" in f:
        status = nz.normalise_column(f["status"], nz.session_status)
    else:
        status = nz.Column(np.full(n, "completed", dtype=object), pd.Categorical.from_codes(np.zeros(n, np.int8), [""]))
    if "volume_ml" in f:
        volume = nz.numbers(f["volume_ml"], raw.decimal_comma)
    else:
        volume = nz.Column(np.full(n, np.nan), pd.Categorical.from_codes(np.zeros(n, np.int8), ["missing"]))
    area = text_column(f, "area")
    values = pd.DataFrame({
        "patient_id": text_column(f, "patient_id"),
        "session_date": when.values,
        "status": pd.Series(status.values, index=f.index, dtype="str").fillna(UNKNOWN_STATUS),
        "product": text_column(f, "product"),
        "area": area.str.lower(),
        "volume_ml": volume.values,
        "practitioner_id": text_column(f, "practitioner_id"),
    }, index=f.index)
    return Parsed(values, {"session_date": when.reasons, "status": status.reasons, "volume_ml": volume.reasons}, new_ledger(raw))


def check(parsed: Parsed, ids: PatientIds) -> None:
    """Reject unusable session rows; blank bad volumes; the same patient on the same day again is a duplicate."""
    v, ledger = parsed.values, parsed.ledger
    ids.check(ledger, v["patient_id"])
    parsed.reject_reasons("session_date")
    volume = v["volume_ml"].to_numpy()
    low, high = contract.VOLUME_RANGE_ML
    impossible = ~np.isnan(volume) & ~((volume > low) & (volume <= high))
    if impossible.any():
        reasons = parsed.reasons["volume_ml"]
        reasons = reasons.add_categories(["out_of_range"]) if "out_of_range" not in reasons.categories else reasons.copy()
        reasons[impossible] = "out_of_range"
        parsed.reasons["volume_ml"] = reasons
        parsed.values = v = v.assign(volume_ml=np.where(impossible, np.nan, volume))
    alive = np.flatnonzero(ledger.ok)
    sub = pd.DataFrame({
        "patient_id": v["patient_id"].to_numpy()[alive],
        "day": v["session_date"].to_numpy()[alive].astype("datetime64[D]"),
        "rank": (v["status"].to_numpy()[alive] != "completed").astype(np.int8),
    })
    order = np.lexsort((np.arange(len(sub)), sub["rank"].to_numpy()))
    again = sub.iloc[order].duplicated(["patient_id", "day"]).to_numpy()
    dup = np.zeros(len(v), dtype=bool)
    dup[alive[order[again]]] = True
    ledger.mark_duplicates(dup)


def note(parsed: Parsed) -> None:
    """Data-quality notes for kept sessions whose status or volume could not be used."""
    ledger, reasons = parsed.ledger, parsed.reasons
    ledger.note(reasons["status"], "status", "unrecognised status; kept as unknown, not counted as a completed session")
    ledger.note(reasons["volume_ml"], "volume_ml", "not a number; left empty (the session is kept)",
                allow=("", "missing", "out_of_range"))
    ledger.note(reasons["volume_ml"], "volume_ml",
                f"out of range ({contract.VOLUME_RANGE_ML[0]:g} < v <= {contract.VOLUME_RANGE_ML[1]:g} ml); "
                "left empty (the session is kept)", allow=("", "missing", "not_a_number"))


def tidy(parsed: Parsed) -> pd.DataFrame:
    """The kept sessions, sorted, with session_number 1.. among completed sessions."""
    kept = parsed.values.loc[parsed.ledger.ok]
    kept = kept.sort_values(["patient_id", "session_date"], kind="stable").reset_index(drop=True)
    completed = kept["status"] == "completed"
    number = kept.loc[completed].groupby("patient_id", sort=False).cumcount() + 1
    kept["session_number"] = number.reindex(kept.index).astype("Int64")
    return kept[list(COLUMNS)]


def treated_area(sessions: pd.DataFrame, patient_ids: pd.Series) -> pd.Series:
    """Each patient's treated area (aligned with `patient_ids`): the area most frequent among
    their completed sessions with an area recorded; a tie goes to the area treated first (the
    earliest of the tied areas' sessions); none recorded: missing.

    Why one area per patient: reports compare like with like, and a course is judged where it was
    given; an odd session elsewhere (a touch-up on the neck) does not make a face patient a neck one.
    """
    done = sessions.loc[(sessions["status"] == "completed").to_numpy(dtype=bool, na_value=False)
                        & sessions["area"].notna().to_numpy()]
    counts = (done.groupby(["patient_id", "area"], sort=False)
              .agg(n=("session_date", "size"), first=("session_date", "min")).reset_index())
    top = counts.sort_values(["patient_id", "n", "first", "area"], ascending=[True, False, True, True],
                             kind="stable").drop_duplicates("patient_id").set_index("patient_id")["area"]
    return pd.Series(top.reindex(pd.Index(patient_ids)).to_numpy(dtype=object), index=patient_ids.index,
                     name="area", dtype="str")
