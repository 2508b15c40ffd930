"""The simulator: contract conformance, determinism, realism against its own truth, and the mess."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from outcomes import contract
from outcomes.cli import app
from outcomes.simulation import DropoutParams, expected_improvement, simulate, write_demo_if_empty
from outcomes.simulation import mess as M
from outcomes.processed_folder import OutputError
from outcomes.simulation import parameters as P
from folder_state import fingerprint, unchanged

ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DAY_FIRST = re.compile(r"^\d{2}/\d{2}/\d{4}$")
WITH_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}$")


@pytest.fixture(scope="module")
def tidy():
    return simulate(2000, seed=11, tidy=True)


@pytest.fixture(scope="module")
def messy():
    return simulate(2000, seed=11)


def norm(name: str) -> str:
    return re.sub(r"[ \-]+", "_", name.strip().lower())


def canonical(df: pd.DataFrame, table: str) -> pd.DataFrame:
    """Rename written headers to contract names the way the contract says readers must."""
    lookup = {}
    for col in contract.COLUMNS[table]:
        for alias in (col.name, *col.aliases):
            lookup[alias] = col.name
    return df.rename(columns={c: lookup[norm(c)] for c in df.columns})


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- contract -------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["tidy", "messy"])
def test_every_header_maps_to_a_contract_column(kind, request):
    cohort = request.getfixturevalue(kind)
    for table in contract.TABLES:
        df = cohort.tables[table]
        renamed = canonical(df, table)  # KeyError on any header the contract does not know
        names = {c.name for c in contract.COLUMNS[table]}
        assert set(renamed.columns) <= names
        required = {c.name for c in contract.COLUMNS[table] if c.required}
        assert required <= set(renamed.columns), table
        if kind == "tidy":
            assert list(df.columns) == list(renamed.columns)  # canonical names already


def test_tidy_vocabularies(tidy):
    t = tidy.tables
    assert set(t["patients"]["sex"].astype(str)) <= set(contract.SEXES)
    assert set(t["patients"]["skin_type"].astype(str)) == set(contract.SKIN_TYPES)
    assert set(t["patients"]["concern"].astype(str)) == set(contract.CONCERNS)
    assert set(t["sessions"]["status"].astype(str)) == set(contract.SESSION_STATUSES)
    pm = t["photo_metrics"]
    assert set(pm["metric"].astype(str)) == set(contract.METRICS) - set(contract.PHOTO_MEASURED_METRICS)
    assert set(pm["view"].astype(str)) == set(P.PHOTO_VIEWS)
    inst = pm[pm["metric"].isin(P.INSTRUMENT_METRICS)]
    assert (inst["view"] == "front").all() and inst["makeup"].isna().all() and inst["blur"].isna().all()
    assert set(t["adverse_events"]["event"].astype(str)) <= set(contract.EVENTS)
    assert set(t["adverse_events"]["severity"].astype(str)) == set(contract.SEVERITIES)
    a = t["assessments"]
    assert set(a["scale"].astype(str)) == set(contract.SCALES)
    assert set(a["rater"].astype(str)) == set(contract.RATERS)
    assert 4 >= pm.loc[pm.metric.isin(P.PHOTO_METRICS), "device"].nunique() >= 3
    assert 5 >= t["patients"]["clinic_id"].nunique() >= 3
    assert t["patients"]["patient_id"].str.fullmatch(r"P\d{6}").all()


def test_tidy_has_no_bad_rows(tidy):
    t = tidy.tables
    ids = set(t["patients"]["patient_id"])
    assert t["patients"]["patient_id"].is_unique
    for table, col in [("sessions", "session_date"), ("photo_metrics", "taken_at"),
                       ("assessments", "assessed_at"), ("adverse_events", "event_date")]:
        df = t[table]
        assert set(df["patient_id"].astype(str)) <= ids, table
        assert df[col].astype(str).str.fullmatch(ISO_DATE.pattern).all(), table
        assert not df.duplicated().any(), table
    lo, hi = contract.AGE_RANGE
    assert t["patients"]["age"].between(lo, hi).all()
    s = t["sessions"]
    assert not s.duplicated(["patient_id", "session_date"]).any()
    done = s[s.status == "completed"]
    assert (done.volume_ml > 0).all() and (done.volume_ml <= 20).all()
    pm = t["photo_metrics"]
    assert not pm.duplicated(["photo_id", "metric"]).any()
    low = pm["metric"].map({m: x.low for m, x in contract.METRICS.items()}).astype(float)
    high = pm["metric"].map({m: x.high for m, x in contract.METRICS.items()}).astype(float)
    assert pm["value"].notna().all() and pm["value"].between(low, high).all()
    a = t["assessments"]
    for scale, sc in contract.SCALES.items():
        assert a.loc[a.scale == scale, "score"].between(sc.low, sc.high).all()


def test_written_files_are_utf8_csv_with_the_documented_delimiters(tmp_path):
    simulate(60, seed=2, out_dir=tmp_path / "m")
    simulate(60, seed=2, out_dir=tmp_path / "t", tidy=True)
    for table in contract.TABLES:
        head = (tmp_path / "m" / f"{table}.csv").read_text(encoding="utf-8").splitlines()[0]
        sep = ";" if table == "photo_metrics" else ","
        assert head.split(sep) == list(M.HEADERS[table])
        read = pd.read_csv(tmp_path / "t" / f"{table}.csv")
        assert list(read.columns) == [c.name for c in contract.COLUMNS[table] if c.name in read.columns]
    body = (tmp_path / "m" / "photo_metrics.csv").read_text(encoding="utf-8")
    assert re.search(r";\d+,\d+;", body)  # decimal commas
    assert (tmp_path / "m" / "truth.json").is_file()


# --- determinism ------------------------------------------------------------------------------
@pytest.mark.parametrize("tidy_flag", [False, True])
def test_same_seed_same_bytes_other_seed_differs(tmp_path, tidy_flag):
    for name, seed in [("a", 7), ("b", 7), ("c", 8)]:
        simulate(150, seed=seed, out_dir=tmp_path / name, tidy=tidy_flag)
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == sorted([f"{t}.csv" for t in contract.TABLES] + ["truth.json"])
    for f in files:
        assert sha(tmp_path / "a" / f) == sha(tmp_path / "b" / f), f
    assert all(sha(tmp_path / "a" / f) != sha(tmp_path / "c" / f) for f in files)


# --- truth ------------------------------------------------------------------------------------
def test_truth_matches_the_data(tidy, messy):
    truth = tidy.truth
    for key in ("seed", "n_patients", "tidy", "synthetic", "model", "k", "age_ref", "age_slope",
                "skin_type_multiplier", "half_life_weeks", "metrics", "dropout", "messiness", "gais", "patients"):
        assert key in truth
    assert truth["synthetic"] is True and truth["k"] == 0.55 and truth["n_patients"] == 2000
    assert set(truth["metrics"]) == set(contract.METRICS) - set(contract.PHOTO_MEASURED_METRICS)
    assert all(truth["metrics"][m]["better"] == contract.METRICS[m].better for m in truth["metrics"])
    pat = tidy.tables["patients"].set_index("patient_id")
    tp = pd.DataFrame(truth["patients"]).T
    assert list(tp.index) == list(pat.index)
    assert (tp["age"].astype(int) == pat["age"]).all()
    assert (tp["skin_type"] == pat["skin_type"].astype(str)).all()
    s = tidy.tables["sessions"]
    done = s[s.status == "completed"].groupby("patient_id", observed=True).size()
    assert (tp["completed_sessions"].astype(int) == done.reindex(tp.index)).all()
    # messy and tidy exports of one seed share the truth (except the messiness record)
    assert {k: v for k, v in messy.truth.items() if k not in ("tidy", "messiness")} == \
        {k: v for k, v in truth.items() if k not in ("tidy", "messiness")}
    r = tp["response_factor"].astype(float)
    assert abs(r.mean() - 1) < 0.05 and abs(r.std() - 0.5) < 0.05


def test_cohort_demographics_follow_domain(tidy):
    pat = tidy.tables["patients"]
    assert abs((pat.sex == "F").mean() - 0.95) < 0.02
    assert pat.age.min() >= 25 and pat.age.max() <= 70 and abs(pat.age.mean() - 47) < 1.5
    shares = pat.skin_type.value_counts(normalize=True)
    for st, p in P.SKIN_TYPE_SHARES.items():
        assert abs(shares[st] - p) < 0.03, st
    n_done = pd.DataFrame(tidy.truth["patients"]).T["planned_sessions"].astype(int)
    assert n_done.between(3, 6).all()


def test_expected_improvement_formula_and_vectorisation(tidy):
    truth = tidy.truth
    one = expected_improvement(truth, "hydration", 2, 55, "V")
    assert one == pytest.approx(30 * (1 - np.exp(-1.1)) * 0.9 * 0.8)
    assert expected_improvement(truth, "red_areas", 2, 45, "VI") == pytest.approx(5 * (1 - np.exp(-1.1)) * 0.8 * 0.5)
    arr = expected_improvement(truth, "wrinkles", np.array([0, 1, 3]), np.array([45, 45, 45]), ["III", "III", None])
    assert arr[0] == 0 and arr[1] == pytest.approx(15 * (1 - np.exp(-0.55))) and np.isnan(arr[2])


# --- mess ---------------------------------------------------------------------------------------
def test_messy_patients_kinds_and_shares(messy):
    pat = canonical(messy.tables["patients"], "patients")
    truth = messy.truth["patients"]
    sh = M.SHARES["patients"]
    dup = pat.duplicated()
    assert abs(dup.mean() - sh["duplicate_rows"]) < 0.004 and dup.any()
    pat = pat[~dup].set_index("patient_id")
    true_st = pd.Series({k: v["skin_type"] for k, v in truth.items()})
    unparseable = pat.skin_type.isin(M.SKIN_TYPE_UNPARSEABLE)
    variant = ~pat.skin_type.isin(contract.SKIN_TYPES) & ~unparseable
    assert abs(variant.mean() - sh["skin_type_variant"]) < 0.04
    assert 0.003 < unparseable.mean() < 0.02
    for pid, value in pat.skin_type[~unparseable].items():  # every variant spells the true type
        r = true_st[pid]
        spellings = {r} | {v.format(r=r, r_lower=r.lower(), n=M.ROMAN[r]) for v in M.SKIN_TYPE_VARIANTS}
        assert value in spellings, (pid, value, r)
    for odd in ("iii", "3", "type 3", "Type III", "Fitzpatrick 3", "FST-3", "3.0"):
        assert odd in set(pat.skin_type)
    sex = pat.sex.fillna("")
    assert abs((~sex.isin(["F", "M", "X", ""])).mean() - sh["sex_variant"]) < 0.04
    assert {"female", "woman", "male"} <= set(sex) and (sex == "").any()
    assert abs((~pat.concern.isin(contract.CONCERNS)).mean() - sh["concern_variant"]) < 0.04
    assert {"wrinkles", "melasma", "Fine lines"} <= set(pat.concern)
    # birth_date replaces age for a share of patients, and gives the true age at the first session
    bd = pat.birth_date.notna()
    assert abs(bd.mean() - sh["birth_date_instead_of_age"]) < 0.03
    assert (pat.age.isna() == bd).all()
    s = canonical(messy.tables["sessions"], "sessions")
    s = s[s.status == "completed"]
    first = parse_dates(s.session_date).groupby(s.patient_id).min()
    born = pd.to_datetime(pat.birth_date[bd])
    f = first.reindex(born.index)
    age = f.dt.year - born.dt.year - ((f.dt.month * 100 + f.dt.day) < (born.dt.month * 100 + born.dt.day))
    assert (age == pd.Series({k: v["age"] for k, v in truth.items()}).reindex(born.index)).all()


def parse_dates(values: pd.Series) -> pd.Series:
    """ISO (with or without a time) or day-first dd/mm/yyyy, as the messy export writes them."""
    v = values.astype(str)
    iso = pd.to_datetime(v.str.slice(0, 10), format="%Y-%m-%d", errors="coerce")
    return iso.fillna(pd.to_datetime(v, format="%d/%m/%Y", errors="coerce"))


def _share(mask) -> float:
    return float(np.mean(mask))


def test_messy_sessions_and_small_tables(messy):
    s = canonical(messy.tables["sessions"], "sessions")
    sh = M.SHARES["sessions"]
    d = s.session_date.astype(str)
    assert abs(_share(d.str.fullmatch(DAY_FIRST.pattern)) - sh["day_first_dates"]) < 0.015
    assert abs(_share(d.str.fullmatch(WITH_TIME.pattern)) - sh["datetime_with_time"]) < 0.02
    assert abs(_share(s.duplicated()) - sh["duplicate_rows"]) < 0.004
    ids = set(messy.truth["patients"])
    unknown = ~s.patient_id.isin(ids)
    assert unknown.any() and _share(unknown) < 3 * sh["unknown_patient_rows"]
    vol = s.volume_ml.dropna()
    assert ((vol <= 0) | (vol > 20)).any()
    for table, col in [("assessments", "assessed_at"), ("adverse_events", "event_date")]:
        df = canonical(messy.tables[table], table)
        assert abs(_share(df[col].astype(str).str.fullmatch(DAY_FIRST.pattern)) - M.SHARES[table]["day_first_dates"]) < 0.02
        assert abs(_share(df.duplicated()) - M.SHARES[table]["duplicate_rows"]) < 0.005


def test_messy_photo_metrics_kinds_and_shares(messy):
    pm = canonical(messy.tables["photo_metrics"], "photo_metrics")
    sh = M.SHARES["photo_metrics"]
    assert abs(_share(pm.duplicated()) - sh["duplicate_rows"]) < 0.002
    metric = pm.metric.astype(str)
    variant = ~metric.isin(contract.METRICS) & metric.map(norm).isin(contract.METRICS)
    assert abs(_share(variant) - sh["metric_case_space_variant"]) < 0.01
    assert "Brown Spots" in set(metric) and " pores " in set(metric)
    unknown_metric = ~metric.map(norm).isin(contract.METRICS)
    assert 0.4 * sh["unknown_metric"] < _share(unknown_metric) < 2 * sh["unknown_metric"]
    value = pm.value.astype(str)
    assert value.str.contains(",").mean() > 0.3 and not value.str.contains(r"\.").any()
    numeric = pd.to_numeric(value.str.replace(",", "."), errors="coerce")
    assert 0.4 * sh["non_numeric_value"] < _share(numeric.isna()) < 2 * sh["non_numeric_value"]
    oor = numeric < 0
    for m, spec in contract.METRICS.items():
        oor |= (metric == m) & (numeric > spec.high)
    assert 0.5 * sh["value_out_of_range"] < _share(oor) < 2 * sh["value_out_of_range"]
    unknown = ~pm.patient_id.isin(set(messy.truth["patients"]))
    assert 0.5 * sh["unknown_patient_rows"] < _share(unknown) < 2 * sh["unknown_patient_rows"]
    taken = pm.taken_at.astype(str)
    assert abs(_share(taken.str.fullmatch(DAY_FIRST.pattern)) - sh["day_first_dates"]) < 0.02
    assert abs(_share(taken.str.fullmatch(WITH_TIME.pattern)) - sh["datetime_with_time"]) < 0.04


# --- realism against the truth (tidy data, linked the way the contract says) -------------------
def link(cohort) -> pd.DataFrame:
    """Minimal contract linking for tidy data: session count, baseline, improvement, in-course flag."""
    t = cohort.tables
    s = t["sessions"]
    s = s[s.status == "completed"]
    sess = pd.DataFrame({"patient_id": s.patient_id.astype(str), "date": pd.to_datetime(s.session_date)})
    sess = sess.sort_values(["date"])
    sess["count"] = sess.groupby("patient_id").cumcount() + 1
    first = sess.groupby("patient_id").date.min()
    last = sess.groupby("patient_id").date.max()
    pm = t["photo_metrics"]
    m = pd.DataFrame({"patient_id": pm.patient_id.astype(str), "metric": pm.metric.astype(str),
                      "view": pm.view.astype(str), "value": pm.value, "date": pd.to_datetime(pm.taken_at.astype(str)),
                      "makeup": pm.makeup.astype(str), "blur": pm.blur, "de": pm.color_delta_e,
                      "yaw": pm.head_yaw_deg})
    shifted = sess.assign(date=sess.date + pd.Timedelta(days=1))  # a photo on a session day precedes it
    m = pd.merge_asof(m.sort_values("date"), shifted, on="date", by="patient_id", direction="backward")
    m["sessions"] = m["count"].fillna(0).astype(int)
    m["first"], m["last"] = m.patient_id.map(first), m.patient_id.map(last)
    nominal = m.view.map(P.VIEW_YAW_DEG)
    m["qc_ok"] = ((m.makeup != "yes") & ~(m.blur > 0.5) & ~(m.de > 5) & ~((m.yaw - nominal).abs() > 5))
    cand = m[(m.sessions == 0) & (m.date >= m["first"] - pd.Timedelta(days=90)) & m.qc_ok]
    base = cand.sort_values("date").groupby(["patient_id", "metric", "view"]).value.last().rename("baseline")
    m = m.join(base, on=["patient_id", "metric", "view"])
    lower = m.metric.map({k: v.better == "lower" for k, v in contract.METRICS.items()}).astype(bool)
    m["improvement"] = np.where(lower, 100 * (m.baseline - m.value), 100 * (m.value - m.baseline)) / m.baseline
    m["in_course"] = m.date <= m["last"]
    pat = t["patients"].set_index("patient_id")
    m["age"] = m.patient_id.map(pat.age)
    m["skin_type"] = m.patient_id.map(pat.skin_type.astype(str))
    m["r"] = m.patient_id.map({k: v["response_factor"] for k, v in cohort.truth["patients"].items()})
    return m


@pytest.fixture(scope="module")
def big_tidy():
    return simulate(12000, seed=5, tidy=True)


@pytest.fixture(scope="module")
def linked(big_tidy):
    return link(big_tidy)


def population_expected(cohort, metric: str, n: int) -> float:
    pat = cohort.tables["patients"]
    return float(np.mean(expected_improvement(cohort.truth, metric, n, pat.age.to_numpy(), pat.skin_type.astype(str).to_numpy())))


@pytest.mark.slow
@pytest.mark.parametrize("metric", ["hydration", "wrinkles", "elasticity_r7", "texture"])
def test_dose_response_rises_with_diminishing_increments(big_tidy, linked, metric):
    x = linked[(linked.metric == metric) & linked.in_course & linked.qc_ok & linked.baseline.notna()]
    if metric in P.PHOTO_METRICS:
        x = x[x.view == "front"]
    means = x.groupby("sessions").improvement.mean()
    assert abs(means[0]) < 0.5
    steps = np.diff(means.loc[0:4].to_numpy())
    assert (steps > 0).all(), means
    assert steps[0] > steps[1] > steps[2] > steps[3] * 0.8, means
    emax = big_tidy.truth["metrics"][metric]["emax_pct"]
    for n in (1, 2):  # early: dropout has barely acted; noise and ratio bias are small
        assert means[n] == pytest.approx(population_expected(big_tidy, metric, n), abs=0.1 * emax), (n, means)


@pytest.mark.slow
def test_fading_after_the_course(big_tidy, linked):
    """Second follow-ups (12-26 weeks after the last session) show less than the first ones."""
    x = linked[(linked.metric == "hydration") & ~linked.in_course & linked.baseline.notna()]
    x = x.assign(weeks=(x.date - x["last"]).dt.days / 7)
    late, early = x[x.weeks > 11], x[x.weeks <= 11]
    ratio = late.improvement.mean() / early.improvement.mean()
    hl = big_tidy.truth["half_life_weeks"]
    expected = (0.5 ** (late.weeks / hl)).mean() / (0.5 ** (early.weeks / hl)).mean()
    assert ratio < 0.9 and ratio == pytest.approx(expected, abs=0.12)


def dropout_bias(cohort, m: pd.DataFrame) -> tuple[float, float]:
    """(mean response factor of patients measured after >= 4 sessions - cohort mean,
    growth of the naive bias from 1 to >= 4 sessions, in units of Emax, averaged over metrics)."""
    rf = pd.Series({k: v["response_factor"] for k, v in cohort.truth["patients"].items()})
    late_ids = m.loc[m.in_course & (m.sessions >= 4), "patient_id"].unique()
    r_gap = rf[late_ids].mean() - rf.mean()
    growth = []
    for metric in ("hydration", "elasticity_r7", "wrinkles", "texture"):
        x = m[(m.metric == metric) & m.in_course & m.qc_ok & m.baseline.notna() & (m.view == "front")]
        emax = cohort.truth["metrics"][metric]["emax_pct"]
        bias1 = x[x.sessions == 1].improvement.mean() - population_expected(cohort, metric, 1)
        late = x[x.sessions.isin([4, 5])]
        counts = late.sessions.value_counts()
        exp_late = sum(c * population_expected(cohort, metric, n) for n, c in counts.items()) / counts.sum()
        growth.append((late.improvement.mean() - exp_late - bias1) / emax)
    return r_gap, float(np.mean(growth))


@pytest.mark.slow
def test_outcome_dependent_dropout_biases_the_naive_mean_upward(big_tidy, linked):
    r_gap, growth = dropout_bias(big_tidy, linked)
    assert r_gap > 0.012  # late sessions are seen mostly in good responders
    assert growth > 0.01  # naive mean drifts above the population truth as sessions go on
    # control: the same cohort with dropout that ignores outcomes shows neither
    control = simulate(12000, seed=5, tidy=True, dropout=DropoutParams(factor=1.0))
    assert control.truth["dropout"]["multiplier"] == 1.0
    r_gap0, growth0 = dropout_bias(control, link(control))
    assert abs(r_gap0) < 0.012 and growth0 < growth - 0.008


def test_dropout_strength_is_a_parameter_recorded_in_the_truth():
    default = simulate(300, seed=2, tidy=True)
    assert default.truth["dropout"] == DropoutParams().record()
    assert default.truth["dropout"]["base_per_interval"] == 0.05 and default.truth["dropout"]["multiplier"] == 2.0
    strong = simulate(300, seed=2, tidy=True, dropout=DropoutParams(base=0.08, factor=10))
    assert strong.truth["dropout"]["base_per_interval"] == 0.08 and strong.truth["dropout"]["multiplier"] == 10
    # same patients, fewer completed sessions: only the dropout changed
    done = {k: v["completed_sessions"] for k, v in default.truth["patients"].items()}
    done_strong = {k: v["completed_sessions"] for k, v in strong.truth["patients"].items()}
    assert done.keys() == done_strong.keys() and sum(done_strong.values()) < 0.9 * sum(done.values())
    pd.testing.assert_frame_equal(default.tables["patients"], strong.tables["patients"])
    none = simulate(300, seed=2, tidy=True, dropout=DropoutParams(base=0.0))
    assert all(v["completed_sessions"] == v["planned_sessions"] for v in none.truth["patients"].values())
    with pytest.raises(ValueError, match="dropout probabilities"):
        DropoutParams(base=0.2, factor=6)


def test_measured_dropout_trigger_reads_the_recorded_hydration():
    # trigger="measured": after each session from the second on, a patient whose recorded hydration
    # improvement (over the baseline outcomes clean would pick) is < 40% of Emax stops at
    # base x factor, others at base: dropout is a function of recorded data (missing at random)
    params = DropoutParams(base=0.05, factor=10, trigger="measured")
    cohort = simulate(3000, seed=8, tidy=True, dropout=params)
    m = link(cohort)
    visits = m[(m.metric == "hydration") & (m.sessions >= 1) & m.in_course & m.baseline.notna()]
    tp = pd.DataFrame(cohort.truth["patients"]).T.astype({"planned_sessions": int, "completed_sessions": int})
    visits = visits.join(tp[["planned_sessions", "completed_sessions"]], on="patient_id")
    visits = visits[visits.sessions + 1 < visits.planned_sessions]
    # the other trigger: a moderate or severe adverse event before the decision, i.e. before the
    # next session (a stopper's events all count)
    s = cohort.tables["sessions"]
    done = s[s.status == "completed"].assign(date=lambda d: pd.to_datetime(d.session_date))
    done = done.sort_values("date").assign(n=lambda d: d.groupby("patient_id").cumcount())
    next_date = done.set_index([done.patient_id.astype(str), "n"])["date"]
    visits = visits.assign(next=[next_date.get((p, j + 1), pd.Timestamp.max) for p, j in
                                 zip(visits.patient_id, visits.sessions)])
    ae = cohort.tables["adverse_events"]
    ae = ae[ae.severity != "mild"].assign(date=lambda d: pd.to_datetime(d.event_date))
    first_ae = ae.groupby(ae.patient_id.astype(str))["date"].min()
    visits = visits[~(visits.patient_id.map(first_ae) < visits.next)]
    stopped = visits.completed_sessions == visits.sessions + 1
    low = visits.improvement < params.no_gain_threshold * cohort.truth["metrics"]["hydration"]["emax_pct"]
    assert low.sum() > 300 and (~low).sum() > 1000
    assert stopped[low].mean() == pytest.approx(params.base * params.factor, abs=0.04)  # 0.51 at this seed
    assert stopped[~low].mean() == pytest.approx(params.base, abs=0.015)  # 0.050


def test_dropout_happens_at_about_the_documented_rate(tidy):
    tp = pd.DataFrame(tidy.truth["patients"]).T.astype({"planned_sessions": int, "completed_sessions": int})
    dropped = tp.completed_sessions < tp.planned_sessions
    intervals = (tp.planned_sessions - 1).mean()
    # between 5% and 10% per interval
    assert 1 - 0.95 ** intervals - 0.03 < dropped.mean() < 1 - 0.90 ** intervals + 0.03


@pytest.mark.slow
def test_adverse_event_rates_and_pih_by_skin_type(big_tidy):
    t = big_tidy.tables
    s = t["sessions"]
    done = s[s.status == "completed"].merge(t["patients"][["patient_id", "skin_type"]], on="patient_id")
    ae = t["adverse_events"].merge(t["patients"][["patient_id", "skin_type"]], on="patient_id")
    per_session = ae.event.value_counts() / len(done)
    assert per_session["erythema"] == pytest.approx(0.80, abs=0.02)
    assert per_session["edema"] == pytest.approx(0.30, abs=0.02)
    assert per_session["bruising"] == pytest.approx(0.12, abs=0.015)
    assert per_session["nodule"] == pytest.approx(0.10, abs=0.015)
    group = {"I": "I-III", "II": "I-III", "III": "I-III", "IV": "IV", "V": "V-VI", "VI": "V-VI"}
    pih = ae[ae.event == "pih"].skin_type.astype(str).map(group).value_counts()
    sessions = done.skin_type.astype(str).map(group).value_counts()
    rate = pih / sessions
    assert rate["I-III"] == pytest.approx(0.01, abs=0.005)
    assert rate["V-VI"] == pytest.approx(0.13, abs=0.04) and rate["V-VI"] > 5 * rate["I-III"]
    assert (ae.severity == "mild").mean() > 0.85 and (ae.severity == "severe").any()


def test_gais_coding_and_responders(tidy):
    g = tidy.truth["gais"]
    assert g["coding"]["1"] == "very much improved" and g["coding"]["5"] == "worse" and g["responder_max"] == 3
    a = tidy.tables["assessments"]
    gais = a[a.scale == "gais"]
    assert set(gais.rater.astype(str)) == {"clinician", "patient"}
    assert 0.7 < (gais.score <= 3).mean() < 0.97
    w = a[a.scale == "wsrs"].merge(tidy.tables["patients"], on="patient_id")
    assert (w.concern == "fine_lines").all() and len(w) > 0


# --- CLI and demo -------------------------------------------------------------------------------
def test_cli_simulate_and_demo(tmp_path):
    runner = CliRunner()
    out = tmp_path / "sim"
    res = runner.invoke(app, ["simulate", "--patients", "40", "--seed", "3", "--out", str(out), "--tidy"])
    assert res.exit_code == 0, res.output
    assert (out / "truth.json").is_file() and (out / "photo_metrics.csv").is_file()
    raw = tmp_path / "raw"
    res = runner.invoke(app, ["demo", "--raw", str(raw), "--patients", "30", "--seed", "4"])
    assert res.exit_code == 0 and "SYNTHETIC DEMO DATA" in res.stderr
    with unchanged(raw):  # a second demo is refused (exit 2), or left alone with --if-empty (exit 0)
        res = runner.invoke(app, ["demo", "--raw", str(raw), "--patients", "50", "--seed", "9"])
        assert res.exit_code == 2 and "not empty" in res.stderr and "patients.csv" in res.stderr
        assert "SYNTHETIC" not in res.stderr
        res = runner.invoke(app, ["demo", "--raw", str(raw), "--patients", "50", "--seed", "9", "--if-empty"])
        assert res.exit_code == 0 and "no demo data written" in res.stderr and "SYNTHETIC" not in res.stderr
        res = runner.invoke(app, ["simulate", "--patients", "40", "--out", str(raw)])
        assert res.exit_code == 2 and "not empty" in res.stderr


# What a clinic's folder may hold on a bad morning: demo must refuse every one, writing nothing.
REAL_FOLDERS = {
    "patients in another format": ["patients.parquet"],
    "patients with another case": ["Patients.CSV"],
    "patients missing": ["sessions.csv", "photo_metrics.csv"],
    "an unknown file": ["notes.txt"],
    "a sub-folder": ["exports/"],
}


@pytest.mark.parametrize("names", REAL_FOLDERS.values(), ids=REAL_FOLDERS.keys())
@pytest.mark.parametrize("if_empty", [False, True])
def test_demo_refuses_any_folder_that_is_not_empty_and_writes_nothing(tmp_path, names, if_empty):
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in names:
        if name.endswith("/"):
            (raw / name).mkdir()
        else:
            (raw / name).write_text(f"real {name}\n")
    with unchanged(raw):
        with pytest.raises(OutputError, match="not empty"):
            write_demo_if_empty(raw, n_patients=20, seed=1)
        args = ["demo", "--raw", str(raw), "--patients", "20"] + (["--if-empty"] if if_empty else [])
        res = CliRunner().invoke(app, args)
        assert res.exit_code == (0 if if_empty else 2), res.output
        assert names[0].rstrip("/") in res.stderr and "SYNTHETIC" not in res.stderr


def test_demo_writes_into_an_absent_or_empty_folder_hidden_files_aside(tmp_path):
    assert write_demo_if_empty(tmp_path / "new", n_patients=20, seed=1) == tmp_path / "new"
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / ".gitkeep").write_text("")
    write_demo_if_empty(tmp_path / "kept", n_patients=20, seed=1)
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == sorted(
        [".gitkeep", "truth.json", "photos"] + [f"{t}.csv" for t in contract.TABLES])


def test_demo_has_rendered_photos_of_a_sample_of_its_patients(tmp_path):
    """The demo's photos folder: index.csv and JPEGs of demo patients (the tidy export's photo ids,
    two or more photos each), photo_truth.csv saying they are simulated; modest size."""
    from PIL import Image

    from outcomes import config
    from outcomes.simulation import demo_photo_patients

    raw = write_demo_if_empty(tmp_path / "raw", n_patients=250, seed=5)
    index = pd.read_csv(raw / "photos" / "index.csv", dtype=str)
    patients = pd.read_csv(raw / "patients.csv", sep=None, engine="python", dtype=str)
    assert index["patient_id"].nunique() == demo_photo_patients(250) == 2
    assert set(index["patient_id"]) <= set(patients.iloc[:, 0])  # the demo's own patients
    assert (index.groupby("patient_id").size() >= 2).all()
    tidy = simulate(250, seed=5, tidy=True).tables["photo_metrics"]
    assert set(index["photo_id"]) <= set(tidy["photo_id"].astype(str))
    assert (raw / "photos" / "photo_truth.csv").is_file()
    jpegs = sorted((raw / "photos").rglob("*.jpg"))
    assert len(jpegs) == len(index)
    with Image.open(jpegs[0]) as first:
        assert first.size == config.DEMO_PHOTO_SIZE
    assert sum(p.stat().st_size for p in jpegs) < 150_000 * len(jpegs)
    assert demo_photo_patients(20) == 1 and demo_photo_patients(config.DEMO_PATIENTS) == config.DEMO_PHOTO_PATIENTS


def test_demo_without_its_photos_is_taken_back(tmp_path, monkeypatch):
    """A failure (or Ctrl-C) while the photos are rendered leaves the folder as it was: otherwise
    `--if-empty` would keep a demo without photos for good."""
    import outcomes.photos.simulate as photos

    def broken(out, **kwargs):
        Path(out).mkdir(parents=True)
        raise KeyboardInterrupt

    monkeypatch.setattr(photos, "simulate_photos", broken)
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / ".gitkeep").write_text("")
    with pytest.raises(KeyboardInterrupt):
        write_demo_if_empty(tmp_path / "raw", n_patients=20, seed=1)
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == [".gitkeep"]


def test_a_file_appearing_after_the_check_is_never_replaced(tmp_path, monkeypatch):
    """A race: the export arrives between the emptiness check and the write. Files are created
    exclusively, so the real one stays and the files written so far are taken back."""
    import outcomes.simulation as sim

    raw = tmp_path / "raw"
    raw.mkdir()
    monkeypatch.setattr(sim, "refuse_unless_empty", lambda folder: None)  # the check saw an empty folder
    (raw / "sessions.csv").write_text("real sessions\n")
    real = fingerprint(raw)["sessions.csv"]
    with pytest.raises(FileExistsError):
        simulate(20, seed=1).write(raw)
    assert [p.name for p in raw.iterdir()] == ["sessions.csv"] and fingerprint(raw)["sessions.csv"] == real


def test_public_api_exposes_simulate():
    import outcomes

    assert outcomes.simulate is simulate
