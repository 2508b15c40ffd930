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

import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from outcomes import config, contract, models, privacy
from outcomes.escaping import markdown_text

if TYPE_CHECKING:
    from outcomes.photos.index import Entry
from outcomes.reports import cohort as cohorts, fitting

MIN_SESSIONS_FOR_REPORT = 2
# On the cover of every patient report that shows a photo (issue 13, point 5).
IDENTIFIABLE = "Contains identifiable images: for the consultation only."
NO_PHOTOS = "No photos are available for this patient (no photos folder, or no photo of this patient in it)."
PANEL_VALUES = 7  # metric lines under each photo of a panel, at most (the 7 read off the pixels fit)


def eligible_patients(outcomes: pd.DataFrame, metrics: Sequence[str], view: str = contract.DEFAULT_VIEW) -> list[str]:
    """Patients with known age and skin type and a measured improvement after at least two
    different session counts in one of `metrics`, sorted by id (a stable choice for `pick`)."""
    rows = outcomes.loc[
        outcomes["metric"].isin(list(metrics)) & (outcomes["view"] == view) & (outcomes["sessions"] > 0)
        & outcomes["improvement"].notna() & outcomes["skin_type"].notna() & outcomes["age"].notna()
    ]
    counts = rows.groupby("patient_id")["sessions"].nunique()
    return sorted(counts.index[counts >= MIN_SESSIONS_FOR_REPORT].astype(str))


def choose_patient(outcomes: pd.DataFrame, metrics: Sequence[str], patient_id: str = "", pick: int = 0,
                   prefer: Collection[str] = ()) -> str:
    """`patient_id` if given (it must exist), else the `pick`-th eligible patient, those in
    `prefer` (patients with before/after photos, :func:`photo_patients`) first."""
    if patient_id:
        if not (outcomes["patient_id"].astype(str) == patient_id).any():
            raise ValueError(f"patient {patient_id!r} has no outcome rows in this processed data")
        return patient_id
    eligible = sorted(eligible_patients(outcomes, metrics), key=lambda pid: pid not in prefer)  # stable: by id
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


# Comparison groups, narrowest first: a step is left out when the patient's value is unknown
# (an unrecorded area), and the first step with at least min_cell other patients is used.
WIDENING = (("concern", "area", "band", "skin"), ("concern", "band", "skin"), ("concern", "band"), ("concern",))
TRAIT_WORDS = {"concern": "concern", "area": "treated area", "band": "age band", "skin": "skin type"}


