"""Small groups never show a statistic; identifiers never reach a cohort table."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from outcomes import privacy


def _rows(groups: dict[str, int], rows_per_patient: int = 3, seed: int = 0) -> pd.DataFrame:
    """Long data: each group has the given number of patients, each with several rows."""
    rng = np.random.default_rng(seed)
    out = []
    for group, n in groups.items():
        for p in range(n):
            for _ in range(rows_per_patient):
                out.append({"group": group, "patient_id": f"{group}-{p}", "value": rng.normal(10, 2)})
    return pd.DataFrame(out)


def test_group_summary_suppresses_groups_under_min_cell_and_counts_patients_not_rows():
    data = _rows({"big": 12, "edge": 5, "tiny": 4, "one": 1})
    table = privacy.group_summary(data, "group", "value").set_index("group")
    # 12 patients with 3 rows each: the group size is 12, not 36
    assert table.loc["big", "n_patients"] == 12
    assert table.loc["edge", "n_patients"] == 5
    assert isinstance(table.loc["edge", "mean"], float)
    for small in ("tiny", "one"):
        assert table.loc[small, "n_patients"] == "<5"
        assert (table.loc[small, ["mean", "ci_low", "ci_high"]] == "<5").all()


def test_group_summary_mean_weighs_each_patient_once():
    data = pd.DataFrame({
        "group": ["a"] * 7,
        "patient_id": ["p1"] * 3 + ["p2", "p3", "p4", "p5"],
        "value": [100.0, 100.0, 100.0, 0.0, 0.0, 0.0, 0.0],
    })
    table = privacy.group_summary(data, "group", "value")
    assert table.loc[0, "mean"] == pytest.approx(20.0)  # (100 + 0*4) / 5, not 300/7


def test_min_cell_is_a_parameter_and_label_follows_it():
    data = _rows({"a": 8, "b": 12, "c": 3})  # hidden a + c = 11: the total cannot give either back
    table = privacy.group_summary(data, "group", "value", min_cell=10).set_index("group")
    assert table.loc["a", "mean"] == "<10" and table.loc["c", "n_patients"] == "<10"
    assert table.loc["b", "n_patients"] == 12


def test_suppress_small_cells_keeps_zero_counts_and_does_not_mutate():
    table = pd.DataFrame({"g": ["x", "y", "z", "w"], "n_patients": [0, 3, 9, 4], "mean": [np.nan, 1.5, 2.5, 3.0]})
    before = table.copy()
    out = privacy.suppress_small_cells(table)
    pd.testing.assert_frame_equal(table, before)
    assert out["n_patients"].tolist() == [0, "<5", 9, "<5"]  # hidden 3 + 4 = 7: no total gives one back
    assert out.loc[1, "mean"] == "<5" and out.loc[2, "mean"] == 2.5


def test_a_known_total_never_gives_a_single_hidden_group_back():
    """12 + 3 patients: the total 15 minus the 12 shown would give the 3 back, so 12 is hidden too."""
    table = pd.DataFrame({"g": ["a", "b", "c"], "n_patients": [12, 3, 40], "mean": [1.0, 2.0, 3.0]})
    out = privacy.suppress_small_cells(table).set_index("g")
    assert out.loc["b", "n_patients"] == "<5"
    assert out.loc["a", "n_patients"] == privacy.COMPLEMENT_LABEL and out.loc["a", "mean"] == privacy.COMPLEMENT_LABEL
    assert out.loc["c", "n_patients"] == 40 and out.loc["c", "mean"] == 3.0  # the smallest shown one is chosen


def test_suppress_small_cells_names_a_missing_count_column():
    with pytest.raises(KeyError, match="n_patients"):
        privacy.suppress_small_cells(pd.DataFrame({"mean": [1.0]}))


def test_rate_summary_hides_small_numerators_and_small_groups():
    data = pd.DataFrame({
        "group": ["a"] * 20 + ["b"] * 3 + ["c"] * 30 + ["d"] * 4,
        "patient_id": [f"a{i}" for i in range(20)] + ["b0", "b1", "b2"] + [f"c{i}" for i in range(30)]
        + [f"d{i}" for i in range(4)],
        "responded": [True] * 2 + [False] * 18 + [True] * 3 + [True] * 10 + [False] * 20 + [False] * 4,
    })
    table = privacy.rate_summary(data, "group", "responded").set_index("group")
    assert table.loc["a", "n_patients"] == 20
    assert table.loc["a", "n_yes"] == "<5"          # 2 responders could be recognised
    assert table.loc["a", "pct"] == privacy.COMPLEMENT_LABEL  # 10% of 20 would give the 2 back
    assert (table.loc["b", ["n_patients", "n_yes", "pct"]] == "<5").all()
    assert table.loc["c", "n_yes"] == 10 and table.loc["c", "pct"] == pytest.approx(33.3)


def test_rate_summary_hides_a_small_complement_too():
    """18 of 20 responded: 20 - 18 = 2 non-responders could be recognised."""
    data = pd.DataFrame({"group": ["a"] * 20 + ["b"] * 20, "patient_id": [f"p{i}" for i in range(40)],
                         "responded": [True] * 18 + [False] * 2 + [True] * 10 + [False] * 10})
    table = privacy.rate_summary(data, "group", "responded").set_index("group")
    assert table.loc["a", "n_patients"] == 20
    assert table.loc["a", "n_yes"] == privacy.COMPLEMENT_LABEL and table.loc["a", "pct"] == privacy.COMPLEMENT_LABEL


def test_suppress_counts_crosstab():
    counts = pd.DataFrame({"I": [0, 4], "II": [5, 30], "III": [2, 9]}, index=["clinic_a", "clinic_b"])
    shown = privacy.suppress_counts(counts)
    assert shown.loc["clinic_a", "I"] == 0
    assert shown.loc["clinic_b", "I"] == "<5" and shown.loc["clinic_a", "III"] == "<5"
    assert shown.loc["clinic_a", "II"] == 5  # hidden 4 + 2 = 6: the total gives neither back
    lone = privacy.suppress_counts(pd.Series([4, 30, 12]))
    assert lone.tolist() == ["<5", 30, privacy.COMPLEMENT_LABEL]  # 46 - 30 would give 16, not 4


def test_count_text_never_writes_a_small_count():
    assert privacy.count_text(0) == "no patients"
    assert privacy.count_text(3) == "fewer than 5 patients"
    assert privacy.count_text(1, "patients", min_cell=10) == "fewer than 10 patients"
    assert privacy.count_text(1234) == "1,234 patients"
    assert privacy.share_text(2, 96) == "fewer than 5 of 96 patients"
    assert privacy.share_text(94, 96) == "all but fewer than 5 of the 96 patients"
    assert privacy.share_text(0, 1) == "none of fewer than 5 patients"
    assert privacy.share_text(3, 3) == "all of fewer than 5 patients"
    assert privacy.share_text(12, 96) == "12 of 96 patients (12.5%)"


def test_min_cell_has_a_floor_of_five():
    for bad in (0, 1, 4, -3, True, 4.5):
        with pytest.raises(ValueError, match="at least 5"):
            privacy.check_min_cell(bad)
    assert privacy.check_min_cell(5) == 5 and privacy.check_min_cell(50) == 50


def test_ages_of_90_and_over_are_one_group():
    assert [privacy.age_text(a) for a in (89, 89.9, 90, 101.0, "95", "101.0", "abc", None)] == \
        [89, 89.9, "90+", "90+", "90+", "90+", "abc", None]


def test_drop_identifiers_and_check():
    table = pd.DataFrame({"patient_id": ["P1"], "birth_date": ["1970-01-01"], "photo_id": ["x"], "age": [54]})
    assert privacy.drop_identifiers(table).columns.tolist() == ["age"]
    assert privacy.drop_identifiers(table, keep=["patient_id"]).columns.tolist() == ["patient_id", "age"]
    with pytest.raises(ValueError, match="birth_date"):
        privacy.check_no_identifiers(table.drop(columns=["patient_id", "photo_id"]))
    with pytest.raises(ValueError, match="patient_id"):
        privacy.check_no_identifiers(table[["age"]].set_index(table["patient_id"]))
    assert privacy.check_no_identifiers(table[["age"]]) is not None
