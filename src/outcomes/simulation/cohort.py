"""The latent cohort: who the patients are, what happened to them, and the clean tables it yields.

Vectorised over patients (the course loop runs over at most six sessions), so ~30,000 patients and
~5 million measurement rows take seconds. The clean tables here are the --tidy export; the
messy export is derived from them in `mess.py`, so both share the same truth.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import truncnorm

from outcomes.contract import BASELINE_MAX_DAYS_BEFORE_FIRST_SESSION, METRICS, SKIN_TYPES
from outcomes.simulation import parameters as P

EPOCH = np.datetime64("2023-01-02", "D")
ENROLMENT_DAYS = int((np.datetime64("2025-06-30", "D") - EPOCH).astype(int))


@dataclass
class Cohort:
    """Clean tables plus the latent per-patient values that generated them."""

    tables: dict[str, pd.DataFrame]
    patient_ids: np.ndarray  # str, sorted
    age: np.ndarray  # int years at first session
    skin_type: np.ndarray  # index into SKIN_TYPES
    response_factor: np.ndarray
    first_session: np.ndarray  # datetime64[D]
    extra: dict = field(default_factory=dict)


def _draw(rng: np.random.Generator, shares: dict, n: int) -> tuple[np.ndarray, list]:
    keys = list(shares)
    p = np.array([shares[k] for k in keys], dtype=float)
    return rng.choice(len(keys), size=n, p=p / p.sum()), keys


def _cat(codes: np.ndarray, categories) -> pd.Categorical:
    return pd.Categorical.from_codes(np.asarray(codes, dtype=np.int32), categories=pd.Index(list(categories), dtype=str))


def pseudonymous_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """Sorted unique ids like P000123, drawn from a space ~10x larger than the cohort."""
    digits = max(6, len(str(n * 10)))
    numbers = np.sort(rng.choice(10**digits - 1, size=n, replace=False) + 1)
    return np.char.add("P", np.char.zfill(numbers.astype(str), digits))


def iso_dates(days: np.ndarray) -> np.ndarray:
    return np.datetime_as_string(days.astype("datetime64[D]"), unit="D")


def build_cohort(n: int, rng: np.random.Generator,  # noqa: PLR0915 - one story, told in order
                 dropout: P.DropoutParams = P.DropoutParams()) -> Cohort:
    # --- patients ---------------------------------------------------------------------------
    ids = pseudonymous_ids(rng, n)
    sex, sex_keys = _draw(rng, P.SEX_SHARES, n)
    a, b = (P.AGE_MIN - P.AGE_MEAN) / P.AGE_SD, (P.AGE_MAX + 1 - P.AGE_MEAN) / P.AGE_SD
    age = np.floor(truncnorm.rvs(a, b, loc=P.AGE_MEAN, scale=P.AGE_SD, size=n, random_state=rng)).astype(int)
    age = np.clip(age, P.AGE_MIN, P.AGE_MAX)
    skin, _ = _draw(rng, P.SKIN_TYPE_SHARES, n)
    concern, concern_keys = _draw(rng, P.CONCERN_SHARES, n)
    body = np.isin(np.array(concern_keys)[concern], P.BODY_CONCERNS)
    clinic, clinic_keys = _draw(rng, {c: v["share"] for c, v in P.CLINICS.items()}, n)
    r = rng.normal(P.RESPONSE_MEAN, P.RESPONSE_SD, n)
    skin_mult = np.array([P.SKIN_TYPE_MULTIPLIER[s] for s in SKIN_TYPES])[skin]
    factor = (1 + P.AGE_SLOPE * (age - P.AGE_REF)) * skin_mult  # everything but r, dose and fading
    first = EPOCH + rng.integers(0, ENROLMENT_DAYS, n).astype("timedelta64[D]")

    # --- course: schedule, adverse events, outcome-dependent dropout -----------------------
    planned_idx, planned_keys = _draw(rng, P.PLANNED_SESSIONS, n)
    planned = np.array(planned_keys)[planned_idx]
    nominal_idx, nominal_keys = _draw(rng, P.NOMINAL_INTERVAL_DAYS, n)
    nominal = np.array(nominal_keys, dtype=float)[nominal_idx]
    max_s = max(P.PLANNED_SESSIONS)
    gaps = nominal[:, None] + rng.normal(0, P.INTERVAL_SD_DAYS, (n, max_s))
    delayed = rng.random((n, max_s)) < P.DELAY_SHARE
    gaps = np.where(delayed, gaps * rng.uniform(*P.DELAY_FACTOR, (n, max_s)), gaps)
    gaps = np.maximum(np.rint(gaps), P.MIN_GAP_DAYS).astype(int)
    offsets = np.concatenate([np.zeros((n, 1), int), np.cumsum(gaps, axis=1)], axis=1)  # day of session j

    measured = dropout.trigger == "measured"
    if measured:  # the reading the patient is shown, drawn up front so dropout can read exactly it
        seen = np.random.default_rng(rng.integers(2**63))
        pre_screened = seen.random(n) < P.SCREENING_SHARE
        pre_skip_first = pre_screened & (seen.random(n) < P.SCREENING_ONLY_BASELINE_SHARE)
        pre_screen_day = -seen.integers(P.SCREENING_DAYS[0], P.SCREENING_DAYS[1] + 1, n)
        shown = P.METRIC_TRUTH[P.SHOWN_METRIC]
        shown_noise = seen.normal(0, shown.noise_cv, (n, max_s + 1))  # column j: visit of session j+1; last: screening
        base_noise = np.where(pre_skip_first, shown_noise[:, max_s], shown_noise[:, 0])
        has_baseline = ~pre_skip_first | (-pre_screen_day <= BASELINE_MAX_DAYS_BEFORE_FIRST_SESSION)
    completed = np.zeros((n, max_s), bool)
    dropped = np.zeros(n, bool)
    modsev = np.zeros(n, bool)
    ae_parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    pih_rate = np.array([P.PIH_RATES[s] for s in SKIN_TYPES])[skin]
    events = list(P.AE_RATES) + ["pih"]
    for j in range(max_s):
        active = (j < planned) & ~dropped
        completed[:, j] = active
        for event in events:
            rate = pih_rate if event == "pih" else P.AE_RATES[event]
            hit = active & (rng.random(n) < rate)
            who = np.flatnonzero(hit)
            sev = rng.choice(3, size=who.size, p=P.AE_SEVERITY[event])
            lo, hi = P.AE_LAG_DAYS[event]
            lag = rng.integers(lo, hi + 1, who.size)
            lag = np.minimum(lag, gaps[who, j] - 1)  # an event shows before the next session
            ae_parts.append((who, offsets[who, j] + lag, np.full(who.size, events.index(event)), sev))
            modsev[who[sev > 0]] = True
        if measured:  # the reading at this visit (after j sessions) over the baseline reading
            seen_pct = 100 * ((1 + shown.emax_pct * r * (1 - np.exp(-P.K * j)) * factor / 100)
                              * np.exp(shown_noise[:, j] - base_noise) - 1)
            no_gain = (j >= 1) & has_baseline & (seen_pct < dropout.no_gain_threshold * shown.emax_pct)
        else:
            gain = r * (1 - np.exp(-P.K * (j + 1))) * factor + rng.normal(0, dropout.perception_sd, n)
            no_gain = gain < dropout.no_gain_threshold
        p_drop = dropout.base * np.where(modsev | no_gain, dropout.factor, 1.0)
        dropped |= active & (j + 1 < planned) & (rng.random(n) < p_drop)
    n_done = completed.sum(axis=1)
    completer = n_done == planned
    last = offsets[np.arange(n), n_done - 1]

    # --- visits: screening, session days, follow-ups ------------------------------------------
    screened = rng.random(n) < P.SCREENING_SHARE
    skip_first = screened & (rng.random(n) < P.SCREENING_ONLY_BASELINE_SHARE)
    if measured:
        screened, skip_first = pre_screened, pre_skip_first
    v_pid, v_day, v_n, v_fade, v_kind = [], [], [], [], []

    def add(mask: np.ndarray, day: np.ndarray, n_before: np.ndarray, kind: int) -> None:
        who = np.flatnonzero(mask)
        v_pid.append(who)
        v_day.append(np.asarray(day)[who])
        v_n.append(np.broadcast_to(n_before, (n,))[who])
        since = np.asarray(day)[who] - last[who]
        fade = 0.5 ** (since / 7.0 / P.HALF_LIFE_WEEKS) if kind >= 2 else np.ones(who.size)
        v_fade.append(fade)
        v_kind.append(np.full(who.size, kind))

    screen_day = -rng.integers(P.SCREENING_DAYS[0], P.SCREENING_DAYS[1] + 1, n)
    add(screened, pre_screen_day if measured else screen_day, np.zeros(n, int), 0)
    for j in range(max_s):
        add(completed[:, j] & ~((j == 0) & skip_first), offsets[:, j], np.full(n, j), 1)
    fu1 = last + np.maximum(np.rint(nominal + rng.normal(0, P.INTERVAL_SD_DAYS, n)), P.MIN_GAP_DAYS).astype(int)
    add(completer, fu1, n_done, 2)
    fu2 = last + np.rint(rng.uniform(*P.SECOND_FOLLOW_UP_WEEKS, n) * 7).astype(int)
    add(completer & (rng.random(n) < P.SECOND_FOLLOW_UP_SHARE), fu2, n_done, 3)
    v_pid, v_day, v_n, v_fade, v_kind = (np.concatenate(x) for x in (v_pid, v_day, v_n, v_fade, v_kind))
    order = np.lexsort((v_day, v_pid))
    v_pid, v_day, v_n, v_fade, v_kind = v_pid[order], v_day[order], v_n[order], v_fade[order], v_kind[order]
    n_vis = v_pid.size
    v_date = first[v_pid] + v_day.astype("timedelta64[D]")
    v_minute = rng.integers(8 * 60, 18 * 60, n_vis)
    v_gain = r[v_pid] * (1 - np.exp(-P.K * v_n)) * factor[v_pid] * v_fade  # relative to Emax
    v_makeup = rng.random(n_vis) < P.PHOTO_PROBLEMS["makeup"]

    # --- photo captures (face patients: three views per visit) ---------------------------------
    face_v = np.flatnonzero(~body[v_pid])
    n_views = len(P.PHOTO_VIEWS)
    c_vis = np.repeat(face_v, n_views)
    c_view = np.tile(np.arange(n_views), face_v.size)
    n_cap = c_vis.size
    c_pid = v_pid[c_vis]
    c_clinic = clinic[c_pid]
    cam_keys = [P.CLINICS[c]["camera"] for c in clinic_keys]
    mismatch_rate = np.array([P.CLINICS[c]["color_mismatch"] for c in clinic_keys])[c_clinic]
    card_missing_rate = np.array([P.CLINICS[c]["missing_card"] for c in clinic_keys])[c_clinic]
    blur_rate = np.array([P.CAMERA_BLUR[c] for c in cam_keys])[c_clinic]
    c_expr = rng.random(n_cap) < P.PHOTO_PROBLEMS["expression"]
    c_pose = rng.random(n_cap) < P.PHOTO_PROBLEMS["pose_off"]
    sign = np.where(rng.random(n_cap) < 0.5, -1.0, 1.0)
    yaw_dev = np.where(c_pose, sign * rng.uniform(8, 20, n_cap), np.clip(rng.normal(0, 1.5, n_cap), -4.5, 4.5))
    c_yaw = np.round(np.array([P.VIEW_YAW_DEG[v] for v in P.PHOTO_VIEWS])[c_view] + yaw_dev, 1)
    pose_factor = 1 + sign * rng.uniform(0.10, 0.20, n_cap)
    c_mismatch = rng.random(n_cap) < mismatch_rate
    c_de = np.where(c_mismatch, rng.uniform(5.5, 15, n_cap), np.minimum(0.5 + rng.gamma(2.0, 0.8, n_cap), 4.9))
    c_de = np.where(rng.random(n_cap) < card_missing_rate, np.nan, np.round(c_de, 2))
    c_blurry = rng.random(n_cap) < blur_rate
    c_blur = np.round(np.where(c_blurry, rng.uniform(0.55, 0.95, n_cap), np.minimum(rng.beta(2, 12, n_cap), 0.45)), 2)

    # --- measurement rows ----------------------------------------------------------------------
    metric_names = list(P.METRIC_TRUTH)
    mcode = {m: i for i, m in enumerate(metric_names)}
    photo_codes = np.array([mcode[m] for m in P.PHOTO_METRICS])
    n_pm = photo_codes.size
    # photo rows: capture x photo metric
    p_cap = np.repeat(np.arange(n_cap), n_pm)
    p_metric = np.tile(photo_codes, n_cap)
    # instrument rows: visit x instrument metric (body patients: hydration and elasticity only)
    inst_rows = []
    for m in P.INSTRUMENT_METRICS:
        vis = np.arange(n_vis) if m in P.BODY_METRICS else face_v
        inst_rows.append(np.stack([vis, np.full(vis.size, mcode[m])]))
    inst = np.concatenate(inst_rows, axis=1)
    i_vis, i_metric = inst[0], inst[1]
    # order inside a visit: the three photos (views), then instruments in registry order
    row_vis = np.concatenate([c_vis[p_cap], i_vis])
    row_metric = np.concatenate([p_metric, i_metric])
    row_cap = np.concatenate([p_cap, np.full(i_vis.size, -1)])
    row_view = np.concatenate([c_view[p_cap], np.zeros(i_vis.size, int)])
    order = np.lexsort((row_metric, row_view, row_cap < 0, row_vis))
    row_vis, row_metric, row_cap, row_view = row_vis[order], row_metric[order], row_cap[order], row_view[order]
    is_photo = row_cap >= 0
    cap = np.where(is_photo, row_cap, 0)
    row_pid = v_pid[row_vis]
    n_rows = row_vis.size

    # patient x metric baseline levels, and a per view factor for photo metrics
    emax = np.array([P.METRIC_TRUTH[m].emax_pct for m in metric_names])
    lower = np.array([METRICS[m].better == "lower" for m in metric_names])
    level_med = np.array([P.METRIC_TRUTH[m].level for m in metric_names])
    level_sd = np.array([P.METRIC_TRUTH[m].level_sd for m in metric_names])
    level = level_med * np.exp(rng.normal(0, 1, (n, len(metric_names))) * level_sd)
    age_c = (age - P.AGE_REF)[:, None]
    level[:, mcode["wrinkles"]] *= np.clip(1 + 0.03 * age_c[:, 0], 0.3, None)
    level[:, mcode["elasticity_r7"]] *= np.clip(1 - 0.008 * age_c[:, 0], 0.5, None)
    melanin = np.array([P.MELANIN_BY_SKIN_TYPE[s] for s in SKIN_TYPES])[skin]
    level[:, mcode["melanin_index"]] *= melanin / P.METRIC_TRUTH["melanin_index"].level
    view_factor = np.exp(rng.normal(0, 0.08, (n, n_views, len(metric_names))))
    view_factor[:, 1:, mcode["wrinkles"]] *= 1.15  # crow's feet show more on the oblique views
    read = np.ones((len(SKIN_TYPES), len(metric_names)))
    for m in P.REDNESS_METRICS:
        for s, v in P.REDNESS_READ_STRENGTH.items():
            read[SKIN_TYPES.index(s), mcode[m]] = v

    improvement = emax[row_metric] * v_gain[row_vis] * read[skin[row_pid], row_metric]  # percent
    true_level = level[row_pid, row_metric] * np.where(is_photo, view_factor[row_pid, row_view, row_metric], 1.0)
    true_value = true_level * np.where(lower[row_metric], 1 - improvement / 100, 1 + improvement / 100)
    noise_cv = np.array([P.METRIC_TRUTH[m].noise_cv for m in metric_names])
    value = true_value * np.exp(rng.normal(0, 1, n_rows) * noise_cv[row_metric])
    if measured:  # the shown readings are the ones the dropout decisions saw
        sel = (row_metric == mcode[P.SHOWN_METRIC]) & (v_kind[row_vis] <= 1)
        column = np.where(v_kind[row_vis[sel]] == 0, max_s, v_n[row_vis[sel]])
        value[sel] = true_value[sel] * np.exp(shown_noise[row_pid[sel], column])

    def per_metric(mapping: dict) -> np.ndarray:
        return np.array([mapping.get(m, 1.0) for m in metric_names])

    value *= np.where(is_photo & v_makeup[row_vis], per_metric(P.MAKEUP_FACTOR)[row_metric], 1.0)
    value *= np.where(is_photo & c_expr[cap], per_metric(P.EXPRESSION_FACTOR)[row_metric], 1.0)
    pose_metric = np.isin(row_metric, [mcode[m] for m in P.POSE_METRICS])
    value *= np.where(is_photo & c_pose[cap] & pose_metric, pose_factor[cap], 1.0)
    value *= np.where(is_photo & c_blurry[cap], per_metric(P.BLUR_FACTOR)[row_metric], 1.0)
    colour_sd = np.array([P.COLOR_MISMATCH_SD.get(m, 0.0) for m in metric_names])
    value *= np.where(is_photo & c_mismatch[cap], np.exp(rng.normal(0, 1, n_rows) * colour_sd[row_metric]), 1.0)
    decimals = np.array([P.METRIC_TRUTH[m].decimals for m in metric_names])
    for d in np.unique(decimals):
        sel = decimals[row_metric] == d
        value[sel] = np.round(value[sel], d)
    lo = np.array([METRICS[m].low for m in metric_names])
    hi = np.array([METRICS[m].high for m in metric_names])
    value = np.clip(value, lo[row_metric], np.where(np.isfinite(hi), hi * 0.999, np.inf)[row_metric])

    # ids and labels
    cap_ids = np.char.add("IMG", np.char.zfill(np.arange(1, n_cap + 1).astype(str), 8))
    devices = list(dict.fromkeys([*cam_keys, *(P.METRIC_TRUTH[m].device for m in P.INSTRUMENT_METRICS)]))
    dev_prefix = {"Corneometer CM 825": "CM", "Cutometer MPA 580": "CT", "Mexameter MX 18": "MX"}
    inst_dev = np.array([devices.index(P.METRIC_TRUTH[m].device) if P.METRIC_TRUTH[m].device else -1
                         for m in metric_names])
    reading_ids = {
        d: np.char.add(f"{dev_prefix[devices[d]]}", np.char.zfill(np.arange(1, n_vis + 1).astype(str), 8))
        for d in sorted(set(inst_dev[inst_dev >= 0].tolist()))
    }
    photo_id_cats = np.concatenate([cap_ids, *reading_ids.values()])
    photo_id_code = np.empty(n_rows, np.int64)
    photo_id_code[is_photo] = row_cap[is_photo]
    base = n_cap
    for d, arr in reading_ids.items():
        sel = ~is_photo & (inst_dev[row_metric] == d)
        photo_id_code[sel] = base + row_vis[sel]
        base += arr.size
    cam_dev = np.array([devices.index(c) for c in cam_keys])
    device_code = np.where(is_photo, cam_dev[clinic[row_pid]], inst_dev[row_metric])
    makeup_code = np.where(is_photo, v_makeup[row_vis].astype(int), -1)

    day_codes, day_inverse = np.unique(v_date, return_inverse=True)
    photo_metrics = pd.DataFrame({
        "patient_id": _cat(row_pid, ids),
        "photo_id": _cat(photo_id_code, photo_id_cats),
        "taken_at": _cat(day_inverse[row_vis], iso_dates(day_codes)),
        "metric": _cat(row_metric, metric_names),
        "value": value,
        "view": _cat(row_view, P.PHOTO_VIEWS),
        "device": _cat(device_code, devices),
        "color_delta_e": np.where(is_photo, c_de[cap], np.nan),
        "head_yaw_deg": np.where(is_photo, c_yaw[cap], np.nan),
        "makeup": _cat(makeup_code, ["no", "yes"]),
        "blur": np.where(is_photo, c_blur[cap], np.nan),
    })

    # --- sessions ------------------------------------------------------------------------------
    s_pid, s_j = np.nonzero(completed)
    s_day, s_status = offsets[s_pid, s_j], np.zeros(s_pid.size, int)
    # a cancelled or no-show booking a few days before some later sessions (rebooked; never counted)
    pre = (s_j >= 1) & (rng.random(s_pid.size) < 0.04)
    x_pid, x_day = s_pid[pre], s_day[pre] - rng.integers(2, 6, pre.sum())
    x_status = np.where(rng.random(pre.sum()) < 0.6, 1, 2)
    # dropouts: the next booked session is often a no-show or cancelled
    drop_who = np.flatnonzero(~completer)
    fate = rng.random(drop_who.size)
    dmask = fate < 0.7
    y_pid = drop_who[dmask]
    y_day = offsets[y_pid, n_done[y_pid]]
    y_status = np.where(fate[dmask] < 0.5, 2, 1)
    all_pid = np.concatenate([s_pid, x_pid, y_pid])
    all_day = np.concatenate([s_day, x_day, y_day])
    all_status = np.concatenate([s_status, x_status, y_status])
    order = np.lexsort((all_day, all_pid))
    all_pid, all_day, all_status = all_pid[order], all_day[order], all_status[order]
    n_sess = all_pid.size
    face_areas = {"face": 0.85, "neck": 0.10, "decollete": 0.05}
    area_idx, area_keys = _draw(rng, face_areas, n)
    concern_arr = np.array(concern_keys)[concern]
    body_area = {"hair_loss": "scalp", "cellulite": "thighs", "localized_fat": "abdomen"}
    patient_area = np.where(body, np.array([body_area.get(c, "") for c in concern_arr]), np.array(area_keys)[area_idx])
    face_product, _ = _draw(rng, dict.fromkeys(P.PRODUCTS, 1.0), n)
    body_product = {"hair_loss": "hair cocktail", "cellulite": "lipolytic cocktail", "localized_fat": "lipolytic cocktail"}
    patient_product = np.where(body, np.array([body_product.get(c, "") for c in concern_arr]),
                               np.array(P.PRODUCTS)[face_product])
    vol = np.where(body[all_pid], rng.uniform(5, 15, n_sess), rng.uniform(1.5, 4.0, n_sess)).round(1)
    vol = np.where(all_status == 0, vol, np.nan)
    practitioner = np.char.add(np.char.add(np.array(clinic_keys)[clinic], "-DR"),
                               rng.integers(1, P.PRACTITIONERS_PER_CLINIC + 1, n).astype(str))
    sessions = pd.DataFrame({
        "patient_id": _cat(all_pid, ids),
        "session_date": iso_dates(first[all_pid] + all_day.astype("timedelta64[D]")),
        "status": _cat(all_status, ["completed", "cancelled", "no_show"]),
        "product": patient_product[all_pid],
        "area": patient_area[all_pid],
        "volume_ml": vol,
        "practitioner_id": practitioner[all_pid],
    })

    # --- adverse events ------------------------------------------------------------------------
    ae_pid = np.concatenate([p[0] for p in ae_parts])
    ae_day = np.concatenate([p[1] for p in ae_parts])
    ae_event = np.concatenate([p[2] for p in ae_parts])
    ae_sev = np.concatenate([p[3] for p in ae_parts])
    order = np.lexsort((ae_event, ae_day, ae_pid))
    adverse_events = pd.DataFrame({
        "patient_id": _cat(ae_pid[order], ids),
        "event_date": iso_dates(first[ae_pid[order]] + ae_day[order].astype("timedelta64[D]")),
        "event": _cat(ae_event[order], events),
        "severity": _cat(ae_sev[order], ["mild", "moderate", "severe"]),
    })

    # --- assessments ---------------------------------------------------------------------------
    def gais(g: np.ndarray) -> np.ndarray:
        t1, t2, t3, t4 = P.GAIS_THRESHOLDS
        grade = np.select([g >= t1, g >= t2, g >= t3, g >= t4], [1, 2, 3, 4], 5)
        return rater_noise(grade)

    def rater_noise(grade: np.ndarray) -> np.ndarray:
        shift = np.where(rng.random(grade.size) < P.RATER_NOISE_P, np.where(rng.random(grade.size) < 0.5, -1, 1), 0)
        return np.clip(grade + shift, 1, 5)

    fu_vis = np.flatnonzero(v_kind >= 2)
    mid_vis = np.flatnonzero((v_kind == 1) & (v_n == 2))
    mid_vis = mid_vis[rng.random(mid_vis.size) < P.MID_COURSE_GAIS_SHARE]
    fine = concern_arr == "fine_lines"
    base_vis = np.flatnonzero((v_kind == 1) & (v_n == 0))
    wsrs_latent = np.clip(rng.normal(3.0, 0.8, n) + 0.03 * (age - P.AGE_REF), 1, 5)
    wsrs_b = base_vis[fine[v_pid[base_vis]]]
    wsrs_f = fu_vis[fine[v_pid[fu_vis]]]
    parts = []  # (visit index, scale, rater, score)
    gais_vis = np.concatenate([mid_vis, fu_vis])
    for rater in (0, 1):
        parts.append((gais_vis, 0, rater, gais(v_gain[gais_vis])))
    parts.append((wsrs_b, 1, 0, rater_noise(np.rint(wsrs_latent[v_pid[wsrs_b]]).astype(int))))
    wsrs_after = wsrs_latent[v_pid[wsrs_f]] - 1.2 * v_gain[wsrs_f]
    parts.append((wsrs_f, 1, 0, rater_noise(np.clip(np.rint(wsrs_after), 1, 5).astype(int))))
    sat_vis = np.flatnonzero(v_kind == 2)
    sat = np.clip(np.rint(50 + 40 * v_gain[sat_vis] + rng.normal(0, 15, sat_vis.size)), 0, 100).astype(int)
    parts.append((sat_vis, 2, 1, sat))
    a_vis = np.concatenate([p[0] for p in parts])
    a_scale = np.concatenate([np.full(p[0].size, p[1]) for p in parts])
    a_rater = np.concatenate([np.full(p[0].size, p[2]) for p in parts])
    a_score = np.concatenate([p[3] for p in parts])
    order = np.lexsort((a_rater, a_scale, a_vis))
    a_vis, a_scale, a_rater, a_score = a_vis[order], a_scale[order], a_rater[order], a_score[order]
    assessments = pd.DataFrame({
        "patient_id": _cat(v_pid[a_vis], ids),
        "assessed_at": iso_dates(v_date[a_vis]),
        "scale": _cat(a_scale, ["gais", "wsrs", "satisfaction"]),
        "rater": _cat(a_rater, ["clinician", "patient"]),
        "score": a_score.astype(np.int64),
    })

    patients = pd.DataFrame({
        "patient_id": ids,
        "age": age.astype(np.int64),
        "sex": _cat(sex, sex_keys),
        "skin_type": _cat(skin, SKIN_TYPES),
        "concern": _cat(concern, concern_keys),
        "clinic_id": _cat(clinic, clinic_keys),
    })
    tables = {"patients": patients, "sessions": sessions, "photo_metrics": photo_metrics,
              "assessments": assessments, "adverse_events": adverse_events}
    extra = {"visit_minute": v_minute, "visit_date": v_date, "row_visit": row_vis,
             "planned": planned, "completed_sessions": n_done}
    return Cohort(tables, ids, age, skin, r, first, extra)
