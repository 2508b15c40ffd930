"""No EXIF (GPS position, device serial numbers) is copied into anything the project writes.

Photos from phones carry where they were taken and which device took them. Two photos with a
GPS position and a body and lens serial number in their EXIF go through `outcomes photos` and
`outcomes clean` (command line, the project's measurement); none of the values may appear in
the photo_metrics file, the processed folder, the logs or what the commands print.
"""
from __future__ import annotations

import io
import logging
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from outcomes.cli import app
from outcomes.photos.simulate import Capture, SkinTruth, render_photo
from raw_factory import write_raw

SERIAL, LENS_SERIAL, OWNER = "SN7Q4X9Z2K", "LNS5512WQ", "Dr Leaky Owner"
# 48°51'29.8765" N, 2°17'40.1234" E, 35.25 m: as EXIF rationals, and in decimal degrees
LATITUDE, LONGITUDE, ALTITUDE = (48.0, 51.0, 29.8765), (2.0, 17.0, 40.1234), 35.25
SECRETS = (SERIAL, LENS_SERIAL, OWNER, "29.8765", "40.1234", "48.8582", "2.2944", "35.25")


def exif_with_gps_and_serials(taken: str) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "LeakyCam", "LC-1"  # make, model
    exif.get_ifd(0x8769).update({0x9003: taken, 0xA431: SERIAL, 0xA435: LENS_SERIAL, 0xA430: OWNER})
    exif.get_ifd(0x8825).update({1: "N", 2: LATITUDE, 3: "E", 4: LONGITUDE, 6: ALTITUDE})  # GPS IFD
    return exif


def test_gps_and_serial_numbers_reach_no_output_of_photos_and_clean(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)  # PIL logs every EXIF tag's value at DEBUG when it reads them
    photos = tmp_path / "photos"
    photos.mkdir()
    skin = SkinTruth(L=62, a=12, b=16, spot_fraction=4.0, line_density=2.0, roughness=1.5)
    for i, taken in enumerate(("2025:01:10 10:00:00", "2025:02:10 10:00:00")):
        rendered = render_photo(skin, Capture(cct_k=(6500, 3000)[i], size=(800, 600), seed=i), texture_seed=3)
        Image.open(io.BytesIO(rendered.jpeg)).save(photos / f"p{i}.jpg", quality=92,
                                                                  exif=exif_with_gps_and_serials(taken))
    assert SERIAL.encode() in (photos / "p0.jpg").read_bytes()  # the EXIF is really in the file
    assert Image.open(photos / "p0.jpg").getexif().get_ifd(0x8825)[2] == LATITUDE
    (photos / "index.csv").write_text("patient_id,photo_id,taken_at,view,file\n"
                                      "P1,a,,front,p0.jpg\nP1,b,,front,p1.jpg\n")  # capture time from EXIF
    raw = write_raw(tmp_path / "raw")
    out = tmp_path / "processed"
    caplog.clear()  # from here on, only what the commands log (at every level, DEBUG included)

    runner = CliRunner()
    measured = runner.invoke(app, ["photos", "--photos", str(photos), "--out", str(raw / "photo_metrics.photos.csv"),
                                   "--workers", "1"])
    assert measured.exit_code == 0, measured.output
    cleaned = runner.invoke(app, ["clean", "--raw", str(raw), "--out", str(out)])
    assert cleaned.exit_code == 0, cleaned.output

    metrics = (raw / "photo_metrics.photos.csv").read_text()
    assert "2025-01-10 10:00:00" in metrics and metrics.count("\n") == 1 + 2 * 7  # EXIF date used, both measured
    written = [p for p in tmp_path.rglob("*") if p.is_file() and photos not in p.parents]
    assert raw / "photo_metrics.photos.csv" in written
    assert any(p.name.startswith("measurements") for p in written)  # clean wrote its tables
    texts = {str(p.relative_to(tmp_path)): p.read_bytes() for p in written}
    texts["output of the commands"] = (measured.output + cleaned.output).encode()
    texts["log records"] = caplog.text.encode()
    for where, content in texts.items():
        for secret in SECRETS:
            assert secret.encode() not in content, f"{secret} found in {where}"
