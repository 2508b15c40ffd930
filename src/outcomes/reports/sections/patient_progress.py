"""The patient report: one patient's course against what the cohort leads us to expect.

A practitioner asks "is my patient doing as expected?". The answer is the cohort model's
expected curve for the patient's age and skin type with a *prediction* band (where 95% of
comparable patients' single measurements fall: the mean's uncertainty plus between-patient
and visit-to-visit variation), not the narrow confidence band of the mean.

Only the pseudonymous patient id is shown, and weeks since the first session instead of
calendar dates. The cohort model uses in-course visits (``patients=``); this patient's visits
after their course are drawn as open circles (their effect may be fading).

``min_cell`` here is about the *other* patients: the expected course of a metric is shown only
when the cohort model saw at least ``min_cell`` patients of this age band and skin type (the
comparison group); a smaller group's curve would describe a few recognisable people. The
patient's own age is shown only as the band, so an age of 90 or over is never written out.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from outcomes import config, contract, models, privacy
from outcomes.escaping import markdown_text
from outcomes.reports import cohort as cohorts, fitting
from outcomes.reports.sections import Report, Section, section

MIN_SESSIONS_FOR_REPORT = 2
DEFAULT_METRICS = "hydration,wrinkles,elasticity_r7,brown_spots"


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


def plot_course(expected: pd.DataFrame, points: pd.DataFrame, n_sessions: int | None = None, ax=None,
                title: str | None = None):
    """The patient's measurements over the expected course (line), its confidence band (dark
    grey) and prediction band (light grey). Dots: during the course; open circles: after it
    (sessions >= `n_sessions`); crosses: quality-flagged photos. Grey-print safe."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4, 3))
    x = expected["sessions"]
    ax.fill_between(x, expected["pred_low"], expected["pred_high"], color="0.88", lw=0, label="comparable patients")
    ax.fill_between(x, expected["ci_low"], expected["ci_high"], color="0.62", lw=0, label="expected (95% CI)")
    ax.plot(x, expected["estimate"], color="0.15", lw=1.4, ls="--")
    flagged = ~points["qc_ok"].astype(bool)
    good = points.loc[~flagged]
    ax.plot(good["sessions"], good["improvement_pct"], "-", color="black", lw=1)
    during = good["sessions"] < n_sessions if n_sessions is not None else pd.Series(True, index=good.index)
    ax.plot(good.loc[during, "sessions"], good.loc[during, "improvement_pct"], "o", color="black", ms=4.5,
            label="this patient")
    if (~during).any():
        ax.plot(good.loc[~during, "sessions"], good.loc[~during, "improvement_pct"], "o", mfc="white", mec="black",
                ms=5, label="after the course")
    if flagged.any():
        ax.plot(points.loc[flagged, "sessions"], points.loc[flagged, "improvement_pct"], "x", color="black", ms=6,
                label="flagged photo")
    ax.axhline(0, color="0.4", lw=0.6)
    ax.set_xlabel("completed sessions")
    ax.set_ylabel("improvement (%)")
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def comparison_group(model: models.ImprovementModel, band: str, skin_type: str | None) -> int:
    """Patients the cohort model saw with this age band and skin type (the patient's comparison group)."""
    rows = model.rows_
    same = (models.age_band(rows["age"]).astype(str) == band) & (rows["skin_type"].astype(str) == str(skin_type))
    return int(rows.loc[same, "patient_id"].nunique())


def verdict(value: float, low: float, high: float) -> str:
    return "below" if value < low else "above" if value > high else "within"


