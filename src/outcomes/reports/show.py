"""What report notebooks display: findings, figures with captions, tables that fit a page.

Notebooks call these instead of printing, so the same cell reads well in JupyterLab and in
the PDF: each helper emits one HTML output with classes the PDF template styles (figure
size, caption, table width). Nothing here computes statistics.

Texts (findings, notes, captions, `text`) are markdown written by the report: a value from the
data or a parameter inside one must be escaped with :func:`outcomes.escaping.markdown_text`
where it enters the sentence, so it reads literally; table cells and headers are escaped here.
"""
from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from outcomes.escaping import html_text

# Headers a reader sees for the column names the report tables share (a call's `labels` win).
LABELS = {"age_band": "age band", "skin_type": "skin type", "n_patients": "patients", "patients_left": "patients",
          "ci_low": "95% CI low", "ci_high": "95% CI high", "clinic_id": "clinic", "pct_flagged": "% flagged",
          "median_sessions": "median sessions", "volume_ml": "volume (ml)", "session_number": "session"}

# A4 text width is 170 mm (6.7 in); figures are drawn at that width so fonts print at size.
# A text cell with a word longer than this may break anywhere (CSS `td.long`, report.css); other
# cells only break a word that would overflow. Why not `anywhere` on every cell: WeasyPrint then
# sizes each table column by breaking every cell's text after each character. Measured 2026-11-27
# on the 2,000-patient demo: WeasyPrint's layout is 11-14% of a sessions-response report's time
# (the one part of the PDF step over a tenth); this cut its Pango text layouts 12,734 -> 4,543 and
# its CPU time 0.89 -> 0.72 s (fine lines, wrinkles), the PDF step's CPU time by 8.6% over the 12
# sessions-response reports (docs/reports.md, Speed).
LONG_WORD = 16
PAGE_WIDTH_IN = 6.7
FIGURE_DPI = 150


class _HTML:
    """A display object with an HTML and a plain-text form (the latter for consoles and logs)."""

    def __init__(self, markup: str, text: str) -> None:
        self.html_text, self.text = markup, text

    def _repr_html_(self) -> str:
        return self.html_text

    def __repr__(self) -> str:
        return self.text


def _display(obj):
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # pragma: no cover - IPython ships with ipykernel
        return obj
    if get_ipython() is None:
        return obj
    display(obj)
    return obj


def _md_inline(text: str) -> str:
    """A one-paragraph markdown text (e.g. with **bold**) as inline HTML, rendered by the same
    renderer as the notebook's markdown (so `markdown_text`'s escaping holds)."""
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    out = markdown2html_mistune(str(text)).strip()
    if out.startswith("<p>") and out.endswith("</p>") and out.count("<p>") == 1:
        out = out[3:-4]
    return out


def _plain(text: str) -> str:
    """A markdown text as plain words (an image's alt text)."""
    import nh3

    return html.unescape(nh3.clean(_md_inline(text), tags=set()))


def findings(items: Iterable[str], title: str = "Key findings") -> _HTML:
    """The plain-language findings box; the PDF moves it to the front (tag the cell `findings`)."""
    items = [str(i) for i in items if str(i).strip()]
    lis = "".join(f"<li>{_md_inline(i)}</li>" for i in items)
    body = f'<section class="report-findings"><h2>{html_text(title)}</h2><ul>{lis}</ul></section>'
    text = title + "\n" + "\n".join(f"- {i}" for i in items)
    return _display(_HTML(body, text))


def text(markdown: str):
    """A paragraph or heading whose words depend on the data (rendered as markdown; escape the
    data's values in it with `outcomes.escaping.markdown_text`)."""
    from IPython.display import Markdown

    return _display(Markdown(markdown))


def note(text: str, kind: str = "note") -> _HTML:
    """A short boxed message, e.g. 'too few patients for this analysis' (kind: note or warning)."""
    body = f'<div class="report-{html_text(kind)}"><p>{_md_inline(text)}</p></div>'
    return _display(_HTML(body, f"[{kind}] {text}"))


def notes(texts: Iterable[str], kind: str = "note") -> list[_HTML]:
    """:func:`note` for each text (none for an empty list)."""
    return [note(t, kind) for t in texts if str(t).strip()]


