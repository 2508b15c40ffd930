"""The reports' helpers (tables, findings, patient), checked directly on a small simulated
cohort: sentences quote the numbers they describe, small groups are suppressed, no identifiers
are shown, a selection too small for the models says so in plain words. Ported from the
former Section tests (issue 10, point 9)."""
from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")
import pandas as pd
import pytest

import outcomes
from outcomes import models, privacy
from outcomes.reports import cohort, findings, fitting, patient, tables as T
from outcomes.reports.pdf import load_manifest


@pytest.fixture(scope="module")
def processed(tmp_path_factory):
    root = tmp_path_factory.mktemp("helpers")
    outcomes.simulate(n_patients=150, seed=11, out_dir=root / "raw")
    outcomes.clean(root / "raw", root / "processed")
    return root / "processed"


@pytest.fixture(scope="module")
def tables(processed):
    return outcomes.load_processed(processed)


@pytest.fixture(scope="module")
def hydration(tables):
    """What notebook 20 shows for hydration: {caption: table} and the sentences."""
    sel = cohort.select(tables)
    spec = {"include_flagged": False, "patients": sel.patients}
    model, notes = fitting.improvement_model(sel["outcomes"], "hydration", 5, **spec)
    cells, marginal, skin = T.model_cells(model), model.marginal(), T.common_skin(model)
    plateau = model.plateau(gain=2.0, n_draws=50)
    naive = T.naive_means(models.naive_means(sel["outcomes"], "hydration", **spec))
    response = models.fit_response(sel["outcomes"], "hydration", threshold=10, by="skin_type", **spec)
    shown = {
        "steps": T.selection_steps(sel.steps), "cohort": T.patients_by_band_and_skin(sel.patients),
        "expected": T.expected_table(model.expected(), cells, T.shown_sessions(model)),
        "comparisons": T.comparisons(model, 3), "plateau": T.plateau_table(plateau, cells),
        "medians": T.response_medians(response.medians_),
    }
    texts = [findings.headline(marginal, model.n_patients_, "hydration"),
             findings.who_was_modelled(sel.n_patients, model.n_patients_, "hydration"),
             findings.naive_vs_model(naive, marginal, "hydration"),
             findings.age_difference(shown["comparisons"].iloc[0], 3),
             findings.plateau(plateau, cells, skin, marginal.iloc[-1], 2.0),
             findings.responders(int(response.data_["responded"].sum()), len(response.data_), 10, "hydration"),
             *notes]
    return model, shown, texts, naive, marginal


COUNT_COLUMNS = ("n_patients", "patients", "patients_left", "n_yes", "responded")


def _assert_no_small_count_shown(shown: dict[str, pd.DataFrame], texts: list[str], min_cell: int = 5) -> None:
    """No count column of any table shows 1..min_cell-1, and no sentence writes such a number before 'patients'."""
    for caption, table in shown.items():
        for col in [c for c in table.columns if c in COUNT_COLUMNS]:
            for v in table[col]:
                assert isinstance(v, str) or v == 0 or v >= min_cell, (caption, col, v)
    for text in texts:
        for n in re.findall(r"(\d[\d,]*) (?:of (?:the )?\d[\d,]* )?patients", text):
            value = int(n.replace(",", ""))
            assert value == 0 or value >= min_cell or f"fewer than {value}" in text, text


def test_sessions_response_shows_no_small_count_anywhere(hydration):
    _, shown, texts, _, _ = hydration
    _assert_no_small_count_shown(shown, texts)
    plateau = shown["plateau"].set_index(["age_band", "skin_type"])["n_patients"]
    expected = shown["expected"].set_index(["age_band", "skin_type"])["n_patients"]
    assert plateau.sort_index().equals(expected.loc[plateau.index].sort_index())  # same cells hidden in both
    assert (shown["expected"]["n_patients"] == "<5").any()  # the rule was exercised


