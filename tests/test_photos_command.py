"""`outcomes photos`: index validation, loading, bad photos, rerun, its own output only, Dask = local.

The measuring function is injected (a module-level function, so worker processes can import it):
these tests are about the command's plumbing; the metrics themselves are tested with the
simulator's photos in the measurement's own tests.
"""
from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

import outcomes
from folder_state import unchanged
from outcomes.cli import app
from outcomes.photos import command, images
from outcomes.photos.command import Reading
from outcomes.photos.index import PhotoIndexError, read_index
from outcomes.photos.registration import Reference
from raw_factory import write_raw

CALLS: list[tuple[int, int]] = []  # shapes the in-process measurer was given


def measure(rgb: np.ndarray, region) -> Reading:
    """A stand-in measurement that depends on the pixels (two registry metrics, quality readings)."""
    CALLS.append(rgb.shape[:2])
    part = rgb if region is None else rgb[region[1]:region[3], region[0]:region[2]]
    return Reading(metrics={"texture": round(float(part.mean()), 6), "wrinkles": round(float(part.std()), 6)},
                   chart=False, color_delta_e=float("nan"), blur=0.25, clipped=0.0)


def pose(reference, moving: np.ndarray) -> float:
    return round(abs(float(reference.rgb.mean()) - float(moving.mean())), 6)


def photo(path: Path, level: int, size=(400, 300), fmt=None, exif=None) -> Path:
    """A noisy photo around grey `level`, written to `path`."""
    rng = np.random.default_rng(level)
    rgb = np.clip(rng.normal(level, 20, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, format=fmt, **({"exif": exif} if exif is not None else {}))
    return path


def index(folder: Path, rows: list[str], header="patient_id,photo_id,taken_at,view,file") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "index.csv").write_text("\n".join([header, *rows]) + "\n")
    return folder


def folder_of_good_photos(tmp_path: Path) -> Path:
    photos = tmp_path / "photos"
    for i, level in enumerate((90, 110, 130, 150)):
        photo(photos / f"p{i}.jpg", level)
    return index(photos, ["P1,a,2025-01-10,front,p0.jpg", "P1,b,2025-02-10,front,p1.jpg",
                          "P2,c,2025-01-05,,p2.jpg", "P2,d,2025-02-05,front,p3.jpg"])


# --- the index ----------------------------------------------------------------------------
@pytest.mark.parametrize("row, column", [
    (",a,2025-01-10,front,p0.jpg", "patient_id"),
    ("P1,a,2025-13-45,front,p0.jpg", "taken_at"),
    ("P1,a,2025-01-10,upside,p0.jpg", "view"),
    ("P1,a,2025-01-10,front,", "file"),
    ("P1,x,2025-01-10,front,p0.jpg", "photo_id"),  # x is used on row 2
])
def test_a_bad_index_row_is_named_by_file_row_and_column(tmp_path, row, column):
    photos = index(tmp_path / "photos", ["P1,x,2025-01-10,front,p0.jpg", row])
    with pytest.raises(PhotoIndexError) as error:
        read_index(photos)
    assert (error.value.file.name, error.value.row, error.value.column) == ("index.csv", 3, column)
    assert str(error.value).startswith(f"index.csv, row 3, column '{column}': ")


def test_a_bad_region_and_a_missing_column_are_named(tmp_path):
    photos = index(tmp_path / "photos", ["P1,a,,p0.jpg,10;20;30;40"], header="patient_id,photo_id,taken_at,file,region")
    with pytest.raises(PhotoIndexError, match=r"row 2, column 'region'"):
        read_index(photos)
    index(photos, ["P1,a,p0.jpg"], header="patient_id,photo,file")
    with pytest.raises(PhotoIndexError, match=r"row 1, column 'photo_id'.*missing"):
        read_index(photos)


