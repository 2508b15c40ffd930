"""Photo metrics in the registry: scale, interval-scale improvement, the photo QC flags (issue 13)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import outcomes
from outcomes import contract
from outcomes.cleaning import qc
from raw_factory import write_raw

ONE = [{"patient_id": "P1", "age": 45, "sex": "F", "skin_type": "III", "concern": "pigmentation"}]
BOOKED = [{"patient_id": "P1", "session_date": d, "status": "completed"} for d in ("2025-01-10", "2025-02-10")]
PHOTO = ("cielab_l", "cielab_a", "cielab_b", "ita", "spot_area", "line_density", "roughness")


def photo(day, metric, value, photo_id=None, **extra):
    return {"patient_id": "P1", "photo_id": photo_id or f"ph-{day}", "taken_at": day, "metric": metric,
            "value": value, **extra}


def clean(tmp_path, photos, **more):
    return outcomes.clean(write_raw(tmp_path / "raw", patients=ONE, sessions=BOOKED, photo_metrics=photos, **more))


def after(result, metric, sessions=1):
    o = result.tables["outcomes"]
    found = o[(o.metric == metric) & (o.sessions == sessions)]
    assert len(found) == 1, found
    return found.iloc[0]


# --- the registry -----------------------------------------------------------------------------
def test_photo_metrics_are_registered_with_scale_range_and_direction():
    for name in PHOTO:
        m = contract.METRICS[name]
        assert m.display and m.unit and m.better in ("lower", "higher")
    assert {n for n, m in contract.METRICS.items() if m.scale == "interval"} == {"cielab_l", "cielab_a", "cielab_b", "ita"}
    assert all(m.scale == "ratio" for n, m in contract.METRICS.items() if n not in ("cielab_l", "cielab_a", "cielab_b", "ita"))
    ranges = {n: (contract.METRICS[n].low, contract.METRICS[n].high) for n in ("cielab_l", "cielab_a", "cielab_b", "ita", "spot_area")}
    assert ranges == {"cielab_l": (0, 100), "cielab_a": (-128, 128), "cielab_b": (-128, 128), "ita": (-90, 90),
                      "spot_area": (0, 100)}
    assert contract.METRICS["ita"].better == "higher" and contract.METRICS["cielab_a"].better == "lower"



def _table_cells(doc: str, column: int) -> dict[str, str]:
    """{`key`: the text of `column`} of the markdown table rows of docs/`doc` keyed by a metric."""
    text = (Path(__file__).parents[1] / "docs" / doc).read_text(encoding="utf-8")
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in text.splitlines()
            if line.startswith("| `")]
    return {r[0].strip("`"): r[column] for r in rows if r[0].strip("`") in contract.METRICS}


def test_units_are_what_the_docs_say_the_measurement_is_in():
    """A unit is a word a practitioner can read in a table header: the photo metrics' units are
    those of their measurement (docs/photos.md; line density and roughness read "index" before),
    and the registry table of docs/data-contract.md shows the registry's units."""
    measured = _table_cells("photos.md", 2)
    assert set(measured) == set(PHOTO)
    for name in PHOTO:
        assert measured[name].startswith(contract.METRICS[name].unit), (name, measured[name])
    listed = _table_cells("data-contract.md", 3)
    assert set(listed) == set(contract.METRICS)
    assert {n: u.rstrip("¹²") for n, u in listed.items()} == {n: m.unit for n, m in contract.METRICS.items()}
    assert not any("*" in m.unit or "*" in m.label for m in contract.METRICS.values())  # markdown emphasis


