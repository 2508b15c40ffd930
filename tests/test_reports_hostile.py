"""A clinic export is hostile: ids and parameters that hold markup must stay text in the PDFs.

Three layers, each tested on its own and then together in a real report run:
values are escaped where they enter markdown (`outcomes.escaping`), the notebook's HTML is
sanitised (nh3) before it enters the page template, and WeasyPrint may load nothing but the
package's template files and embedded images. The end-to-end test puts attachment links,
``<object>``, ``<svg><image>``, ``<embed>``, ``<iframe>``, a CSS ``@import`` that would hide
the banner, markdown images and links to a local file, and images from a local HTTP server
into a patient id and a clinic id, runs two reports through the CLI, and checks that no PDF
embeds a file, holds the local file's text or made a request, and that the banner is on
every page.
"""
from __future__ import annotations

import base64
import http.server
import io
import logging
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import pytest
import yaml
from pypdf import PdfReader
from pypdf.generic import IndirectObject, StreamObject

import outcomes
from outcomes.escaping import markdown_text
from outcomes.reports import pdf, show

BANNER = "SYNTHETIC DEMO DATA"
LEAKS = ("file:", "http:", "https:", "javascript:", "<style", "<script", "<link", "<meta", "<base", "<form",
         "<input", "<iframe", "<object", "<embed", "<svg", "<image", "onclick", "onerror", "style=", "rel=",
         "@import", "display:none")


# --- the local file and the local server a hostile value would reach ----------------------
@pytest.fixture()
def marker(tmp_path) -> tuple[Path, str]:
    """A local file with a unique text: it must never appear in a PDF."""
    text = f"LOCAL-SECRET-{uuid.uuid4().hex}"
    path = tmp_path / "local-secret.txt"
    path.write_text(text + "\n", encoding="utf-8")
    return path, text


@pytest.fixture()
def server():
    """A local HTTP server on a free port that records every request it gets (it must get none)."""
    requests: list[str] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            requests.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", requests
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def _hostile_id(local_file: Path, url: str) -> str:
    """Every trick of the issue in one patient id (one report shows one patient's id)."""
    f = local_file.as_uri()
    return (f'<a rel="attachment" href="{f}">P1</a><img src="{url}/p.png"><link rel="attachment" href="{f}">'
            f'<style>@import url({url}/x.css); .synthetic-banner{{display:none}} @page{{@top-right{{content:none}}}}'
            f'</style><object data="{f}"></object><svg><image href="{f}"/></svg><embed src="{f}">'
            f'<iframe src="{f}"></iframe> ![x]({f}) [y]({f})')


def _png_data_url() -> str:
    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1], [0, 1])
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=30)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _pdf_bytes(path: Path) -> bytes:
    """The PDF file's bytes plus every stream in it decompressed (content, fonts, embedded files)."""
    reader = PdfReader(str(path))
    chunks = [path.read_bytes()]
    numbers = {n for refs in reader.xref.values() for n in refs} | set(getattr(reader, "xref_objStm", {}))
    for number in sorted(numbers):
        try:
            obj = reader.get_object(IndirectObject(number, 0, reader))
        except Exception:  # noqa: BLE001 - free or odd entries: nothing to read
            continue
        if isinstance(obj, StreamObject):
            chunks.append(obj.get_data())
    return b"\n".join(chunks)


def _check_pdf_is_inert(path: Path, secret: str) -> list[str]:
    """Page texts of a PDF that embeds no file and holds no trace of the secret."""
    reader = PdfReader(str(path))
    assert not reader.attachments, f"{path.name} embeds {list(reader.attachments)}"
    names = reader.trailer["/Root"].get("/Names")
    assert names is None or "/EmbeddedFiles" not in names.get_object(), path.name
    texts = [page.extract_text() for page in reader.pages]
    assert not any(secret in t for t in texts), f"{path.name} shows the local file's text"
    assert secret.encode() not in _pdf_bytes(path), f"{path.name} holds the local file's bytes"
    return texts


