"""How measurements meet sessions: session counts, baselines, improvement, photo-quality flags."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import outcomes
from outcomes.cleaning import qc, timeline
from raw_factory import write_raw

ONE = [{"patient_id": "P1", "age": 45, "sex": "F", "skin_type": "III"}]


def photo(day, value, metric="wrinkles", photo_id=None, **extra):
    return {"patient_id": "P1", "photo_id": photo_id or f"ph-{day}-{metric}", "taken_at": day,
            "metric": metric, "value": value, **extra}


def sessions(*days, status="completed"):
    return [{"patient_id": "P1", "session_date": d, "status": status} for d in days]


def outcomes_of(tmp_path, photos, booked, patients=ONE, **more):
    raw = write_raw(tmp_path / "raw", patients=patients, sessions=booked, photo_metrics=photos, **more)
    return outcomes.clean(raw)


def row(result, sessions_count, metric="wrinkles", view="front"):
    o = result.tables["outcomes"]
    found = o[(o.metric == metric) & (o.view == view) & (o.sessions == sessions_count)]
    assert len(found) == 1, found
    return found.iloc[0]


def test_photo_on_a_session_day_is_taken_before_that_days_injections(tmp_path):
    result = outcomes_of(tmp_path, [photo("2025-01-10 09:00", 10), photo("2025-02-10", 9), photo("2025-03-10 16:45", 8)],
                         sessions("2025-01-10 10:30", "2025-02-10", "2025-03-10"))
    m = result.tables["measurements"].sort_values("taken_at")
    assert m["sessions"].tolist() == [0, 1, 2]


def test_photo_after_the_last_session_counts_every_completed_session(tmp_path):
    result = outcomes_of(tmp_path, [photo("2025-01-10", 10), photo("2025-09-01", 8)],
                         sessions("2025-01-10", "2025-02-10", "2025-03-10"))
    late = row(result, 3)
    assert late["days_since_baseline"] == (pd.Timestamp("2025-09-01") - pd.Timestamp("2025-01-10")).days
    assert late["days_since_last_session"] == (pd.Timestamp("2025-09-01") - pd.Timestamp("2025-03-10")).days
    assert late["improvement_pct"] == pytest.approx(20.0)


def test_cancelled_and_no_show_sessions_do_not_count(tmp_path):
    booked = sessions("2025-01-10") + sessions("2025-02-01", status="cancelled") + sessions("2025-02-15", status="No-Show")
    result = outcomes_of(tmp_path, [photo("2025-01-10", 10), photo("2025-03-01", 9)], booked)
    assert result.tables["measurements"]["sessions"].max() == 1
    s = result.tables["sessions"]
    assert s["session_number"].tolist()[0] == 1 and s["session_number"].isna().sum() == 2
    assert result.tables["patients"]["n_sessions"].tolist() == [1]


def test_latest_of_two_baseline_candidates_is_the_baseline(tmp_path):
    result = outcomes_of(tmp_path, [photo("2025-01-01", 12), photo("2025-01-08", 10), photo("2025-02-01", 9)],
                         sessions("2025-01-10"))
    assert row(result, 1)["baseline"] == 10
    assert row(result, 0)["value"] == 10 and row(result, 0)["improvement_pct"] == 0


def test_without_a_baseline_rows_are_kept_flagged_and_counted(tmp_path):
    result = outcomes_of(tmp_path, [photo("2025-02-01", 9), photo("2025-03-01", 8)], sessions("2025-01-10", "2025-02-10"))
    o = result.tables["outcomes"]
    assert len(o) == 2
    assert o["improvement_pct"].isna().all() and o["baseline"].isna().all()
    assert (~o["qc_ok"]).all() and o["qc_reasons"].str.contains("no_baseline").all()
    assert result.manifest["no_baseline"] == {"outcome_rows": 2, "patients_with_some": 1, "patients_with_none": 1}


@pytest.mark.parametrize(("days_before", "has_baseline"), [(90, True), (91, False)])
def test_a_baseline_is_at_most_90_days_before_the_first_session(tmp_path, days_before, has_baseline):
    first = pd.Timestamp("2025-06-01")
    early = (first - pd.Timedelta(days=days_before)).strftime("%Y-%m-%d")
    result = outcomes_of(tmp_path, [photo(early, 10), photo("2025-07-01", 9)], sessions("2025-06-01"))
    assert row(result, 1)["baseline"] == (10 if has_baseline else None) or (not has_baseline and np.isnan(row(result, 1)["baseline"]))
    assert ("no_baseline" in row(result, 1)["qc_reasons"]) is not has_baseline


def test_patient_without_completed_sessions_has_no_baseline(tmp_path):
    result = outcomes_of(tmp_path, [photo("2025-01-01", 10)], sessions("2025-01-10", status="cancelled"))
    assert np.isnan(row(result, 0)["improvement_pct"])


def test_same_count_keeps_the_best_quality_then_the_latest(tmp_path):
    photos = [
        photo("2025-01-05", 10),
        photo("2025-02-01", 9, photo_id="clean-early", makeup="no"),
        photo("2025-02-05", 5, photo_id="with-makeup", makeup="yes"),  # later but worse quality
        photo("2025-03-01", 8.5, photo_id="first"),
        photo("2025-03-02", 8, photo_id="second"),  # equal quality: the latest wins
    ]
    result = outcomes_of(tmp_path, photos, sessions("2025-01-10", "2025-02-20"))
    assert row(result, 1)["photo_id"] == "clean-early" and row(result, 1)["qc_ok"]
    assert row(result, 2)["photo_id"] == "second"
    assert len(result.tables["measurements"]) == 5  # measurements keep them all


@pytest.mark.parametrize(("metric", "before", "after", "expected"), [
    ("wrinkles", 10.0, 8.0, 20.0),  # lower is better: fewer wrinkles = +20%
    ("wrinkles", 10.0, 12.0, -20.0),
    ("hydration", 40.0, 50.0, 25.0),  # higher is better
    ("hydration", 40.0, 30.0, -25.0),
    ("elasticity_r7", 0.5, 0.55, 10.0),
])
def test_improvement_is_positive_when_the_patient_got_better(tmp_path, metric, before, after, expected):
    result = outcomes_of(tmp_path, [photo("2025-01-01", before, metric), photo("2025-02-01", after, metric)],
                         sessions("2025-01-10"))
    r = row(result, 1, metric)
    assert r["improvement_pct"] == pytest.approx(expected)
    assert r["change"] == pytest.approx(after - before)


def test_zero_baseline_gives_no_percentage(tmp_path):
    result = outcomes_of(tmp_path, [photo("2025-01-01", 0, "spots"), photo("2025-02-01", 3, "spots")], sessions("2025-01-10"))
    r = row(result, 1, "spots")
    assert np.isnan(r["improvement_pct"]) and "baseline_zero" in r["qc_reasons"] and r["change"] == 3


def test_quality_flags(tmp_path):
    photos = [
        photo("2025-01-01", 10, head_yaw_deg=2, view="front"),
        photo("2025-02-01", 9, head_yaw_deg=14, color_delta_e=6.1, blur=0.6, makeup="Y", view="front"),
        photo("2025-03-01", 9, head_yaw_deg=11.9, color_delta_e=5, blur=0.5, makeup="no", view="front"),
        photo("2025-02-01", 7, view="Left 45", head_yaw_deg=45, photo_id="side"),
    ]
    result = outcomes_of(tmp_path, photos, sessions("2025-01-10", "2025-02-15"))
    flagged = row(result, 1)
    assert flagged["qc_reasons"] == "makeup;blur;color_delta_e;yaw_vs_baseline" and not flagged["qc_ok"]
    fine = row(result, 2)  # thresholds are strict inequalities: 5, 0.5 and 9.9° are fine
    assert fine["qc_ok"] and fine["qc_reasons"] == ""
    side = row(result, 1, view="left45")  # no left45 baseline: compared with the front one, flagged
    assert side["baseline"] == 10 and "view_differs_from_baseline" in side["qc_reasons"]


def test_flawed_baseline_flags_the_rows_compared_with_it(tmp_path):
    result = outcomes_of(tmp_path, [photo("2025-01-01", 10, blur=0.9), photo("2025-02-01", 9)], sessions("2025-01-10"))
    assert row(result, 0)["qc_reasons"] == "blur"
    assert row(result, 1)["qc_reasons"] == "baseline_qc"


def test_assessments_count_sessions_before_and_adverse_events_on_or_before(tmp_path):
    assessments = [{"patient_id": "P1", "assessed_at": d, "scale": "GAIS", "rater": "clinician", "score": 2}
                   for d in ("2025-01-10", "2025-02-11")]
    events = [{"patient_id": "P1", "event_date": d, "event": "bruising", "severity": "mild"} for d in ("2025-01-10", "2025-02-11")]
    result = outcomes_of(tmp_path, [photo("2025-01-01", 10)], sessions("2025-01-10", "2025-02-10"),
                         assessments=assessments, adverse_events=events)
    assert result.tables["assessments"]["sessions"].tolist() == [0, 2]
    assert result.tables["adverse_events"]["sessions"].tolist() == [1, 2]


@settings(max_examples=60, deadline=None)
@given(
    session_days=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 60)), max_size=25),
    probes=st.lists(st.tuples(st.integers(0, 4), st.integers(-5, 65)), min_size=1, max_size=25),
    inclusive=st.booleans(),
)
def test_count_sessions_matches_a_plain_count(session_days, probes, inclusive):
    keys = timeline.session_keys(np.array([p for p, _ in session_days], dtype=np.int64),
                                 np.array([d for _, d in session_days], dtype=np.int64))
    got = timeline.count_sessions(keys, np.array([p for p, _ in probes]), np.array([d for _, d in probes]), inclusive)
    want = [sum(1 for sp, sd in session_days if sp == p and (sd <= d if inclusive else sd < d)) for p, d in probes]
    assert got.tolist() == want


@settings(max_examples=80, deadline=None)
@given(
    session_days=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 60)), max_size=25),
    visits=st.lists(st.tuples(st.integers(0, 4), st.integers(-5, 65), st.integers(1, 4)), min_size=1, max_size=25),
)
def test_sessions_before_counts_and_finds_the_last_session_day(session_days, visits):
    # rows come in runs (one visit = several metrics), in any order
    probes = [(p, d) for p, d, repeat in visits for _ in range(repeat)]
    keys = timeline.session_keys(np.array([p for p, _ in session_days], dtype=np.int64),
                                 np.array([d for _, d in session_days], dtype=np.int64))
    counts, last_days = timeline.sessions_before(keys, np.array([p for p, _ in probes], dtype=np.int32),
                                                 np.array([d for _, d in probes], dtype=np.int32))
    for (p, d), count, last_day in zip(probes, counts.tolist(), last_days.tolist()):
        before = [sd for sp, sd in session_days if sp == p and sd < d]
        assert count == len(before)
        if before:
            assert last_day == max(before)


@settings(deadline=None)  # hypothesis' default 200 ms per example is a clock: a busy machine fails it
@given(st.lists(st.tuples(st.booleans(), st.booleans(), st.booleans(), st.sets(st.sampled_from(
    ["no_baseline", "baseline_zero", "baseline_qc", "yaw_vs_baseline", "view_differs_from_baseline"]))), min_size=1, max_size=20))
def test_quality_rank_counts_only_the_photos_own_problems(photos):
    from outcomes.cleaning import qc

    makeup, blur, delta_e = (np.array([p[i] for p in photos]) for i in range(3))
    mask = qc.photo_flags(makeup, np.where(blur, 0.9, 0.1), np.where(delta_e, 9.0, 1.0))
    for flag in {f for p in photos for f in p[3]}:  # flags about the comparison do not count
        qc.add(mask, flag, np.array([flag in p[3] for p in photos]))
    assert qc.quality_rank(mask).tolist() == [int(m) + int(b) + int(d) for m, b, d, _ in photos]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(0, 3), st.booleans(), st.booleans()),
                min_size=1, max_size=40))
def test_choose_takes_each_cells_last_row_that_is_no_duplicate_and_its_blocks_baseline(rows):
    # rows in sorted order: (block, view, sessions, eligible, a duplicate if the row before is in its cell)
    rows = sorted(rows, key=lambda r: (r[0], r[1], r[2]))
    span, views = 4, len(timeline.contract.VIEWS)
    cell = np.array([(b * views + v) * span + s for b, v, s, *_ in rows], dtype=np.int64)
    duplicate = np.array([i > 0 and cell[i] == cell[i - 1] and dup for i, (*_, dup) in enumerate(rows)])
    n = len(rows)
    order = np.arange(n)[::-1].copy()  # row numbers differ from sorted positions
    linked = timeline.Linked(usable=np.ones(n, bool), patient=np.zeros(n, np.int32), metric=np.zeros(n, np.int8),
                             view=np.zeros(n, np.int8), taken=np.zeros(n, "datetime64[ns]"), value=np.zeros(n),
                             yaw=np.zeros(n), own=np.zeros(n, np.uint16), day=np.zeros(n, np.int32),
                             sessions=np.zeros(n, np.int32), last_day=np.zeros(n, np.int32))
    eligible = np.zeros(n, bool)
    for position, (block, view, sessions_, is_eligible, *_) in zip(order, rows):
        linked.view[position], linked.sessions[position], eligible[position] = view, sessions_, is_eligible
    cells = timeline.CellOrder(order=order, cell=cell, span=span, eligible=eligible, tied=np.r_[False, cell[1:] == cell[:-1]])
    chosen = timeline.choose(linked, cells, duplicate)

    # reference: plain loops over the cells
    want_rows, last_of = [], {}
    for position, c in enumerate(cell):
        if not duplicate[position]:
            last_of[c] = order[position]
    want_rows = [last_of[c] for c in sorted(last_of)]
    assert chosen.rows.tolist() == want_rows
    front = timeline.contract.VIEWS.index(timeline.contract.DEFAULT_VIEW)
    baseline_of = {}  # block (patient x metric x view) -> its baseline row
    for r in want_rows:
        block = cell[list(order).index(r)] // span
        if block not in baseline_of:  # the block's first chosen row, if it is an eligible count-0 row
            baseline_of[block] = r if linked.sessions[r] == 0 and eligible[r] else -1
    for r, base, fallback in zip(want_rows, chosen.base.tolist(), chosen.front_fallback.tolist()):
        block = cell[list(order).index(r)] // span
        own = baseline_of[block]
        if own < 0 and linked.view[r] != front:
            own = baseline_of.get(block - linked.view[r] + front, -1)
            assert fallback == (own >= 0)
        else:
            assert not fallback
        assert base == own


def test_cell_order_sorts_by_cell_then_preference_then_file_order():
    # the order the contract states (section 4), checked against a plain Python sort
    rng = np.random.default_rng(5)
    n, patients = 3000, 40
    taken = (np.datetime64("2025-01-01") + rng.integers(0, 30 * 1440, n).astype("timedelta64[m]")).astype("datetime64[ns]")
    linked = timeline.Linked(
        usable=rng.random(n) > 0.1, patient=rng.integers(0, patients, n).astype(np.int32),
        metric=rng.integers(0, 4, n).astype(np.int8), view=rng.integers(0, 3, n).astype(np.int8), taken=taken,
        value=np.zeros(n), yaw=np.zeros(n), own=rng.choice(np.array([0, 8, 16, 24, 56], np.uint16), n),
        day=timeline.day_numbers(taken).astype(np.int32), sessions=rng.integers(0, 4, n).astype(np.int32),
        last_day=np.zeros(n, np.int32))
    taken[rng.random(n) < 0.5] = np.datetime64("2025-01-02T10:00", "ns")  # many equal preferences: ties
    linked.taken[:] = taken
    linked.day[:] = timeline.day_numbers(taken)
    first_session = np.datetime64("2025-03-01") + rng.integers(-5, 60, patients).astype("timedelta64[D]")
    got = timeline.cell_order(linked, first_session, 4)

    first_day = timeline.day_numbers(first_session.astype("datetime64[ns]"))
    def preference(i):
        eligible = linked.sessions[i] == 0 and first_day[linked.patient[i]] - linked.day[i] <= 90
        return (eligible, 3 - min(int(qc.quality_rank(linked.own[i:i + 1])[0]), 3), int(taken[i].astype(np.int64) // 60e9))
    def cell(i):
        return (linked.patient[i], linked.metric[i], linked.view[i], linked.sessions[i])
    expected = sorted(np.flatnonzero(linked.usable), key=lambda i: (cell(i), preference(i), i))
    assert got.order.tolist() == expected
    same = [cell(a) == cell(b) and preference(a) == preference(b) for a, b in zip(expected[:-1], expected[1:])]
    assert got.tied.tolist() == [False] + same and any(same)