def test_photo_metrics_come_after_the_instrument_metrics_so_the_default_grid_keeps_its_first_two():
    before = {"fine_lines": ("wrinkles", "elasticity_r7"), "skin_quality": ("hydration", "elasticity_r7"),
              "pigmentation": ("brown_spots", "melanin_index"), "acne_scars": ("texture", "pores"),
              "cellulite": ("elasticity_r7", "hydration"), "localized_fat": ("elasticity_r7", "hydration")}
    assert {c: ms[:2] for c, ms in contract.CONCERN_METRICS.items() if ms} == before
    assert {"spot_area", "ita"} <= set(contract.CONCERN_METRICS["pigmentation"])
    assert "cielab_a" in contract.CONCERN_METRICS["acne_scars"] and "line_density" in contract.CONCERN_METRICS["fine_lines"]
    assert "roughness" in contract.CONCERN_METRICS["skin_quality"]


def test_min_important_is_set_per_metric_in_the_units_improvement_is_counted_in():
    assert len({m.min_important for m in contract.METRICS.values()}) > 3  # not one threshold for all
    assert all(m.min_important > 0 for m in contract.METRICS.values())
    # a colour difference below about 2 CIELAB units is not visible; ITA in degrees
    assert contract.METRICS["cielab_a"].min_important == 2.0 and contract.METRICS["ita"].min_important == 4.0


def test_metrics_csv_may_give_a_scale(tmp_path):
    photos = [photo("2025-01-05", "Skin Tone", -2.0), photo("2025-02-05", "skin_tone", 1.0),
              photo("2025-01-05", "glow", 4.0), photo("2025-02-05", "glow", 5.0)]
    raw = write_raw(tmp_path / "raw", patients=ONE, sessions=BOOKED, photo_metrics=photos)
    pd.DataFrame([{"metric": "Skin Tone", "better": "higher", "low": -50, "high": 50, "scale": "interval"},
                  {"metric": "glow", "better": "higher", "low": 0, "high": 10, "scale": ""}]).to_csv(raw / "metrics.csv", index=False)
    result = outcomes.clean(raw)
    tone, glow = after(result, "skin_tone"), after(result, "glow")
    assert tone["improvement"] == pytest.approx(3.0) and np.isnan(tone["improvement_pct"])
    assert glow["improvement"] == pytest.approx(25.0) == glow["improvement_pct"]  # blank scale: ratio
    assert result.manifest["metric_registry"]["skin_tone"]["scale"] == "interval"
    (raw / "metrics.csv").write_text("metric,better,scale\nglow,higher,nominal\n")
    with pytest.raises(outcomes.raw_files.RawDataError, match="scale"):
        outcomes.clean(raw)



def test_metrics_csv_may_give_the_smallest_important_change_and_a_blank_one_is_noted(tmp_path):
    """min_important from metrics.csv reaches the registry in use (clean's, written to the manifest);
    absent or blank: the documented default, and data_quality.csv says so (it was 2, silently)."""
    from outcomes.cleaning.registry import load_registry

    photos = [photo("2025-01-05", "glow", 4.0), photo("2025-02-05", "glow", 5.0),
              photo("2025-01-05", "Skin Tone", -2.0), photo("2025-02-05", "skin_tone", 1.0)]
    raw = write_raw(tmp_path / "raw", patients=ONE, sessions=BOOKED, photo_metrics=photos)
    pd.DataFrame([{"metric": "glow", "better": "higher", "high": 10, "min_important": "8.5"},
                  {"metric": "Skin Tone", "better": "higher", "low": -50, "high": 50, "scale": "interval",
                   "min_important": " "}]).to_csv(raw / "metrics.csv", index=False)
    registry, _, _, notes = load_registry(raw / "metrics.csv")
    assert registry["glow"].min_important == 8.5 and registry["skin_tone"].min_important == contract.DEFAULT_MIN_IMPORTANT
    assert registry["hydration"].min_important == contract.METRICS["hydration"].min_important  # built-ins kept
    result = outcomes.clean(raw, tmp_path / "out")
    written = result.manifest["metric_registry"]
    assert written["glow"]["min_important"] == 8.5 and written["skin_tone"]["min_important"] == 5.0
    noted = pd.read_csv(tmp_path / "out" / "data_quality.csv")
    noted = noted.loc[noted["table"] == "metrics"]
    assert noted[["source_file", "column", "value", "first_source_row"]].values.tolist() == [
        ["metrics.csv", "min_important", "skin_tone", 3]]
    assert "default 5 is used" in noted["note"].iloc[0] and "own unit" in noted["note"].iloc[0]
    (raw / "metrics.csv").write_text("metric,better\nglow,higher\n")  # no column at all: the default, noted
    assert outcomes.clean(raw).notes.query("table == 'metrics'")["value"].tolist() == ["glow"]