def traits(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per patient: concern, treated area (the outcomes' ``area``: the most frequent of their
    completed sessions, if recorded; see :func:`outcomes.reports.cohort.treated_areas`), age band
    and skin type: what makes another patient comparable."""
    patients = tables["patients"].drop_duplicates("patient_id")
    out = pd.DataFrame({"patient_id": patients["patient_id"].astype(str).to_numpy(),
                        "concern": patients["concern"].astype("string").to_numpy(),
                        "band": models.age_band(patients["age"]).astype("string").to_numpy(),
                        "skin": patients["skin_type"].astype("string").to_numpy()})
    out["area"] = out["patient_id"].map(cohorts.treated_areas(tables)).astype("string")
    return out


def comparable(me: dict, others: pd.DataFrame, min_cell: int) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """The other patients (rows of `others`, with the columns of :func:`traits`) that share the
    narrowest step of WIDENING with at least `min_cell` patients, and that step; an empty frame
    and () when even the widest step has fewer."""
    others = others.loc[others["patient_id"].astype(str) != str(me["patient_id"])]
    for step in WIDENING:
        if any(pd.isna(me.get(k)) for k in step):
            continue
        same = pd.Series(True, index=others.index)
        for k in step:
            same &= others[k].astype("string") == str(me[k])
        group = others.loc[same.fillna(False).astype(bool)]
        if group["patient_id"].nunique() >= min_cell:
            return group, step
    return others.iloc[0:0], ()


def describe_step(step: Sequence[str]) -> str:
    """The comparison used, in words ("same concern, age band and skin type")."""
    words = [TRAIT_WORDS[k] for k in step]
    return "same " + (", ".join(words[:-1]) + " and " + words[-1] if len(words) > 1 else words[0])


def percentile(value: float, others: Sequence[float]) -> float:
    """Percent of `others` below `value` (ties count half): 10 means 9 in 10 did better."""
    others = np.asarray(others, dtype=float)
    return float(100 * ((others < value).sum() + 0.5 * (others == value).sum()) / len(others))


def verdict(pct: float | None, n: int, min_cell: int) -> str:
    """Plain words from the percentile among `n` comparable patients (improvement: higher is better)."""
    if pct is None or n < min_cell:
        return f"the data cannot tell (fewer than {min_cell} comparable patients)"
    for cut, tenths in ((10, 9), (20, 8)):
        if pct <= cut:
            return f"slower than {tenths} in 10 comparable patients"
        if pct >= 100 - cut:
            return f"faster than {tenths} in 10 comparable patients"
    return "about average"


def personal_course(model: models.ImprovementModel, own: pd.DataFrame, age: float, skin_type: str,
                    sessions: Sequence[int] | None = None, level: float = 0.95) -> pd.DataFrame:
    """This patient's expected course given their own measurements `own` (sessions,
    improvement): the fixed effects plus their predicted random effects (BLUP,
    b = D Z' V^-1 (y - X beta), V = Z D Z' + sigma^2 I). `ci_*`: the interval of their personal
    mean (fixed-effect uncertainty plus what their measurements leave open of b); `pred_*`: of
    one new measurement (adds the residual variance). Also returns `b` in `attrs["random_effects"]`."""
    from scipy.stats import norm

    mm = model.mixed_
    mine = model.frame(own["sessions"].to_numpy(), age, skin_type)
    x, z = mm.design_.build(mine).to_numpy(), mm.re_design_.build(mine).to_numpy()
    beta, d, s2 = mm.fixed_["estimate"].to_numpy(), mm.cov_re_.to_numpy(), mm.residual_var_
    v = z @ d @ z.T + s2 * np.eye(len(z))
    b = d @ z.T @ np.linalg.solve(v, own["improvement"].to_numpy(float) - x @ beta)
    left = d - d @ z.T @ np.linalg.solve(v, z @ d)  # covariance of b given the patient's measurements
    sessions = np.arange(1, model.max_sessions_ + 1) if sessions is None else np.asarray(sessions)
    new = model.frame(sessions, age, skin_type)
    x0, z0 = mm.design_.build(new).to_numpy(), mm.re_design_.build(new).to_numpy()
    est = x0 @ beta + z0 @ b
    var = np.einsum("ij,jk,ik->i", x0, mm.cov_fixed_.to_numpy(), x0) + np.einsum("ij,jk,ik->i", z0, left, z0)
    q = float(norm.ppf(0.5 + level / 2))
    out = pd.DataFrame({"sessions": sessions, "estimate": est, "ci_low": est - q * np.sqrt(var),
                        "ci_high": est + q * np.sqrt(var), "pred_low": est - q * np.sqrt(var + s2),
                        "pred_high": est + q * np.sqrt(var + s2)})
    out.attrs["random_effects"] = pd.Series(b, index=mm.cov_re_.index)
    return out


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

    def cover(self, identifiable: bool = False) -> str:
        """The report's title and first paragraph; with `identifiable` (the report shows photos
        of the patient) the warning that it is for the consultation only."""
        return (f"# Patient progress: {markdown_text(self.patient_id)}\n\n"
                f"One patient's course compared with patients of the same concern "
                f"({markdown_text(contract.CONCERN_NAMES.get(self.concern, self.concern))}), treated area, age band ({markdown_text(self.band)}) "
                f"and skin type ({markdown_text(self.skin or 'unknown')}) where there are enough of them, and with "
                f"the course expected for this patient from their own measurements so far."
                + (f"\n\n**{IDENTIFIABLE}**" if identifiable else ""))

    def sessions(self) -> pd.DataFrame:
        """This patient's sessions, in weeks since the first, without identifiers or dates."""
        course = self.mine("sessions").sort_values("session_date", kind="stable")
        course = course.assign(week=self.weeks(course["session_date"]))
        cols = [c for c in ("session_number", "week", "status", "product", "area", "volume_ml") if c in course]
        if "status" in course:  # the contract's codes in words: no_show -> no show
            course = course.assign(status=course["status"].astype("string").str.replace("_", " ", regex=False))
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
                 pick: int = 0, prefer: Collection[str] = ()) -> Patient:
    """The patient a report is about (`patient_id`, or the `pick`-th eligible one, `prefer` first)."""
    pid = choose_patient(tables["outcomes"], metrics, patient_id, pick, prefer)
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
    """Per metric: (expected course or None, the patient's points, why no course) and the
    personal course (or absent); the latest reading against comparable patients; notes."""

    panels: dict[str, tuple[pd.DataFrame | None, pd.DataFrame, str]]
    summary: pd.DataFrame
    notes: list[str]
    personal: dict[str, pd.DataFrame] = field(default_factory=dict)