def test_data_quality_shows_no_small_count_anywhere(processed, tables):
    out = tables["outcomes"]
    shown = {"flags": T.flag_shares(out, ["clinic_id"]), "device": T.flag_shares(out, ["clinic_id", "device"]),
             "reasons": T.flag_reasons(out), "baseline": T.without_baseline(out),
             "gais": T.gais_last(models.gais_frame(tables["assessments"], tables["patients"]))}
    texts = [findings.without_baseline(out), findings.median_sessions(tables["patients"]),
             findings.gais_last(models.gais_frame(tables["assessments"], tables["patients"]))]
    _assert_no_small_count_shown(shown, texts)


def test_data_quality_accounts_for_every_row_without_showing_raw_values(processed, tables):
    counts = T.input_counts(load_manifest(processed))
    read, rejected = int(counts["read"].sum()), int(counts["rejected"].sum())
    assert findings.inputs(counts).startswith(f"{read:,} rows were read; {rejected:,} were rejected")
    reasons = T.rejection_reasons(tables["rejected"])
    assert reasons["rows"].sum() == len(tables["rejected"]) == rejected and "value" not in reasons.columns
    raw_values = set(tables["rejected"]["value"].dropna().astype(str)) - {""}
    assert raw_values and not raw_values & {str(v) for v in reasons.to_numpy().ravel()}


def test_data_quality_suppresses_small_clinics(tables):
    flags = T.flag_shares(tables["outcomes"], ["clinic_id"], 1000)
    assert (flags[["n_patients", "measurements", "pct_flagged"]] == "<1000").all().all()
    assert (T.without_baseline(tables["outcomes"], 1000)["pct"] == "<1000").all()


def test_headline_and_expected_table_quote_the_model(hydration):
    model, shown, texts, _, marginal = hydration
    at3 = marginal.set_index("sessions").loc[3]
    assert texts[0].startswith(f"After 3 sessions, hydration improved by {at3['estimate']:.1f}% on average "
                               f"(95% CI {at3['ci_low']:.1f} to {at3['ci_high']:.1f})")
    assert f"{model.n_patients_:,} patients modelled" in texts[0]
    expected = model.expected().set_index(["age_band", "skin_type", "sessions"])
    for row in shown["expected"].to_dict("records"):
        if isinstance(row["n_patients"], str):
            continue
        e = expected.loc[(row["age_band"], row["skin_type"], 3)]
        assert row["after 3"] == f"{e['estimate']:.1f} ({e['ci_low']:.1f} to {e['ci_high']:.1f})"


def test_fewer_patients_modelled_than_selected_is_explained(hydration):
    model, _, texts, _, _ = hydration
    assert texts[1].startswith(f"{model.n_patients_:,} patients of the 150 patients selected are modelled; the others")
    assert re.match(r"\d+ of \d+ patients \([\d.]+%\) with a measurement of hydration after a session of their course "
                    r"responded at some visit, a response being an improvement of at least 10%", texts[5]), texts[5]


def test_naive_sentence_follows_the_numbers():
    marginal = pd.DataFrame({"sessions": [1, 2], "estimate": [5.0, 10.0]})
    lower = findings.naive_vs_model(pd.DataFrame({"sessions": [1, 2], "estimate": [4.0, 7.0]}), marginal, "hydration")
    higher = findings.naive_vs_model(pd.DataFrame({"sessions": [1, 2], "estimate": [4.0, 13.0]}), marginal, "hydration")
    assert "understate the gain by 3.0 points (after 2 sessions: 7.0% against the model's 10.0%)" in lower
    assert "overstate the gain by 3.0 points" in higher
    assert "agree with the model" in findings.naive_vs_model(marginal, marginal, "hydration")


def test_plateau_claimed_only_when_the_overall_gain_is_credibly_above_zero():
    table = pd.DataFrame({"age_band": ["45-54"], "skin_type": ["III"], "plateau": [2.0], "ci_low": [1.0],
                          "ci_high": [3.0]})
    cells = pd.DataFrame({"age_band": ["45-54"], "skin_type": ["III"], "n_patients": [40]})
    sure = pd.Series({"sessions": 5, "estimate": 8.0, "ci_low": 3.0, "ci_high": 13.0})
    unsure = pd.Series({"sessions": 5, "estimate": 8.0, "ci_low": -1.0, "ci_high": 17.0})
    small = pd.Series({"sessions": 5, "estimate": 1.5, "ci_low": 0.5, "ci_high": 2.5})
    assert "levels off after 2 sessions (95% interval 1 to 3)" in findings.plateau(table, cells, "III", sure, 2.0)
    assert findings.plateau(table, cells, "III", unsure, 2.0).startswith("Whether the gain levels off cannot be told")
    assert findings.plateau(table, cells, "III", small, 2.0).startswith("Whether the gain levels off cannot be told")


