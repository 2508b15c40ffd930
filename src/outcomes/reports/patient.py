"""One patient against the course expected for comparable patients (the patient report's numbers).

A practitioner asks "is my patient doing as expected?". The answer is the cohort model's
expected curve for the patient's age and skin type with a *prediction* band (where 95% of
comparable patients' single measurements fall), not the narrow confidence band of the mean.

Only the pseudonymous patient id is shown, and weeks since the first session instead of
calendar dates; the age only as its band (an age of 90 or over is never written out).
``min_cell`` is about the *other* patients: an expected course is shown only when the cohort
model saw at least ``min_cell`` patients of this age band and skin type.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from outcomes import config, contract, models, privacy
from outcomes.escaping import markdown_text
from outcomes.reports import cohort as cohorts, fitting

MIN_SESSIONS_FOR_REPORT = 2


def eligible_patients(outcomes: pd.DataFrame, metrics: Sequence[str], view: str = contract.DEFAULT_VIEW) -> list[str]:
    """Patients with known age and skin type and a measured improvement after at least two
    different session counts in one of `metrics`, sorted by id (a stable choice for `pick`)."""
    rows = outcomes.loc[
        outcomes["metric"].isin(list(metrics)) & (outcomes["view"] == view) & (outcomes["sessions"] > 0)
        & outcomes["improvement_pct"].notna() & outcomes["skin_type"].notna() & outcomes["age"].notna()
    ]
    counts = rows.groupby("patient_id")["sessions"].nunique()
    return sorted(counts.index[counts >= MIN_SESSIONS_FOR_REPORT].astype(str))


def choose_patient(outcomes: pd.DataFrame, metrics: Sequence[str], patient_id: str = "", pick: int = 0) -> str:
    """`patient_id` if given (it must exist), else the `pick`-th eligible patient."""
    if patient_id:
        if not (outcomes["patient_id"].astype(str) == patient_id).any():
            raise ValueError(f"patient {patient_id!r} has no outcome rows in this processed data")
        return patient_id
    eligible = eligible_patients(outcomes, metrics)
    if not eligible:
        raise ValueError("no patient has measurements after two or more session counts; nothing to report")
    if not 0 <= pick < len(eligible):
        raise ValueError(f"pick {pick} is out of range: {len(eligible)} eligible patients (0..{len(eligible) - 1})")
    return eligible[pick]


def expected_course(model: models.ImprovementModel, age: float, skin_type: str,
                    sessions: Sequence[int] | None = None, level: float = 0.95) -> pd.DataFrame:
    """Expected improvement for a patient of this age and skin type after each session count:
    `estimate` with its CI (`ci_low`, `ci_high`) and prediction band (`pred_low`, `pred_high`)."""
    sessions = np.arange(1, model.max_sessions_ + 1) if sessions is None else np.asarray(sessions)
    frame = model.frame(sessions, age, skin_type)
    pred = model.predict(frame, ci=True, level=level, prediction=True)
    return pd.concat([frame[["sessions"]], pred[["estimate", "ci_low", "ci_high", "pred_low", "pred_high"]]], axis=1)


def comparison_group(model: models.ImprovementModel, band: str, skin_type: str | None) -> int:
    """Patients the cohort model saw with this age band and skin type (the patient's comparison group)."""
    rows = model.rows_
    same = (models.age_band(rows["age"]).astype(str) == band) & (rows["skin_type"].astype(str) == str(skin_type))
    return int(rows.loc[same, "patient_id"].nunique())


def verdict(value: float, low: float, high: float) -> str:
    return "below" if value < low else "above" if value > high else "within"


@dataclass
class Patient:
    """The patient a report is about: id, age band, skin type, course (no dates, no exact age)."""

    patient_id: str
    band: str
    skin: str | None
    concern: str
    n_sessions: int
    age: float
    start: pd.Timestamp
    tables: dict = field(repr=False)

    def mine(self, name: str) -> pd.DataFrame:
        table = self.tables.get(name)
        return pd.DataFrame() if table is None else table.loc[table["patient_id"] == self.patient_id]

    def weeks(self, dates: pd.Series) -> pd.Series:
        return ((pd.to_datetime(dates) - self.start).dt.days / 7).round(1)

    def cover(self) -> str:
        """The report's title and first paragraph."""
        return (f"# Patient progress: {markdown_text(self.patient_id)}\n\n"
                f"One patient's course against what the clinic's data lead us to expect for a patient of the same "
                f"age band ({markdown_text(self.band)}) and skin type ({markdown_text(self.skin or 'unknown')}). "
                f"Concern: {markdown_text(self.concern.replace('_', ' '))}.")

    def sessions(self) -> pd.DataFrame:
        """This patient's sessions, in weeks since the first, without identifiers or dates."""
        course = self.mine("sessions").sort_values("session_date", kind="stable")
        course = course.assign(week=self.weeks(course["session_date"]))
        cols = [c for c in ("session_number", "week", "status", "product", "area", "volume_ml") if c in course]
        return privacy.drop_identifiers(course[cols])

    def adverse_events(self) -> pd.DataFrame:
        events = self.mine("adverse_events")
        if events.empty:
            return events
        return (events.groupby(["event", "severity"], observed=True)
                .agg(times=("event", "size"), first_after_session=("sessions", "min")).reset_index())

    def gais(self) -> pd.DataFrame:
        ratings = self.mine("assessments")
        ratings = ratings.loc[ratings["scale"] == "gais"] if not ratings.empty else ratings
        if ratings.empty:
            return pd.DataFrame(columns=["sessions", "week", "rater", "score"])
        ratings = ratings.sort_values("assessed_at", kind="stable")
        ratings = ratings.assign(week=self.weeks(ratings["assessed_at"]), score=ratings["score"].astype(int))
        return ratings[["sessions", "week", "rater", "score"]]


def load_patient(tables: dict[str, pd.DataFrame], metrics: Sequence[str], patient_id: str = "",
                 pick: int = 0) -> Patient:
    """The patient a report is about (`patient_id`, or the `pick`-th eligible one)."""
    pid = choose_patient(tables["outcomes"], metrics, patient_id, pick)
    patients = tables["patients"]
    me = patients.loc[patients["patient_id"] == pid].iloc[0]
    return Patient(pid, str(models.age_band(pd.Series([me["age"]])).iloc[0]),
                   None if pd.isna(me["skin_type"]) else str(me["skin_type"]), str(me["concern"]),
                   int(me["n_sessions"]), float(me["age"]), pd.Timestamp(me["first_session"]), tables)


def check_metrics(metrics: Sequence[str] | str) -> list[str]:
    """The metric list of a patient report (a list, or a comma-separated string)."""
    if isinstance(metrics, str):
        metrics = metrics.split(",")
    return [cohorts.check_metric(str(m).strip()) for m in metrics if str(m).strip()]


@dataclass
class Progress:
    """Per metric: (expected course or None, the patient's points, why no course); the
    latest-measurement summary; notes for the reader."""

    panels: dict[str, tuple[pd.DataFrame | None, pd.DataFrame, str]]
    summary: pd.DataFrame
    notes: list[str]


def progress(me: Patient, metrics: Sequence[str], exclude_flagged: bool = True,
             min_cell: int = config.MIN_CELL) -> Progress:
    """The patient's improvement in each metric against the expected course for comparable patients."""
    min_cell = privacy.check_min_cell(min_cell)
    out = me.tables["outcomes"]
    measured = out.loc[(out["patient_id"] == me.patient_id) & out["metric"].isin(list(metrics))
                       & (out["view"] == contract.DEFAULT_VIEW) & (out["sessions"] > 0) & out["improvement_pct"].notna()]
    spec = {"include_flagged": not exclude_flagged, "patients": me.tables["patients"]}
    panels, summary, notes, too_few = {}, [], [], []
    shown = [m for m in metrics if (measured["metric"] == m).any()] if me.skin is not None else []
    if not shown:
        notes.append("This patient has no measured improvement after a session in the chosen metrics (or an unknown "
                     "skin type), so there is nothing to compare.")
    for metric in shown:
        label = contract.METRICS[metric].label
        points = measured.loc[measured["metric"] == metric].sort_values("sessions", kind="stable")
        model, chosen, problems = fitting.first_converged(fitting.improvement_attempts(out, metric, **spec))
        if model is None:
            panels[metric] = (None, points, "cohort model unavailable")
            continue
        if problems:
            notes.append(f"{label}: the richest cohort model could not be fitted reliably ("
                         + "; ".join(map(markdown_text, problems)) + f"); the expected course uses a simpler one "
                         f"({markdown_text(chosen)}).")
        if comparison_group(model, me.band, me.skin) < min_cell:
            panels[metric] = (None, points, "too few comparable patients")
            too_few.append(label)
            continue
        expected = expected_course(model, me.age, me.skin)
        panels[metric] = (expected, points, "")
        comparable = points.loc[(points["sessions"] <= model.max_sessions_)
                                & (points["qc_ok"].astype(bool) | (not exclude_flagged))]
        if comparable.empty:
            continue
        latest = comparable.iloc[-1]
        row = expected.loc[expected["sessions"] == latest["sessions"]].iloc[0]
        summary.append({"metric": label, "sessions": int(latest["sessions"]),
                        "visit": "after the course" if latest["sessions"] >= me.n_sessions else "during the course",
                        "patient": float(latest["improvement_pct"]), "expected": float(row["estimate"]),
                        "usual range": f"{row['pred_low']:.1f} to {row['pred_high']:.1f}",
                        "verdict": verdict(latest["improvement_pct"], row["pred_low"], row["pred_high"])})
    if too_few:
        notes.append(f"{', '.join(too_few)}: the cohort model saw fewer than {min_cell} patients of this age band and "
                     "skin type, so no expected course is shown for it (it would describe a few recognisable people).")
    return Progress(panels, pd.DataFrame(summary), notes)


def findings(me: Patient, prog: Progress) -> list[str]:
    """The patient report's key findings: who, then each metric's latest reading against the usual range."""
    found = [f"Patient {markdown_text(me.patient_id)} ({markdown_text(me.band)}, skin type "
             f"{markdown_text(me.skin or 'unknown')}) completed {me.n_sessions} sessions."]
    if prog.summary.empty:
        why = sorted({why for expected, _, why in prog.panels.values() if expected is None and why})
        found.append("The data cannot tell how this patient compares with others: "
                     + ("; ".join(why) if why else "no measurement after a session in the chosen metrics") + ".")
    for r in prog.summary.to_dict("records"):
        found.append(f"{markdown_text(r['metric'])}: {r['patient']:.1f}% after {r['sessions']} sessions "
                     f"({r['visit']}), {r['verdict']} the usual range for comparable patients ({r['usual range']}%).")
    events = me.adverse_events()
    if not events.empty:
        serious = events.loc[events["severity"].astype(str).isin(["moderate", "severe"])]
        found.append(f"{int(events['times'].sum())} adverse events recorded"
                     + (f", {int(serious['times'].sum())} moderate or severe." if not serious.empty else ", all mild."))
    last = me.gais().loc[lambda g: g["rater"] == "clinician"].tail(1)
    if not last.empty:
        score = int(last["score"].iloc[0])
        meaning = contract.SCALES["gais"].meaning.split(", ")[score - 1][2:]
        found.append(f"Latest clinician GAIS: {score} ({meaning}).")
    return found