def test_paths_leaving_the_photos_folder_are_refused(tmp_path):
    secret = photo(tmp_path / "elsewhere" / "secret.jpg", 100)
    photos = tmp_path / "photos"
    photo(photos / "inside.jpg", 100)
    (photos / "link.jpg").symlink_to(secret)
    (photos / "linked_folder").symlink_to(secret.parent)
    for name in (str(secret), "../elsewhere/secret.jpg", "sub/../../elsewhere/secret.jpg", "link.jpg",
                 "linked_folder/secret.jpg", "C:\\photos\\x.jpg"):
        index(photos, [f"P1,a,2025-01-10,front,{name}"])
        with pytest.raises(PhotoIndexError, match=r"row 2, column 'file'"):
            read_index(photos)
    index(photos, ["P1,a,2025-01-10,front,inside.jpg"])
    assert read_index(photos)[0].path == photos.resolve() / "inside.jpg"


def test_the_command_line_stops_on_a_bad_index_with_exit_2_and_writes_nothing(tmp_path):
    photos = index(tmp_path / "photos", ["P1,a,2025-01-10,front,../x.jpg"])
    out = tmp_path / "raw" / "photo_metrics.photos.csv"
    result = CliRunner().invoke(app, ["photos", "--photos", str(photos), "--out", str(out), "--quiet"])
    assert result.exit_code == 2, result.output
    assert "index.csv, row 2, column 'file'" in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_the_command_line_measures_writes_and_reports(tmp_path, monkeypatch):
    photos = folder_of_good_photos(tmp_path)
    (photos / "p3.jpg").unlink()
    monkeypatch.setattr(command, "measure_photo", measure)  # the default, looked up when the command runs
    monkeypatch.setattr(command, "pose_error", pose)
    out = tmp_path / "raw" / "photo_metrics.photos.csv"
    with unchanged(photos):
        result = CliRunner().invoke(app, ["photos", "--photos", str(photos), "--out", str(out), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "4 photos in the index, 3 measured in this run; 1 could not be measured" in result.output
    assert "measuring photos" not in result.output  # no progress bar without a terminal
    assert set(pd.read_csv(out)["source"]) == {"photos"}


# --- loading ------------------------------------------------------------------------------
def test_exif_orientation_is_applied_and_date_time_original_used_when_taken_at_is_blank(tmp_path):
    rgb = np.zeros((300, 400, 3), np.uint8)
    rgb[:, :200, 0] = 255  # left half red, right half blue, as stored
    rgb[:, 200:, 2] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display": the stored left edge is the top
    exif.get_ifd(0x8769)[0x9003] = "2025:03:04 10:30:00"
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 24.0)}  # GPS: must never reach the output
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(rgb).save(photos / "turned.jpg", exif=exif, quality=95)
    index(photos, ["P1,a,,front,turned.jpg"])
    loaded = images.decode((photos / "turned.jpg").read_bytes())
    assert loaded.rgb.shape == (400, 300, 3)
    assert loaded.rgb[:190, :, 0].mean() > 240 and loaded.rgb[210:, :, 2].mean() > 240  # red on top, blue below
    CALLS.clear()
    out = tmp_path / "raw" / "photo_metrics.photos.csv"
    frame = command.run(photos, out, measure=measure, pose=pose, workers=1).frame
    assert CALLS == [(400, 300)]
    assert set(frame["taken_at"]) == {"2025-03-04 10:30:00"}
    assert "48" not in out.read_text().replace(frame["photo_hash"].iloc[0], "")  # no GPS value written


def test_a_heic_photo_is_read(tmp_path):
    pillow_heif = pytest.importorskip("pillow_heif")
    if not pillow_heif.libheif_info().get("HEIF"):
        pytest.skip("this libheif has no HEIC encoder: no HEIC test photo can be made")
    photos = tmp_path / "photos"
    photo(photos / "phone.heic", 120, fmt="HEIF")
    assert Image.open(photos / "phone.heic").format == "HEIF"
    index(photos, ["P1,a,2025-01-10,front,phone.heic"])
    frame = command.run(photos, tmp_path / "out.csv", measure=measure, pose=pose, workers=1).frame
    assert frame["photo_error"].eq("").all() and len(frame) == 2
    assert abs(frame.loc[frame["metric"] == "texture", "value"].iloc[0] - 120) < 5


