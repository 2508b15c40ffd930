"""Assessments: ratings on clinical scales (GAIS, WSRS, satisfaction), linked to session counts.

Why the scale range check: a GAIS of 7 or a satisfaction of 140 is a typing error, and the
ordinal models would take it at face value.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from outcomes import contract
from outcomes.cleaning import normalise as nz
from outcomes.cleaning.columns import Parsed, PatientIds, duplicated, new_ledger, text_column
from outcomes.raw_files import RawTable

COLUMNS = ("patient_id", "assessed_at", "scale", "rater", "score", "sessions")


def parse(raw: RawTable, monthfirst: bool = False, until: np.datetime64 | None = None) -> Parsed:
    f, n = raw.frame, raw.rows
    when = nz.dates(f["assessed_at"], monthfirst=monthfirst, until=until)
    scale = nz.normalise_column(f["scale"], nz.scale)
    if "rater" in f:
        rater = nz.normalise_column(f["rater"], nz.rater)
    else:
        rater = nz.Column(np.full(n, None, dtype=object), pd.Categorical.from_codes(np.zeros(n, np.int8), ["missing"]))
    score = nz.numbers(f["score"], raw.decimal_comma)
    values = pd.DataFrame({
        "patient_id": text_column(f, "patient_id"),
        "assessed_at": when.values,
        "scale": pd.Series(scale.values, index=f.index, dtype="str"),
        "rater": pd.Series(rater.values, index=f.index, dtype="str"),
        "score": score.values,
    }, index=f.index)
    reasons = {"assessed_at": when.reasons, "scale": scale.reasons, "rater": rater.reasons, "score": score.reasons}
    return Parsed(values, reasons, new_ledger(raw))


def check(parsed: Parsed, ids: PatientIds) -> np.ndarray:
    v, ledger = parsed.values, parsed.ledger
    codes = ids.check(ledger, v["patient_id"])
    parsed.reject_reasons("assessed_at")
    parsed.reject_reasons("scale")
    parsed.reject_reasons("score")
    scale = np.asarray(pd.Categorical(v["scale"], categories=list(contract.SCALES)).codes)
    low = np.array([s.low for s in contract.SCALES.values()] + [np.nan])[scale]
    high = np.array([s.high for s in contract.SCALES.values()] + [np.nan])[scale]
    score = v["score"].to_numpy()
    ledger.reject(~np.isnan(low) & ~np.isnan(score) & ~((score >= low) & (score <= high)), "score", "out_of_range")
    ledger.mark_duplicates(duplicated(v, ledger.ok))
    return codes


def note(parsed: Parsed) -> None:
    parsed.ledger.note(parsed.reasons["rater"], "rater", "unrecognised rater; kept as unknown")


def tidy(parsed: Parsed, sessions: np.ndarray) -> pd.DataFrame:
    ok = parsed.ledger.ok
    kept = parsed.values.loc[ok].assign(sessions=sessions[ok])
    return kept.sort_values(["patient_id", "assessed_at"], kind="stable").reset_index(drop=True)[list(COLUMNS)]
