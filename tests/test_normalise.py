"""Normalisers: messy spellings map to contract values; any other input becomes unknown with a
reason, never an exception."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from outcomes import contract
from outcomes.cleaning import normalise as nz

ANY_CELL = st.one_of(
    st.text(), st.none(), st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
    st.datetimes(), st.sampled_from(["", " ", "NA", "n/a", "\ufeffIII", "٣", "³", "Ⅲ", "1e400", "-0", "2025-02-30"]),
)


@pytest.mark.parametrize("spelling", ["III", "iii", "3", "type 3", "Type III", "Fitzpatrick 3", "FST-3", "3.0",
                                      " fitzpatrick type iii ", "Skin type: 3", 3, 3.0, np.int64(3)])
def test_skin_type_spellings(spelling):
    assert nz.skin_type(spelling) == ("III", "")


@pytest.mark.parametrize(("spelling", "expected"), [("I", "I"), ("vi", "VI"), ("6", "VI"), ("FST-1", "I"), ("type V", "V")])
def test_skin_type_every_type(spelling, expected):
    assert nz.skin_type(spelling).value == expected


@pytest.mark.parametrize("spelling", ["VII", "0", "7", "3.5", "olive", "?", "type", "unknown", 3.5, -1])
def test_odd_skin_types_are_unknown_with_a_reason(spelling):
    assert nz.skin_type(spelling) == (None, "unrecognised_skin_type")


def test_blank_skin_type_is_missing():
    assert nz.skin_type("  ") == (None, "missing") and nz.skin_type(None) == (None, "missing")


@pytest.mark.parametrize(("spelling", "expected"), [
    ("F", "F"), ("female", "F"), ("Woman", "F"), (" f ", "F"), ("M", "M"), ("male", "M"), ("Man", "M"),
    ("X", "X"), ("x", "X"), ("", "unknown"), (None, "unknown"), ("banana", "unknown"),
])
def test_sex(spelling, expected):
    assert nz.sex(spelling).value == expected


def test_unrecognised_sex_keeps_a_reason_blank_does_not_need_one():
    assert nz.sex("banana").reason == "unrecognised_sex"
    assert nz.sex("").reason == "missing"


@pytest.mark.parametrize(("spelling", "expected"), [
    ("Fine lines", "fine_lines"), ("wrinkles", "fine_lines"), ("FINE LINES", "fine_lines"), ("fine_lines", "fine_lines"),
    ("melasma", "pigmentation"), ("Pigmentation", "pigmentation"), ("Skin Quality", "skin_quality"),
    ("Acne scars", "acne_scars"), ("Hair loss", "hair_loss"), ("Cellulite", "cellulite"), ("Localized fat", "localized_fat"),
    ("localised-fat", "localized_fat"),
])
def test_concern(spelling, expected):
    assert nz.concern(spelling) == (expected, "")


@pytest.mark.parametrize(("text", "expected"), [
    ("2025-03-04", "2025-03-04 00:00"), ("2025-03-04 10:30", "2025-03-04 10:30"),
    ("2025-03-04T10:30:15Z", "2025-03-04 10:30:15"), ("04/03/2025", "2025-03-04 00:00"),
    ("04.03.2025", "2025-03-04 00:00"), ("4/3/2025 9:05", "2025-03-04 09:05"), ("2025/3/4", "2025-03-04 00:00"),
])
def test_dates_iso_or_day_first(text, expected):
    assert nz.parse_date(text) == (pd.Timestamp(expected), "")


def test_month_first_when_told():
    assert nz.parse_date("04/03/2025", monthfirst=True).value == pd.Timestamp("2025-04-03")
    assert nz.parse_date("2025-03-04", monthfirst=True).value == pd.Timestamp("2025-03-04")  # ISO is ISO


def test_impossible_day_first_date_hints_at_monthfirst():
    result = nz.parse_date("04/13/2025")
    assert result.value is None and result.reason.startswith("unparseable_date") and "--monthfirst" in result.reason


@pytest.mark.parametrize(("text", "reason"), [("2025-02-30", "unparseable_date"), ("yesterday", "unparseable_date"),
                                              ("0205-01-01", "implausible_date"), ("", "missing")])
def test_bad_dates_have_reasons(text, reason):
    assert nz.parse_date(text) == (None, reason)


@pytest.mark.parametrize(("spelling", "expected"), [
    ("Brown Spots", "brown_spots"), ("brown-spots", "brown_spots"), (" HYDRATION ", "hydration"),
    ("elasticity R7", "elasticity_r7"), ("UV spots", "uv_spots"), ("brownspots", "brown_spots"),
])
def test_metric_names(spelling, expected):
    assert nz.metric_name(spelling) == (expected, "")


def test_unknown_metric_and_user_registry():
    assert nz.metric_name("glow score") == (None, "unknown_metric")
    custom = {**contract.METRICS, "glow_score": contract.Metric("glow_score", "higher", "AU")}
    assert nz.metric_name("Glow Score", registry=custom) == ("glow_score", "")


@pytest.mark.parametrize(("spelling", "expected"), [("yes", True), ("Y", True), ("TRUE", True), ("1", True), (1, True),
                                                     ("no", False), ("N", False), ("false", False), (0.0, False)])
def test_yes_no(spelling, expected):
    assert nz.yes_no(spelling) == (expected, "")


@pytest.mark.parametrize(("spelling", "expected"), [("", "front"), ("Front", "front"), ("Left 45", "left45"),
                                                     ("left45°", "left45"), ("R90", "right90"), ("right_45", "right45")])
def test_views(spelling, expected):
    assert nz.view(spelling).value == expected


@pytest.mark.parametrize(("text", "comma", "expected"), [("12.5", False, 12.5), ("12,5", True, 12.5), (" -3 ", False, -3.0),
                                                         ("1e3", False, 1000.0), (7, False, 7.0)])
def test_numbers(text, comma, expected):
    assert nz.number(text, decimal_comma=comma) == (expected, "")


@pytest.mark.parametrize("text", ["12,5", "abc", "#VALUE!", "inf", "1.2.3", "ERR"])
def test_not_numbers(text):
    assert nz.number(text) == (None, "not_a_number")


NORMALISERS = [nz.skin_type, nz.sex, nz.concern, nz.yes_no, nz.metric_name, nz.view, nz.session_status,
               nz.scale, nz.rater, nz.event, nz.severity, nz.number, nz.parse_date]


@settings(max_examples=150, deadline=None)
@given(cell=ANY_CELL, which=st.sampled_from(NORMALISERS))
def test_any_cell_normalises_or_becomes_unknown_with_a_reason(cell, which):
    value, reason = which(cell)
    if which is nz.sex:  # sex is never None: blank or odd spellings become "unknown" (with a reason)
        assert value in contract.SEXES and (reason == "" or value == "unknown")
    elif value is None:
        assert reason, "an unknown value must say why"
    else:
        assert reason == ""


@settings(max_examples=150, deadline=None)
@given(cell=ANY_CELL)
def test_normalised_values_are_in_the_contract_vocabulary(cell):
    assert nz.skin_type(cell).value in (*contract.SKIN_TYPES, None)
    assert nz.sex(cell).value in contract.SEXES
    assert nz.concern(cell).value in (*contract.CONCERNS, None)
    assert nz.view(cell).value in (*contract.VIEWS, None)
    assert nz.session_status(cell).value in (*contract.SESSION_STATUSES, None)
    assert nz.event(cell).value in (*contract.EVENTS, None)
    number = nz.number(cell).value
    assert number is None or math.isfinite(number)


@settings(max_examples=100, deadline=None)
@given(cell=ANY_CELL, monthfirst=st.booleans())
def test_dates_are_plausible_timestamps_or_unknown(cell, monthfirst):
    value, reason = nz.parse_date(cell, monthfirst=monthfirst)
    if value is not None:
        assert isinstance(value, pd.Timestamp) and nz.YEAR_RANGE[0] <= value.year <= nz.YEAR_RANGE[1]
    else:
        assert reason == "missing" or reason.startswith(("unparseable_date", "implausible_date"))


@settings(max_examples=60, deadline=None)
@given(cells=st.lists(st.one_of(st.text(max_size=12), st.none(), st.sampled_from(["12,5", "3.25", " 7 ", "x", " NA ", "-"])),
                      max_size=30),
       comma=st.booleans(), dtype=st.sampled_from(["str", "category"]))
def test_vectorised_numbers_agree_with_the_scalar_normaliser(cells, comma, dtype):
    column = nz.numbers(pd.Series(cells, dtype="str").astype(dtype), decimal_comma=comma)
    for cell, value, reason in zip(cells, column.values, column.reasons):
        expected = nz.number(cell, decimal_comma=comma)
        assert reason == expected.reason
        if expected.value is None:
            assert np.isnan(value)
        else:
            assert value == pytest.approx(expected.value)


@settings(max_examples=60, deadline=None)
@given(cells=st.lists(st.one_of(st.text(alphabet="aP1é \t\u00a0", max_size=8), st.none()), max_size=30),
       dtype=st.sampled_from(["str", "category"]))
def test_texts_are_trimmed_and_blank_is_missing(cells, dtype):
    series = pd.Series(cells, dtype="str").astype(dtype)
    expected = [(c.strip() or None) if c is not None else None for c in cells]
    got = nz.texts(series).strings().tolist()
    assert [None if pd.isna(g) else g for g in got] == expected
    dense = nz.dense_texts(pd.Series(cells, dtype="str")).to_pylist()
    assert dense == expected


@settings(max_examples=60, deadline=None)
@given(cells=st.lists(st.one_of(st.text(max_size=20), st.none(),
                                st.sampled_from(["2025-03-04", "04/03/2025", "2025-03-04 10:30", "2025-13-01", "31/02/2025"])),
                      max_size=30),
       monthfirst=st.booleans())
def test_vectorised_dates_agree_with_the_scalar_normaliser(cells, monthfirst):
    column = nz.dates(pd.Series(cells, dtype="str").astype("category"), monthfirst=monthfirst)
    for cell, value, reason in zip(cells, column.values, column.reasons):
        expected = nz.parse_date(cell, monthfirst=monthfirst)
        if expected.value is None:
            assert np.isnat(value) and reason
        else:
            assert pd.Timestamp(value) == expected.value and reason == ""


# --- the missing-value texts: one rule (contract.MISSING_TEXTS) for every reader and normaliser ----------
@pytest.mark.parametrize("cell", ["", "  ", "NA", " n/a ", "nan", "NULL", "Null", "none", "#N/A", "#n/a"])
def test_missing_texts_in_any_case_and_padding_are_missing_everywhere(cell):
    assert nz.number(cell) == (None, "missing") and nz.sex(cell) == ("unknown", "missing")
    assert nz.parse_date(cell).reason == "missing"
    assert nz.texts(pd.Series([cell, "x"], dtype="str")).strings().isna().tolist() == [True, False]
    assert nz.dense_texts(pd.Series([cell, "photo-1"], dtype="str")).to_pylist() == [None, "photo-1"]


@pytest.mark.parametrize("cell", ["-", "--"])
def test_a_dash_is_a_value_not_a_missing_cell(cell):
    # docs/data-contract.md lists the missing-value texts; "-" is not among them
    assert nz.number(cell) == (None, "not_a_number")
    assert nz.session_status(cell) == (None, "unknown_status")
    assert nz.numbers(pd.Series([cell], dtype="str")).reasons.tolist() == ["not_a_number"]
    assert nz.texts(pd.Series([cell], dtype="str")).strings().tolist() == [cell]