def test_metrics_are_named_for_the_reader(hydration):
    _, _, texts, _, _ = hydration
    assert findings.name("brown_spots") == "brown spots" and findings.name("elasticity_r7").startswith("elasticity (R7")
    assert not [t for t in texts if "_" in t]


def test_too_small_selection_says_so_in_plain_words(tables):
    sel = cohort.select(tables, min_sessions=99)
    model, notes = fitting.improvement_model(sel["outcomes"], "wrinkles", 5, patients=sel.patients)
    assert model is None and notes[0].startswith("No patients in this selection have a measurement of wrinkles")
    assert "this report stops here" in notes[0]
    model, notes = fitting.improvement_model(tables["outcomes"], "hydration", 50)  # 150 patients < 4 x 50
    n = fitting.measured_patients(tables["outcomes"], "hydration")
    assert model is None and notes[0].startswith(f"Only {n} patients in this selection")


# -- one patient ----------------------------------------------------------------------------
METRICS = ["hydration", "wrinkles", "elasticity_r7", "brown_spots"]


@pytest.fixture(scope="module")
def one(tables):
    me = patient.load_patient(tables, METRICS, pick=1)
    return me, patient.progress(me, METRICS)


def test_patient_report_is_the_picked_patient_with_weeks_not_dates(one, tables):
    me, prog = one
    assert me.patient_id == patient.eligible_patients(tables["outcomes"], METRICS)[1]
    course = me.sessions()
    assert "patient_id" not in course.columns and "session_date" not in course.columns
    assert len(course) == (tables["sessions"]["patient_id"] == me.patient_id).sum() and course["week"].iloc[0] == 0
    events = tables["adverse_events"].loc[tables["adverse_events"]["patient_id"] == me.patient_id]
    assert any(f.startswith(f"{len(events)} adverse events recorded") for f in patient.findings(me, prog))
    assert me.gais()["score"].map(type).eq(int).all()  # whole grades
    with pytest.raises(ValueError, match="has no outcome rows"):
        patient.load_patient(tables, METRICS, patient_id="P999999")


def test_patient_summary_quotes_readings_percentile_and_unflagged_photos(one, tables):
    me, prog = one
    out = tables["outcomes"]
    names = {outcomes.contract.METRICS[m].label: m for m in METRICS}
    assert len(prog.summary) > 0
    for row in prog.summary.to_dict("records"):
        metric = names[row["metric"]]
        assert row["unit"] == outcomes.contract.METRICS[metric].unit
        measured = out.loc[(out["patient_id"] == me.patient_id) & (out["metric"] == metric)
                           & (out["view"] == "front") & (out["sessions"] == row["sessions"]) & out["qc_ok"]]
        hit = measured.loc[(measured["improvement_pct"] - row["patient"]).abs() < 1e-9]
        assert len(hit) and hit["baseline"].iloc[0] == row["baseline"] and hit["value"].iloc[0] == row["latest"]
        assert row["verdict"] == patient.verdict(row["percentile"], int(row["comparable patients"]), 5)
        assert int(row["comparable patients"]) >= 5 and row["compared with"].startswith("same concern")
    assert prog.personal, "a personal expected course is shown"


def test_patient_report_hides_the_expected_course_of_a_small_comparison_group(tables):
    me = patient.load_patient(tables, ["hydration"], pick=1)
    prog = patient.progress(me, ["hydration"], min_cell=1000)
    assert prog.panels["hydration"][0] is None and not prog.personal
    assert prog.summary["verdict"].tolist() == ["the data cannot tell (fewer than 1000 comparable patients)"]
    assert prog.summary["percentile"].isna().all()
    assert "fewer than 1000 patients of this age band and skin type" in prog.notes[0]
    with pytest.raises(ValueError, match="at least 5"):
        patient.progress(me, ["hydration"], min_cell=2)