# --- layer 1: WeasyPrint loads only the package's templates and embedded images ------------------
def test_url_fetcher_refuses_all_but_templates_and_embedded_images(marker, server):
    local, _ = marker
    url, requests = server
    for refused in (local.as_uri(), "file:///etc/passwd", (pdf.TEMPLATES / ".." / "pdf.py").as_uri(),
                    pdf.TEMPLATES.as_uri(), f"{url}/x.png", "https://127.0.0.1/x.png", "ftp://127.0.0.1/x",
                    "javascript:alert(1)", "relative.css", "data:image/svg+xml;base64,PHN2Zy8+",
                    "data:text/html,<b>x</b>", "data:text/css,body{display:none}"):
        with pytest.raises(pdf.RefusedResource):
            pdf.allowed_resource(refused)
    css = pdf.TEMPLATES / "report.css"
    assert pdf.allowed_resource(css.as_uri()) == (css.read_bytes(), "text/css")
    png = _png_data_url()
    body, media_type = pdf.allowed_resource(png)
    assert media_type == "image/png" and body.startswith(b"\x89PNG")
    assert pdf.allowed_resource("data:image/jpeg;base64,/9j/") == (b"\xff\xd8\xff", "image/jpeg")
    assert requests == []


def test_weasyprint_embeds_and_fetches_nothing_even_from_unsanitised_html(tmp_path, marker, server, caplog):
    """The fetcher alone (no escaping, no sanitiser) keeps local files and the network out."""
    local, secret = marker
    url, requests = server
    f = local.as_uri()
    html = f"""<!DOCTYPE html><html><head>
<link rel="attachment" href="{f}"><link rel="stylesheet" href="{url}/s.css"><link rel="stylesheet" href="{f}">
<style>@import url({url}/i.css);</style></head><body>
<p>{BANNER}</p><a rel="attachment" href="{f}">P1</a><img src="{f}"><img src="{url}/p.png">
<object data="{f}"></object><embed src="{f}"><iframe src="{f}"></iframe>
<svg width="10" height="10"><image href="{f}" width="10" height="10"/></svg>
<img src="{_png_data_url()}" alt="figure"></body></html>"""
    out = tmp_path / "raw.pdf"
    with caplog.at_level(logging.WARNING):
        pdf.html_to_pdf(html, out)
    _check_pdf_is_inert(out, secret)
    assert requests == []
    page = PdfReader(str(out)).pages[0]
    assert page["/Resources"].get("/XObject"), "the embedded PNG figure should still be drawn"
    refusals = [r.getMessage() for r in caplog.records if r.name == "outcomes.reports.pdf"]
    assert any("file:" in m for m in refusals) and any("http:" in m for m in refusals), refusals
    assert not any("Traceback" in r.getMessage() or r.exc_info for r in caplog.records)


# --- layer 2: the notebook's HTML is sanitised ---------------------------------------------------
def test_sanitiser_strips_every_hostile_tag_and_keeps_the_report_markup():
    png = _png_data_url()
    hostile = [
        '<a rel="attachment" href="file:///etc/passwd">P1</a>', '<link rel="attachment" href="file:///etc/passwd">',
        '<object data="file:///etc/passwd">o</object>', '<svg><image href="file:///etc/passwd"/></svg>',
        '<embed src="file:///etc/passwd">', '<iframe src="file:///etc/passwd"></iframe>',
        "<style>@import url(http://127.0.0.1:9/x.css); .synthetic-banner{display:none}</style>",
        '<img src="http://127.0.0.1:9/p.png">', '<img src="file:///etc/passwd">',
        '<img src="data:image/svg+xml;base64,PHN2Zy8+">', '<meta http-equiv="refresh" content="0;url=file:///x">',
        '<base href="file:///">', '<form action="http://127.0.0.1:9/"><input name="a"></form>',
        '<p onclick="x()" style="display:none">t</p>', "<script>alert(1)</script>",
        '<a href="javascript:alert(1)">j</a>', '<a href="/etc/passwd">abs</a>', '<a href="x.css">rel</a>',
        '<img src="x" onerror="alert(1)">',
    ]
    for snippet in hostile:
        clean = pdf.sanitise_html(f"<div>{snippet}</div>").lower()
        leaked = [s for s in LEAKS if s in clean]
        assert not leaked, (snippet, clean, leaked)
        assert "alert(1)" not in clean and "@import" not in clean
    report = (f'<div class="cell code"><h2 id="The-cohort">The cohort<a class="anchor-link" href="#The-cohort">¶</a>'
              f'</h2><section class="report-findings"><ul><li>Hydration rose by <strong>25%</strong>, <em>a</em>'
              f'</li></ul></section><div class="report-table-wrap"><table class="report-table"><caption>Cap</caption>'
              f'<thead><tr><th class="num">n</th></tr></thead><tbody><tr><td class="num">12</td></tr></tbody>'
              f'</table></div><figure class="report-figure"><img alt="fig" src="{png}"/><figcaption>Fig'
              f"</figcaption></figure></div>")
    clean = pdf.sanitise_html(report)
    for kept in ('<table class="report-table">', '<th class="num">', '<td class="num">12</td>', "<caption>Cap",
                 f'src="{png}"', '<figure class="report-figure">', "<figcaption>Fig", "<strong>25%</strong>",
                 '<h2 id="The-cohort">', 'href="#The-cohort"', '<section class="report-findings">'):
        assert kept in clean, kept