def _others_at(out: pd.DataFrame, metric: str, sessions: int, exclude_flagged: bool, kinds: pd.DataFrame
               ) -> pd.DataFrame:
    """Every patient's improvement in `metric` after `sessions` sessions (one value each), with their traits."""
    rows = out.loc[(out["metric"] == metric) & (out["view"] == contract.DEFAULT_VIEW) & (out["sessions"] == sessions)
                   & out["improvement"].notna()]
    if exclude_flagged:
        rows = rows.loc[rows["qc_ok"].astype(bool)]
    values = rows.groupby(rows["patient_id"].astype(str))["improvement"].mean().rename("improvement")
    return kinds.merge(values, left_on="patient_id", right_index=True)


def progress(me: Patient, metrics: Sequence[str], exclude_flagged: bool = True,
             min_cell: int = config.MIN_CELL) -> Progress:
    """Per metric: the patient's baseline and latest reading, their percentile among comparable
    patients at the same session count, and their personal expected course (see :func:`personal_course`)."""
    min_cell = privacy.check_min_cell(min_cell)
    out = me.tables["outcomes"]
    measured = out.loc[(out["patient_id"] == me.patient_id) & out["metric"].isin(list(metrics))
                       & (out["view"] == contract.DEFAULT_VIEW) & (out["sessions"] > 0) & out["improvement"].notna()]
    spec = {"include_flagged": not exclude_flagged, "patients": me.tables["patients"]}
    kinds = traits(me.tables)
    mine = kinds.loc[kinds["patient_id"] == str(me.patient_id)].iloc[0].to_dict()
    panels, personal, summary, notes, too_few = {}, {}, [], [], []
    shown = [m for m in metrics if (measured["metric"] == m).any()] if me.skin is not None else []
    if not shown:
        notes.append("This patient has no measured improvement after a session in the chosen metrics (or an unknown "
                     "skin type), so there is nothing to compare.")
    for metric in shown:
        spec_m = contract.METRICS[metric]
        label = spec_m.label
        points = measured.loc[measured["metric"] == metric].sort_values("sessions", kind="stable")
        usable = points.loc[points["qc_ok"].astype(bool) | (not exclude_flagged)]
        if not usable.empty:
            latest = usable.iloc[-1]
            others = _others_at(out, metric, int(latest["sessions"]), exclude_flagged, kinds)
            group, step = comparable(mine, others, min_cell)
            n = int(group["patient_id"].nunique())
            pct = percentile(float(latest["improvement"]), group["improvement"]) if n >= min_cell else None
            summary.append({
                "metric": label, "unit": spec_m.unit, "sessions": int(latest["sessions"]),
                "visit": "after the course" if latest["sessions"] >= me.n_sessions else "during the course",
                "baseline": float(latest["baseline"]), "latest": float(latest["value"]),
                "change": float(latest["change"]), "patient": float(latest["improvement"]),
                "improvement unit": spec_m.improvement_unit,
                "percentile": pct, "comparable patients": n if n >= min_cell else f"fewer than {min_cell}",
                "compared with": describe_step(step) if step else "nobody (too few)",
                "verdict": verdict(pct, n, min_cell), "personal expected": ""})
        model, chosen, problems = fitting.first_converged(fitting.improvement_attempts(out, metric, **spec))
        if model is None:
            panels[metric] = (None, points, "cohort model unavailable")
            continue
        if problems:
            notes.append(f"{label}: the richest cohort model could not be fitted reliably "
                         f"({fitting.plain_reasons(problems)}); the expected "
                         f"course uses a simpler one ({markdown_text(chosen)}).")
        if comparison_group(model, me.band, me.skin) < min_cell:
            panels[metric] = (None, points, "too few comparable patients")
            too_few.append(label)
            continue
        panels[metric] = (expected_course(model, me.age, me.skin), points, "")
        own = usable.loc[usable["sessions"] < me.n_sessions]
        if own.empty:
            continue
        course = personal_course(model, own, me.age, me.skin)
        personal[metric] = course
        # what to expect after the next session (or, after the course, at the latest reading)
        last = int(usable["sessions"].iloc[-1])
        end = course.loc[course["sessions"] == min(last + (last < me.n_sessions), model.max_sessions_)]
        if summary and summary[-1]["metric"] == label and not end.empty:
            e = end.iloc[0]
            summary[-1]["personal expected"] = (f"{spec_m.amount(e['estimate'])} after {int(e['sessions'])} sessions "
                                                f"(95% interval {e['pred_low']:.1f} to {e['pred_high']:.1f})")
    if too_few:
        notes.append(f"{', '.join(too_few)}: the cohort model saw fewer than {min_cell} patients of this age band and "
                     "skin type, so no expected course is shown for it (it would describe a few recognisable people).")
    return Progress(panels, pd.DataFrame(summary), notes, personal)


