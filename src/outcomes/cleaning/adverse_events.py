"""Adverse events after sessions, linked to the number of completed sessions on or before them.

Why "on or before": an event on a session day follows that day's injections.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from outcomes.cleaning import normalise as nz
from outcomes.cleaning.columns import Parsed, PatientIds, duplicated, new_ledger, text_column
from outcomes.raw_files import RawTable

COLUMNS = ("patient_id", "event_date", "event", "severity", "sessions")


def parse(raw: RawTable, monthfirst: bool = False, until: np.datetime64 | None = None) -> Parsed:
    f, n = raw.frame, raw.rows
    when = nz.dates(f["event_date"], monthfirst=monthfirst, until=until)
    event = nz.normalise_column(f["event"], nz.event)
    if "severity" in f:
        severity = nz.normalise_column(f["severity"], nz.severity)
    else:
        severity = nz.Column(np.full(n, None, dtype=object), pd.Categorical.from_codes(np.zeros(n, np.int8), ["missing"]))
    values = pd.DataFrame({
        "patient_id": text_column(f, "patient_id"),
        "event_date": when.values,
        "event": pd.Series(event.values, index=f.index, dtype="str"),
        "severity": pd.Series(severity.values, index=f.index, dtype="str"),
    }, index=f.index)
    reasons = {"event_date": when.reasons, "event": event.reasons, "severity": severity.reasons}
    return Parsed(values, reasons, new_ledger(raw))


def check(parsed: Parsed, ids: PatientIds) -> np.ndarray:
    v, ledger = parsed.values, parsed.ledger
    codes = ids.check(ledger, v["patient_id"])
    parsed.reject_reasons("event_date")
    parsed.reject_reasons("event")
    ledger.mark_duplicates(duplicated(v, ledger.ok))
    return codes


def note(parsed: Parsed) -> None:
    parsed.ledger.note(parsed.reasons["severity"], "severity", "unrecognised severity; kept as unknown")


def tidy(parsed: Parsed, sessions: np.ndarray) -> pd.DataFrame:
    ok = parsed.ledger.ok
    kept = parsed.values.loc[ok].assign(sessions=sessions[ok])
    return kept.sort_values(["patient_id", "event_date"], kind="stable").reset_index(drop=True)[list(COLUMNS)]