def test_the_working_size_of_a_12_megapixel_jpeg_is_half(tmp_path):
    data = io.BytesIO()
    Image.new("RGB", (4000, 3000), (120, 80, 60)).save(data, "JPEG")
    loaded = images.decode(data.getvalue())
    assert loaded.rgb.shape == (1500, 2000, 3) and loaded.full_size == (4000, 3000)
    assert loaded.scale_box((1000, 500, 3001, 2999)) == (500, 250, 1501, 1500)
    assert images.shrink(loaded.rgb, command.POSE_LONG_SIDE).shape == (500, 667, 3)  # what pose is compared on


# --- bad photos ---------------------------------------------------------------------------
def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width × height (a decompression bomb's header), CRC fixed."""
    data = io.BytesIO()
    Image.new("RGB", (300, 300)).save(data, "PNG")
    raw = bytearray(data.getvalue())
    raw[16:24] = struct.pack(">II", width, height)
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(raw[12:29])))
    return bytes(raw)


def bad_photos_folder(tmp_path: Path) -> Path:
    photos = folder_of_good_photos(tmp_path)
    good = (photos / "p0.jpg").read_bytes()
    (photos / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (photos / "noise.jpg").write_bytes(np.random.default_rng(1).bytes(5000))
    png = bytearray((photo(photos / "ok.png", 100, fmt="PNG")).read_bytes())
    png[png.find(b"IDAT") + 200] ^= 0xFF
    (photos / "corrupt.png").write_bytes(bytes(png))
    photo(photos / "tiny.jpg", 100, size=(120, 90))
    (photos / "bomb.png").write_bytes(_png_claiming(20000, 20000))
    rows = (photos / "index.csv").read_text().splitlines()
    rows += ["P1,t,2025-03-10,front,truncated.jpg", "P1,n,2025-03-11,front,noise.jpg",
             "P2,k,2025-03-12,front,corrupt.png", "P2,s,2025-03-13,front,tiny.jpg", "P2,g,2025-03-14,front,bomb.png",
             "P2,m,2025-03-15,front,not_there.jpg", "P2,e,,front,ok.png"]  # ok.png has no EXIF date
    (photos / "index.csv").write_text("\n".join(rows) + "\n")
    return photos


EXPECTED_ERRORS = {"t": "truncated", "n": "not_an_image", "k": "corrupt", "s": "too_small", "g": "too_large",
                   "m": "missing_file", "e": "no_capture_time"}


def test_unusable_photos_give_rows_clean_rejects_and_the_rest_is_measured(tmp_path):
    photos = bad_photos_folder(tmp_path)
    raw = write_raw(tmp_path / "raw")  # its own photo_metrics.csv (source "export") stays beside ours
    out = raw / "photo_metrics.photos.csv"
    with unchanged(photos):
        result = command.run(photos, out, measure=measure, pose=pose, workers=2)
    frame = result.frame
    errors = frame.loc[frame["photo_error"] != ""].set_index("photo_id")["photo_error"].to_dict()
    assert errors == EXPECTED_ERRORS and result.failed == 7
    good = frame.loc[frame["photo_error"] == ""]
    assert sorted(good["photo_id"].unique()) == ["a", "b", "c", "d"] and len(good) == 8
    # pose against the patient's earliest photo of the view: 0 for it, the difference for the later one
    texture = good.loc[good["metric"] == "texture"].set_index("photo_id")
    assert texture.loc["a", "pose_error"] == 0 and texture.loc["c", "pose_error"] == 0
    assert texture.loc["b", "pose_error"] == pytest.approx(abs(texture.loc["b", "value"] - texture.loc["a", "value"]), abs=1e-3)

    cleaned = outcomes.clean(raw, as_of="2100-01-01")
    rejected = cleaned.rejected.loc[cleaned.rejected["reason"] == "photo_unreadable"]
    assert set(rejected["source_file"]) == {"photo_metrics.photos.csv"}
    assert dict(zip(rejected["value"], rejected["column"])) == {code: "photo_error" for code in EXPECTED_ERRORS.values()}
    # each rejection points at its row of our file (header = row 1)
    in_file = pd.read_csv(out, dtype=str, keep_default_na=False)
    for _, row in rejected.iterrows():
        assert in_file.loc[row["source_row"] - 2, "photo_error"] == row["value"]
    measurements = cleaned.tables["measurements"]
    ours = measurements.loc[measurements["source"] == "photos"]
    assert sorted(ours["photo_id"].unique()) == ["a", "b", "c", "d"]
    assert ours["photo_hash"].str.fullmatch(r"[0-9a-f]{64}").all() and ours["chart"].eq(False).all()
    assert set(measurements["source"]) == {"photos", "export"}  # both photo_metrics files were read
    assert cleaned.summary.loc["photo_metrics", "read"] == 4 + len(frame)


def test_a_photo_error_in_an_export_names_that_export_and_row(tmp_path):
    raw = write_raw(tmp_path / "raw")
    pd.DataFrame([{"patient_id": "P1", "photo_id": "z", "taken_at": "", "metric": "", "value": "",
                   "photo_error": "=HYPERLINK(\"x\")"}]).to_csv(raw / "photo_metrics.clinic-b.csv", index=False)
    cleaned = outcomes.clean(raw, as_of="2100-01-01")
    row = cleaned.rejected.loc[cleaned.rejected["reason"] == "photo_unreadable"].iloc[0]
    assert (row["source_file"], row["source_row"], row["column"]) == ("photo_metrics.clinic-b.csv", 2, "photo_error")
    assert cleaned.rejected.loc[cleaned.rejected["reason"] != "photo_unreadable", "source_file"].ne(
        "photo_metrics.clinic-b.csv").all()


def measure_failing_on_dark(rgb: np.ndarray, region) -> Reading:
    if rgb.mean() < 100:
        raise ValueError("no skin found")
    return measure(rgb, region)


def test_a_measurement_failing_on_one_photo_or_a_region_outside_it_does_not_stop_the_run(tmp_path):
    photos = folder_of_good_photos(tmp_path)  # p0 is the dark one (level 90)
    index(photos, ["P1,a,2025-01-10,front,p0.jpg,", "P1,b,2025-02-10,front,p1.jpg,\"10,10,200,150\"",
                   "P2,c,2025-01-05,front,p2.jpg,\"300,200,401,250\"", "P2,d,2025-02-05,front,p3.jpg,"],
          header="patient_id,photo_id,taken_at,view,file,region")
    frame = command.run(photos, tmp_path / "out.csv", measure=measure_failing_on_dark, pose=pose, workers=1).frame
    assert frame.loc[frame["photo_error"] != ""].set_index("photo_id")["photo_error"].to_dict() == {
        "a": "measure_failed", "c": "region_outside"}
    CALLS.clear()  # a failed photo keeps its error until its bytes change (docs/photos.md, reruns)
    again = command.run(photos, tmp_path / "out.csv", measure=measure, pose=pose, workers=1)
    assert CALLS == [] and again.measured == 0
    pd.testing.assert_frame_equal(again.frame, frame)
    b = frame.loc[(frame["photo_id"] == "b") & (frame["metric"] == "texture"), "value"].iloc[0]
    whole = np.asarray(Image.open(photos / "p1.jpg"))
    assert b == pytest.approx(whole[10:150, 10:200].mean(), abs=1e-4)  # the region was measured, not the photo
    assert b != pytest.approx(whole.mean(), abs=1e-3)


# --- rerun, its own output only ---------------------------------------------------------------
def test_a_rerun_measures_only_new_photos_and_keeps_the_rest(tmp_path):
    photos = folder_of_good_photos(tmp_path)
    out = tmp_path / "raw" / "photo_metrics.photos.csv"
    CALLS.clear()
    first = command.run(photos, out, measure=measure, pose=pose, workers=1).frame
    written = out.read_bytes()
    assert len(CALLS) == 4
    CALLS.clear()
    again = command.run(photos, out, measure=measure, pose=pose, workers=1)
    assert CALLS == [] and again.measured == 0
    pd.testing.assert_frame_equal(again.frame, first)
    assert out.read_bytes() == written
    # a later photo: only it is measured; an earlier one (a new pose reference): its patient and view again
    photo(photos / "later.jpg", 170)
    photo(photos / "earlier.jpg", 70)
    with open(photos / "index.csv", "a") as handle:
        handle.write("P1,later,2025-03-10,front,later.jpg\nP2,earlier,2024-12-01,front,earlier.jpg\n")
    third = command.run(photos, out, measure=measure, pose=pose, workers=1)
    assert len(CALLS) == 1 + 3 and third.measured == 4  # later (P1); earlier, c, d (P2)
    assert third.frame.loc[third.frame["photo_id"].isin(["a", "b"])].reset_index(drop=True).equals(
        first.loc[first["photo_id"].isin(["a", "b"])].reset_index(drop=True))
    c = third.frame.loc[(third.frame["photo_id"] == "c") & (third.frame["metric"] == "texture"), "pose_error"]
    assert c.iloc[0] > 0  # c is no longer the baseline


def test_a_foreign_file_at_out_is_refused_untouched(tmp_path):
    photos = folder_of_good_photos(tmp_path)
    raw = write_raw(tmp_path / "raw")
    foreign = raw / "photo_metrics.csv"  # a clinic's export
    before = foreign.read_bytes()
    for out in (foreign, raw / "photo_metrics.photos.parquet", photos / "photo_metrics.photos.csv"):
        if out.suffix == ".parquet":
            pd.DataFrame({"a": [1]}).to_parquet(out)
        before_out = out.read_bytes() if out.exists() else None
        with unchanged(raw), unchanged(photos):
            result = CliRunner().invoke(app, ["photos", "--photos", str(photos), "--out", str(out), "--quiet"])
        assert result.exit_code == 2 and "error:" in result.output, result.output
        assert (out.read_bytes() if out.exists() else None) == before_out
    assert foreign.read_bytes() == before
    # its own parquet output is replaced on a rerun
    own = tmp_path / "own.parquet"
    command.run(photos, own, measure=measure, pose=pose, workers=1)
    assert len(command.run(photos, own, measure=measure, pose=pose, workers=1).frame) == 8


# --- scaling out ----------------------------------------------------------------------------
def test_local_processes_and_a_dask_cluster_give_the_same_rows(tmp_path):
    from distributed import LocalCluster

    photos = bad_photos_folder(tmp_path)
    inline = command.run(photos, tmp_path / "a.csv", measure=measure, pose=pose, workers=1).frame
    pool = command.run(photos, tmp_path / "b.csv", measure=measure, pose=pose, workers=2).frame
    with LocalCluster(n_workers=2, processes=False, threads_per_worker=1, dashboard_address=None) as cluster:
        dask = command.run(photos, tmp_path / "c.csv", measure=measure, pose=pose,
                           scheduler=cluster.scheduler_address).frame
    pd.testing.assert_frame_equal(pool, inline)
    pd.testing.assert_frame_equal(dask, inline)
    assert len(inline) == 8 + 7


BLAS_THREADS: list[int] = []  # the BLAS threads the in-process measurer ran with


def measure_counting_blas_threads(rgb: np.ndarray, region) -> Reading:
    from threadpoolctl import threadpool_info

    BLAS_THREADS.extend(pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas")
    return measure(rgb, region)


def test_a_task_runs_its_blas_on_one_thread(tmp_path):
    """One task per core is the parallelism: BLAS threads of their own only spin (0.61-0.72 CPU-s
    a photo with OpenBLAS's default threads, 0.41 with one; docs/photos.md, speed)."""
    from threadpoolctl import threadpool_limits

    BLAS_THREADS.clear()
    with threadpool_limits(limits=2, user_api="blas"):  # as a worker of a 2-core machine starts
        command.run(folder_of_good_photos(tmp_path), tmp_path / "out.csv", measure=measure_counting_blas_threads,
                    pose=pose, workers=1)
    assert BLAS_THREADS and set(BLAS_THREADS) == {1}


def test_hostile_ids_are_data_kept_exactly_in_parquet_and_made_inert_in_csv(tmp_path):
    photos = tmp_path / "photos"
    photo(photos / "p0.jpg", 100)
    hostile = '=HYPERLINK("http://x","click")'
    index(photos, ['"=HYPERLINK(""http://x"",""click"")","a,""b",2025-01-10,front,p0.jpg'])
    exact = command.run(photos, tmp_path / "out.parquet", measure=measure, pose=pose, workers=1).frame
    assert set(pd.read_parquet(tmp_path / "out.parquet")["patient_id"]) == {hostile}
    assert set(exact["photo_id"]) == {'a,"b'}
    command.run(photos, tmp_path / "out.csv", measure=measure, pose=pose, workers=1)
    assert set(pd.read_csv(tmp_path / "out.csv", dtype=str)["patient_id"]) == {"'" + hostile}


def test_the_progress_bar_counts_photos_on_stderr(tmp_path, capsys):
    photos = folder_of_good_photos(tmp_path)
    command.run(photos, tmp_path / "out.csv", measure=measure, pose=pose, workers=1, progress=True)
    bar = capsys.readouterr().err
    assert "measuring photos" in bar and "4/4" in bar
    command.run(photos, tmp_path / "again.csv", measure=measure, pose=pose, workers=1, progress=False)
    assert capsys.readouterr().err == ""


def test_the_projects_measurement_through_the_command_and_clean(tmp_path):
    """The default measurement (measure_skin, quality, pose_error) on two rendered photos of one skin."""
    from outcomes.photos.simulate import Capture, SkinTruth, render_photo

    truth = SkinTruth(L=62, a=12, b=16, spot_fraction=4.0, line_density=2.0, roughness=1.5)
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, (cct, shift) in enumerate([(6500, (0, 0)), (3000, (12, -8))]):
        rendered = render_photo(truth, Capture(cct_k=cct, shift_px=shift, size=(800, 600), seed=i), texture_seed=7)
        (photos / f"p{i}.jpg").write_bytes(rendered.jpeg)
    index(photos, ["P1,a,2025-01-10,front,p0.jpg", "P1,b,2025-02-10,front,p1.jpg"])
    raw = write_raw(tmp_path / "raw")
    frame = command.run(photos, raw / "photo_metrics.photos.csv", workers=1).frame
    assert set(frame["metric"]) == {"cielab_l", "cielab_a", "cielab_b", "ita", "spot_area", "line_density", "roughness"}
    assert frame["chart"].eq("yes").all() and frame["photo_error"].eq("").all()
    lightness = frame.loc[frame["metric"] == "cielab_l"].set_index("photo_id")["value"]
    assert abs(lightness - truth.L).max() < 2  # under 6500 K and under 3000 K alike
    pose_b = frame.loc[frame["photo_id"] == "b", "pose_error"].iloc[0]
    assert pose_b == pytest.approx(100 * np.hypot(12, 8) / np.hypot(800, 600), abs=0.5)  # % of the diagonal
    measurements = outcomes.clean(raw, as_of="2100-01-01").tables["measurements"]
    ours = measurements.loc[measurements["source"] == "photos"]
    assert len(ours) == 14 and ours["chart"].all()


def test_clean_reads_a_sourced_photo_metrics_file_alone_and_notes_a_second_format_of_it(tmp_path):
    from raw_factory import PHOTO_METRICS

    raw = write_raw(tmp_path / "raw")
    (raw / "photo_metrics.csv").rename(raw / "photo_metrics.Clinic_B.csv")
    pd.DataFrame(PHOTO_METRICS).to_parquet(raw / "photo_metrics.Clinic_B.parquet")
    result = outcomes.clean(raw, as_of="2100-01-01")
    assert set(result.tables["measurements"]["source"]) == {"Clinic_B"} and len(result.tables["measurements"]) == 4
    assert [i["file"] for i in result.manifest["inputs"] if i["table"] == "photo_metrics"] == ["photo_metrics.Clinic_B.csv"]
    assert "ignored: photo_metrics.Clinic_B.csv is read instead" in set(result.notes["note"])


def test_a_task_prepares_its_baseline_photo_once_for_all_its_photos(tmp_path):
    """registration.Reference: the baseline's share of the pose comparison is done once per patient and view."""
    photos = tmp_path / "photos"
    for i, level in enumerate((90, 110, 130, 150)):
        photo(photos / f"p{i}.jpg", level)
    index(photos, [f"P1,{name},2025-0{i + 1}-10,front,p{i}.jpg" for i, name in enumerate("abcd")])
    seen = []

    def recording(reference, moving):
        seen.append(reference)
        return pose(reference, moving)

    frame = command.run(photos, tmp_path / "out.csv", measure=measure, pose=recording, workers=1).frame
    assert len(seen) == 3 and all(reference is seen[0] for reference in seen)
    assert isinstance(seen[0], Reference) and seen[0].rgb.mean() == pytest.approx(90, abs=3)  # the earliest photo
    assert frame["photo_error"].eq("").all() and len(frame) == 8


def test_a_rerun_measures_again_a_photo_whose_region_changed_and_only_it(tmp_path):
    photos = folder_of_good_photos(tmp_path)
    header = "patient_id,photo_id,taken_at,view,file,region"
    rows = ['P1,a,2025-01-10,front,p0.jpg,', 'P1,b,2025-02-10,front,p1.jpg,"0,0,200,150"',
            'P2,c,2025-01-05,,p2.jpg,', 'P2,d,2025-02-05,front,p3.jpg,']
    index(photos, rows, header)
    out = tmp_path / "photo_metrics.photos.csv"
    first = command.run(photos, out, measure=measure, pose=pose, workers=1).frame
    index(photos, [*rows[:1], 'P1,b,2025-02-10,front,p1.jpg,"100,50,400,300"', *rows[2:]], header)  # corrected
    CALLS.clear()
    again = command.run(photos, out, measure=measure, pose=pose, workers=1).frame
    assert CALLS == [(300, 400)]  # b only
    fresh = command.run(photos, tmp_path / "fresh.csv", measure=measure, pose=pose, workers=1).frame
    pd.testing.assert_frame_equal(again, fresh)
    b = again["photo_id"] == "b"
    assert set(again.loc[b, "region"]) == {"100,50,400,300"}
    assert not again.loc[b, "value"].equals(first.loc[b, "value"])
    pd.testing.assert_frame_equal(again.loc[~b], first.loc[~b])


def test_a_rerun_over_csv_output_does_not_measure_again_photos_with_hostile_ids(tmp_path):
    photos = tmp_path / "photos"
    photo(photos / "p0.jpg", 100)
    photo(photos / "p1.jpg", 120)
    index(photos, ['"=HYPERLINK(""http://x"",""click"")",a,2025-01-10,front,p0.jpg',
                   '"=HYPERLINK(""http://x"",""click"")",b,2025-02-10,front,p1.jpg'])
    out = tmp_path / "photo_metrics.photos.csv"
    command.run(photos, out, measure=measure, pose=pose, workers=1)
    written = out.read_bytes()
    assert b"'=HYPERLINK" in written  # made inert in the CSV
    CALLS.clear()
    again = command.run(photos, out, measure=measure, pose=pose, workers=1)
    assert CALLS == [] and again.measured == 0
    assert out.read_bytes() == written
