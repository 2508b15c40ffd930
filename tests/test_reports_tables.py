"""The report tables of issue 10: patient flow, baseline characteristics, adverse-event rates."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from outcomes import contract, models, simulation
from outcomes.reports import flow, safety

SMALL = {"<5", "x"}


@pytest.fixture(scope="module")
def tables():
    return simulation.demo_tables(n_patients=150, seed=3)


# --- safety: exact Poisson intervals and rates --------------------------------------------------

# R 4.x, poisson.test(k, T)$conf.int (exact, Garwood): k = 0, 1, 10 with T = 1, and the example of
# ?poisson.test, poisson.test(137, 24.19893): rate 5.661407, 95% CI 4.753125 6.692709.
R_POISSON_TEST = [(0, 1.0, 0.0, 3.688879), (1, 1.0, 0.02531781, 5.571643), (10, 1.0, 4.795389, 18.390356),
                  (137, 24.19893, 4.753125, 6.692709)]


@pytest.mark.parametrize(("k", "exposure", "low", "high"), R_POISSON_TEST)
def test_garwood_interval_matches_r_poisson_test(k, exposure, low, high):
    lo, hi = safety.garwood_interval(k)
    assert float(lo) / exposure == pytest.approx(low, abs=1e-6)
    assert float(hi) / exposure == pytest.approx(high, rel=1e-6)


@pytest.mark.parametrize("k", [1, 3, 17, 250])
def test_garwood_interval_is_the_exact_tail_solution(k):
    """An independent check: at the bounds the Poisson tails are exactly 2.5% (scipy.stats.poisson)."""
    lo, hi = safety.garwood_interval(k, level=0.95)
    assert stats.poisson.sf(k - 1, float(lo)) == pytest.approx(0.025, rel=1e-6)  # P(X >= k | lower)
    assert stats.poisson.cdf(k, float(hi)) == pytest.approx(0.025, rel=1e-6)     # P(X <= k | upper)


def _known_tables(counts: dict[tuple[str, str], tuple[int, int]], n_sessions: int = 400):
    """Adverse events with known counts: {(event, severity): (events, distinct patients)}."""
    rows = []
    for (event, severity), (n_events, n_patients) in counts.items():
        for i in range(n_events):
            rows.append({"patient_id": f"{event}-{severity}-{i % n_patients}", "event": event, "severity": severity})
    sessions = pd.DataFrame({"patient_id": [f"P{i % 50}" for i in range(n_sessions + 7)],
                             "session_number": [1.0] * n_sessions + [np.nan] * 7})
    return {"adverse_events": pd.DataFrame(rows), "sessions": sessions}


KNOWN = {("erythema", "mild"): (120, 60), ("erythema", "moderate"): (9, 8), ("erythema", "severe"): (2, 2),
         ("bruising", "mild"): (30, 25), ("nodule", "mild"): (3, 3), ("nodule", "moderate"): (1, 1),
         ("edema", "mild"): (7, 3)}


def test_event_rates_against_known_counts():
    table = safety.adverse_event_rates(_known_tables(KNOWN), per=100).set_index(["event", "severity"])
    assert (table["sessions"] == 400).all()  # cancelled / no-show sessions (no number) do not count
    for key, (n_events, n_patients) in KNOWN.items():
        row = table.loc[key]
        assert (row["events"], row["patients"]) == (n_events, n_patients)
        assert row["rate"] == pytest.approx(100 * n_events / 400)
        assert row["ci_low"] == pytest.approx(stats.chi2.ppf(0.025, 2 * n_events) / 2 / 4)
        assert row["ci_high"] == pytest.approx(stats.chi2.ppf(0.975, 2 * n_events + 2) / 2 / 4)
    assert table.loc[("erythema", "all"), "events"] == 131
    assert table.loc[("any event", "all"), "events"] == sum(e for e, _ in KNOWN.values())
    assert table.loc[("pain", "all"), "events"] == 0 and table.loc[("pain", "all"), "ci_high"] > 0


def test_event_rates_are_shown_with_the_readers_names():
    table = safety.adverse_event_rates(_known_tables(KNOWN))
    shown = safety.display_event_rates(table)
    assert set(shown["event"]) == {contract.EVENT_NAMES.get(e, e) for e in table["event"]}
    assert "pih" not in set(shown["event"]) and "post-inflammatory hyperpigmentation" in set(shown["event"])
    assert shown.drop(columns="event").equals(safety.suppress_event_rates(table).drop(columns="event"))


def test_event_rates_suppressed_as_small_cells():
    shown = safety.suppress_event_rates(safety.adverse_event_rates(_known_tables(KNOWN))).set_index(["event", "severity"])
    for col in ("events", "patients", "rate", "ci_low", "ci_high"):
        assert shown.loc[("erythema", "severe"), col] == "<5"  # 2 events
        assert shown.loc[("nodule", "mild"), col] == "<5"
        assert shown.loc[("edema", "mild"), col] == "<5"  # 7 events, but from 3 patients
    assert shown.loc[("erythema", "mild"), "events"] == 120
    # erythema: total 131 shown, severe (2) hidden -> one more severity hidden so 131 - shown != 2
    assert shown.loc[("erythema", "moderate"), "events"] == "x"
    # types: nodule (4) and edema (7 events from 3 patients) hidden; their sum 11 >= 5 needs nothing more
    assert shown.loc[("bruising", "all"), "events"] == 30


def test_event_rate_suppression_property():
    """Random tables: no shown row about 1-4 patients, no line's hidden events adding up to 1-4."""
    rng = np.random.default_rng(7)
    for _ in range(40):
        counts = {}
        for event in ("erythema", "edema", "nodule", "pih"):
            for severity in ("mild", "moderate", "severe"):
                if rng.random() < 0.7:
                    patients = int(rng.integers(1, 12))
                    counts[(event, severity)] = (patients + int(rng.integers(0, 4)), patients)
        table = safety.adverse_event_rates(_known_tables(counts))
        shown = safety.suppress_event_rates(table)
        hidden = shown["events"].isin(SMALL).to_numpy()
        assert not ((table["patients"] > 0) & (table["patients"] < 5) & ~hidden).any()
        totals = table["severity"] == safety.ALL
        for event in table.loc[~totals, "event"].unique():  # a shown type total makes its parts' sum known
            part = (table["event"] == event) & ~totals
            if not hidden[((table["event"] == event) & totals).to_numpy()].any():
                assert not 0 < table.loc[part & hidden, "events"].sum() < 5, (event, shown)
        types = totals & (table["event"] != safety.ANY_EVENT)
        assert not hidden[-1] and not 0 < table.loc[types & hidden, "events"].sum() < 5