@pytest.mark.parametrize("bad", ["0", "-3", "a lot", "inf"])
def test_a_bad_min_important_stops_clean_naming_file_row_and_column(tmp_path, bad):
    from typer.testing import CliRunner

    from outcomes.cli import app

    raw = write_raw(tmp_path / "raw", patients=ONE, sessions=BOOKED, photo_metrics=[photo("2025-01-05", "glow", 4.0)])
    pd.DataFrame([{"metric": "glow", "better": "higher", "min_important": 6},
                  {"metric": "shine", "better": "higher", "min_important": bad}]).to_csv(raw / "metrics.csv", index=False)
    result = CliRunner().invoke(app, ["clean", "--raw", str(raw), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    first = result.stderr.splitlines()[0]
    assert "metrics.csv" in first and "row 3" in first and "min_important" in first and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()

# --- interval-scale improvement -----------------------------------------------------------------
@pytest.mark.parametrize(("metric", "before", "later", "expected"), [
    ("ita", -5.0, 10.0, 15.0),  # higher is better, crossing zero: 15 degrees gained, not -300%
    ("cielab_a", 1.5, -0.5, 2.0),  # lower is better (less red): 2 a* units gained
    ("cielab_a", 0.0, 3.0, -3.0),  # a zero baseline is an ordinary value on an interval scale
    ("cielab_l", 60.0, 58.0, -2.0),
])
def test_an_interval_metric_is_compared_as_absolute_change_never_as_a_percentage(tmp_path, metric, before, later, expected):
    result = clean(tmp_path, [photo("2025-01-05", metric, before), photo("2025-02-05", metric, later)])
    r = after(result, metric)
    assert r["improvement"] == pytest.approx(expected) and r["change"] == pytest.approx(later - before)
    assert np.isnan(r["improvement_pct"])  # no percentage of an interval-scale baseline
    assert r["qc_ok"] and r["qc_reasons"] == ""  # in particular no baseline_zero
    assert after(result, metric, 0)["improvement"] == 0


def test_a_ratio_metric_keeps_its_percentage_as_improvement(tmp_path):
    result = clean(tmp_path, [photo("2025-01-05", "spot_area", 4.0), photo("2025-02-05", "spot_area", 3.0),
                              photo("2025-01-05", "wrinkles", 10.0), photo("2025-02-05", "wrinkles", 12.0)])
    assert after(result, "spot_area")["improvement_pct"] == pytest.approx(25.0) == after(result, "spot_area")["improvement"]
    assert after(result, "wrinkles")["improvement_pct"] == pytest.approx(-20.0) == after(result, "wrinkles")["improvement"]


def test_a_zero_baseline_of_a_ratio_metric_still_gives_no_improvement(tmp_path):
    result = clean(tmp_path, [photo("2025-01-05", "spot_area", 0.0), photo("2025-02-05", "spot_area", 1.0)])
    r = after(result, "spot_area")
    assert np.isnan(r["improvement"]) and np.isnan(r["improvement_pct"]) and r["qc_reasons"] == "baseline_zero"


# --- the photo QC flags --------------------------------------------------------------------------
def test_no_chart_flags_only_the_colour_metrics_of_a_photo_without_a_chart(tmp_path):
    photos = [photo("2025-01-05", m, v, chart="yes") for m, v in (("ita", 20.0), ("spot_area", 4.0))]
    photos += [photo("2025-02-05", m, v, chart="no") for m, v in (("ita", 25.0), ("spot_area", 3.0))]
    photos += [photo("2025-02-06", "cielab_a", 9.0, photo_id="x", chart=""), photo("2025-01-06", "cielab_a", 10.0,
                                                                                  photo_id="y", chart="yes")]
    result = clean(tmp_path, photos)
    assert after(result, "ita")["qc_reasons"] == "no_chart" and not after(result, "ita")["qc_ok"]
    assert after(result, "spot_area")["qc_ok"]  # not a colour metric: a missing chart does not matter
    assert after(result, "cielab_a")["qc_ok"]  # chart not recorded: no flag
    m = result.tables["measurements"].set_index(["photo_id", "metric"])
    assert m.loc[("ph-2025-02-05", "ita"), "chart"] == False and pd.isna(m.loc[("x", "cielab_a"), "chart"])  # noqa: E712


def test_a_baseline_photo_without_a_chart_flags_the_colour_rows_compared_with_it(tmp_path):
    result = clean(tmp_path, [photo("2025-01-05", "ita", 20.0, chart="no"), photo("2025-02-05", "ita", 25.0, chart="yes")])
    assert after(result, "ita", 0)["qc_reasons"] == "no_chart" and after(result, "ita")["qc_reasons"] == "baseline_qc"


@pytest.mark.parametrize(("clipped", "flagged"), [(0.0, False), (contract.QC_MAX_CLIPPED, False), (0.0201, True), (1.0, True)])
def test_exposure_flag_above_the_clipped_share(tmp_path, clipped, flagged):
    result = clean(tmp_path, [photo("2025-01-05", "roughness", 5.0), photo("2025-02-05", "roughness", 4.0, clipped=clipped)])
    assert after(result, "roughness")["qc_reasons"] == ("exposure" if flagged else "")


@pytest.mark.parametrize(("pose_error", "flagged"), [(0.0, False), (contract.QC_MAX_POSE_ERROR, False), (contract.QC_MAX_POSE_ERROR + 0.01, True)])
def test_pose_flag_above_the_pose_error_against_the_baseline(tmp_path, pose_error, flagged):
    result = clean(tmp_path, [photo("2025-01-05", "line_density", 5.0, pose_error=0.0),
                              photo("2025-02-05", "line_density", 4.0, pose_error=pose_error)])
    assert after(result, "line_density")["qc_reasons"] == ("pose_vs_baseline" if flagged else "")


def test_flags_keep_their_fixed_order_and_unusable_readings_are_noted_not_flagged(tmp_path):
    photos = [photo("2025-01-05", "ita", 20.0),
              photo("2025-02-05", "ita", 25.0, chart="no", clipped=0.5, pose_error=30.0, blur=0.9, makeup="yes"),
              photo("2025-01-05", "roughness", 5.0),
              photo("2025-02-05", "roughness", 4.0, photo_id="odd", chart="maybe", clipped="1.5", pose_error="-1")]
    result = clean(tmp_path, photos)
    assert after(result, "ita")["qc_reasons"] == "makeup;blur;no_chart;exposure;pose_vs_baseline"
    assert after(result, "roughness")["qc_reasons"] == ""
    m = result.tables["measurements"].set_index("photo_id")
    assert m.loc["odd", ["chart", "clipped", "pose_error"]].isna().all()
    notes = result.notes.query("table == 'photo_metrics'")
    assert {(n.column, n.value) for n in notes.itertuples()} == {("chart", "maybe"), ("clipped", "1.5"), ("pose_error", "-1")}
    assert list(qc.FLAGS[-3:]) == ["no_chart", "exposure", "pose_vs_baseline"]


def test_flagged_photo_rows_stay_out_of_the_models_by_default():
    from outcomes.models.improvement import model_rows

    rows = []
    for i in range(8):
        for s in range(3):
            bad = s == 2 and i < 3
            rows.append({"patient_id": f"P{i}", "metric": "ita", "view": "front", "sessions": s, "improvement": 2.0 * s,
                         "improvement_pct": np.nan, "age": 45.0, "skin_type": "III", "qc_ok": not bad,
                         "qc_reasons": "no_chart" if bad else ""})
    kept, dropped = model_rows(pd.DataFrame(rows), "ita")
    assert len(kept) == 8 * 2 - 3 and dict(zip(dropped["reason"], dropped["rows"]))["quality-flagged (qc_ok False)"] == 3
    assert kept["improvement"].notna().all()  # an interval metric's rows are not lost as "missing outcome"


# --- models and reports say which unit --------------------------------------------------------------
@pytest.fixture(scope="module")
def ita_model():
    """A cohort of an interval-scale metric: ITA° from about -3 to +3 at baseline (crossing zero),
    improvement in degrees gained; improvement_pct is empty, as clean leaves it."""
    import models_synthetic as ms
    from outcomes import models

    d = ms.cohort(150, seed=4, metric="ita")
    d["improvement"] = d["improvement_pct"] / 4  # degrees: at most 5 gained
    d["improvement_pct"] = np.nan
    d["baseline"] = np.resize([-3.0, -1.0, 1.0, 3.0], len(d))
    d["value"] = d["baseline"] + d["improvement"]
    return d, models.fit_improvement(d, "ita", interactions=(), time_transform="log1p")


def test_the_models_fit_an_interval_metrics_change_in_its_own_unit(ita_model):
    import models_synthetic as ms

    d, model = ita_model
    assert dict(zip(model.dropped_["reason"], model.dropped_["rows"]))["missing outcome"] == 0  # none lost for no %
    truth = (ms.expected(3, d.drop_duplicates("patient_id")["age"], d.drop_duplicates("patient_id")["skin_type"]) / 4).mean()
    at3 = model.marginal().set_index("sessions").loc[3]
    assert at3["ci_low"] - 0.3 < truth < at3["ci_high"] + 0.3 and 2 < at3["estimate"] < 5  # degrees, not percent
    assert model.plot().get_ylabel() == "expected improvement (degrees)"


def test_reports_name_the_unit_from_the_registry(ita_model):
    from outcomes.reports import findings

    _, model = ita_model
    marginal = model.marginal()
    headline = findings.headline(marginal, model.n_patients_, "ita")
    assert "degrees on average" in headline and "%" not in headline.split("(95% CI")[0]
    assert "not in percent" in findings.sessions_cover("ita", "all patients")
    assert "in percent" in findings.sessions_cover("hydration", "all patients")
    unsure = pd.Series({"sessions": 3, "estimate": 1.0, "ci_low": -0.5, "ci_high": 2.5})
    text = findings.plateau(pd.DataFrame(), pd.DataFrame(), "III", unsure, 4.0, metric="ita")
    assert "(1.0 degrees, 95% CI" in text and "(4 degrees)" in text and "not credibly above zero" in text
    assert "(2 points)" in findings.plateau(pd.DataFrame(), pd.DataFrame(), "III", unsure, 2.0)
    assert "gain 1.5 degrees more" in findings.age_difference(
        pd.Series({"estimate": 1.5, "ci_low": 0.5, "ci_high": 2.5}), 3, "ita")


def test_patient_reading_table_gives_each_improvement_with_its_unit():
    from outcomes.reports import patient

    summary = pd.DataFrame([
        {"metric": "Hydration", "unit": "AU (corneometer)", "sessions": 3, "visit": "during the course", "baseline": 40.0,
         "latest": 50.0, "change": 10.0, "patient": 25.0, "improvement unit": "%", "percentile": 50.0,
         "comparable patients": 12, "compared with": "same concern", "verdict": "about average", "personal expected": ""},
        {"metric": "Individual typology angle (ITA°)", "unit": "degrees", "sessions": 3, "visit": "during the course",
         "baseline": -2.0, "latest": 1.0, "change": 3.0, "patient": 3.0, "improvement unit": "degrees",
         "percentile": 50.0, "comparable patients": 12, "compared with": "same concern", "verdict": "about average",
         "personal expected": ""}])
    table = patient.reading_table(patient.Progress({}, summary, []))
    assert table["improvement"].tolist() == ["+25.0%", "+3.0 degrees"]


def test_the_plateau_uses_the_metrics_smallest_important_change_by_default(ita_model):
    _, model = ita_model
    assert (model.plateau(n_draws=20)["gain"] == contract.METRICS["ita"].min_important).all()
    assert (model.plateau(gain=1.0, n_draws=20)["gain"] == 1.0).all()



@pytest.mark.parametrize("metric", ["hydration", "ita"])  # a ratio metric (7%), an interval one (4 degrees)
def test_the_response_threshold_is_the_metrics_smallest_important_change_unless_given(ita_model, metric):
    """One number for every metric (10, before) meant 10 degrees of ITA°: the default is now each
    metric's smallest important change; an explicit threshold is used as given."""
    import models_synthetic as ms
    from outcomes import models

    d = ita_model[0] if metric == "ita" else ms.cohort(150, seed=4)
    after = d.loc[d["sessions"] > 0].groupby("patient_id")["improvement"].max()
    for given, used in [(None, contract.METRICS[metric].min_important), (2.5, 2.5)]:
        response = models.fit_response(d, metric, threshold=given, by=None)
        assert response.threshold == used
        responded = response.data_.set_index("patient_id")["responded"].astype(bool)
        assert (responded == (after.reindex(responded.index) >= used)).all()
        assert 0 < responded.sum() < len(responded)  # the threshold tells patients apart here


def test_the_report_says_what_a_response_is_in_the_metrics_unit():
    from outcomes.reports import findings

    said = findings.responders(30, 60, 7.0, "hydration")
    assert "a response being an improvement of at least 7%, the smallest important change in hydration" in said
    said = findings.responders(30, 60, 4.0, "ita")
    assert ("at least 4 degrees, the smallest important change in individual typology angle (ITA°)" in said
            and "%" not in said.split("responded")[1])
    said = findings.responders(30, 60, 10.0, "hydration")
    assert "at least 10%, as this report was asked (the smallest important change in hydration is 7%)" in said


def test_the_report_notebook_declares_zero_for_the_registrys_threshold():
    """papermill's inspect_notebook does not see a `float | None` annotation (its pattern has no
    "|"), so 0 stands for "the metric's smallest important change", as plateau_gain's 0 does."""
    from outcomes import config
    from outcomes.reports import params

    notebook = config.NOTEBOOKS_DIR / "20-sessions-response.ipynb"
    declared = params.declared_parameters(notebook)["response_threshold"]
    assert declared["type"] == "float" and float(declared["default"]) == 0.0
    assert params.check_parameters(notebook, {"response_threshold": "12.5"}) == {"response_threshold": 12.5}

def test_the_plateau_sentence_says_which_condition_failed():
    from outcomes.reports import findings

    empty = pd.DataFrame()
    unsure = pd.Series({"sessions": 3, "estimate": 9.0, "ci_low": -1.0, "ci_high": 19.0})
    small = pd.Series({"sessions": 3, "estimate": 5.0, "ci_low": 3.0, "ci_high": 7.0})  # hydration: 7 points matter
    assert "is not credibly above zero (its interval includes 0), let alone at least the smallest important change " \
           "(7 points)" in findings.plateau(empty, empty, "III", unsure, 7.0, metric="hydration")
    said = findings.plateau(empty, empty, "III", small, contract.METRICS["hydration"].min_important, metric="hydration")
    assert "is credibly above zero but smaller than the smallest important change (7 points)" in said


def test_every_quality_flag_has_words_for_the_patient_flow():
    from outcomes.reports import flow

    assert set(flow.FLAG_WORDS) == set(qc.FLAGS)
    assert flow.FLAG_WORDS["exposure"] == "over- or under-exposed photos (> 2% of the skin clipped)"