def figure(fig, caption: str, height_in: float | None = None) -> _HTML:
    """Show a matplotlib figure at page width with a numbered caption, then close it.

    The figure is redrawn at the page's text width (keeping its aspect ratio unless
    `height_in` is given), so its fonts print at the size they were set.
    """
    import matplotlib.pyplot as plt

    w, h = fig.get_size_inches()
    new_h = height_in if height_in is not None else h * PAGE_WIDTH_IN / w
    fig.set_size_inches(PAGE_WIDTH_IN, new_h)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=FIGURE_DPI, bbox_inches="tight", facecolor="white")
    plt.close(fig)
    return _png_figure(buf.getvalue(), caption, "report-figure", "figure")


def _png_figure(png: bytes, caption: str, classes: str, kind: str) -> _HTML:
    """A PNG embedded at page width with its numbered caption (both escaped here)."""
    data = base64.b64encode(png).decode("ascii")
    body = (f'<figure class="{classes}"><img alt="{html_text(_plain(caption))}" '
            f'src="data:image/png;base64,{data}"/><figcaption>{_md_inline(caption)}</figcaption></figure>')
    return _display(_HTML(body, f"[{kind}] {caption}"))


def image(png: bytes, caption: str) -> _HTML:
    """Show a PNG made elsewhere (a before/after photo panel) at page width with a numbered
    caption, as :func:`figure` does; ``report-photo`` marks it as a photo of a patient."""
    return _png_figure(png, caption, "report-figure report-photo", "photo")


def images(items: Iterable[tuple[bytes, str]]) -> list[_HTML]:
    """:func:`image` for each (PNG, caption) (none for an empty list)."""
    return [image(png, caption) for png, caption in items]


def _missing(v: object) -> bool:
    return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, (float, np.floating)) and np.isnan(v))


def _format_cell(v: object, decimals: int) -> str:
    if _missing(v):
        return "–"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (float, np.floating)):
        return f"{v:,.{decimals}f}"
    if isinstance(v, (int, np.integer)):
        return f"{v:,}"
    return str(v)


def table(
    data: pd.DataFrame,
    caption: str,
    index: bool = False,
    decimals: int = 1,
    labels: dict[str, str] | None = None,
    max_rows: int = 60,
) -> _HTML:
    """Show a table sized for the page: numbers rounded, readable headers, a caption.

    Long tables are cut at `max_rows` with a note (a report is not a data dump).
    """
    shown = data.reset_index() if index else data
    labels = {**LABELS, **(labels or {})}
    cols: Sequence[str] = list(shown.columns)
    suppressed = re.compile(r"^(<\d+|x)$")  # privacy: "<5" and the complementary "x"

    def is_number(v: object) -> bool:
        return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)

    numeric_cols = [
        all(is_number(v) or _missing(v) or (isinstance(v, str) and suppressed.match(v)) for v in shown[c])
        and any(is_number(v) for v in shown[c])
        for c in cols
    ]
    num_class = ' class="num"'
    head = "".join(
        f"<th{num_class if numeric else ''}>{html_text(labels.get(str(c), str(c).replace('_', ' ')))}</th>"
        for c, numeric in zip(cols, numeric_cols)
    )
    body_rows = []
    for row in shown.head(max_rows).itertuples(index=False):
        cells = []
        for v, numeric in zip(row, numeric_cols):
            text = _format_cell(v, decimals)
            long = not numeric and any(len(word) > LONG_WORD for word in text.split())
            cls = ' class="num"' if numeric else ' class="long"' if long else ""
            cells.append(f"<td{cls}>{html_text(text)}</td>")
        body_rows.append("<tr>" + "".join(cells) + "</tr>")
    more = ""
    if len(shown) > max_rows:
        more = f'<p class="report-more">… {len(shown) - max_rows} more rows not shown.</p>'
    wide = " wide" if len(cols) > 7 else ""
    body = (f'<div class="report-table-wrap"><table class="report-table{wide}"><caption>{_md_inline(caption)}</caption>'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body_rows)}</tbody></table>{more}</div>")
    return _display(_HTML(body, f"[table] {caption}\n{shown.head(max_rows).to_string(index=False)}"))
