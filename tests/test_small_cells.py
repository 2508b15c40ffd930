"""Issue 9, item 4: spreadsheet-safe CSVs, complementary small-cell suppression, min_cell's floor, ages 90+."""
from __future__ import annotations

import csv

import pandas as pd
import pytest
from typer.testing import CliRunner

import outcomes
from outcomes import config, privacy
from outcomes.cli import app
from raw_factory import PATIENTS, SESSIONS, write_raw

FORMULA_ID = '=HYPERLINK("http://x","s")'
FORMULA_DATE = "+cmd|' /C calc'!A0"


def _cells(path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_rejected_and_data_quality_csv_cells_cannot_run_as_formulas(tmp_path):
    patients = PATIENTS + [dict(PATIENTS[0], patient_id="P3", age=-3.5), dict(PATIENTS[0], patient_id="P4", sex="@SUM(1)")]
    sessions = SESSIONS + [dict(SESSIONS[0], patient_id=FORMULA_ID), dict(SESSIONS[0], session_date=FORMULA_DATE)]
    raw = write_raw(tmp_path / "raw", patients=patients, sessions=sessions)
    result = outcomes.clean(raw, tmp_path / "out")
    rejected = {r["column"]: r["value"] for r in _cells(tmp_path / "out" / "rejected.csv")}
    assert rejected["patient_id"] == "'" + FORMULA_ID
    assert rejected["session_date"] == "'" + FORMULA_DATE
    assert rejected["age"] == "-3.5"  # a genuine number stays a number
    notes = {r["column"]: r["value"] for r in _cells(tmp_path / "out" / "data_quality.csv")}
    assert notes["sex"] == "'@SUM(1)"
    for name in ("rejected.csv", "data_quality.csv"):  # no cell of any column starts like a formula
        for row in _cells(tmp_path / "out" / name):
            for value in row.values():
                assert not value.startswith(("=", "+", "@", "\t", "\r")) and (
                    not value.startswith("-") or value.lstrip("-").replace(".", "", 1).isdigit()), (name, value)
    # the Python result keeps the true values; only the file a spreadsheet opens is escaped
    assert FORMULA_ID in set(result.rejected["value"])


def test_spreadsheet_safe_escapes_text_columns_only():
    frame = pd.DataFrame({"text": ["=1+1", "-2", "ok", None, "\tx"], "n": [-1, 2, 3, 4, 5],
                          "cat": pd.Categorical(["@a", "b", "b", "b", "b"])})
    safe = outcomes.processed_folder.spreadsheet_safe(frame)
    assert safe["text"].tolist()[:3] == ["'=1+1", "-2", "ok"] and pd.isna(safe["text"][3])
    assert safe["text"][4] == "'\tx" and safe["cat"][0] == "'@a"
    assert safe["n"].tolist() == [-1, 2, 3, 4, 5]
    assert frame["text"][0] == "=1+1"  # the input is not changed


def test_report_refuses_min_cell_under_five_with_exit_2(tmp_path):
    for notebook in ("10-data-quality", "20-sessions-response", "30-patient-progress"):
        run = CliRunner().invoke(app, ["report", str(config.NOTEBOOKS_DIR / f"{notebook}.ipynb"), "-p", "min_cell", "1",
                                       "--processed", str(tmp_path / "none"), "--out", str(tmp_path / "out")])
        assert run.exit_code == 2, (notebook, run.output)
        assert "min_cell must be a whole number of at least 5" in run.output
    assert not (tmp_path / "out").exists()


# -- property: no displayed table or sentence gives back a count from 1 to min_cell - 1 ---------------------------
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from outcomes.reports.tables import session_status  # noqa: E402
from outcomes.reports.tables import patients_by_band_and_skin  # noqa: E402

MIN_CELLS = st.sampled_from([5, 7])
SMALLISH = st.integers(0, 12) | st.integers(0, 40)
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _shown(v: object) -> bool:
    return not isinstance(v, str)


def _check_line(true: list[float], shown: list[object], m: int, what: str) -> None:
    """Every shown count is true and 0 or >= m; the hidden ones never add up to 1..m-1 (the total is known)."""
    hidden = 0
    for t, s in zip(true, shown):
        if _shown(s):
            assert s == t and (t == 0 or t >= m), (what, true, shown)
        else:
            assert s in (f"<{m}", privacy.COMPLEMENT_LABEL), (what, s)
            hidden += t
    # a total under m is itself never written out (count_text), so only then may the hidden cells add up to it
    assert not 0 < hidden < m or sum(true) < m, (what, "total minus shown gives back", hidden, true, shown)


def _numbers_in(text: str) -> list[float]:
    import re

    return [float(x.replace(",", "")) for x in re.findall(r"\d[\d,]*(?:\.\d+)?(?!\d*%)", text)]


@PROPERTY
@given(groups=st.lists(st.tuples(SMALLISH, st.floats(0, 1)), min_size=1, max_size=6), m=MIN_CELLS)
def test_rate_tables_and_their_sentence_never_give_a_small_count(groups, m):
    rows = []
    for g, (n, share) in enumerate(groups):
        yes = round(n * share)
        rows += [{"group": f"g{g}", "patient_id": f"g{g}-{i}", "flag": i < yes} for i in range(n)]
    data = pd.DataFrame(rows, columns=["group", "patient_id", "flag"])
    if data.empty:
        return
    table = privacy.rate_summary(data, "group", "flag", min_cell=m)
    truth = data.groupby("group")["flag"].agg(["size", "sum"]).loc[table["group"]]
    n, yes = truth["size"].tolist(), truth["sum"].tolist()
    _check_line(n, table["n_patients"].tolist(), m, "n")
    _check_line(yes, table["n_yes"].tolist(), m, "yes")
    no_shown = [a - b if _shown(a) and _shown(b) else "x" for a, b in zip(table["n_patients"], table["n_yes"])]
    _check_line([a - b for a, b in zip(n, yes)], no_shown, m, "n - yes")
    for pct, count, size in zip(table["pct"], table["n_yes"], table["n_patients"]):
        assert _shown(pct) == (_shown(count) and _shown(size) and size > 0) or not _shown(count), (pct, count)
    sentence = privacy.share_text(sum(yes), sum(n), "patients", m)
    for number in _numbers_in(sentence):
        assert number == m or number == 0 or number >= m, sentence
    if any(0 < c < m for c in (sum(yes), sum(n) - sum(yes), sum(n))):
        assert "%" not in sentence


@PROPERTY
@given(sizes=st.lists(SMALLISH, min_size=1, max_size=8), m=MIN_CELLS)
def test_group_means_are_hidden_with_their_group(sizes, m):
    data = pd.DataFrame([{"group": f"g{g}", "patient_id": f"g{g}-{i}", "value": float(i)}
                         for g, n in enumerate(sizes) for i in range(n)], columns=["group", "patient_id", "value"])
    if data.empty:
        return
    table = privacy.group_summary(data, "group", "value", min_cell=m)
    truth = data.groupby("group")["patient_id"].nunique().loc[table["group"]].tolist()
    _check_line(truth, table["n_patients"].tolist(), m, "n")
    for _, row in table.iterrows():
        if not _shown(row["n_patients"]):
            assert not any(_shown(row[c]) for c in ("mean", "ci_low", "ci_high")), row


@PROPERTY
@given(ages=st.lists(st.integers(16, 100), min_size=1, max_size=60),
       skins=st.lists(st.sampled_from(["I", "II", "III", "IV", None]), min_size=60, max_size=60), m=MIN_CELLS)
def test_age_band_by_skin_type_crosstab_with_the_selection_size(ages, skins, m):
    patients = pd.DataFrame({"age": ages, "skin_type": skins[: len(ages)]})
    shown = patients_by_band_and_skin(patients, m).set_index("age_band")
    skin = patients["skin_type"].astype(str).replace("None", "unknown").replace("nan", "unknown")
    truth = pd.crosstab(outcomes.models.age_band(patients["age"]), skin).reindex(index=shown.index,
                                                                                 columns=shown.columns)
    _check_line(truth.to_numpy().ravel().tolist(), shown.to_numpy().ravel().tolist(), m, "band x skin")
    assert privacy.count_text(len(patients), "patients", m) in ("fewer than %d patients" % m, f"{len(patients):,} patients")


@PROPERTY
@given(clinics=st.lists(st.tuples(st.integers(1, 12), st.integers(1, 4)), min_size=1, max_size=5), m=MIN_CELLS,
       data=st.data())
def test_sessions_by_clinic_never_show_a_small_clinic(clinics, m, data):
    patients, sessions = [], []
    for c, (n, per) in enumerate(clinics):
        for i in range(n):
            pid = f"C{c}-{i}"
            patients.append({"patient_id": pid, "clinic_id": f"C{c}"})
            for _ in range(per):
                sessions.append({"patient_id": pid, "status": data.draw(st.sampled_from(["completed", "cancelled"]))})
    patients, sessions = pd.DataFrame(patients), pd.DataFrame(sessions)
    shown = session_status(sessions, patients, m).set_index("clinic_id")
    rows = sessions.merge(patients, on="patient_id")
    counts = pd.crosstab(rows["clinic_id"], rows["status"]).reindex(index=shown.index, columns=shown.columns)
    people = rows.groupby(["clinic_id", "status"])["patient_id"].nunique()
    size = patients.groupby("clinic_id")["patient_id"].nunique()
    hidden_sessions = 0
    for clinic in shown.index:
        for status in shown.columns:
            value, true = shown.loc[clinic, status], counts.loc[clinic, status]
            if _shown(value):
                assert value == true and size[clinic] >= m
                assert not 0 < people.get((clinic, status), 0) < m
            else:
                hidden_sessions += true
    assert not 0 < hidden_sessions < m or len(sessions) < m  # the report states the sessions kept


@PROPERTY
@given(start=st.integers(0, 60), drops=st.lists(st.integers(0, 20), max_size=5), m=MIN_CELLS)
def test_selection_steps_never_show_a_small_count_or_difference(start, drops, m):
    counts = [start]
    for d in drops:
        counts.append(max(counts[-1] - d, 0))
    shown = privacy.suppress_steps(pd.Series(counts), m).tolist()
    visible = [(t, s) for t, s in zip(counts, shown) if _shown(s)]
    for t, s in visible:
        assert s == t and (t == 0 or t >= m)
    for (a, _), (b, _) in zip(visible, visible[1:]):
        assert not 0 < a - b < m, (counts, shown)
    # the last step is the selection's size, told in words on the cover with the same rule
    assert _shown(shown[-1]) or privacy.count_text(counts[-1], "patients", m) == f"fewer than {m} patients"


# -- the data-quality report's own tables -------------------------------------------------------------------------
def _outcomes(clinics: dict[str, tuple[int, int]]) -> pd.DataFrame:
    """One follow-up row per patient: clinic -> (patients, of whom without a baseline)."""
    rows = []
    for clinic, (n, none) in clinics.items():
        rows += [{"patient_id": f"{clinic}-{i}", "clinic_id": clinic, "sessions": 1, "qc_ok": True,
                  "qc_reasons": "no_baseline" if i < none else ""} for i in range(n)]
    return pd.DataFrame(rows)


def test_baselines_percentage_never_gives_a_hidden_count_back():
    """The issue's `C01 96 <5 2.1`: 2.1% of 96 is 2, so the percentage goes with the count."""
    from outcomes.reports import findings, tables

    out = _outcomes({"C01": (96, 2), "C02": (40, 10), "C03": (3, 1)})
    table = tables.without_baseline(out).set_index("clinic_id")
    assert table.loc["C01", "n_patients"] == 96 and table.loc["C01", "n_yes"] == "<5"
    assert table.loc["C01", "pct"] == privacy.COMPLEMENT_LABEL
    assert (table.loc["C03"] == "<5").all()  # a clinic of 3 is hidden as a whole row
    # total 139 patients: 96 + 40 shown would give the 3 of C03 back, so one more is hidden
    assert table["n_patients"].map(lambda v: isinstance(v, str)).sum() >= 2
    assert findings.without_baseline(out) == ("13 of 139 patients (9.4%) lack a baseline for at least one metric; "
                                              "those measurements cannot show improvement.")
    assert findings.without_baseline(_outcomes({"C01": (3, 0)})).startswith("None of fewer than 5 patients lack a")


def test_sessions_table_hides_a_clinic_of_three_patients():
    from outcomes.reports.tables import session_status

    patients = pd.DataFrame({"patient_id": [f"p{i}" for i in range(23)], "clinic_id": ["C01"] * 3 + ["C02"] * 20})
    sessions = pd.DataFrame({"patient_id": [f"p{i}" for i in range(23) for _ in range(4)], "status": "completed"})
    shown = session_status(sessions, patients).set_index("clinic_id")
    assert shown.loc["C01", "completed"] == "<5"
    assert shown.loc["C02", "completed"] == 80


def test_cover_states_the_min_cell_the_run_used():
    import nbformat

    from outcomes.reports.pdf import notebook_to_html

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Title")])
    page = notebook_to_html(nb, parameters={"min_cell": 10}, manifest={})
    assert "fewer than 10 patients are shown as “&lt;10”" in page


def test_clinic_by_device_rows_cannot_be_worked_out_from_the_clinic_table():
    """C02 has 38 patients on camera A and 2 on B; the by-clinic table says 40, so A is hidden too."""
    from outcomes.reports.tables import flag_shares

    rows = [{"patient_id": f"{c}-{d}-{i}", "clinic_id": c, "device": d, "sessions": 1, "qc_ok": i % 3 > 0}
            for c, devices in {"C01": {"A": 30, "B": 25}, "C02": {"A": 38, "B": 2}}.items()
            for d, n in devices.items() for i in range(n)]
    out = pd.DataFrame(rows)
    by_clinic = flag_shares(out, ["clinic_id"]).set_index("clinic_id")
    assert by_clinic.loc["C02", "n_patients"] == 40
    both = flag_shares(out, ["clinic_id", "device"]).set_index(["clinic_id", "device"])
    assert both.loc[("C02", "B"), "n_patients"] == "<5"
    assert (both.loc[("C02", "A")] == privacy.COMPLEMENT_LABEL).all()
    assert both.loc[("C01", "A"), "n_patients"] == 30 and both.loc[("C01", "B"), "n_patients"] == 25


@PROPERTY
@given(sizes=st.lists(st.lists(st.integers(0, 14), min_size=1, max_size=3), min_size=1, max_size=4), m=MIN_CELLS)
def test_clinic_by_device_table_keeps_every_clinic_total_safe(sizes, m):
    from outcomes.reports.tables import flag_shares

    rows = [{"patient_id": f"C{c}-D{d}-{i}", "clinic_id": f"C{c}", "device": f"D{d}", "sessions": 1, "qc_ok": True}
            for c, devices in enumerate(sizes) for d, n in enumerate(devices) for i in range(n)]
    out = pd.DataFrame(rows, columns=["patient_id", "clinic_id", "device", "sessions", "qc_ok"])
    if out.empty:
        return
    both = flag_shares(out, ["clinic_id", "device"], m)
    truth = out.groupby(["clinic_id", "device"])["patient_id"].nunique()
    true = [truth[(c, d)] for c, d in zip(both["clinic_id"], both["device"])]
    _check_line(true, both["n_patients"].tolist(), m, "all")
    for clinic in both["clinic_id"].unique():
        part = (both["clinic_id"] == clinic).to_numpy()
        _check_line([t for t, p in zip(true, part) if p], both.loc[part, "n_patients"].tolist(), m, clinic)
        for _, row in both.loc[part].iterrows():
            assert _shown(row["n_patients"]) == _shown(row["pct_flagged"]) == _shown(row["measurements"])


def test_selection_of_three_patients_is_told_without_its_count():
    from outcomes.reports import cohort

    patients = pd.DataFrame({"patient_id": [f"p{i}" for i in range(40)], "clinic_id": ["C1"] * 3 + ["C2"] * 37,
                             "concern": "fine_lines", "first_session": pd.Timestamp("2025-01-01"), "n_sessions": 3})
    small = cohort.select({"patients": patients}, clinic="C1")
    assert small.describe(5) == "fewer than 5 patients (clinic C1)"
    assert cohort.select({"patients": patients}, clinic="C2").describe(5) == "37 patients (clinic C2)"
    steps = privacy.suppress_steps(small.steps["patients_left"], 5).tolist()
    assert steps == [40, "<5"]
    # 40 then 37: the filter removed 3 patients, so the 40 is hidden
    assert privacy.suppress_steps(pd.Series([40, 37]), 5).tolist() == [privacy.COMPLEMENT_LABEL, 37]
