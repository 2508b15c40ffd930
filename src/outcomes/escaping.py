"""Every value from data or parameters is hostile where it meets HTML, markdown, CSV or a file name.

This module is the one place where such a value is made inert at that border. A clinic's export
can hold a patient id like ``<img src="file:///etc/passwd">`` or ``=HYPERLINK("http://…")``, and
a scheduler can pass any parameter; each function here turns one such value into text that the
next layer shows literally:

* :func:`html_text`  text or an attribute value inside HTML;
* :func:`markdown_text`  text inside markdown (a notebook's ``Markdown`` output, a heading);
* :func:`csv_cell`  a cell of a CSV file a person may open in a spreadsheet (OWASP's rule), and
  :func:`spreadsheet_safe` every text cell of a table about to be written as CSV;
* :func:`file_name_part`  part of a file or folder name (no path separators, no dot-files,
  bounded length);
* :func:`plot_text`  a label, title or annotation drawn by matplotlib (no mathtext).

Use them where the value meets that layer, not earlier: a table keeps the true value, and the
border decides how it is shown.
"""
from __future__ import annotations

import hashlib
import html
import math
import re
import string

__all__ = ["html_text", "markdown_text", "csv_cell", "spreadsheet_safe", "file_name_part", "plot_text",
           "MAX_FILE_NAME_PART"]

# ASCII punctuation that CommonMark lets a backslash escape. `&`, `<` and `>` are written as
# entities instead, so that no tag or autolink can start and no entity can be spelled out.
_MD_BACKSLASHED = {c: "\\" + c for c in string.punctuation if c not in "&<>"}
_MD_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029\x0b\x0c\x85]+")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")


def html_text(value: object) -> str:
    """`value` as HTML text or a quoted attribute value: ``<>&"'`` become entities."""
    return html.escape(_text(value), quote=True)


def markdown_text(value: object) -> str:
    """`value` as one line of literal markdown text, whatever it holds.

    Line breaks become spaces (no heading, list or block can start), every ASCII punctuation
    mark is backslash-escaped (no emphasis, link, image, code span, table cell or math), and
    ``& < >`` become entities (no raw HTML, autolink or entity). Rendered, it reads exactly as
    the value (line breaks aside).
    """
    text = _LINE_BREAKS.sub(" ", _text(value))
    out = []
    for c in text:
        out.append(_MD_BACKSLASHED.get(c) or _MD_ENTITIES.get(c) or c)
    return "".join(out)


# OWASP "CSV Injection": a cell starting with one of these is read as a formula by spreadsheets.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")
_NUMBER = re.compile(r"[+-]?(\d+([.,]\d*)?|[.,]\d+)([eE][+-]?\d+)?%?")


def csv_cell(value: object) -> object:
    """`value` made safe for a CSV cell a spreadsheet may open.

    Text that starts with ``= + - @``, a tab or a line break gets a leading ``'`` (OWASP's
    guidance), so that a spreadsheet shows it as text instead of running it as a formula.
    Genuine numbers (``-3.5``, ``+12``, ``-1e-3``) and non-text values pass unchanged.
    """
    if not isinstance(value, str) or not value.startswith(_FORMULA_START):
        return value
    if _NUMBER.fullmatch(value):
        return value
    return "'" + value


def spreadsheet_safe(frame):
    """`frame` (a DataFrame) with every text cell passed through :func:`csv_cell`.

    Every CSV the project writes goes through here: a person opens these files in a
    spreadsheet, and a raw value such as ``=HYPERLINK(...)`` must show as text, not run. Only
    cells that start like a formula are looked at one by one (a vectorised test picks them),
    so a big table costs one pass per text column.
    """
    import pandas as pd

    out = frame.copy(deep=False)
    for name in out.columns:
        column = out[name]
        if not (pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column)
                or isinstance(column.dtype, pd.CategoricalDtype)):
            continue
        text = column.astype("str")
        risky = text.str.startswith(_FORMULA_START).fillna(False).to_numpy(dtype=bool)
        if risky.any():
            column = column.astype(object)
            column[risky] = [csv_cell(v) for v in column[risky]]
            out[name] = column
    return out


MAX_FILE_NAME_PART = 80
_UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def file_name_part(value: object, *, max_length: int = MAX_FILE_NAME_PART, default: str = "x") -> str:
    """`value` as a piece of a file name: letters, digits, ``_ . -`` only, never a path.

    Runs of anything else become ``-``; leading dots and dashes go (no hidden file, no ``..``,
    no option-like name). A value longer than `max_length` is cut and ends in a short hash of
    the whole value, so two long values that share a beginning still get different names.
    """
    text = _UNSAFE_IN_NAME.sub("-", _text(value)).lstrip(".-").rstrip("-")
    text = re.sub(r"\.{2,}", ".", text)
    if not text:
        return default
    if len(text) > max_length:
        digest = hashlib.sha256(_text(value).encode("utf-8", "surrogatepass")).hexdigest()[:10]
        text = text[: max(1, max_length - 11)].rstrip(".-") + "-" + digest
    return text


def plot_text(value: object, *, max_length: int = 60) -> str:
    """`value` as text matplotlib draws literally: one line, no mathtext, bounded length.

    A ``$`` would start mathtext (``$\\frac{...}$`` is typeset, a malformed one stops the figure
    with an error), so each becomes ``\\$``; line breaks become spaces; a value longer than
    `max_length` is cut with ``…``.
    """
    text = _LINE_BREAKS.sub(" ", _text(value))
    if len(text) > max_length:
        text = text[: max_length - 1] + "…"
    return text.replace("$", r"\$")


def _text(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return _CONTROL.sub("", str(value))