# --- patient flow and baseline table --------------------------------------------------------------

def _fit(tables, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return models.fit_improvement(tables, "hydration", **options)


def _check_adds_up(table: pd.DataFrame) -> None:
    steps = table.loc[table["kind"] == "step"]
    assert list(steps["step"]) == list(flow.STEPS)
    before = None
    for step, n in zip(steps["step"], steps["patients"]):
        left = table.loc[(table["step"] == step) & (table["kind"] == "left"), "patients"].sum()
        if before is not None:
            assert n == before - left, step
        before = n


@pytest.mark.parametrize("options", [{}, {"interactions": (), "covariates": ["product"]}, {"include_flagged": True}],
                         ids=["defaults", "covariate", "flagged"])
def test_flow_adds_up_to_the_models_patients(tables, options):
    table = flow.patient_flow(tables, "hydration", **options)
    _check_adds_up(table)
    assert table.iloc[0]["patients"] == tables["patients"]["patient_id"].nunique()
    model = _fit(tables, **options)
    assert table.iloc[-1]["patients"] == model.n_patients_
    assert set(flow.modelled_patients(tables, "hydration", **options)) == set(model.rows_["patient_id"])


def test_flow_gives_each_leaver_a_reason(tables):
    """Planted leavers: quality-flag every follow-up of some patients, drop another's skin type."""
    t = {k: v.copy() for k, v in tables.items()}
    out = t["outcomes"]
    ids = list(flow.modelled_patients(t, "hydration"))
    blurred, unknown = ids[:6], ids[6:9]
    rows = out["patient_id"].isin(blurred) & (out["metric"] == "hydration") & (out["sessions"] > 0)
    out.loc[rows, "qc_ok"] = False
    out.loc[rows, "qc_reasons"] = "blur"
    out.loc[out["patient_id"].isin(unknown), "skin_type"] = np.nan
    t["patients"].loc[t["patients"]["patient_id"].isin(unknown), "skin_type"] = np.nan
    table = flow.patient_flow(t, "hydration")
    _check_adds_up(table)
    left = table.loc[table["kind"] == "left"].set_index(["step", "reason"])["patients"]
    assert left[("Photo quality checks passed", "photo quality: blurred photos")] == 6
    assert left[("Modelled", "unknown skin type")] >= 3
    assert table.iloc[-1]["patients"] == _fit(t).n_patients_


def test_flow_reasons_name_the_metric_as_a_reader_does(tables):
    """A patient without the metric leaves with "no elasticity (R7, cutometer) measurement", never the code name."""
    t = {k: v.copy() for k, v in tables.items()}
    measured = t["outcomes"].loc[t["outcomes"]["metric"] == "elasticity_r7", "patient_id"].unique()
    t["outcomes"] = t["outcomes"].loc[~t["outcomes"]["patient_id"].isin(measured[:5])
                                      | (t["outcomes"]["metric"] != "elasticity_r7")]
    reasons = set(flow.patient_flow(t, "elasticity_r7")["reason"])
    assert "no elasticity (R7, cutometer) measurement (front view)" in reasons
    assert not [r for r in reasons if "_" in r]


def test_flow_suppression_property(tables):
    """No count of 1-4 readable, and none worked out from two shown steps and the shown reasons."""
    rng = np.random.default_rng(1)
    base = flow.patient_flow(tables, "hydration")
    for _ in range(200):
        steps = np.sort(rng.integers(0, 40, size=len(flow.STEPS)))[::-1]
        rows = []
        for i, step in enumerate(flow.STEPS):
            if i:
                gap = int(steps[i - 1] - steps[i])
                cut = np.sort(rng.integers(0, gap + 1, size=2))
                for j, n in enumerate(np.diff([0, *cut, gap])):
                    if n:
                        rows.append((step, "left", f"reason {j}", int(n)))
            rows.append((step, "step", "", int(steps[i])))
        table = pd.DataFrame(rows, columns=base.columns)
        shown = flow.suppress_flow(table)
        values = table["patients"].to_numpy()
        hidden = shown["patients"].isin(SMALL).to_numpy()
        assert not ((values > 0) & (values < 5) & ~hidden).any()
        step_rows = np.flatnonzero(table["kind"] == "step")
        visible = [i for i in step_rows if not hidden[i]]
        for a, b in zip(visible, visible[1:]):
            assert not 0 < values[a] - values[b] < 5
            between = np.arange(a + 1, b)
            reasons = between[(table["kind"].to_numpy()[between] == "left") & hidden[between]]
            assert not 0 < values[reasons].sum() < 5, table


def test_baseline_characteristics_of_the_modelled(tables):
    ids = flow.modelled_patients(tables, "hydration")
    table = flow.baseline_characteristics(tables, ids).set_index(["characteristic", "level"])["value"]
    chosen = tables["patients"].set_index("patient_id").loc[ids]
    assert table[("Patients", "")] == f"{len(ids):,}"
    q1, med, q3 = np.quantile(chosen["age"], [0.25, 0.5, 0.75])
    assert table[("Age, years", "median (IQR)")] == f"{round(med)} ({round(q1)}–{round(q3)})"
    for name, column in (("Sex", "sex"), ("Skin type", "skin_type"), ("Clinic", "clinic_id")):
        counts = chosen[column].astype(str).value_counts()
        part = table[name]
        assert set(part.index) == set(counts.index)
        for level, n in counts.items():
            if n >= 5 and part[level] != "x":
                assert part[level] == f"{n:,} ({100 * n / len(ids):.1f}%)"
            if 0 < n < 5:
                assert part[level] == "<5"
        hidden = [counts[level] for level in part.index if part[level] in SMALL]
        assert not 0 < sum(hidden) < 5  # the total is shown: the hidden cells must not give a small one back


def test_baseline_characteristics_name_concerns_and_treated_areas_as_a_reader_does(tables):
    """Concern levels are the reader's names (contract.CONCERN_NAMES); the treated area is the
    outcomes' `area`, counted once per patient."""
    ids = flow.modelled_patients(tables, "hydration")
    table = flow.baseline_characteristics(tables, ids, min_cell=1).set_index(["characteristic", "level"])["value"]
    concerns = tables["patients"].set_index("patient_id").loc[ids, "concern"].map(contract.CONCERN_NAMES)
    assert set(table["Concern"].index) == set(concerns) and "fine lines" in set(concerns)
    assert not set(table["Concern"].index) & set(contract.CONCERNS) - {"pigmentation", "cellulite"}
    area = tables["outcomes"].drop_duplicates("patient_id").set_index("patient_id")["area"].loc[ids]
    for level, n in area.value_counts().items():
        assert table[("Treated area", level)] == f"{n:,} ({100 * n / len(ids):.1f}%)"


def test_baseline_characteristics_hide_everything_in_a_tiny_group(tables):
    ids = tables["patients"]["patient_id"].iloc[:4]
    table = flow.baseline_characteristics(tables, ids)
    assert set(table["value"]) <= {"<5"}
