"""Issue 13, points 2, 3 and 6: the photo simulator's truth is recovered by colour correction and measurement.

Photos are rendered by outcomes.photos.simulate with recorded truth; seeds are fixed and the images
small (400 x 300 for the chart, 640 x 480 where the skin's texture is measured).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from outcomes.photos.colour import delta_e2000, detect_chart, fit_correction
from outcomes.photos.measure import METRIC_KEYS, ita_category, measure_skin
from outcomes.photos.simulate import Capture, SkinTruth, render_photo, simulate_photos

SKIN = SkinTruth(L=62.0, a=12.0, b=17.0, spot_fraction=4.0, line_density=4.0, roughness=1.5)
TEXTURE_SIZE = (640, 480)


def pose(i: int, size: tuple[int, int] = TEXTURE_SIZE, **kw) -> Capture:
    """A capture with light, exposure and pose varied deterministically by i."""
    rng = np.random.default_rng(1000 + i)
    values = dict(cct_k=float(rng.uniform(2700, 6500)), exposure=float(rng.uniform(0.85, 1.1)),
                  shift_px=tuple(float(v) for v in rng.uniform(-8, 8, 2)), rotation_deg=float(rng.uniform(-2.5, 2.5)),
                  scale=float(rng.uniform(0.96, 1.04)), size=size, seed=i)
    values.update(kw)
    return Capture(**values)


@pytest.mark.parametrize("cct", [2700, 3500, 4500, 5500, 6500])
def test_chart_correction_under_every_illuminant(cct):
    photo = render_photo(SKIN, pose(cct, size=(400, 300), cct_k=float(cct)), texture_seed=1)
    reading = detect_chart(photo.rgb)
    assert reading is not None
    # the box found is where the chart was drawn (a few px of slack for the frame's edge)
    assert np.max(np.abs(np.array(reading.box) - np.array(photo.chart_box))) <= 6
    correction = fit_correction(reading)
    print(f"{cct} K: median ΔE2000 of the chart {correction.delta_e_before:.2f} before, {correction.delta_e:.2f} after")
    assert correction.delta_e <= 2.0
    assert correction.delta_e_before >= max(3.0, 3 * correction.delta_e)
    # applying the correction to the photo's chart patches gives the same figure (apply is the fit)
    corrected = correction.apply(reading.swatches)
    assert corrected.shape == (24, 3) and np.all((corrected >= 0) & (corrected <= 1))


def test_portrait_photo_chart_box_in_its_own_pixels():
    photo = render_photo(SKIN, pose(7, size=(400, 300)), texture_seed=2)
    turned = np.ascontiguousarray(np.rot90(photo.rgb, k=-1))  # clockwise: a portrait photo
    reading = detect_chart(turned)
    assert reading is not None
    x0, y0, x1, y1 = photo.chart_box
    h = photo.rgb.shape[0]
    expected = (h - y1, x0, h - y0, x1)  # the same chart, turned clockwise
    assert np.max(np.abs(np.array(reading.box) - np.array(expected))) <= 6


@pytest.mark.parametrize("skin", [
    SkinTruth(70.0, 8.0, 12.0, 3.0, 3.0, 1.2),   # very light (ITA ~ 59)
    SkinTruth(60.0, 11.0, 16.0, 5.0, 4.0, 1.6),  # intermediate (ITA ~ 32)
    SkinTruth(52.0, 13.0, 19.0, 2.0, 5.0, 2.0),  # brown (ITA ~ 6)
    SkinTruth(38.0, 12.0, 15.0, 6.0, 2.0, 1.4),  # dark (ITA ~ -39)
])
def test_skin_colour_and_ita_match_the_truth(skin):
    for i, cct in enumerate((2700.0, 6500.0)):
        photo = render_photo(skin, pose(i, cct_k=cct), texture_seed=3)
        m = measure_skin(photo.rgb, photo.skin_box)
        assert m.chart_found and m.color_delta_e <= 2.0
        measured = np.array([m.metrics["cielab_l"], m.metrics["cielab_a"], m.metrics["cielab_b"]])
        error = float(delta_e2000(measured, np.array([skin.L, skin.a, skin.b])))
        print(f"truth {skin.L, skin.a, skin.b}, {cct} K: ΔE2000 {error:.2f}, ITA {m.metrics['ita']:.1f} vs {skin.ita:.1f}")
        assert error <= 2.0
        assert abs(m.metrics["ita"] - skin.ita) <= 3.0
        if min(abs(skin.ita - edge) for edge in (55, 41, 28, 10, -30)) > 3:  # clear of a category's edge
            assert ita_category(m.metrics["ita"]) == ita_category(skin.ita)


def test_ita_categories_follow_del_bino():
    cases = {60: "very light", 55.5: "very light", 50: "light", 41.5: "light", 35: "intermediate", 28.5: "intermediate",
             20: "tan", 10.5: "tan", 0: "brown", -29: "brown", -31: "dark", -60: "dark"}
    assert {ita: ita_category(ita) for ita in cases} == cases


def test_relative_metrics_rank_like_the_truth():
    rng = np.random.default_rng(7)
    truth, measured = [], []
    for i in range(14):
        skin = SkinTruth(L=float(rng.uniform(40, 70)), a=float(rng.uniform(7, 15)), b=float(rng.uniform(12, 20)),
                         spot_fraction=float(rng.uniform(0.5, 10)), line_density=float(rng.uniform(0.5, 7)),
                         roughness=float(rng.uniform(0.7, 2.4)))
        photo = render_photo(skin, pose(50 + i), texture_seed=100 + i)
        m = measure_skin(photo.rgb, photo.skin_box).metrics
        truth.append((skin.spot_fraction, skin.line_density, skin.roughness))
        measured.append((m["spot_area"], m["line_density"], m["roughness"]))
    truth, measured = np.array(truth), np.array(measured)
    for k, name in enumerate(("spot_area", "line_density", "roughness")):
        rho = spearmanr(truth[:, k], measured[:, k])[0]
        print(f"{name}: Spearman {rho:.3f}; measured/true median {np.median(measured[:, k] / truth[:, k]):.2f}")
        assert rho >= 0.95, name


def test_same_skin_under_other_light_and_pose_repeats():
    values = []
    for i in range(5):
        photo = render_photo(SKIN, pose(200 + i), texture_seed=11)
        m = measure_skin(photo.rgb, photo.skin_box)
        assert m.chart_found
        values.append([m.metrics[k] for k in METRIC_KEYS])
    values = np.array(values)
    cv = values.std(axis=0, ddof=1) / np.abs(values.mean(axis=0))
    print(dict(zip(METRIC_KEYS, np.round(cv, 4))))
    assert np.all(cv <= 0.05), dict(zip(METRIC_KEYS, cv))


def test_photo_without_chart_is_never_called_corrected():
    photo = render_photo(SKIN, pose(3, chart=False), texture_seed=4)
    assert photo.chart_box is None
    m = measure_skin(photo.rgb)
    assert m.chart_found is False and m.correction is None and math.isnan(m.color_delta_e)
    assert set(m.metrics) == set(METRIC_KEYS) and all(np.isfinite(v) for v in m.metrics.values())
    with_chart = measure_skin(render_photo(SKIN, pose(3), texture_seed=4).rgb)
    assert with_chart.chart_found is True and with_chart.color_delta_e <= 2.0


def test_bad_image_or_region_is_a_clear_error():
    photo = render_photo(SKIN, pose(1, size=(400, 300)), texture_seed=5)
    with pytest.raises(ValueError, match="uint8"):
        measure_skin(photo.rgb.astype(np.float64))
    with pytest.raises(ValueError, match="skin region"):
        measure_skin(photo.rgb, (390, 290, 500, 400))


def test_simulate_photos_writes_index_and_truth_deterministically(tmp_path):
    from outcomes.simulation import expected_improvement, simulate
    from outcomes.simulation.parameters import PHOTO_METRICS

    cohort = simulate(60, seed=3, tidy=True)
    a = simulate_photos(tmp_path / "a", n_patients=2, seed=5, size=(320, 240), cohort=cohort)
    b = simulate_photos(tmp_path / "b", n_patients=2, seed=5, size=(320, 240), cohort=cohort)
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files_a)
    index = pd.read_csv(a / "index.csv", dtype=str)
    truth = pd.read_csv(a / "photo_truth.csv", dtype={"patient_id": str, "photo_id": str})
    assert list(index.columns) == ["patient_id", "photo_id", "taken_at", "view", "file", "region"]
    assert index["patient_id"].nunique() == 2 and len(index) == len(truth) >= 4
    assert all((a / f).is_file() for f in index["file"]) and len(files_a) == len(index) + 2
    assert list(truth["photo_id"]) == list(index["photo_id"])
    # the photos are the cohort's front photos of those patients
    pm = cohort.tables["photo_metrics"]
    front = pm[pm["metric"].astype(str).isin(PHOTO_METRICS) & (pm["view"].astype(str) == "front")]
    for pid, rows in index.groupby("patient_id"):
        assert set(rows["photo_id"]) == set(front.loc[front["patient_id"].astype(str) == pid, "photo_id"].astype(str))
    # sessions: completed before the photo's day (a photo on a session day is taken before the injections)
    sessions = cohort.tables["sessions"]
    done = sessions[sessions["status"].astype(str) == "completed"]
    for row in truth.itertuples():
        dates = done.loc[done["patient_id"].astype(str) == row.patient_id, "session_date"].astype(str)
        assert row.sessions == (dates < row.taken_at).sum()
    assert truth["sessions"].max() >= 2
    # in course, the gain is the cohort's: r * expected improvement / Emax (no fading before the course ends)
    for row in truth.itertuples():
        p = cohort.truth["patients"][row.patient_id]
        if row.sessions < p["completed_sessions"]:
            expected = p["response_factor"] * expected_improvement(cohort.truth, "spots", row.sessions, p["age"],
                                                                   p["skin_type"]) / cohort.truth["metrics"]["spots"]["emax_pct"]
            assert row.gain == pytest.approx(expected, abs=1e-5)
    assert (truth.loc[truth["sessions"] == 0, "gain"] == 0).all()
    # a photo without a chart in the cohort has none in the picture either
    de = front.drop_duplicates("photo_id").set_index(front.drop_duplicates("photo_id")["photo_id"].astype(str))["color_delta_e"]
    assert list(truth["chart"]) == ["no" if np.isnan(de[p]) else "yes" for p in truth["photo_id"]]
    other = simulate_photos(tmp_path / "c", n_patients=1, seed=6, size=(320, 240), cohort=cohort)
    first = pd.read_csv(other / "index.csv", dtype=str).iloc[0]
    same = a / first["file"]
    assert not same.exists() or same.read_bytes() != (other / first["file"]).read_bytes()  # another seed, other photos


def test_simulate_photos_writes_only_into_an_empty_folder(tmp_path):
    from outcomes.processed_folder import OutputError

    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(OutputError):
        simulate_photos(tmp_path, n_patients=1, seed=1, size=(320, 240))
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
