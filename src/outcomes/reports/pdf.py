"""Executed notebook -> practitioner PDF: HTML without code (nbconvert), then A4 (WeasyPrint).

Practitioners read the result, so no input cell, prompt, warning or traceback reaches it.
Layout comes from the notebook's cell tags:

Page 1 is the answer:

* ``cover``           cells first (a dynamic title, one line on the selection);
* ``findings``        cells next (the key findings, the headline first);
* ``headline-figure`` cells after them (the one figure that shows the answer), moved from
  where the notebook makes them;
* ``remove-cell`` / ``no-report`` cells left out; ``remove-output`` cells lose their outputs.

Provenance comes last, on its own page: the parameters, the data snapshot (hash and date from
the processed folder's manifest.json) and the package version. For simulator data a
"SYNTHETIC DEMO DATA" banner is on page 1 and in every page header.

The notebook's HTML is untrusted (a value from a clinic export may have slipped through
unescaped), so it is cleaned by nh3 (:func:`sanitise_html`) before it enters the trusted page
template, and WeasyPrint loads nothing but the package's template files and the notebook's
embedded PNG/JPEG images (:func:`allowed_resource`): no local file, no network request.
"""
from __future__ import annotations

import functools
import logging
import mimetypes
import os
import re
import urllib.request
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import nbformat
from nbformat import NotebookNode

from outcomes import config
from outcomes.loader import load_manifest
from outcomes.reports.runs import replacing

TEMPLATES = Path(__file__).with_name("templates")
COVER_TAG, FINDINGS_TAG, HEADLINE_FIGURE_TAG = "cover", "findings", "headline-figure"
REMOVE_CELL_TAGS = {"remove-cell", "no-report", "parameters", "injected-parameters"}
HIDDEN_PARAMETERS = {"processed_dir"}
log = logging.getLogger(__name__)

# What the notebook part of a report may hold: the markup nbconvert and outcomes.reports.show
# write, nothing that loads, runs, styles or embeds anything.
ALLOWED_TAGS = {
    "a", "b", "blockquote", "br", "caption", "code", "del", "div", "em", "figcaption", "figure",
    "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "li", "ol", "p", "pre", "section", "span",
    "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
}
ALLOWED_ATTRIBUTES = {
    "*": {"class"}, "a": {"href"}, "img": {"src", "alt"}, "td": {"colspan", "rowspan"}, "th": {"colspan", "rowspan"},
    **{f"h{i}": {"id"} for i in range(1, 7)},
}
DROPPED_WITH_CONTENT = {"script", "style", "svg", "math", "iframe", "object", "embed", "noscript", "template", "title"}
EMBEDDED_IMAGE_TYPES = ("image/png", "image/jpeg")
_EMBEDDED_IMAGE = re.compile(r"data:(image/png|image/jpeg);base64,", re.IGNORECASE)


def _keep_attribute(tag: str, attribute: str, value: str) -> str | None:
    """Links only to anchors in the page; images only embedded PNG or JPEG."""
    if attribute == "href":
        return value if value.startswith("#") else None
    if attribute == "src":
        return value if _EMBEDDED_IMAGE.match(value.strip()) else None
    return value


def sanitise_html(fragment: str) -> str:
    """The notebook part of a report with only harmless markup left (nh3, i.e. ammonia).

    Kept: text, headings, paragraphs, lists, tables, figures with embedded PNG/JPEG images,
    ``class`` attributes and links to anchors in the page. Gone: ``<style>``, ``<script>``,
    ``<link>``, ``<meta>``, ``<base>``, ``<iframe>``, ``<object>``, ``<embed>``, ``<svg>``,
    forms, ``style`` and event-handler attributes, ``rel`` (no attachments), and every URL
    that is not an in-page anchor or an embedded image.
    """
    import nh3

    return nh3.clean(fragment, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES,
                     clean_content_tags=DROPPED_WITH_CONTENT, attribute_filter=_keep_attribute,
                     url_schemes={"data"}, link_rel=None, strip_comments=True)


class RefusedResource(ValueError):
    """A URL a report may not load (anything but its template files and embedded images)."""


def allowed_resource(url: str) -> tuple[bytes, str]:
    """(bytes, media type) behind `url` if a report may load it, else :class:`RefusedResource`.

    Allowed: ``data:`` URLs of PNG or JPEG images (the notebook's figures) and ``file:`` URLs
    of files inside the package's templates folder. Refused: every other file, ``http(s):``,
    ``ftp:`` and any other scheme, so a value in the data can neither read a local file into
    the PDF nor make the report run send a request.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "data":
        try:
            with urllib.request.DataHandler().data_open(urllib.request.Request(url)) as response:
                media_type, body = response.headers.get_content_type(), response.read()
        except (ValueError, OSError):
            raise RefusedResource("refused a malformed data: URL") from None
        if media_type not in EMBEDDED_IMAGE_TYPES:
            raise RefusedResource(f"refused a data: URL of type {media_type} (only embedded PNG and JPEG images)")
        return body, media_type
    if scheme == "file" and parts.netloc in ("", "localhost"):
        path = Path(urllib.request.url2pathname(parts.path)).resolve()
        if path.is_relative_to(TEMPLATES.resolve()) and path.is_file():
            return path.read_bytes(), mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        raise RefusedResource("refused a file: URL outside the report templates")
    raise RefusedResource(f"refused a {scheme or 'relative'}: URL (reports load no external resources)")


@functools.cache
def _fetcher_class() -> type:
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class ReportFetcher(URLFetcher):
        """WeasyPrint's fetcher limited to :func:`allowed_resource` (one log line per refusal)."""

        def fetch(self, url: str, headers: dict | None = None) -> URLFetcherResponse:
            try:
                body, media_type = allowed_resource(url)
            except RefusedResource as exc:
                log.warning("PDF: %s", exc)
                raise
            return URLFetcherResponse(url, body, {"Content-Type": media_type})

    return ReportFetcher


