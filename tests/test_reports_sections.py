"""The reports' content, checked directly (no kernel, no papermill) on a small simulated cohort:
findings quote the right numbers, small groups are suppressed, no identifiers are shown, a
selection too small for the models says so in plain words."""
from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")
import pandas as pd
import pytest

import outcomes
from outcomes import privacy
from outcomes.reports.sections import Section
from outcomes.reports.sections.data_quality import DataQuality
from outcomes.reports.sections.patient_progress import PatientProgress, eligible_patients, expected_course
from outcomes.reports.sections.sessions_response import SessionsResponse

SESSIONS_RESPONSE = ("cover", "cohort", "improvement", "expected", "naive_vs_model", "plain_language", "plateau",
                     "response", "gais", "gee_check", "prediction")
DATA_QUALITY = ("cover", "inputs", "rejections", "photo_flags", "why_flagged", "baselines", "sessions")


@pytest.fixture(scope="module")
def processed(tmp_path_factory):
    root = tmp_path_factory.mktemp("sections")
    outcomes.simulate(n_patients=150, seed=11, out_dir=root / "raw")
    outcomes.clean(root / "raw", root / "processed")
    return root / "processed"


@pytest.fixture(scope="module")
def tables(processed):
    return outcomes.load_processed(processed)


def _run(report, names) -> dict[str, Section]:
    sections = {name: getattr(report, name)() for name in names}
    for sec in sections.values():
        sec.close()
    return sections


@pytest.fixture(scope="module")
def hydration(tables):
    report = SessionsResponse(tables, metric="hydration")
    return report, _run(report, SESSIONS_RESPONSE)


def _numbers(text: str) -> list[float]:
    return [float(x.replace(",", "")) for x in re.findall(r"-?\d[\d,]*\.?\d*", text)]


def _shown_values(sections: dict[str, Section]) -> set[str]:
    return {str(v) for sec in sections.values() for _, table in sec.tables for v in table.to_numpy().ravel()}


# -- data quality ---------------------------------------------------------------------------
def test_data_quality_accounts_for_every_row_without_showing_raw_values(processed, tables):
    report = DataQuality.load(processed)
    sections = _run(report, DATA_QUALITY)
    manifest = report.manifest["tables"]
    read = sum(t["read"] for t in manifest.values())
    rejected = sum(t["rejected"] for t in manifest.values())
    assert report.findings[0].startswith(f"{read:,} rows were read; {rejected:,} were rejected")
    reasons = sections["rejections"].table("Rejected rows")
    assert reasons["rows"].sum() == len(tables["rejected"]) == rejected
    assert "value" not in reasons.columns
    raw_values = set(tables["rejected"]["value"].dropna().astype(str)) - {""}
    assert raw_values and not raw_values & _shown_values(sections)  # rejected values stay in rejected.csv
    by_clinic = sections["photo_flags"].table("Share of follow-up measurements flagged")
    rows = tables["outcomes"].loc[tables["outcomes"]["sessions"] > 0]
    c01 = rows.loc[rows["clinic_id"] == "C01"]
    shown = by_clinic.set_index("clinic_id").loc["C01"]
    assert shown["measurements"] == len(c01)
    assert shown["pct_flagged"] == pytest.approx(100 * (~c01["qc_ok"]).mean(), abs=0.05)
    n_none = int(tables["outcomes"]["qc_reasons"].str.contains("no_baseline").groupby(
        tables["outcomes"]["patient_id"]).any().sum())
    assert any(f.startswith(f"{n_none:,} of 150 patients") for f in report.findings)


def test_data_quality_suppresses_small_clinics(tables):
    sections = _run(DataQuality(tables, min_cell=1000), ["photo_flags", "baselines"])
    flags = sections["photo_flags"].table("Share of follow-up measurements flagged")
    assert (flags[["n_patients", "measurements", "pct_flagged"]] == "<1000").all().all()
    assert (sections["baselines"].table("Patients with at least one metric")["pct"] == "<1000").all()


