"""The sessions-response report: how much one metric improves after each session, and for whom.

The practitioner's questions, answered honestly for one selection of patients: the expected
curve by age band and skin type (mixed model, so a patient with six visits does not outweigh
six patients), why per-session averages mislead, the plateau, sessions to a visible response,
GAIS responder rates, a GEE cross-check and how well one new patient can be predicted.

Follow-up visits after a patient's course (whose effect is fading) are left out of the
models (``patients=``): the question is what the n-th session brings. Every group statistic
over fewer than ``min_cell`` patients is suppressed. A selection too small for the models
says so in plain words and the later sections stay empty rather than fail.
"""
from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from outcomes import config, contract, models, plots, privacy
from outcomes.escaping import markdown_text
from outcomes.reports import cohort as cohorts, fitting
from outcomes.reports.sections import Report, Section, section

# The models need this many times `min_cell` patients measured after a session.
MIN_CELLS_FOR_MODELS = 4
REFERENCE_AGE, OLDER_AGE = 45, 55
GAIS_MIN_PATIENTS = MIN_CELLS_FOR_MODELS
PLATEAU_DRAWS = 200


def sessions_text(value: float) -> str:
    """A session count for a table, or "not reached" for inf."""
    return "not reached" if value == float("inf") else f"{value:.0f}"


def patients_by_band_and_skin(patients: pd.DataFrame, min_cell: int = config.MIN_CELL) -> pd.DataFrame:
    """Patients per age band (rows) and skin type (columns, 'unknown' included); 1..min_cell-1 shown as "<5"
    (and enough more as "x" that the selection's size cannot give them back)."""
    skin = patients["skin_type"].astype(str).replace("nan", "unknown")
    counts = pd.crosstab(models.age_band(patients["age"]), skin).rename_axis(index="age_band", columns=None)
    return privacy.suppress_counts(counts, min_cell).reset_index()


def expected_table(expected: pd.DataFrame, cells: pd.DataFrame, sessions: list[int],
                   min_cell: int = config.MIN_CELL) -> pd.DataFrame:
    """Expected improvement "estimate (ci_low to ci_high)" after each of `sessions`, one row per
    age band x skin type the model saw patients in, with their number; small groups suppressed."""
    wide = expected.merge(cells, on=["age_band", "skin_type"], how="inner")
    wide = wide.loc[wide["sessions"].isin(sessions)]
    wide["value"] = [f"{e:.1f} ({lo:.1f} to {hi:.1f})" for e, lo, hi in
                     zip(wide["estimate"], wide["ci_low"], wide["ci_high"])]
    table = wide.pivot_table(index=["age_band", "skin_type", "n_patients"], columns="sessions", values="value",
                             aggfunc="first", observed=True).reset_index().rename_axis(columns=None)
    after = {n: f"after {n}" for n in sessions}
    table = table.rename(columns=after)
    return privacy.suppress_small_cells(table, "n_patients", [c for c in after.values() if c in table], min_cell)