def reading_table(prog: Progress) -> pd.DataFrame:
    """The summary as the reader sees it: readings with their units (3 significant digits), the
    percentile with the size of the comparison group, and the verdict."""
    if prog.summary.empty:
        return prog.summary
    r = prog.summary
    pct = [("–" if pd.isna(p) else f"{p:.0f} of 100") for p in r["percentile"]]
    return pd.DataFrame({
        "metric (unit)": r["metric"] + " (" + r["unit"] + ")", "after sessions": r["sessions"],
        "baseline": r["baseline"].map(reading), "latest": r["latest"].map(reading),
        "change": r["change"].map(lambda v: reading(v, signed=True)),
        # percent of the baseline, or the metric's own unit on an interval scale (CIELAB, ITA°)
        "improvement": [_signed(v, unit) for v, unit in zip(r["patient"], r["improvement unit"])],
        "percentile": pct, "comparable patients": r["comparable patients"].astype(str),
        "compared with": r["compared with"], "verdict": r["verdict"]})


def _signed(value: float, unit: str) -> str:
    """An improvement with its sign and unit: "+12.3%", "+3.1 degrees"."""
    return contract.in_unit(value, unit, "+.1f")


def reading(value: float, signed: bool = False) -> str:
    """A reading to three significant digits, never in exponent form: 0.493, 62.4, 999.6 -> 1,000
    (not 1e+03), 1234.6 -> 1,235."""
    if not np.isfinite(value) or value == 0:
        return f"{value:+g}" if signed and np.isfinite(value) else f"{value:g}"
    decimals = max(0, 2 - int(np.floor(np.log10(abs(float(f"{value:.3g}"))))))
    return f"{value:{'+' if signed else ''},.{decimals}f}"