# -- sessions and response ------------------------------------------------------------------
def test_cohort_counts_suppressed_below_min_cell(hydration, tables):
    _, sections = hydration
    shown = sections["cohort"].table("Patients by age band and skin type").set_index("age_band")
    patients = tables["patients"]
    truth = pd.crosstab(outcomes.models.age_band(patients["age"]).astype(str),
                        patients["skin_type"].astype(str).replace("nan", "unknown"))
    small = 0
    for band, row in truth.iterrows():
        for skin, n in row.items():
            expected = "<5" if 0 < n < 5 else n
            assert shown.loc[band, skin] in (expected, privacy.COMPLEMENT_LABEL), (band, skin)
            small += 0 < n < 5
    assert small > 0  # the small cohort has small cells, so the rule was exercised


def test_models_leave_out_follow_ups_after_the_course(hydration, tables):
    report, _ = hydration
    done = report.model.rows_["patient_id"].map(tables["patients"].set_index("patient_id")["n_sessions"])
    assert (report.model.rows_["sessions"] < done).all()
    dropped = report.model.dropped_.set_index("reason")["rows"]
    assert dropped["follow-up after the course (fading)"] > 0


def test_expected_table_and_findings_quote_the_model(hydration):
    report, sections = hydration
    model, min_cell = report.model, report.min_cell
    table = sections["expected"].table("Expected improvement in hydration")
    after = [c for c in table.columns if c.startswith("after ")]
    assert after == [f"after {n}" for n in report.shown_sessions] and "after 3" in after
    expected = model.expected().set_index(["age_band", "skin_type", "sessions"])
    for row in table.to_dict("records"):
        if row["n_patients"] in ("<5", privacy.COMPLEMENT_LABEL):
            assert all(row[c] == row["n_patients"] for c in after)
            continue
        assert row["n_patients"] >= min_cell
        e = expected.loc[(row["age_band"], row["skin_type"], 3)]
        assert row["after 3"] == f"{e['estimate']:.1f} ({e['ci_low']:.1f} to {e['ci_high']:.1f})"
    assert (table["n_patients"] == "<5").any() and (table["n_patients"] != "<5").any()
    at3 = model.marginal().set_index("sessions").loc[3]
    finding = sections["expected"].findings[0]
    assert finding.startswith(f"After 3 sessions, hydration improved by {at3['estimate']:.1f}% on average "
                              f"(95% CI {at3['ci_low']:.1f} to {at3['ci_high']:.1f})")
    assert f"{model.n_patients_:,} patients modelled" in finding


def test_age_contrast_finding_and_small_skin_types_suppressed(hydration):
    report, sections = hydration
    model = report.model
    diff = model.contrast(model.frame(3, 55, report.common_skin), model.frame(3, 45, report.common_skin)).iloc[0]
    finding = sections["plain_language"].findings[0]
    assert f"gain {abs(diff['estimate']):.1f} points {'less' if diff['estimate'] < 0 else 'more'}" in finding
    assert f"(95% CI {diff['ci_low']:.1f} to {diff['ci_high']:.1f})" in finding
    table = sections["plain_language"].table("Difference in expected improvement")
    small = table["n_patients"] == "<5"
    assert (table.loc[small, ["estimate", "ci_low", "ci_high"]] == "<5").all().all()
    plateau = sections["plateau"].table("Plateau session")
    hidden = plateau["n_patients"] == "<5"
    assert hidden.any() and (plateau.loc[hidden, ["plateau", "interval"]] == "<5").all().all()


def test_every_section_shows_something_and_findings_come_in_order(hydration):
    report, sections = hydration
    assert not any(sec.notes for name, sec in sections.items() if name != "improvement")
    for name in ("improvement", "naive_vs_model", "response", "gais", "gee_check", "prediction"):
        assert sections[name].figures, name
    order = [f for name in SESSIONS_RESPONSE for f in sections[name].findings]
    assert report.findings == order and len(order) >= 6
    report.expected().close()  # re-running a cell replaces its findings, never repeats them
    assert report.findings == order
    box = report.key_findings()
    assert box.items[0][1][0] == order
    assert sections["response"].findings[0].endswith("improvement in hydration at some visit during their course.")


