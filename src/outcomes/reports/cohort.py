"""The patients a report is about: load the processed folder, apply the report's filters.

Report parameters (concern, treated area, clinic, first-session dates, a minimum number of
sessions) pick patients, never rows, so a patient is either wholly in a report or wholly out. A filter
value that matches nothing the data could hold (an unknown concern, a clinic or area that is
not in the data, a malformed date) is an error, because a scheduled report on a typo would
quietly describe nobody. A valid filter that leaves few or no patients is not an error:
the report says so in plain words.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import pandas as pd

from outcomes import config, contract

PATIENT_TABLES = ("patients", "sessions", "measurements", "outcomes", "assessments", "adverse_events")


def load(processed_dir: str | os.PathLike = "") -> dict[str, pd.DataFrame]:
    """The processed tables ("" means the project's data/processed), with a clear error if absent."""
    from outcomes.loader import load_processed

    return load_processed(processed_dir)


def _date(value: str, name: str) -> pd.Timestamp | None:
    if not value:
        return None
    try:
        return pd.Timestamp(str(value))
    except (ValueError, TypeError):
        raise ValueError(f"{name} must be a date like 2025-03-31, got {value!r}") from None


@dataclass
class Cohort:
    """The filtered tables, how many patients each filter left, and the filters in words
    (`description`; :meth:`describe` adds the number of patients, as a report may tell it)."""

    tables: dict[str, pd.DataFrame]
    steps: pd.DataFrame
    description: str
    filters: dict[str, object] = field(default_factory=dict)

    @property
    def patients(self) -> pd.DataFrame:
        return self.tables["patients"]

    @property
    def n_patients(self) -> int:
        return int(self.tables["patients"]["patient_id"].nunique())

    def describe(self, min_cell: int = config.MIN_CELL) -> str:
        """``"120 patients (concern fine lines)"``; a count under `min_cell` is not written out."""
        from outcomes.privacy import count_text

        return f"{count_text(self.n_patients, 'patients', min_cell)} ({self.description})"

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.tables[name]

    def __contains__(self, name: str) -> bool:
        return name in self.tables


def select(
    tables: dict[str, pd.DataFrame],
    concern: str = "",
    clinic: str = "",
    date_from: str = "",
    date_to: str = "",
    min_sessions: int = 0,
    area: str = "",
) -> Cohort:
    """Keep the patients matching every non-empty filter; every table is cut to them.

    ``date_from``/``date_to`` bound the first completed session (inclusive); ``min_sessions``
    counts completed sessions; ``area`` is the patient's treated area (the outcomes' ``area``:
    the most frequent of their completed sessions). Empty strings (and 0) mean "no filter".
    """
    patients = tables["patients"]
    if concern and concern not in contract.CONCERNS:
        raise ValueError(f"concern {concern!r} is not one of {', '.join(contract.CONCERNS)}")
    treated = treated_areas(tables) if area else None
    if area and area not in set(treated):
        raise ValueError(f"area {area!r} is not a treated area in the data; areas present: "
                         f"{', '.join(sorted(set(treated))) or 'none'}")
    clinics = sorted(patients["clinic_id"].dropna().astype(str).unique())
    if clinic and clinic not in clinics:
        raise ValueError(f"clinic {clinic!r} is not in the data; clinics present: {', '.join(clinics)}")
    start, end = _date(date_from, "date_from"), _date(date_to, "date_to")
    if start is not None and end is not None and start > end:
        raise ValueError(f"date_from {date_from} is after date_to {date_to}")
    if min_sessions < 0:
        raise ValueError("min_sessions cannot be negative")

    keep = pd.Series(True, index=patients.index)
    steps = [("all patients", int(keep.sum()))]
    first = pd.to_datetime(patients["first_session"])
    for label, active, mask in (
        (f"concern {contract.CONCERN_NAMES.get(concern, concern)}", bool(concern), patients["concern"] == concern),
        (f"treated area {area}", bool(area), patients["patient_id"].astype(str).map(treated) == area if area else None),
        (f"clinic {clinic}", bool(clinic), patients["clinic_id"].astype(str) == clinic),
        (f"first session on or after {date_from}", start is not None, first >= start if start is not None else None),
        (f"first session on or before {date_to}", end is not None, first <= end if end is not None else None),
        (f"at least {min_sessions} completed session{'s' if min_sessions != 1 else ''}", min_sessions > 0, patients["n_sessions"] >= min_sessions),
    ):
        if active:
            keep &= mask.fillna(False).astype(bool)
            steps.append((label, int(keep.sum())))
    ids = set(patients.loc[keep, "patient_id"])
    cut = {name: (t.loc[t["patient_id"].isin(ids)].reset_index(drop=True) if "patient_id" in t else t)
           for name, t in tables.items()}
    parts = [label for label, *_ in steps[1:]]
    description = "; ".join(parts) if parts else "no filters"
    filters = {"concern": concern, "area": area, "clinic": clinic, "date_from": date_from, "date_to": date_to,
               "min_sessions": min_sessions}
    return Cohort(cut, pd.DataFrame(steps, columns=["step", "patients_left"]), description, filters)


def treated_areas(tables: dict[str, pd.DataFrame]) -> pd.Series:
    """Each patient's treated area (patient_id -> area; the outcomes' ``area`` column, see
    docs/data-contract.md section 4); patients without outcome rows or a recorded area are absent."""
    outcomes = tables.get("outcomes")
    if outcomes is None or "area" not in outcomes:
        raise ValueError("the processed outcomes have no 'area' column: run `outcomes clean` again "
                         "with this version to add each patient's treated area")
    known = outcomes.loc[outcomes["area"].notna(), ["patient_id", "area"]].drop_duplicates("patient_id")
    return pd.Series(known["area"].astype(str).to_numpy(), index=known["patient_id"].astype(str).to_numpy(),
                     dtype=object, name="area")


def areas_by_concern(tables: dict[str, pd.DataFrame]) -> dict[str, list[str]]:
    """The treated areas of each concern's patients (most patients first): a concern treated on
    several areas is where a report split by area says something a pooled one does not."""
    treated = treated_areas(tables)
    patients = tables["patients"].drop_duplicates("patient_id")
    pairs = pd.DataFrame({"concern": patients["concern"].to_numpy(),
                          "area": patients["patient_id"].astype(str).map(treated).to_numpy()}).dropna()
    counts = pairs.value_counts().reset_index(name="n").sort_values(["concern", "n", "area"],
                                                                     ascending=[True, False, True])
    return {str(c): group["area"].astype(str).tolist() for c, group in counts.groupby("concern", sort=False)}


def check_metric(metric: str) -> str:
    """The metric name if the contract knows it; a clear error listing the known ones if not."""
    if metric not in contract.METRICS:
        raise ValueError(f"metric {metric!r} is not one of {', '.join(contract.METRICS)}")
    return metric