class PatientProgress(Report):
    """The sections of notebooks/30-patient-progress.ipynb, for one patient."""

    def __init__(self, tables: dict[str, pd.DataFrame], patient_id: str = "", pick: int = 0,
                 metrics: str = DEFAULT_METRICS, exclude_flagged: bool = True,
                 min_cell: int = config.MIN_CELL) -> None:
        super().__init__()
        self.tables, self.exclude_flagged = tables, exclude_flagged
        self.min_cell = privacy.check_min_cell(min_cell)
        self.metrics = [cohorts.check_metric(m.strip()) for m in metrics.split(",") if m.strip()]
        out = tables["outcomes"]
        self.patient_id = choose_patient(out, self.metrics, patient_id, pick)
        patients = tables["patients"]
        self.me = patients.loc[patients["patient_id"] == self.patient_id].iloc[0]
        self.band = str(models.age_band(pd.Series([self.me["age"]])).iloc[0])
        self.skin = None if pd.isna(self.me["skin_type"]) else str(self.me["skin_type"])
        self.start = pd.Timestamp(self.me["first_session"])
        self.structures: dict[str, tuple[str, list[str]]] = {}  # metric: (model used, why not a richer one)
        self.measured = out.loc[(out["patient_id"] == self.patient_id) & out["metric"].isin(self.metrics)
                                & (out["view"] == contract.DEFAULT_VIEW) & (out["sessions"] > 0)
                                & out["improvement_pct"].notna()]

    def _mine(self, name: str) -> pd.DataFrame:
        table = self.tables.get(name)
        return pd.DataFrame() if table is None else table.loc[table["patient_id"] == self.patient_id]

    def _weeks(self, dates: pd.Series) -> pd.Series:
        return ((pd.to_datetime(dates) - self.start).dt.days / 7).round(1)

    def _model(self, metric: str) -> models.ImprovementModel | None:
        out, spec = self.tables["outcomes"], {"include_flagged": not self.exclude_flagged,
                                              "patients": self.tables["patients"]}
        model, label, problems = fitting.first_converged(fitting.improvement_attempts(out, metric, **spec))
        if model is not None and problems:
            self.structures[metric] = (label, problems)
        return model

    @section
    def cover(self, sec: Section) -> None:
        concern = markdown_text(str(self.me["concern"]).replace("_", " "))
        sec.add_text(f"# Patient progress: {markdown_text(self.patient_id)}\n\n"
                     f"One patient's course against what the clinic's data lead us to expect for a patient of the same "
                     f"age band ({markdown_text(self.band)}) and skin type ({markdown_text(self.skin or 'unknown')}). "
                     f"Concern: {concern}.")

    @section
    def course(self, sec: Section) -> None:
        course = self._mine("sessions").sort_values("session_date", kind="stable")
        course = course.assign(week=self._weeks(course["session_date"]))
        cols = [c for c in ("session_number", "week", "status", "product", "area", "volume_ml") if c in course]
        sec.add_table(privacy.drop_identifiers(course[cols]), "Sessions of this patient.",
                      labels={"session_number": "session", "volume_ml": "volume (ml)"})
        sec.add_finding(f"Patient {markdown_text(self.patient_id)} ({markdown_text(self.band)}, skin type "
                        f"{markdown_text(self.skin or 'unknown')}) completed "
                        f"{int(self.me['n_sessions'])} sessions.")

    @section
    def progress(self, sec: Section) -> None:
        shown = [m for m in self.metrics if (self.measured["metric"] == m).any()]
        if not shown or self.skin is None:
            sec.add_note("This patient has no measured improvement after a session in the chosen metrics "
                         "(or an unknown skin type), so there is nothing to compare.", "warning")
            return
        import matplotlib.pyplot as plt

        ncols = 2 if len(shown) > 1 else 1
        nrows = -(-len(shown) // ncols)
        fig, axes = plt.subplots(nrows, ncols, figsize=(6.7, 2.6 * nrows), squeeze=False)
        n_sessions = int(self.me["n_sessions"])
        summary, too_few = [], []
        for ax, metric in zip(axes.ravel(), shown):
            model = self._model(metric)
            if model is None:
                ax.set_title(f"{metric}: cohort model unavailable")
                continue
            if comparison_group(model, self.band, self.skin) < self.min_cell:
                ax.set_title(f"{metric.replace('_', ' ')}: too few comparable patients", fontsize=9)
                ax.set_axis_off()
                too_few.append(metric.replace("_", " "))
                continue
            expected = expected_course(model, float(self.me["age"]), self.skin)
            points = self.measured.loc[self.measured["metric"] == metric].sort_values("sessions", kind="stable")
            plot_course(expected, points, n_sessions, ax=ax, title=metric.replace("_", " "))
            comparable = points.loc[(points["sessions"] <= model.max_sessions_)
                                    & (points["qc_ok"].astype(bool) | (not self.exclude_flagged))]
            if comparable.empty:
                continue
            latest = comparable.iloc[-1]
            row = expected.loc[expected["sessions"] == latest["sessions"]].iloc[0]
            summary.append({"metric": metric.replace("_", " "), "sessions": int(latest["sessions"]),
                            "visit": "after the course" if latest["sessions"] >= n_sessions else "during the course",
                            "patient": float(latest["improvement_pct"]), "expected": float(row["estimate"]),
                            "usual range": f"{row['pred_low']:.1f} to {row['pred_high']:.1f}",
                            "verdict": verdict(latest["improvement_pct"], row["pred_low"], row["pred_high"])})
        for ax in axes.ravel()[len(shown):]:
            ax.set_visible(False)
        fig.tight_layout()
        sec.add_figure(fig, "This patient's improvement (points; open circles = after the course, crosses = "
                       "quality-flagged photos) against the expected course (line), its 95% confidence band (dark) "
                       "and the range of comparable patients (light).")
        if too_few:
            sec.add_note(f"{', '.join(too_few).capitalize()}: the cohort model saw "
                         f"fewer than {self.min_cell} patients of this age band and skin type, so "
                         "no expected course is shown for it (it would describe a few recognisable people).")
        for metric, (label, problems) in self.structures.items():
            sec.add_note(f"{markdown_text(metric.replace('_', ' ').capitalize())}: the richest cohort model could not "
                         "be fitted reliably (" + "; ".join(map(markdown_text, problems)) + "); the expected course "
                         f"uses a simpler one ({markdown_text(label)}).")
        if not summary:
            return
        sec.add_table(pd.DataFrame(summary), "Latest measurement against the expected course for this age band and "
                      "skin type.", labels={"patient": "this patient (%)", "expected": "expected (%)"})
        for r in summary:
            sec.add_finding(f"{markdown_text(r['metric'].capitalize())}: {r['patient']:.1f}% after "
                            f"{r['sessions']} sessions ({r['visit']}), "
                            f"{r['verdict']} the usual range for comparable patients ({r['usual range']}%).")

    @section
    def adverse_events(self, sec: Section) -> None:
        events = self._mine("adverse_events")
        if events.empty:
            sec.add_note("No adverse events were recorded for this patient.")
            return
        events = (events.groupby(["event", "severity"], observed=True)
                  .agg(times=("event", "size"), first_after_session=("sessions", "min")).reset_index())
        sec.add_table(events, "Adverse events of this patient.", labels={"first_after_session": "first after session"})
        serious = events.loc[events["severity"].astype(str).isin(["moderate", "severe"])]
        sec.add_finding(f"{int(events['times'].sum())} adverse events recorded"
                        + (f", {int(serious['times'].sum())} moderate or severe." if not serious.empty
                           else ", all mild."))

    @section
    def gais(self, sec: Section) -> None:
        ratings = self._mine("assessments")
        ratings = ratings.loc[ratings["scale"] == "gais"] if not ratings.empty else ratings
        if ratings.empty:
            sec.add_note("No GAIS ratings were recorded for this patient.")
            return
        ratings = ratings.sort_values("assessed_at", kind="stable")
        ratings = ratings.assign(week=self._weeks(ratings["assessed_at"]))
        sec.add_table(ratings[["sessions", "week", "rater", "score"]], "GAIS ratings (1 very much improved … 5 worse).",
                      labels={"sessions": "after session", "score": "GAIS"})
        last = ratings.loc[ratings["rater"] == "clinician"].tail(1)
        if not last.empty:
            score = int(last["score"].iloc[0])
            meaning = contract.SCALES["gais"].meaning.split(", ")[score - 1][2:]
            sec.add_finding(f"Latest clinician GAIS: {score} ({meaning}).")