def test_cohort_reports_show_no_patient_ids(hydration, processed, tables):
    _, sections = hydration
    dq = _run(DataQuality.load(processed), DATA_QUALITY)
    ids = set(tables["patients"]["patient_id"].astype(str))
    for name, secs in (("sessions-response", sections), ("data-quality", dq)):
        for sec in secs.values():
            for caption, table in sec.tables:
                privacy.check_no_identifiers(table)
                assert not ids & {str(v) for v in table.to_numpy().ravel()}, (name, caption)
            text = " ".join(sec.findings + sec.texts + sec.notes)
            assert not [i for i in ids if i in text], name


def test_too_small_selection_says_so_in_plain_words(tables):
    report = SessionsResponse(tables, metric="wrinkles", min_sessions=99)
    sections = _run(report, SESSIONS_RESPONSE)
    assert report.selection.n_patients == 0 and "Selection: no patients" in sections["cover"].texts[0]
    assert "this report stops here" in sections["cohort"].notes[0]
    assert report.findings == ["Too few patients for an honest analysis of this selection: no patients with a "
                               "wrinkles measurement after a session."]
    for name in ("improvement", "expected", "naive_vs_model", "plain_language", "plateau", "response", "gee_check",
                 "prediction"):
        assert not sections[name].items, name
    assert "Too few GAIS assessments" in sections["gais"].notes[0]
    few = SessionsResponse(tables, metric="hydration", min_cell=50)  # 150 patients < 4 x 50
    assert not few.enough and few.cohort().notes[0].startswith(f"Only {few.n_measured} patients in this selection")
    none = report.cohort().notes[0]
    assert none.startswith("No patients in this selection have a wrinkles measurement"), none


def test_filters_that_cannot_match_are_errors(tables):
    with pytest.raises(ValueError, match="metric 'hydratoin' is not one of"):
        SessionsResponse(tables, metric="hydratoin")
    with pytest.raises(ValueError, match="clinic 'C99' is not in the data"):
        SessionsResponse(tables, clinic="C99")


# -- one patient ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def patient(tables):
    report = PatientProgress(tables, pick=1)
    return report, _run(report, ("cover", "course", "progress", "adverse_events", "gais"))


def test_patient_report_is_the_picked_patient_with_weeks_not_dates(patient, tables):
    report, sections = patient
    metrics = ["hydration", "wrinkles", "elasticity_r7", "brown_spots"]
    assert report.patient_id == eligible_patients(tables["outcomes"], metrics)[1]
    course = sections["course"].table("Sessions of this patient")
    assert "patient_id" not in course.columns and "session_date" not in course.columns
    mine = tables["sessions"].loc[tables["sessions"]["patient_id"] == report.patient_id]
    assert len(course) == len(mine) and course["week"].iloc[0] == 0
    events = tables["adverse_events"].loc[tables["adverse_events"]["patient_id"] == report.patient_id]
    assert sections["adverse_events"].findings[0].startswith(f"{len(events)} adverse events recorded")
    with pytest.raises(ValueError, match="has no outcome rows"):
        PatientProgress(tables, patient_id="P999999")


def test_patient_verdicts_use_the_prediction_band_and_unflagged_photos(patient, tables):
    report, sections = patient
    table = sections["progress"].table("Latest measurement against the expected course")
    out = tables["outcomes"]
    for row in table.itertuples(index=False):
        low, high = _numbers(row[5])  # "usual range"
        value = row.patient
        assert row.verdict == ("below" if value < low else "above" if value > high else "within")
        metric = row.metric.replace(" ", "_")
        measured = out.loc[(out["patient_id"] == report.patient_id) & (out["metric"] == metric)
                           & (out["view"] == "front") & (out["sessions"] == row.sessions)]
        good = measured.loc[measured["qc_ok"], "improvement_pct"]
        assert (good - value).abs().min() < 1e-9  # an unflagged photo of that visit
    assert len(sections["progress"].findings) == len(table)