class SessionsResponse(Report):
    """The sections of notebooks/20-sessions-response.ipynb, for one metric and selection."""

    def __init__(
        self,
        tables: dict[str, pd.DataFrame],
        metric: str = "hydration",
        concern: str = "",
        clinic: str = "",
        date_from: str = "",
        date_to: str = "",
        min_sessions: int = 0,
        exclude_flagged: bool = True,
        response_threshold: float = 10.0,
        plateau_gain: float = 2.0,
        cv_folds: int = 3,
        min_cell: int = config.MIN_CELL,
    ) -> None:
        super().__init__()
        self.metric, self.label = cohorts.check_metric(metric), metric.replace("_", " ")
        self.selection = cohorts.select(tables, concern, clinic, date_from, date_to, min_sessions)
        self.outcomes, self.patients = self.selection["outcomes"], self.selection.patients
        self.exclude_flagged, self.response_threshold = exclude_flagged, response_threshold
        self.plateau_gain, self.cv_folds = plateau_gain, cv_folds
        self.min_cell = min_cell = privacy.check_min_cell(min_cell)
        out = self.outcomes
        measured = out.loc[(out["metric"] == metric) & (out["sessions"] > 0) & out["improvement_pct"].notna()]
        self.n_measured = int(measured["patient_id"].nunique())
        self.enough = self.n_measured >= MIN_CELLS_FOR_MODELS * min_cell

    # -- the fitted models, on first use -------------------------------------------------------
    def _spec(self) -> dict:
        return {"include_flagged": not self.exclude_flagged, "patients": self.patients}

    @functools.cached_property
    def _fit(self) -> tuple[models.ImprovementModel | None, str, list[str]]:
        out, metric, spec = self.outcomes, self.metric, self._spec()
        return fitting.first_converged(fitting.improvement_attempts(out, metric, **spec))

    @property
    def model(self) -> models.ImprovementModel | None:
        """The richest improvement model that converged (None: too few patients, or none did)."""
        return self._fit[0] if self.enough else None

    @functools.cached_property
    def cells(self) -> pd.DataFrame:
        """Patients behind each age band x skin type of the model (for suppression)."""
        rows = self.model.rows_
        return (rows.assign(age_band=models.age_band(rows["age"])).groupby(["age_band", "skin_type"], observed=True)
                ["patient_id"].nunique().rename("n_patients").reset_index())

    @functools.cached_property
    def common_skin(self) -> str:
        """The most common skin type among the modelled patients: the reference of the figures."""
        return str(self.model.rows_.drop_duplicates("patient_id")["skin_type"].mode().iloc[0])

    @functools.cached_property
    def marginal(self) -> pd.DataFrame:
        return self.model.marginal()

    @property
    def shown_sessions(self) -> list[int]:
        """Session counts the tables show: 1, 3 and the last the model reaches."""
        last = self.model.max_sessions_
        return sorted({n for n in (1, 3, last) if n <= last})

    # -- sections --------------------------------------------------------------------------------
    @section
    def cover(self, sec: Section) -> None:
        better = contract.METRICS[self.metric].better
        sec.add_text(
            f"# Sessions and response: {self.label}\n\n"
            f"How much {self.label} improves after each mesotherapy session, and whether it depends on age and "
            f"skin type. Improvement is the change from the patient's own baseline in percent, positive = "
            f"better ({better} {self.label} is better). Selection: "
            f"{markdown_text(self.selection.describe(self.min_cell))}."
        )

    @section
    def cohort(self, sec: Section) -> None:
        m = self.min_cell
        steps = self.selection.steps
        sec.add_table(steps.assign(patients_left=privacy.suppress_steps(steps["patients_left"], m)),
                      "How the selection was made: patients left after each filter.",
                      labels={"patients_left": "patients"})
        sec.add_table(patients_by_band_and_skin(self.patients, m),
                      f"Patients by age band and skin type (Fitzpatrick); counts under {m} shown as <{m}.",
                      labels={"age_band": "age band"})
        if not self.enough:
            words = privacy.count_text(self.n_measured, "patients", m)
            words = f"Only {words}" if self.n_measured >= m else words[0].upper() + words[1:]
            sec.add_note(f"{words} in this selection have a {self.label} measurement after a "
                         f"session. The models below need at least {MIN_CELLS_FOR_MODELS * m}, so this report stops "
                         "here: widen the selection (clinic, concern, dates) or wait for more data.", "warning")
            sec.add_finding(f"Too few patients for an honest analysis of this selection: "
                            f"{privacy.count_text(self.n_measured, 'patients', m)} with a {self.label} measurement "
                            "after a session.")

    @section
    def improvement(self, sec: Section) -> None:
        if not self.enough:
            return
        model, chosen, problems = self._fit
        if model is None:
            sec.add_note("The model could not be fitted reliably on this selection (it did not converge), so no "
                         "curves are shown. " + " ".join(map(markdown_text, problems)), "warning")
            return
        if problems:
            sec.add_note("The richest model could not be fitted reliably on this selection ("
                         + "; ".join(map(markdown_text, problems)) + f"); the report uses a simpler one "
                         f"({markdown_text(chosen)}).")
        if model.singular_:
            sec.add_note(f"Even this model is on the boundary ({markdown_text(model.singular_reason_)}): the data "
                         "cannot tell patients' own rates of improvement apart; treat its curves with care.", "warning")
        ax = model.plot(skin_type=self.common_skin)
        sec.add_figure(ax.figure, f"Expected improvement in {self.label} (%) after each session for skin type "
                       f"{markdown_text(self.common_skin)} (the most common), one line per age band, with 95% confidence "
                       "bands.")

    @section
    def expected(self, sec: Section) -> None:
        if self.model is None:
            return
        marks = self.shown_sessions
        sec.add_table(expected_table(self.model.expected(), self.cells, marks, self.min_cell),
                      f"Expected improvement in {self.label} (%, 95% CI) by age band and skin type after "
                      f"{', '.join(map(str, marks))} sessions. Groups with fewer than {self.min_cell} patients are "
                      "suppressed.",
                      labels={"age_band": "age band", "skin_type": "skin type", "n_patients": "patients"})
        at = self.marginal.loc[self.marginal["sessions"] == min(3, self.model.max_sessions_)].iloc[0]
        sec.add_finding(f"After {int(at['sessions'])} sessions, {self.label} improved by {at['estimate']:.1f}% on "
                        f"average (95% CI {at['ci_low']:.1f} to {at['ci_high']:.1f}) across the "
                        f"{privacy.count_text(self.model.n_patients_, 'patients', self.min_cell)} modelled.")

    @section
    def naive_vs_model(self, sec: Section) -> None:
        if self.model is None:
            return
        naive = models.naive_means(self.outcomes, self.metric, **self._spec())
        naive = naive.loc[naive["n"] >= self.min_cell]  # a mean of fewer patients is not shown (one row each)
        if naive.empty:
            return
        ax = plots.naive_vs_model(naive, self.marginal)
        sec.add_figure(ax.figure, f"Average {self.label} improvement of the measurements that exist at each session "
                       f"count (points; session counts with fewer than {self.min_cell} patients left out) against "
                       "the mixed model's average curve (line, 95% band).")
        last = int(min(naive["sessions"].max(), self.marginal["sessions"].max()))
        gap = float(naive.loc[naive["sessions"] == last, "estimate"].iloc[0]
                    - self.marginal.loc[self.marginal["sessions"] == last, "estimate"].iloc[0])
        if gap >= 1:
            sec.add_finding(f"Simple per-session averages overstate the gain after {last} sessions by {gap:.1f} points "
                            "(those who stayed longest responded best).")
        elif gap <= -1:
            sec.add_finding(f"Simple per-session averages understate the gain after {last} sessions by {-gap:.1f} "
                            "points.")

    @section
    def plain_language(self, sec: Section) -> None:
        model = self.model
        if model is None:
            return
        n_at, ref = min(3, model.max_sessions_), self.common_skin
        reference = model.frame(n_at, REFERENCE_AGE, ref)
        age_diff = model.contrast(model.frame(n_at, OLDER_AGE, ref), reference).iloc[0]
        cols = ["estimate", "ci_low", "ci_high"]
        rows = [{"comparison": f"age {OLDER_AGE} vs {REFERENCE_AGE} (skin type {ref})", **age_diff[cols].to_dict(),
                 "n_patients": model.n_patients_}]
        per_skin = model.rows_.drop_duplicates("patient_id")["skin_type"].value_counts()
        for skin in model.skin_types_:
            if skin != ref:
                diff = model.contrast(model.frame(n_at, REFERENCE_AGE, skin), reference).iloc[0]
                rows.append({"comparison": f"skin type {skin} vs {ref} (age {REFERENCE_AGE})", **diff[cols].to_dict(),
                             "n_patients": int(per_skin.get(skin, 0))})
        sec.add_table(privacy.suppress_small_cells(pd.DataFrame(rows), "n_patients", cols, self.min_cell),
                      f"Difference in expected improvement (percentage points) after {n_at} sessions.",
                      labels={"estimate": "difference", "ci_low": "95% CI low", "ci_high": "95% CI high",
                              "n_patients": "patients"})
        word = "less" if age_diff["estimate"] < 0 else "more"
        clear = age_diff["ci_low"] > 0 or age_diff["ci_high"] < 0
        sec.add_finding(f"A {OLDER_AGE}-year-old is expected to gain {abs(age_diff['estimate']):.1f} points {word} than "
                        f"a {REFERENCE_AGE}-year-old after {n_at} sessions (95% CI {age_diff['ci_low']:.1f} to "
                        f"{age_diff['ci_high']:.1f})" + ("." if clear else "; the data cannot rule out no difference."))
        random = model.random_["estimate"]
        z = model.mixed_.re_design_.build(reference).to_numpy()[0]  # the patient's own effects at n_at sessions
        spread = float(np.sqrt(z @ model.mixed_.cov_re_.to_numpy() @ z))
        sec.add_text(f"Patients differ a lot: beyond age and skin type, a patient's own improvement after {n_at} "
                     f"sessions typically sits about {spread:.1f} points above or below the average curve, and single "
                     f"measurements vary by about {float(random['sd(Residual)']):.1f} points from visit to visit "
                     "(photo and instrument noise).")

    @section
    def plateau(self, sec: Section) -> None:
        if self.model is None:
            return
        plateau = self.model.plateau(gain=self.plateau_gain, n_draws=PLATEAU_DRAWS)
        plateau = plateau.merge(self.cells, on=["age_band", "skin_type"], how="inner")  # groups with patients
        shown = plateau.assign(plateau=plateau["plateau"].map(sessions_text),
                               interval=plateau["ci_low"].map(sessions_text) + " to "
                               + plateau["ci_high"].map(sessions_text))
        shown = shown[["age_band", "skin_type", "n_patients", "plateau", "interval"]]
        sec.add_table(privacy.suppress_small_cells(shown, "n_patients", ["plateau", "interval"], self.min_cell),
                      f"Plateau session (one more session adds less than {self.plateau_gain:g} points) by age band "
                      "and skin type.",
                      labels={"age_band": "age band", "skin_type": "skin type", "n_patients": "patients"})
        main = plateau.loc[(plateau["skin_type"] == self.common_skin) & (plateau["n_patients"] >= self.min_cell)]
        if main.empty:
            return
        p = main.sort_values("n_patients", kind="stable").iloc[-1]
        group = f"For the largest group ({markdown_text(p['age_band'])}, skin type {markdown_text(self.common_skin)})"
        after = sessions_text(p["plateau"])
        if after == "not reached":
            sec.add_finding(f"{group} the gain has not levelled off within the sessions observed.")
        else:
            sec.add_finding(f"{group} the gain levels off after {after} session{'' if after == '1' else 's'} "
                            f"(95% interval {sessions_text(p['ci_low'])} to {sessions_text(p['ci_high'])}).")

    @section
    def response(self, sec: Section) -> None:
        if self.model is None:
            return
        threshold, m = self.response_threshold, self.min_cell
        response = models.fit_response(self.outcomes, self.metric, threshold=threshold, by="skin_type",
                                       **self._spec())
        big = response.medians_.loc[response.medians_["patients"] >= m, "group"]
        curves = response.curves_.loc[response.curves_["group"].isin(big)]
        if not curves.empty:  # a curve of fewer than min_cell patients shows each one's response
            ax = plots.survival_curves(curves, title=f"{self.metric}: sessions until improvement ≥ {threshold:g}%")
            sec.add_figure(ax.figure, f"Share of patients not yet showing a {threshold:g}% improvement in "
                           f"{self.label}, by number of sessions and skin type (skin types with fewer than {m} "
                           "patients left out).")
        medians = response.medians_.copy()
        for col in ("median_sessions", "ci_low", "ci_high"):
            medians[col] = medians[col].map(sessions_text)
        medians = privacy.suppress_rates(medians, "patients", "responded",
                                         other_cols=["median_sessions", "ci_low", "ci_high"], min_cell=m)
        sec.add_table(medians, f"Median number of sessions to a {threshold:g}% improvement in {self.label}, with 95% "
                      "CI, by skin type ('not reached': fewer than half got there within the sessions observed).",
                      labels={"group": "skin type", "median_sessions": "median sessions", "ci_low": "95% CI low",
                              "ci_high": "95% CI high"})
        share = privacy.share_text(int(response.data_["responded"].sum()), len(response.data_), "patients", m)
        sec.add_finding(f"{share[0].upper()}{share[1:]} reached a {threshold:g}% improvement in {self.label} at "
                        "some visit during their course.")

    @section
    def gais(self, sec: Section) -> None:
        assessments = self.selection.tables.get("assessments")
        gais = models.gais_frame(assessments, self.patients) if assessments is not None else pd.DataFrame()
        if self.model is None or gais.empty or gais["patient_id"].nunique() < GAIS_MIN_PATIENTS * self.min_cell:
            sec.add_note("Too few GAIS assessments in this selection to report responder rates.")
            return
        gais["responder"] = gais["score"] <= contract.GAIS_RESPONDER_MAX
        last = gais.sort_values("sessions", kind="stable").groupby("patient_id").tail(1)
        sec.add_table(privacy.rate_summary(last, "skin_type", "responder", min_cell=self.min_cell),
                      "Patients rated improved or better (GAIS 1-3) at their last assessment, by skin type.",
                      labels={"skin_type": "skin type", "n_yes": "responders", "pct": "% responders"})
        ordinal = models.fit_ordinal(gais, group="patient_id")
        sec.add_figure(ordinal.plot().figure, "Modelled probability of a GAIS of 3 (improved) or better by number of "
                       "sessions (95% CI).")
        share = privacy.share_text(int(last["responder"].sum()), len(last), "patients", self.min_cell)
        sec.add_finding(f"{share[0].upper()}{share[1:]} were rated improved or better (GAIS 1-3) by the clinician at "
                        "their last assessment.")

    @section
    def gee_check(self, sec: Section) -> None:
        model = self.model
        if model is None:
            return
        gee = models.fit_gee(model.rows_, "improvement_pct", "sessions", "patient_id",
                             covariates=("age_c", "skin_type"), time_transform="spline")
        grid = model.frame(list(range(1, model.max_sessions_ + 1)), REFERENCE_AGE, self.common_skin)
        sessions = grid["sessions"].to_numpy()
        both = pd.concat([model.predict(grid).assign(model="mixed model", sessions=sessions),
                          gee.predict(grid.drop(columns=["age"])).assign(model="GEE", sessions=sessions)])
        ax = plots.expected_curves(both, hue="model", title=f"{self.label}: mixed model and GEE, age "
                                   f"{REFERENCE_AGE}, skin type {self.common_skin}")
        sec.add_figure(ax.figure, f"The two models' average curves for a {REFERENCE_AGE}-year-old of the most common "
                       "skin type (95% bands).")
        last = both.loc[both["sessions"] == sessions.max()].set_index("model")["estimate"]
        sec.add_text(f"After {sessions.max()} sessions the mixed model expects {last['mixed model']:.1f}% and GEE "
                     f"{last['GEE']:.1f}%.")

    @section
    def prediction(self, sec: Section) -> None:
        if self.model is None:
            return
        out, metric, folds, spec = self.outcomes, self.metric, self.cv_folds, self._spec()
        predictive, _, problems = fitting.first_converged([
            ("compared with the mixed model", lambda: models.fit_predictive(out, metric, n_splits=folds, **spec)),
            ("without the mixed model", lambda: models.fit_predictive(out, metric, n_splits=folds,
                                                                        compare_mixed=False, **spec)),
        ])
        if predictive is None:
            sec.add_note("The predictive models could not be fitted on this selection. "
                         + " ".join(map(markdown_text, problems)), "warning")
            return
        if problems:
            sec.add_note("The mixed model could not be fitted in every cross-validation fold of this selection, so it "
                         "is left out of the comparison.")
        scores = predictive.summary.reset_index().rename(columns={"index": "model"})
        sec.add_table(scores, "Prediction error on unseen patients: mean absolute error (MAE, points) and R², mean and "
                      f"standard deviation over {folds} cross-validation folds.",
                      labels={"mae": "MAE", "mae_sd": "MAE sd", "r2": "R²", "r2_sd": "R² sd"}, decimals=2)
        sec.add_figure(predictive.plot().figure, "Mean absolute error of each model in each cross-validation fold "
                       "(grouped by patient).")
        best = scores.sort_values("mae", kind="stable").iloc[0]
        sec.add_finding(f"Predicting one new patient's {self.label} improvement is hard: the best model "
                        f"({markdown_text(best['model'])}) is off by {best['mae']:.1f} points on average "
                        f"(R² {best['r2']:.2f}).")