def test_patient_report_of_a_95_year_old_shows_the_band_not_the_age(tables):
    picked = patient.eligible_patients(tables["outcomes"], ["hydration"])[0]
    old = dict(tables)
    old["patients"] = tables["patients"].assign(age=tables["patients"]["age"].where(
        tables["patients"]["patient_id"] != picked, 95.0))
    me = patient.load_patient(old, ["hydration"], patient_id=picked)
    words = " ".join([me.cover(), *patient.findings(me, patient.Progress({}, pd.DataFrame(), []))]).replace("\\", "")
    assert "55+" in words and "95" not in words.replace(picked, "")


def test_expected_course_prediction_band_is_wider_than_the_ci(tables):
    model = outcomes.models.fit_improvement(tables["outcomes"], "hydration", patients=tables["patients"])
    course = patient.expected_course(model, 50, "III")
    assert (course["pred_low"] < course["ci_low"]).all() and (course["ci_high"] < course["pred_high"]).all()


def test_cohort_tables_show_no_patient_ids(hydration, tables):
    _, shown, texts, _, _ = hydration
    ids = set(tables["patients"]["patient_id"].astype(str))
    for caption, table in shown.items():
        privacy.check_no_identifiers(table)
        assert not ids & {str(v) for v in table.to_numpy().ravel()}, caption
    assert not [i for i in ids if i in " ".join(texts)]


def test_patient_findings_name_the_comparison_group_only_where_it_is_wider_than_the_cover_says(one):
    """The cover names the comparison (same concern, treated area, age band and skin type where there
    are enough of them); a finding repeats it only for a wider group, so page 1 keeps room for its figure."""
    me, prog = one
    summary = prog.summary.reset_index(drop=True)
    assert len(summary) >= 2
    summary.loc[0, "compared with"] = patient.describe_step(patient.WIDENING[0])
    summary.loc[1, "compared with"] = patient.describe_step(patient.WIDENING[2])
    found = patient.findings(me, patient.Progress(prog.panels, summary, prog.notes))
    first, second = (next(f for f in found if f.startswith(str(summary.loc[i, "metric"]) + ":")) for i in (0, 1))
    assert "comparable patients." in first and "treated area" not in first
    assert "comparable patients (same concern and age band)." in second


def test_patient_findings_say_when_the_data_cannot_tell(tables):
    me = patient.load_patient(tables, ["hydration"], pick=1)
    found = patient.findings(me, patient.progress(me, ["hydration"], min_cell=1000))
    assert any("the data cannot tell (fewer than 1000 comparable patients)" in f for f in found)


def test_gee_sentence_quotes_both_models(hydration):
    model = hydration[0]
    gee = models.fit_gee(model.rows_, "improvement_pct", "sessions", "patient_id", covariates=("age_c", "skin_type"),
                         time_transform="spline")
    both = T.gee_and_mixed(model, gee, model.frame(list(range(1, model.max_sessions_ + 1)), 45, T.common_skin(model)))
    last = both.loc[both["sessions"] == model.max_sessions_].set_index("model")["estimate"]
    text = findings.gee_agreement(both)
    assert f"mixed model expects {last['mixed model']:.1f}%" in text and f"GEE {last['GEE']:.1f}%" in text


def test_select_by_treated_area_keeps_the_patients_whose_outcomes_name_it(tables):
    """area picks patients by the outcomes' treated area (their most frequent completed-session
    area), says so in the reader's words, and refuses an area the data does not hold."""
    treated = tables["outcomes"].drop_duplicates("patient_id").set_index("patient_id")["area"]
    sel = cohort.select(tables, concern="fine_lines", area="face")
    want = set(tables["patients"].loc[tables["patients"]["concern"] == "fine_lines", "patient_id"]) \
        & set(treated.index[treated == "face"])
    assert set(sel.patients["patient_id"]) == want and len(want) >= 5
    assert set(sel["sessions"]["patient_id"]) <= want
    assert sel.description == "concern fine lines; treated area face"
    assert list(sel.steps["step"]) == ["all patients", "concern fine lines", "treated area face"]
    with pytest.raises(ValueError, match="areas present: .*face"):
        cohort.select(tables, area="knee")
    by_concern = cohort.areas_by_concern(tables)
    assert by_concern["fine_lines"][0] == "face" and len(by_concern["fine_lines"]) >= 2
    assert by_concern["localized_fat"] == ["abdomen"]


