"""Clinic benchmarking: funnel limits, a planted clinic effect, anonymity, the report end to end."""
from __future__ import annotations

import re
import warnings

import matplotlib
import nbformat
import numpy as np
import pandas as pd
import pytest
from pypdf import PdfReader
from typer.testing import CliRunner

import outcomes
from outcomes import models, simulation
from outcomes.cli import app
from outcomes.reports import benchmarking

matplotlib.use("Agg")
HOSTILE = "<i>Q$1$</i>"


def test_control_limits_on_known_numbers():
    # overall 10, sigma 20, n 100: sigma / sqrt(n) = 2; z = 1.959964 (95%), 3.090232 (99.8%)
    low, high = benchmarking.control_limits(10.0, 20.0, np.array([100.0, 400.0]), 0.95)
    assert low == pytest.approx([10 - 1.959964 * 2, 10 - 1.959964 * 1], abs=1e-6)
    assert high == pytest.approx([10 + 1.959964 * 2, 10 + 1.959964 * 1], abs=1e-6)
    low, high = benchmarking.control_limits(10.0, 20.0, 100.0, 0.998)
    assert (float(low), float(high)) == pytest.approx((3.819536, 16.180464), abs=1e-6)


def test_anonymous_labels_are_stable_and_do_not_follow_the_ids():
    ids = [f"C{i:02d}" for i in range(1, 31)]
    labels = benchmarking.anonymous_labels(ids)
    assert labels == benchmarking.anonymous_labels(list(reversed(ids)))  # order of appearance does not matter
    assert sorted(labels.values(), key=lambda v: (len(v), v))[-1] == "Clinic AD"  # 30 clinics: A..Z, AA..AD
    assert [labels[c] for c in ids[:4]] != ["Clinic A", "Clinic B", "Clinic C", "Clinic D"]
    assert benchmarking.letters(0) == "A" and benchmarking.letters(25) == "Z" and benchmarking.letters(26) == "AA"


def _planted(shift: float, clinic: str = "C03", n: int = 300):
    tables = simulation.demo_tables(n_patients=n, seed=5)
    out = tables["outcomes"]
    rows = (out["clinic_id"] == clinic) & (out["sessions"] > 0)
    out.loc[rows, ["improvement_pct", "improvement"]] += shift
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tables, models.fit_improvement(tables, "hydration", covariates=["concern", "clinic_id"],
                                              random_intercept=False)


@pytest.fixture(scope="module")
def planted():
    return _planted(-12.0)


def test_a_planted_clinic_falls_outside_the_998_limits_the_others_inside(planted):
    _, model = planted
    tidy = benchmarking.clinic_table(model, 3, show_clinic_ids=True)
    table = tidy.set_index("clinic")
    assert table.loc["C03", "position"] == "outside 99.8%" and table.loc["C03", "difference"] < 0
    assert (table.drop(index="C03")["position"] != "outside 99.8%").all()
    found = benchmarking.findings(tidy)
    assert any("C03" in f and "less than" in f and "99.8%" in f for f in found)


def test_without_the_plant_no_clinic_is_outside_the_998_limits():
    _, model = _planted(0.0)
    table = benchmarking.clinic_table(model, 3)
    assert (table["position"] != "outside 99.8%").all()
    assert "No clinic" in benchmarking.findings(table)[0]


def test_the_table_matches_the_model_and_the_formula(planted):
    _, model = planted
    table = benchmarking.clinic_table(model, 3, show_clinic_ids=True).set_index("clinic")
    means = model.marginal_means("clinic_id", at={"sessions": 3})
    n = model.rows_.groupby(model.rows_["clinic_id"].astype(str))["patient_id"].nunique()
    assert table["estimate"].to_dict() == pytest.approx(means["estimate"].to_dict())
    assert table["n_patients"].to_dict() == n.to_dict()
    overall = float((means["estimate"] * n).sum() / n.sum())
    assert table["overall"].iloc[0] == pytest.approx(overall)
    low, high = benchmarking.control_limits(overall, table["sigma"].iloc[0], table["n_patients"], 0.998)
    assert table["low_998"].to_numpy() == pytest.approx(np.asarray(low))