def personal_table(prog: Progress) -> pd.DataFrame:
    """The personal expected course per metric, where one could be computed."""
    rows = prog.summary.loc[prog.summary["personal expected"] != ""] if not prog.summary.empty else prog.summary
    return rows[["metric", "personal expected"]] if not rows.empty else pd.DataFrame()


def findings(me: Patient, prog: Progress) -> list[str]:
    """The patient report's key findings: who, then each metric's latest reading against the usual range."""
    found = [f"Patient {markdown_text(me.patient_id)} ({markdown_text(me.band)}, skin type "
             f"{markdown_text(me.skin or 'unknown')}) completed {me.n_sessions} sessions."]
    if prog.summary.empty:
        why = sorted({why for expected, _, why in prog.panels.values() if expected is None and why})
        found.append("The data cannot tell how this patient compares with others: "
                     + ("; ".join(why) if why else "no measurement after a session in the chosen metrics") + ".")
    as_the_cover_says = describe_step(WIDENING[0])  # named in a finding only when a wider group was needed
    for r in prog.summary.to_dict("records"):
        group = "" if r["compared with"] == as_the_cover_says else f" ({r['compared with']})"
        where = (f", percentile {r['percentile']:.0f} among {r['comparable patients']} comparable patients{group}"
                 if r["percentile"] is not None and not pd.isna(r["percentile"]) else "")
        found.append(f"{markdown_text(r['metric'])}: {reading(r['baseline'])} to {reading(r['latest'])} "
                     f"{markdown_text(r['unit'])} after {r['sessions']} sessions, {r['visit']} "
                     f"({markdown_text(_signed(r['patient'], r['improvement unit']))}): "
                     f"{r['verdict']}{where}."
                     + (f" Personal expected course: {r['personal expected']}." if r["personal expected"] else ""))
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


# --- before/after photos ----------------------------------------------------------------
@dataclass
class Photos:
    """The before/after section: (PNG panel, caption) per view, and notes (why a view has none)."""

    panels: list[tuple[bytes, str]]
    notes: list[str]


def photo_patients(photos: str | os.PathLike | None) -> set[str]:
    """Patients with two or more photos of one view in the photos folder (`photos`, empty:
    config.PHOTOS_DIR): the ones a before/after panel can be shown for. Empty without a readable index."""
    from outcomes.photos.index import PhotoIndexError, read_index

    folder = Path(photos) if photos else config.PHOTOS_DIR
    try:
        entries = read_index(folder) if (folder / "index.csv").is_file() else []
    except PhotoIndexError:
        return set()
    counts = pd.Series([(e.patient_id, e.view) for e in entries], dtype=object).value_counts()
    return {pid for (pid, _), n in counts.items() if n >= 2}


def _taken_at(entry: Entry) -> pd.Timestamp | None:
    """The index's capture time, else the photo's EXIF DateTimeOriginal (None when neither; PhotoError
    when the file cannot be read)."""
    from outcomes.photos import images

    when = entry.taken_at or images.probe(images.read_bytes(entry.path)).taken_at
    return None if when is None else pd.Timestamp(when)


def _read_photo(entry: Entry) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
    """The photo as the photos command measures it (outcomes.photos.images: EXIF orientation
    applied, at its working size) and the index's region scaled alike."""
    from outcomes.photos import images

    loaded = images.decode(images.read_bytes(entry.path))
    return loaded.rgb, loaded.scale_box(entry.region)


def _chart_correction(rgb: np.ndarray):
    """The colour correction fitted to the chart in frame (outcomes.photos.colour), or None
    when no chart is found or too few of its patches are usable."""
    from outcomes.photos import colour

    reading = colour.detect_chart(rgb)
    correction = None if reading is None else colour.fit_correction(reading)
    return None if correction is None else correction.apply