# --- layer 3: values are escaped where they enter markdown ----------------------------------------
def test_show_helpers_keep_their_markup_and_show_escaped_values_as_text():
    value = '<img src="file:///etc/passwd"> **x** [y](file:///etc/passwd)'
    shown = [show.findings([f"Patient {markdown_text(value)} improved by **25%**."])._repr_html_(),
             show.note(f"Clinic {markdown_text(value)} has **few** patients.")._repr_html_(),
             show.table(pd.DataFrame({"clinic": [value]}), f"Clinic {markdown_text(value)} **only**.")._repr_html_()]
    for html in shown:
        assert "<img" not in html and "<a " not in html and 'href="file' not in html, html
        assert "&lt;img src=&quot;file:///etc/passwd&quot;&gt;" in html
        assert html.count("<strong>") == 1  # the template's bold, not the value's
    fig, _ = plt.subplots()
    html = show.figure(fig, f"Skin type {markdown_text(value)}.")._repr_html_()
    assert html.count("<img") == 1 and "&lt;img" in html  # the figure itself, the value as text (alt too)


# --- all three: a real report run on hostile data ---------------------------------------------------
@pytest.mark.slow
def test_hostile_ids_and_parameters_stay_text_in_real_reports(tmp_path, marker, server):
    local, secret = marker
    url, requests = server
    patient_id = _hostile_id(local, url)
    clinic = f'<img src="{local.as_uri()}"><img src="{url}/c.png">'

    sim = outcomes.simulate(n_patients=80, seed=5, tidy=True)
    tables = sim.tables
    patients = tables["patients"]
    done = tables["sessions"].loc[tables["sessions"]["status"] == "completed"].groupby("patient_id").size()
    common = patients["skin_type"].astype(str).mode().iloc[0]
    victim = done[done.index.isin(patients.loc[patients["skin_type"].astype(str) == common, "patient_id"])].idxmax()
    for table in tables.values():  # the same hostile id in every table, as a real export would have it
        if "patient_id" in table:
            table["patient_id"] = table["patient_id"].astype(str).replace({victim: patient_id})
    smallest = patients["clinic_id"].astype(str).value_counts().index[-1]
    patients["clinic_id"] = patients["clinic_id"].astype(str).replace({smallest: clinic})
    sim.write(tmp_path / "raw")
    outcomes.clean(tmp_path / "raw", tmp_path / "processed")

    grid = tmp_path / "grid.yml"
    grid.write_text(yaml.safe_dump({"reports": [{"name": "patient", "notebook": "30-patient-progress",
                                                 "parameters": {"patient_id": patient_id, "metrics": "hydration"}}]}))
    exe = str(Path(sys.executable).with_name("outcomes"))
    common_args = ["--processed", str(tmp_path / "processed")]
    env = {**os.environ, "CI": "true"}
    runs = [
        [exe, "report", "--grid", str(grid), *common_args, "--out", str(tmp_path / "out-grid")],
        [exe, "report", "20-sessions-response", "-p", "clinic", clinic, *common_args, "--out", str(tmp_path / "out-p")],
    ]
    procs = [subprocess.Popen(cmd, env=env, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for cmd in runs]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    for proc, output in zip(procs, outputs):
        assert proc.returncode == 0, output

    pdfs = sorted(tmp_path.glob("out-*/**/*.pdf"))
    assert len(pdfs) == 2, pdfs
    for path in pdfs:
        texts = _check_pdf_is_inert(path, secret)
        missing = [i + 1 for i, t in enumerate(texts) if BANNER not in t]
        assert not missing, f"{path.name}: no banner on pages {missing}"
    assert requests == [], f"the report run sent requests to the local server: {requests}"

    by_run = {p.relative_to(tmp_path).parts[0]: "\n".join(pg.extract_text() for pg in PdfReader(str(p)).pages)
              for p in pdfs}
    assert '<a rel="attachment"' in by_run["out-grid"]  # the patient id is shown, as text
    assert f'<img src="{local.as_uri()}">' in by_run["out-p"].replace("\n", "")  # the clinic too