def test_small_clinics_are_neither_shown_nor_named(planted):
    tables, model = planted
    table = benchmarking.clinic_table(model, 3, min_cell=80)
    n = model.rows_.groupby(model.rows_["clinic_id"].astype(str))["patient_id"].nunique()
    assert len(table) == int((n >= 80).sum()) and table.attrs["suppressed"] == int((n < 80).sum()) > 0
    assert (table["n_patients"] >= 80).all()
    assert "not shown" in benchmarking.suppressed_text(table)
    assert not set(table["clinic"]) & set(n.index)  # anonymised by default
    with pytest.raises(ValueError, match="sessions must be"):
        benchmarking.clinic_table(model, model.max_sessions_ + 1)


def test_a_hostile_clinic_id_is_drawn_and_written_literally(planted):
    _, model = planted
    table = benchmarking.clinic_table(model, 3, show_clinic_ids=True)
    table.loc[0, "clinic"] = HOSTILE
    table.loc[0, "position"] = "outside 99.8%"
    ax = benchmarking.funnel_plot(table)
    ax.figure.canvas.draw()  # an unescaped '$...$' would be typeset as mathtext
    assert r"<i>Q\$1\$</i>" in [t.get_text() for t in ax.texts]
    text = " ".join(benchmarking.findings(table))
    assert HOSTILE not in text and r"\<i\>" not in text and "&lt;i&gt;Q\\$1\\$" in text


def test_plot_text_is_literal_one_line_and_bounded():
    from outcomes.escaping import plot_text

    assert plot_text("a$b$\nc") == r"a\$b\$ c"
    assert plot_text("x" * 100, max_length=10) == "x" * 9 + "…"
    fig = matplotlib.figure.Figure()
    fig.add_subplot().set_title(plot_text(r"$\frac{1}{$"))
    fig.canvas.draw()  # unescaped, this title stops the figure with a mathtext error


# --- the report, end to end -------------------------------------------------------------------

@pytest.fixture(scope="module")
def hostile_cohort(tmp_path_factory):
    """120 simulated patients (as tests/test_reports_notebooks.py), clinic C01 renamed to a hostile id."""
    root = tmp_path_factory.mktemp("bench")
    sim = outcomes.simulate(n_patients=120, seed=11)
    patients = sim.tables["patients"]
    column = next(c for c in patients.columns if c.strip().lower() in ("clinic_id", "clinic"))
    patients[column] = patients[column].astype(object).replace({"C01": HOSTILE})
    sim.write(root / "raw")
    outcomes.clean(root / "raw", root / "processed")
    return root


def _report(root, name: str, *params: str):
    result = CliRunner().invoke(app, ["report", "40-clinic-benchmark", *params, "--processed",
                                      str(root / "processed"), "--out", str(root / name)])
    assert result.exit_code == 0, result.output
    pdf = next((root / name / "latest").glob("*.pdf"))
    pages = [p.extract_text() for p in PdfReader(str(pdf)).pages]
    nb = nbformat.read(pdf.with_suffix(".ipynb"), as_version=4)
    return pages, nb


@pytest.mark.slow
def test_benchmark_report_runs_anonymised_with_the_banner_on_every_page(hostile_cohort):
    pages, _ = _report(hostile_cohort, "anonymous")
    assert len(pages) >= 2 and all("SYNTHETIC DEMO DATA" in p for p in pages)
    assert "Key findings" in pages[0] and "Figure 1." in pages[0]  # page 1 is the answer: findings and the funnel plot
    text = "\n".join(pages)
    flat = re.sub(r"\s+", "", text)
    assert "Clinic A" in text and "Key findings" in text and "Spiegelhalter" in text
    ids = set(pd.read_parquet(hostile_cohort / "processed" / "patients.parquet")["clinic_id"].astype(str))
    assert HOSTILE in ids
    assert not [c for c in ids if re.sub(r"\s+", "", c) in flat], "a clinic id in the anonymised PDF"
    for token in ("import ", "benchmarking.", "show.", "models."):
        assert token not in text


@pytest.mark.slow
def test_benchmark_report_names_clinics_only_when_asked_and_escapes_them(hostile_cohort):
    pages, nb = _report(hostile_cohort, "named", "-p", "show_clinic_ids=True")
    flat = re.sub(r"\s+", "", "\n".join(pages))
    assert HOSTILE in flat and "C02" in flat  # shown literally, as text
    html = "".join(o.get("data", {}).get("text/html", "") for c in nb.cells for o in c.get("outputs", []))
    assert "<i>Q" not in html and "&lt;i&gt;Q$1$&lt;/i&gt;" in html