def _exporter():
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor

    exporter = HTMLExporter(
        extra_template_basedirs=[str(TEMPLATES)],
        template_name="outcomes_report",
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )
    exporter.register_preprocessor(
        TagRemovePreprocessor(remove_cell_tags=REMOVE_CELL_TAGS, remove_all_outputs_tags={"remove-output"}),
        enabled=True,
    )
    return exporter


def _tags(cell: NotebookNode) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


def _body_html(exporter, nb: NotebookNode, cells: list[NotebookNode]) -> str:
    if not cells:
        return ""
    part = nbformat.v4.new_notebook(metadata=nb.metadata)
    part.cells = cells
    html, _ = exporter.from_notebook_node(part)
    return html.strip()


def _shown_parameters(parameters: dict[str, Any]) -> list[tuple[str, str]]:
    rows = []
    for key, value in parameters.items():
        if key in HIDDEN_PARAMETERS:
            continue
        rows.append((key, "(default)" if value in ("", None) else str(value)))
    return rows


def _snapshot_date(manifest: dict[str, Any] | None) -> str:
    created = (manifest or {}).get("created")
    if not created:
        return "unknown"
    try:
        return datetime.fromisoformat(str(created)).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return str(created)


def notebook_to_html(
    nb: NotebookNode,
    *,
    name: str = "report",
    title: str | None = None,
    parameters: dict[str, Any] | None = None,
    manifest: dict[str, Any] | None = None,
    min_cell: int = config.MIN_CELL,
) -> str:
    """The report as one self-contained HTML page (page 1: title, findings, headline figure;
    then the body; provenance last), ready for print."""
    import jinja2

    from outcomes import __version__

    if parameters is None:
        parameters = dict(nb.metadata.get("papermill", {}).get("parameters", {}) or {})
    min_cell = parameters.get("min_cell", min_cell)  # the cover tells the rule the run used
    exporter = _exporter()
    cells = [c for c in nb.cells if not (_tags(c) & REMOVE_CELL_TAGS)]
    cover = [c for c in cells if COVER_TAG in _tags(c)]
    findings = [c for c in cells if FINDINGS_TAG in _tags(c) and COVER_TAG not in _tags(c)]
    figure = [c for c in cells if HEADLINE_FIGURE_TAG in _tags(c) and not (_tags(c) & {COVER_TAG, FINDINGS_TAG})]
    body = [c for c in cells if not (_tags(c) & {COVER_TAG, FINDINGS_TAG, HEADLINE_FIGURE_TAG})]
    cover_html = sanitise_html(_body_html(exporter, nb, cover))
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True)
    page = env.get_template("page.html.j2")
    return page.render(
        title=title or name,
        name=name,
        cover=jinja2.utils.markupsafe.Markup(cover_html),
        cover_has_title=bool(re.search(r"<h1[\s>]", cover_html)),
        findings=jinja2.utils.markupsafe.Markup(sanitise_html(_body_html(exporter, nb, findings))),
        figure=jinja2.utils.markupsafe.Markup(sanitise_html(_body_html(exporter, nb, figure))),
        body=jinja2.utils.markupsafe.Markup(sanitise_html(_body_html(exporter, nb, body))),
        parameters=_shown_parameters(parameters),
        synthetic=None if manifest is None else bool(manifest.get("synthetic", False)),
        snapshot=(manifest or {}).get("snapshot", "unknown"),
        snapshot_date=_snapshot_date(manifest),
        generated=datetime.now().strftime("%Y-%m-%d %H:%M"),
        version=__version__,
        min_cell=min_cell,
        css=jinja2.utils.markupsafe.Markup((TEMPLATES / "report.css").read_text(encoding="utf-8")),
    )


def file_mode() -> int:
    """Permissions a plain new file gets here (mkstemp's private 0600 would hide reports)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def html_to_pdf(html: str, pdf_path: str | os.PathLike) -> Path:
    """Render HTML to an A4 PDF, written atomically (a half-written PDF never appears).

    WeasyPrint loads only what :func:`allowed_resource` allows; relative URLs point into the
    templates folder, never next to the PDF.
    """
    pdf_path = Path(pdf_path)
    pdf_path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(pdf_path, file_mode()) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # WeasyPrint nags about an optional system library
        import weasyprint

        fetcher = _fetcher_class()()
        weasyprint.HTML(string=html, base_url=str(TEMPLATES), url_fetcher=fetcher).write_pdf(tmp)
    return pdf_path


def notebook_to_pdf(
    notebook: str | os.PathLike | NotebookNode,
    pdf_path: str | os.PathLike,
    *,
    name: str | None = None,
    title: str | None = None,
    parameters: dict[str, Any] | None = None,
    manifest: dict[str, Any] | None = None,
    min_cell: int = config.MIN_CELL,
) -> Path:
    """Turn an executed notebook into the practitioner PDF at `pdf_path`.

    `parameters` default to those papermill recorded in the notebook; `manifest` defaults
    to the one in the processed folder those parameters point at (`processed_dir`).
    """
    if isinstance(notebook, NotebookNode):
        nb = notebook
        default_name = "report"
    else:
        nb = nbformat.read(notebook, as_version=4)
        default_name = Path(notebook).stem
    if parameters is None:
        parameters = dict(nb.metadata.get("papermill", {}).get("parameters", {}) or {})
    if manifest is None:
        manifest = load_manifest(parameters.get("processed_dir") or None)
    html = notebook_to_html(nb, name=name or default_name, title=title, parameters=parameters,
                            manifest=manifest, min_cell=min_cell)
    return html_to_pdf(html, pdf_path)