def test_expected_course_prediction_band_is_wider_than_the_ci(tables):
    model = outcomes.models.fit_improvement(tables["outcomes"], "hydration", patients=tables["patients"])
    course = expected_course(model, 50, "III")
    assert list(course["sessions"]) == list(range(1, model.max_sessions_ + 1))
    assert (course["pred_low"] < course["ci_low"]).all() and (course["ci_low"] <= course["estimate"]).all()
    assert (course["estimate"] <= course["ci_high"]).all() and (course["ci_high"] < course["pred_high"]).all()
    # the band is for single measurements: most of the modelled patients' points fall inside it
    rows = model.rows_.loc[(model.rows_["skin_type"] == "III") & model.rows_["age"].between(45, 55)]
    band = rows.merge(course, on="sessions")
    inside = band["improvement_pct"].between(band["pred_low"], band["pred_high"]).mean()
    assert 0.85 < inside <= 1.0


def test_section_displays_tables_and_figures_through_show(hydration):
    report, _ = hydration
    shown = report.cohort().show()
    html = shown[1]._repr_html_()
    assert "<caption>Patients by age band and skin type" in html and ">&lt;5</td>" in html


# -- small cells across a whole report (issue 9, item 4) ------------------------------------------------------------
COUNT_COLUMNS = ("n_patients", "patients", "patients_left", "n_yes", "responded")


def _assert_no_small_count_shown(sections: dict[str, Section], min_cell: int) -> None:
    """No count column of any table shows 1..min_cell-1, and no sentence writes such a number before 'patients'."""
    for name, sec in sections.items():
        for caption, table in sec.tables:
            for col in [c for c in table.columns if c in COUNT_COLUMNS]:
                for v in table[col]:
                    assert isinstance(v, str) or v == 0 or v >= min_cell, (name, caption, col, v)
        for text in [*sec.texts, *sec.notes, *sec.findings]:
            for n in re.findall(r"(\d[\d,]*) (?:of (?:the )?\d[\d,]* )?patients", text):
                value = int(n.replace(",", ""))
                assert value == 0 or value >= min_cell or f"fewer than {value}" in text, (name, text)


def test_sessions_response_shows_no_small_count_anywhere(hydration):
    report, sections = hydration
    _assert_no_small_count_shown(sections, report.min_cell)
    plateau = sections["plateau"].table("Plateau session").set_index(["age_band", "skin_type"])["n_patients"]
    expected = sections["expected"].table("Expected improvement").set_index(["age_band", "skin_type"])["n_patients"]
    assert plateau.sort_index().equals(expected.loc[plateau.index].sort_index())  # same cells hidden in both


def test_data_quality_shows_no_small_count_anywhere(tables):
    report = DataQuality(tables)
    _assert_no_small_count_shown(_run(report, DATA_QUALITY), report.min_cell)


def test_report_classes_refuse_a_min_cell_under_five(tables):
    for make in (lambda: DataQuality(tables, min_cell=4), lambda: SessionsResponse(tables, min_cell=1),
                 lambda: PatientProgress(tables, pick=0, min_cell=2)):
        with pytest.raises(ValueError, match="at least 5"):
            make()


def test_patient_report_hides_the_expected_course_of_a_small_comparison_group(tables):
    report = PatientProgress(tables, pick=1, metrics="hydration", min_cell=1000)
    progress = report.progress()
    progress.close()
    assert not progress.tables and "too few" not in " ".join(progress.findings)
    assert "fewer than 1000 patients of this age band and skin type" in progress.notes[0]


def test_patient_report_of_a_95_year_old_shows_the_band_not_the_age(tables):
    picked = eligible_patients(tables["outcomes"], ["hydration"])[0]
    old = dict(tables)
    old["patients"] = tables["patients"].assign(age=tables["patients"]["age"].where(
        tables["patients"]["patient_id"] != picked, 95.0))
    report = PatientProgress(old, patient_id=picked, metrics="hydration")
    sections = _run(report, ("cover", "course"))
    words = " ".join([*sections["cover"].texts, *sections["course"].findings]).replace("\\", "")  # markdown escapes
    assert "55+" in words and "95" not in words.replace(picked, "")
