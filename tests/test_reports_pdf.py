"""The practitioner PDF: cover, findings first, figures and tables, never code or warnings."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import nbformat
import pandas as pd
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from pypdf import PdfReader

from outcomes.reports import pdf, show

CODE_MARKER = "secret_variable_name_XYZ = compute_everything()"


def _html_output(obj) -> dict:
    return new_output("display_data", data={"text/html": obj._repr_html_(), "text/plain": repr(obj)})


def _executed_notebook() -> nbformat.NotebookNode:
    """What papermill leaves behind, built without a kernel: sources plus their outputs."""
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot([1, 2, 3], [2, 5, 6], "k-o")
    table = pd.DataFrame({"age_band": ["<40", "40-54", "55+"], "n_patients": [40, "<5", 12],
                          "mean": [12.25, "<5", 7.5]})
    nb = new_notebook()
    nb.cells = [
        new_code_cell("processed_dir: str = ''\nmetric: str = 'hydration'", metadata={"tags": ["parameters"]}),
        new_code_cell("processed_dir = '/somewhere'", metadata={"tags": ["injected-parameters"]}),
        new_code_cell("display(Markdown(title))", metadata={"tags": ["cover"]}, outputs=[
            new_output("display_data", data={"text/markdown": "# Sessions and response: hydration\n\nAll clinics."}),
        ]),
        new_markdown_cell("## The cohort\n\nWho is in this analysis."),
        new_code_cell(CODE_MARKER, outputs=[
            _html_output(show.table(table, "Improvement by age band")),
            new_output("stream", name="stderr", text="UserWarning: a_warning_for_the_log_only\n"),
        ]),
        new_markdown_cell("## Improvement over sessions"),
        new_code_cell("import matplotlib.pyplot as plt\nplt.plot([1, 2])", outputs=[
            _html_output(show.figure(fig, "Mean improvement after each session")),
        ]),
        new_code_cell("show.findings(found)", metadata={"tags": ["findings"]}, outputs=[
            _html_output(show.findings(["Hydration rose by **25%** after three sessions."])),
        ]),
        new_code_cell("def helper():\n    return 1", metadata={"tags": ["remove-cell"]}, outputs=[
            new_output("stream", name="stdout", text="removed_cell_output\n"),
        ]),
    ]
    nb.metadata["papermill"] = {"parameters": {"processed_dir": "/somewhere", "metric": "hydration"}}
    return nb


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    path = tmp_path_factory.mktemp("pdf") / "report.pdf"
    manifest = {"synthetic": True, "snapshot": "a1b2c3d4", "created": "2025-11-20T08:30:00+00:00"}
    pdf.notebook_to_pdf(_executed_notebook(), path, name="sessions-response-hydration", manifest=manifest)
    reader = PdfReader(str(path))
    return [p.extract_text() for p in reader.pages], reader


def test_pdf_is_a4_with_cover_findings_first_and_sections(rendered):
    pages, reader = rendered
    box = reader.pages[0].mediabox
    assert (round(float(box.width) * 25.4 / 72), round(float(box.height) * 25.4 / 72)) == (210, 297)
    cover, last = pages[0], pages[-1]
    # page 1 is the answer: title, then the key findings with the headline; no provenance
    assert cover.index("Sessions and response: hydration") < cover.index("Key findings") < cover.index(
        "Hydration rose by 25% after three sessions.")
    for text in ("a1b2c3d4", "mesotherapy-outcomes 0.1.0", "Parameters", "Data snapshot"):
        assert text not in cover, text
    # provenance is the last page
    for text in ("About this report", "a1b2c3d4", "2025-11-20", "mesotherapy-outcomes 0.1.0", "metric", "hydration",
                 "Parameters", "Data snapshot"):
        assert text in last, text
    assert "/somewhere" not in last  # the processed folder is plumbing, not a parameter to show
    for page in pages:
        assert "SYNTHETIC DEMO DATA" in page  # the banner on every page
    body = "\n".join(pages[1:])
    assert body.index("The cohort") < body.index("Improvement over sessions")
    assert "Improvement by age band" in body and "Mean improvement after each session" in body
    assert f"Page 2 of {len(pages)}" in pages[1]  # page numbers
    assert "Sessions and response: hydration" in pages[1]  # running header with the title


def test_pdf_has_no_code_no_warnings_no_removed_cells(rendered):
    text = "\n".join(rendered[0])
    for forbidden in ("secret_variable_name_XYZ", "compute_everything", "display(Markdown", "import matplotlib",
                      "def helper", "a_warning_for_the_log_only", "removed_cell_output", "In [", "Out["):
        assert forbidden not in text, forbidden


def test_synthetic_banner_only_for_simulated_data(tmp_path):
    path = tmp_path / "real.pdf"
    pdf.notebook_to_pdf(_executed_notebook(), path, manifest={"synthetic": False, "snapshot": "ffff0000"})
    text = "\n".join(p.extract_text() for p in PdfReader(str(path)).pages)
    assert "SYNTHETIC" not in text
    assert "clinic exports" in text and "ffff0000" in text


def test_manifest_is_read_from_the_processed_folder_in_the_parameters(tmp_path):
    (tmp_path / "manifest.json").write_text('{"synthetic": true, "snapshot": "feedface", "created": "2025-01-02T03:04:05"}')
    nb = _executed_notebook()
    nb.metadata["papermill"]["parameters"]["processed_dir"] = str(tmp_path)
    path = pdf.notebook_to_pdf(nb, tmp_path / "x.pdf")
    pages = PdfReader(str(path)).pages
    assert "feedface" in pages[-1].extract_text() and "SYNTHETIC DEMO DATA" in pages[0].extract_text()


def test_table_helper_rounds_and_marks_numbers():
    html = show.table(pd.DataFrame({"group": ["a"], "n_patients": [12], "mean": [3.14159]}), "cap")._repr_html_()
    assert "3.1" in html and "3.14" not in html
    assert '<td class="num">12</td>' in html
    assert "<th class=\"num\">patients</th>" in html  # a reader's header for a shared column name (show.LABELS)
    other = show.table(pd.DataFrame({"n_events": [3]}), "cap")._repr_html_()
    assert "n events" in other  # any other code name at least loses its underscores


def _table_right_edges(html: str) -> tuple[list[float], float]:
    """The right edge of each table WeasyPrint lays out, and the right edge of the page's content."""
    import weasyprint

    pages = [p._page_box for p in weasyprint.HTML(string=html, base_url=str(pdf.TEMPLATES)).render().pages]

    def boxes(box):
        yield box
        for child in getattr(box, "children", []):
            yield from boxes(child)

    edges = [b.position_x + b.width for page in pages for b in boxes(page) if type(b).__name__ == "TableBox"]
    return edges, pages[0].content_box_x() + pages[0].width


def test_a_long_value_wraps_inside_the_page_and_only_long_words_may_break_anywhere():
    """Cells break a word only where it would overflow; a word longer than show.LONG_WORD (an id,
    a raw value) may break anywhere, so a table never crosses the right margin. Breaking anywhere
    in every cell made WeasyPrint size columns character by character (the PDF step's cost)."""
    long_id = "P" + "7" * 300
    frame = pd.DataFrame({"value": [long_id, "12.3 (10.1 to 14.5)"], "reason": ["date_after_export", "ok"],
                          **{f"c{i}": ["a long-ish label", "x"] for i in range(6)}, "n": [1, 2]})
    fragment = show.table(frame, "cap")._repr_html_()
    assert f'<td class="long">{long_id}</td>' in fragment and '<td class="long">date_after_export</td>' in fragment
    assert "<td>12.3 (10.1 to 14.5)</td>" in fragment and '<td class="num">1</td>' in fragment
    nb = new_notebook(cells=[new_code_cell("t", outputs=[_html_output(show.table(frame, "cap"))])])
    edges, right = _table_right_edges(pdf.notebook_to_html(nb, manifest={}))
    assert edges and max(edges) <= right + 0.5, (edges, right)
