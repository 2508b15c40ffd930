"""Adverse events per 100 sessions, by type and severity, with exact Poisson intervals.

A safety table answers "how often does this happen per treatment": events are counted per
completed session of the patients in the report (an event on a session day follows that day's
injections, docs/data-contract.md), so a rate reads "per 100 sessions". Counts of rare events are
small, where a normal approximation is wrong, so the 95% interval is the exact Poisson one
(Garwood 1936), the interval R's ``poisson.test`` gives.

The display table is suppressed as every cohort table is (outcomes.privacy): a row about fewer
than ``min_cell`` distinct patients shows ``"<5"`` for its counts, its rate and its interval (the
rate and the known number of sessions would give the count back), and since a type's severities
add up to the type's total, and the types to the overall total, further rows read ``"x"`` until
the hidden events never add up to 1..min_cell-1.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from outcomes import config, contract
from outcomes.privacy import COMPLEMENT_LABEL, complementary, suppressed_label

ALL = "all"  # the severity of a type's total row, and the event of the overall row
ANY_EVENT = "any event"
UNKNOWN = "unknown"


def garwood_interval(count: np.ndarray | float, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Exact (Garwood) confidence interval of a Poisson mean from an observed ``count``.

    ``lower = chi2.ppf(a/2, 2k) / 2`` (0 when k = 0) and ``upper = chi2.ppf(1 - a/2, 2k + 2) / 2``
    with ``a = 1 - level``: the means at which seeing k or more (k or fewer) events has
    probability a/2. Divide by the exposure for a rate.
    """
    from scipy import stats

    k = np.asarray(count, dtype=float)
    alpha = 1.0 - level
    with np.errstate(invalid="ignore"):
        low = np.where(k > 0, stats.chi2.ppf(alpha / 2, 2 * k) / 2, 0.0)
    high = stats.chi2.ppf(1 - alpha / 2, 2 * k + 2) / 2
    return low, high


def completed_sessions(sessions: pd.DataFrame) -> int:
    """The exposure: completed sessions (those with a ``session_number``)."""
    if "session_number" in sessions:
        return int(sessions["session_number"].notna().sum())
    return int((sessions["status"].astype(str) == "completed").sum())


def adverse_event_rates(
    tables: Mapping[str, pd.DataFrame],
    per: int = 100,
    level: float = 0.95,
) -> pd.DataFrame:
    """Adverse events by type and severity per ``per`` completed sessions, with exact CIs.

    ``tables`` are the processed tables of the report's patients (``adverse_events`` and
    ``sessions``; no ``adverse_events`` table means none were recorded). One row per event type
    x severity (``unknown`` when not recorded), then the type's total (severity ``"all"``), in
    the contract's order, and last the overall row (event ``"any event"``). Types with no event
    are listed with 0 (an interval from 0 is still informative). Columns: ``event``,
    ``severity``, ``events``, ``patients`` (distinct patients with such an event), ``sessions``
    (the exposure), ``rate``, ``ci_low``, ``ci_high``. Numbers, not suppressed: see
    :func:`suppress_event_rates`.
    """
    exposure = completed_sessions(tables["sessions"])
    events = tables.get("adverse_events")
    if events is None:
        events = pd.DataFrame({"patient_id": [], "event": [], "severity": []})
    events = events.assign(event=events["event"].astype(object), severity=events["severity"].astype(object)
                           .where(events["severity"].notna(), UNKNOWN))
    kinds = [e for e in contract.EVENTS] + sorted(set(events["event"].dropna()) - set(contract.EVENTS))
    severities = [*contract.SEVERITIES, UNKNOWN]
    rows = []
    for kind in kinds:
        of_kind = events.loc[events["event"] == kind]
        for sev in severities:
            part = of_kind.loc[of_kind["severity"] == sev]
            if len(part):
                rows.append((kind, sev, len(part), part["patient_id"].nunique()))
        rows.append((kind, ALL, len(of_kind), of_kind["patient_id"].nunique()))
    rows.append((ANY_EVENT, ALL, len(events), events["patient_id"].nunique()))
    table = pd.DataFrame(rows, columns=["event", "severity", "events", "patients"])
    table["sessions"] = exposure
    low, high = garwood_interval(table["events"].to_numpy(), level)
    scale = per / exposure if exposure else np.nan
    table["rate"] = table["events"] * scale
    table["ci_low"], table["ci_high"] = low * scale, high * scale
    return table


def suppress_event_rates(table: pd.DataFrame, min_cell: int = config.MIN_CELL, decimals: int = 2) -> pd.DataFrame:
    """The table of :func:`adverse_event_rates` for display: small groups read ``"<5"``.

    A row whose events come from fewer than ``min_cell`` patients (so also every event count
    under ``min_cell``) shows ``"<5"`` for its events, patients, rate and interval. A type's
    severities add up to its total, the types to the overall row, and the number of sessions is
    shown: more rows read ``"x"`` until no line's hidden events add up to 1..min_cell-1.
    Zeros stay (they identify nobody). Rates are rounded to ``decimals``.
    """
    patients = table["patients"].to_numpy(dtype=float)
    events = table["events"].to_numpy(dtype=float)
    small = (patients > 0) & (patients < min_cell)
    is_total = (table["severity"] == ALL).to_numpy()
    kinds = table["event"].to_numpy()
    # lines with a known total: each type's severity rows (total: the type's row), the type rows
    # (total: the overall row); a hidden total row makes its parts' sum unknown, so it is a cell too
    lines = [(kinds == k) & ~is_total for k in pd.unique(kinds[~is_total])]
    lines.append(is_total & (kinds != ANY_EVENT))
    counts = np.column_stack([np.where(line, events, 0.0) for line in lines])

    def link(hidden: np.ndarray) -> np.ndarray:
        return hidden.any(axis=1, keepdims=True) & (counts > 0)

    hidden = complementary(counts, small[:, None] & (counts > 0), min_cell, order=kinds, link=link).any(axis=1)
    out = table.copy()
    for col in ("rate", "ci_low", "ci_high"):
        out[col] = out[col].round(decimals)
    label = suppressed_label(min_cell)
    for col in ("events", "patients", "rate", "ci_low", "ci_high"):
        shown = out[col].astype(object).to_numpy().copy()
        shown[hidden] = COMPLEMENT_LABEL
        shown[small] = label
        out[col] = shown
    return out


def display_event_rates(table: pd.DataFrame, min_cell: int = config.MIN_CELL) -> pd.DataFrame:
    """:func:`suppress_event_rates` with the events named as a reader knows them
    (``contract.EVENT_NAMES``; an event type outside the contract keeps its own text)."""
    shown = suppress_event_rates(table, min_cell)
    shown["event"] = shown["event"].map(lambda e: contract.EVENT_NAMES.get(e, e))
    return shown