def _photo_values(me: Patient, photo_ids: tuple[str, str], metrics: Sequence[str]) -> list[tuple[str, str]]:
    """Per metric measured on either photo: its text under each. The values read off the photo's own
    pixels (`outcomes photos`) come first, as they describe what the reader sees; then the
    report's metrics (an instrument reading that shares the photo id), then the rest."""
    out = me.tables["outcomes"]
    if "photo_id" not in out:
        return []
    rows = out.loc[(out["patient_id"] == me.patient_id) & out["photo_id"].astype(str).isin(photo_ids)]
    order = list(dict.fromkeys([*contract.PHOTO_MEASURED_METRICS, *metrics, *contract.METRICS]))
    lines = []
    for metric in [m for m in order if (rows["metric"] == m).any()][:PANEL_VALUES]:
        spec = contract.METRICS[metric]
        texts = []
        for pid in photo_ids:
            value = rows.loc[(rows["metric"] == metric) & (rows["photo_id"].astype(str) == pid), "value"]
            texts.append(f"{spec.label}: " + (f"{reading(float(value.iloc[0]))} {spec.unit}" if len(value) else "–"))
        lines.append((texts[0], texts[1]))
    return lines


def photo_panels(me: Patient, photos: str | os.PathLike | None, metrics: Sequence[str]) -> Photos:
    """Per view, the before/after panel of the patient's first and latest photo in the photos
    folder (`photos`, empty: config.PHOTOS_DIR): colour-corrected where a chart is found,
    aligned and cropped alike, with the photos' measured values under them."""
    from outcomes.photos.images import PhotoError
    from outcomes.photos.index import PhotoIndexError, read_index
    from outcomes.photos.panels import before_after

    folder = Path(photos) if photos else config.PHOTOS_DIR
    if not (folder / "index.csv").is_file():
        return Photos([], [NO_PHOTOS])
    try:
        entries = [e for e in read_index(folder) if e.patient_id == me.patient_id]
    except PhotoIndexError as exc:  # the message names index.csv, the row and the column, not the path
        return Photos([], [f"The photos' index.csv could not be read ({markdown_text(exc)}), so no photo is shown."])
    if not entries:
        return Photos([], [NO_PHOTOS])
    panels, notes = [], []
    views = sorted({e.view for e in entries}, key=lambda v: (list(contract.VIEWS) + [v]).index(v))
    for view in views:
        name = markdown_text(view.capitalize())  # sentences and captions start with it
        try:
            timed = [(when, e) for e in entries if e.view == view and (when := _taken_at(e)) is not None]
        except PhotoError:  # the message would name the file's path
            notes.append(f"{name} view: a photo file could not be read, so no before/after.")
            continue
        if len(timed) < 2:
            notes.append(f"{name} view: only one photo of this patient, so no before/after.")
            continue
        timed.sort(key=lambda pair: pair[0])
        (first_at, first), (last_at, last) = timed[0], timed[-1]
        try:
            (before, region), (after, _) = _read_photo(first), _read_photo(last)
            corrections = _chart_correction(before), _chart_correction(after)
            weeks = [int(round(w)) + 0 for w in me.weeks(pd.Series([first_at, last_at]))]
            png = before_after(before, after, correct_before=corrections[0], correct_after=corrections[1],
                               labels=(f"Baseline: week {weeks[0]}", f"Latest: week {weeks[1]}"),
                               values=_photo_values(me, (first.photo_id, last.photo_id), metrics),
                               region=region)
        except PhotoError:  # the message would name the file's path
            notes.append(f"{name} view: a photo file could not be read, so no before/after.")
            continue
        except ValueError as exc:  # photos that share too little of the frame
            notes.append(f"{name} view: the photos could not be shown side by side ({markdown_text(exc)}).")
            continue
        colour = ("both colour-corrected to the chart in frame" if all(c is not None for c in corrections)
                  else "not colour-corrected (no colour chart found in both): compare colours with care")
        panels.append((png, f"{name} view: the first photo (left) and the latest (right), the latest aligned onto "
                            f"the first (shift, rotation, scale) and both cropped alike; {colour}. Under each: its "
                            f"measured values; weeks since the first session."))
    return Photos(panels, notes)