def test_patient_notes_say_in_plain_words_why_a_simpler_cohort_model_was_used(tables, monkeypatch):
    real = models.fit_improvement

    def singular_when_rich(*args, **kwargs):
        m = real(*args, **kwargs)
        if kwargs.get("random_intercept", True) and kwargs.get("random_slope", True):
            m.singular_ = True
            m.singular_reason_ = "random effects perfectly correlated (corr(Intercept, np.log1p(sessions)) = +1.000)"
        return m

    monkeypatch.setattr(models, "fit_improvement", singular_when_rich)
    me = patient.load_patient(tables, ["hydration"], pick=1)
    notes = " ".join(patient.progress(me, ["hydration"]).notes)
    assert "cannot tell each patient's own starting level apart from their own rate" in notes
    assert "Intercept" not in notes and "singular" not in notes


def test_the_patients_sessions_say_their_status_in_words(tables):
    me = patient.load_patient(tables, ["hydration"], pick=1)
    sessions = tables["sessions"].copy()
    first = sessions.index[sessions["patient_id"] == me.patient_id][0]
    sessions.loc[first, "status"] = "no_show"
    me.tables = {**me.tables, "sessions": sessions}
    assert "no show" in set(me.sessions()["status"]) and "no_show" not in set(me.sessions()["status"])


def test_flagged_by_clinic_draws_the_tables_shares_without_small_clinics():
    """The data-quality report's headline figure: each clinic's flagged share as in its table,
    the all-clinics share as the dashed line, a clinic the table hides left out (C3: 2 patients; C1
    hidden so that C3's count cannot be worked out from the total)."""
    from outcomes.reports import figures

    rows = []
    for clinic, patients, flagged_every in (("C1", 6, 2), ("<b>$x$</b>", 8, 3), ("C2", 6, 5), ("C3", 2, 1)):
        for p in range(patients):
            for s in range(4):
                rows.append({"clinic_id": clinic, "patient_id": f"{clinic}-{p}", "sessions": s,
                             "qc_ok": not (s > 0 and (p * 4 + s) % flagged_every == 0)})
    outcomes_ = pd.DataFrame(rows)
    ax = figures.flagged_by_clinic(outcomes_, min_cell=5)
    table = T.flag_shares(outcomes_, ["clinic_id"], 5).set_index("clinic_id")
    shown = table.loc[table["pct_flagged"].map(lambda v: not isinstance(v, str)), "pct_flagged"]
    assert "<b>$x$</b>" in shown.index and "C3" not in shown.index  # what the table shows
    drawn = {t.get_text(): bar.get_width() for t, bar in zip(ax.get_yticklabels(), ax.patches)}
    assert drawn == pytest.approx({f"Clinic {c}".replace("$", "\\$"): float(v) for c, v in shown.items()})
    follow_up = outcomes_.loc[outcomes_["sessions"] > 0]
    assert ax.lines[0].get_xdata()[0] == pytest.approx(100 * (~follow_up["qc_ok"]).mean())
    matplotlib.pyplot.close(ax.figure)


@pytest.mark.parametrize("value, signed, text", [
    (0.493, False, "0.493"), (62.4, False, "62.4"), (8.25, True, "+8.25"), (-3.71, True, "-3.71"),
    (999.6, False, "1,000"), (1234.6, False, "1,235"), (0.0123, False, "0.0123"), (9.996, False, "10.0"),
])
def test_patient_readings_keep_three_digits_and_never_an_exponent(value, signed, text):
    """A melanin index of 999.6 AU read '1e+03' with the old '.3g'."""
    assert patient.reading(value, signed=signed) == text
