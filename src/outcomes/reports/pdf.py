"""Executed notebook -> practitioner PDF: HTML without code (nbconvert), then A4 (WeasyPrint).

Practitioners read the result, so no input cell, prompt, warning or traceback reaches it.
Layout comes from the notebook's cell tags:

* ``cover``    cells shown on the cover page (a dynamic title, one line on the selection);
* ``findings`` cells moved right after the cover (key findings come first);
* ``remove-cell`` / ``no-report`` cells left out; ``remove-output`` cells lose their outputs.

The cover also shows the parameters, the data snapshot (hash and date from the processed
folder's manifest.json), the package version and, for simulator data, a
"SYNTHETIC DEMO DATA" banner (repeated in every page header).
"""
from __future__ import annotations

import json
import os
import re
import tempfile
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode

from outcomes import config

TEMPLATES = Path(__file__).with_name("templates")
COVER_TAG, FINDINGS_TAG = "cover", "findings"
REMOVE_CELL_TAGS = {"remove-cell", "no-report", "parameters", "injected-parameters"}
HIDDEN_PARAMETERS = {"processed_dir"}


def load_manifest(processed_dir: str | os.PathLike | None) -> dict[str, Any] | None:
    """The processed folder's manifest.json, or None when there is none."""
    folder = Path(processed_dir) if processed_dir else config.PROCESSED_DIR
    path = folder / "manifest.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


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
    """The report as one self-contained HTML page (cover, findings, body), ready for print."""
    import jinja2

    from outcomes import __version__

    if parameters is None:
        parameters = dict(nb.metadata.get("papermill", {}).get("parameters", {}) or {})
    min_cell = parameters.get("min_cell", min_cell)  # the cover tells the rule the run used
    exporter = _exporter()
    cells = [c for c in nb.cells if not (_tags(c) & REMOVE_CELL_TAGS)]
    cover = [c for c in cells if COVER_TAG in _tags(c)]
    findings = [c for c in cells if FINDINGS_TAG in _tags(c) and COVER_TAG not in _tags(c)]
    body = [c for c in cells if not (_tags(c) & {COVER_TAG, FINDINGS_TAG})]
    cover_html = _body_html(exporter, nb, cover)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True)
    page = env.get_template("page.html.j2")
    return page.render(
        title=title or name,
        name=name,
        cover=jinja2.utils.markupsafe.Markup(cover_html),
        cover_has_title=bool(re.search(r"<h1[\s>]", cover_html)),
        findings=jinja2.utils.markupsafe.Markup(_body_html(exporter, nb, findings)),
        body=jinja2.utils.markupsafe.Markup(_body_html(exporter, nb, body)),
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
    """Render HTML to an A4 PDF, written atomically (a half-written PDF never appears)."""
    pdf_path = Path(pdf_path)
    pdf_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{pdf_path.stem}.", suffix=".pdf.tmp", dir=pdf_path.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings():  # WeasyPrint nags about an optional system library
            warnings.simplefilter("ignore", DeprecationWarning)
            import weasyprint

            weasyprint.HTML(string=html, base_url=str(pdf_path.parent)).write_pdf(tmp)
        os.chmod(tmp, file_mode())
        os.replace(tmp, pdf_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
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
