"""The patient report's before/after section (issue 13, point 5): a panel per view from the
photos folder, the warning on the cover only when a photo is shown, and 'no photos' otherwise."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from outcomes.reports import patient
from photo_factory import posed, skin

START = pd.Timestamp("2025-01-06")


def _patient(outcomes: pd.DataFrame | None = None) -> patient.Patient:
    outcomes = outcomes if outcomes is not None else pd.DataFrame(columns=["patient_id", "photo_id", "metric", "value"])
    return patient.Patient("P001", "35-44", "III", "fine_lines", 4, 40.0, START, {"outcomes": outcomes})


def _folder(tmp_path, rows, images):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, (rgb, exif) in images.items():
        Image.fromarray(rgb).save(folder / name, exif=exif) if exif else Image.fromarray(rgb).save(folder / name)
    pd.DataFrame(rows, columns=["patient_id", "photo_id", "taken_at", "view", "file", "region"]).to_csv(
        folder / "index.csv", index=False)
    return folder


def _halves(png: bytes, shape) -> tuple[np.ndarray, np.ndarray]:
    from outcomes.photos.panels import GAP

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    h, w = shape
    return pixels[:h, :w], pixels[:h, w + GAP:2 * w + GAP]


def test_panel_per_view_from_the_first_and_latest_photo_with_values_and_orientation(tmp_path):
    baseline = skin((400, 300), seed=21)
    latest = posed(baseline, 10, -6, 4, 1.04)
    sideways = Image.Exif()
    sideways[0x0112] = 6  # orientation: the stored pixels must be turned 90° clockwise to be upright
    sideways.get_ifd(0x8769)[0x9003] = "2025:03:17 10:00:00"  # EXIF DateTimeOriginal: the index has no time
    folder = _folder(tmp_path, [
        ("P001", "ph-1", "2025-01-06", "front", "a.png", ""),
        ("P001", "ph-2", "2025-02-03", "front", "b.png", ""),  # a middle photo: not shown
        ("P001", "ph-3", "", "front", "c.jpg", ""),  # the latest (by its EXIF time), stored sideways
        ("P001", "ph-4", "2025-01-06", "left45", "a.png", ""),  # one photo of this view only
        ("P002", "ph-9", "2025-01-06", "front", "a.png", ""),  # someone else
    ], {"a.png": (baseline, None), "b.png": (skin((400, 300), seed=99), None),
        "c.jpg": (np.ascontiguousarray(np.rot90(latest, 1)), sideways)})
    outcomes = pd.DataFrame({"patient_id": "P001", "photo_id": ["ph-1", "ph-3", "ph-1", "ph-3"],
                             "metric": ["wrinkles", "wrinkles", "hydration", "ita"], "value": [12.5, 9.25, 40.0, 31.5]})
    found = patient.photo_panels(_patient(outcomes), folder, ["hydration"])
    assert len(found.panels) == 1 and any(n.startswith("Left45 view: only one photo") for n in found.notes)
    png, caption = found.panels[0]
    assert caption.startswith("Front view:") and "not colour-corrected" in caption
    # the right half shows the latest photo aligned onto the first: the sideways JPEG was turned upright
    from outcomes.photos.panels import aligned_pair

    left, right = aligned_pair(baseline, latest)
    shown_left, shown_right = _halves(png, left.shape[:2])
    np.testing.assert_array_equal(shown_left, left)
    assert np.abs(shown_right - shown_left).mean() < 6  # JPEG-compressed, but the same skin in place
    lines = patient._photo_values(_patient(outcomes), ("ph-1", "ph-3"), ["hydration"])
    ita = patient.contract.METRICS["ita"]
    assert lines[0] == (f"{ita.label}: –", f"{ita.label}: 31.5 {ita.unit}")  # the photo's own readings first
    assert lines[1][0].startswith("Hydration: 40") and lines[1][1].endswith("–")  # then the report's metrics
    assert lines[2][0].endswith("12.5 " + patient.contract.METRICS["wrinkles"].unit)
    assert "9.25" in lines[2][1]


@pytest.mark.parametrize("file", ["../outside.png", "/etc/passwd"])
def test_an_index_naming_a_file_outside_the_folder_shows_no_photo_and_says_where(tmp_path, file):
    """The photos command's index reader refuses the whole index (it names row and column); the
    report then shows no photo, reads nothing outside the folder, and never crashes."""
    image = skin((400, 300), seed=5)
    folder = _folder(tmp_path, [("P001", "ph-1", "2025-01-06", "front", "a.png", ""),
                                ("P001", "ph-2", "2025-04-01", "front", file, "")], {"a.png": (image, None)})
    Image.fromarray(image).save(tmp_path / "outside.png")
    found = patient.photo_panels(_patient(), folder, [])
    assert found.panels == [] and len(found.notes) == 1
    assert "row 3" in found.notes[0] and "file" in found.notes[0] and str(tmp_path) not in found.notes[0]
    assert patient.photo_patients(folder) == set()


def test_photo_patients_are_those_with_two_photos_of_a_view(tmp_path):
    image = (skin((300, 200), seed=1), None)
    folder = _folder(tmp_path, [("P001", "a", "2025-01-06", "front", "a.png", ""),
                                ("P001", "b", "2025-02-06", "front", "a.png", ""),
                                ("P002", "c", "2025-01-06", "front", "a.png", ""),
                                ("P002", "d", "2025-02-06", "left45", "a.png", "")], {"a.png": image})
    assert patient.photo_patients(folder) == {"P001"}
    assert patient.photo_patients(tmp_path / "nowhere") == set()


@pytest.mark.parametrize("make", ["absent", "empty", "not_mine"])
def test_no_photos_means_a_note_and_no_warning(tmp_path, make):
    folder = tmp_path / "photos"
    if make != "absent":
        folder.mkdir()
    if make == "not_mine":
        Image.fromarray(skin((200, 150), seed=1)).save(folder / "a.png")
        pd.DataFrame([("P777", "x", "2025-01-06", "front", "a.png", "")],
                     columns=["patient_id", "photo_id", "taken_at", "view", "file", "region"]).to_csv(
            folder / "index.csv", index=False)
    found = patient.photo_panels(_patient(), folder, [])
    assert found.panels == [] and found.notes == [patient.NO_PHOTOS]


def test_cover_warns_only_when_a_photo_is_shown():
    me = _patient()
    assert patient.IDENTIFIABLE not in me.cover()
    assert patient.IDENTIFIABLE in me.cover(identifiable=True)
    assert patient.IDENTIFIABLE.lower().startswith("contains identifiable images: for the consultation only")


def test_panel_is_colour_corrected_to_the_chart_and_cropped_to_the_region(tmp_path):
    """Rendered photos (photos.simulate) with a chart: baseline under daylight (6500 K), the latest under warm
    light (3000 K) and moved; the panel shows both corrected (the same skin colour) within the
    baseline's skin region."""
    from outcomes.photos.simulate import Capture, SkinTruth, render_photo

    truth = SkinTruth(L=62, a=14, b=17, spot_fraction=4.0, line_density=3.0, roughness=2.0)
    first = render_photo(truth, Capture(size=(640, 480)), texture_seed=3)
    latest = render_photo(truth, Capture(size=(640, 480), cct_k=3000, shift_px=(6, -4), rotation_deg=3), texture_seed=3)
    region = ",".join(map(str, first.skin_box))
    folder = _folder(tmp_path, [("P001", "ph-1", "2025-01-06", "front", "a.png", region),
                                ("P001", "ph-2", "2025-03-17", "front", "b.png", "")],
                     {"a.png": (first.rgb, None), "b.png": (latest.rgb, None)})
    found = patient.photo_panels(_patient(), folder, [])
    (png, caption), = found.panels
    assert "both colour-corrected to the chart" in caption
    x0, y0, x1, y1 = first.skin_box
    left, right = _halves(png, (y1 - y0, x1 - x0))
    assert np.abs(left.mean(axis=(0, 1)) - right.mean(axis=(0, 1))).max() < 4  # same skin colour once corrected
    raw = latest.rgb[y0:y1, x0:x1].reshape(-1, 3).mean(axis=0) - first.rgb[y0:y1, x0:x1].reshape(-1, 3).mean(axis=0)
    assert np.abs(raw).max() > 20  # as taken, the warm light made it look otherwise (5x the corrected gap)


def test_pick_prefers_patients_with_photos_then_goes_by_id():
    """The demo's example reports (pick 0, 1, 2) show patients with before/after photos when there are any."""
    rows = [{"patient_id": pid, "metric": "hydration", "view": "front", "sessions": n, "improvement": 5.0,
             "skin_type": "III", "age": 40} for pid in ("P1", "P2", "P3", "P4") for n in (1, 2)]
    outcomes = pd.DataFrame(rows)
    assert [patient.choose_patient(outcomes, ["hydration"], pick=k) for k in range(4)] == ["P1", "P2", "P3", "P4"]
    picked = [patient.choose_patient(outcomes, ["hydration"], pick=k, prefer={"P4", "P2", "P9"}) for k in range(4)]
    assert picked == ["P2", "P4", "P1", "P3"]
