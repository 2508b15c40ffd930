"""The one border helper: hostile values come out inert and read as they went in."""
from __future__ import annotations

import html
import re

from hypothesis import example, given, settings
from hypothesis import strategies as st
from nbconvert.filters.markdown_mistune import markdown2html_mistune

from outcomes.escaping import csv_cell, file_name_part, html_text, markdown_text

HOSTILE = [
    '<a rel="attachment" href="file:///etc/passwd">P1</a>',
    '<img src="http://127.0.0.1:9/x">', "<style>.banner{display:none}</style>",
    "![x](file:///etc/passwd)", "[link](file:///etc/passwd)", "<file:///etc/passwd>",
    "# heading\n\n<iframe src=x>", "`code` *em* _em_ $x$ | cell |", "&lt;b&gt; &#60;b&#62;",
]
printable = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF, exclude_characters="\x7f"), max_size=60)


def _rendered_text(markdown: str) -> str:
    out = markdown2html_mistune(markdown).strip()
    if not out:
        return ""
    assert out.startswith("<p>") and out.endswith("</p>"), out
    inner = out[3:-4]
    assert "<" not in inner, f"markup survived: {out}"
    return html.unescape(inner)


def test_hostile_markdown_renders_as_its_own_text():
    for value in HOSTILE:
        assert _rendered_text(markdown_text(value)) == re.sub(r"\n+", " ", value)


@settings(max_examples=300, deadline=None)
@given(printable)
@example("0 \x850")  # NEL, a line break, next to a space
def test_any_text_renders_literally_as_markdown(value):
    shown = _rendered_text(markdown_text(value))
    # line breaks read as spaces and markdown trims the ends of a paragraph; the rest reads as given
    assert shown.strip() == re.sub(r"[\r\n\u2028\u2029\x0b\x0c\x85]+", " ", value).strip()


def test_html_text_escapes_tags_and_quotes():
    assert html_text('<a href="x">') == "&lt;a href=&quot;x&quot;&gt;"
    assert html_text("it's") == "it&#x27;s"
    assert html_text(None) == ""


def test_csv_cell_neutralises_formulas_but_not_numbers():
    for formula in ['=HYPERLINK("http://x","s")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]:
        assert csv_cell(formula) == "'" + formula
    for number in ["-3.5", "+12", "-1e-3", "-0,5", "-7%"]:
        assert csv_cell(number) == number
    for plain in ["P001", "a=b", "", 12, -3.5, None]:
        assert csv_cell(plain) == plain


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_file_name_part_is_never_a_path_or_hidden(value):
    name = file_name_part(value)
    assert name and len(name) <= 80
    assert "/" not in name and "\\" not in name and "\x00" not in name
    assert not name.startswith((".", "-")) and ".." not in name
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", name)


def test_file_name_part_keeps_long_values_apart():
    a, b = "x" * 200 + "a", "x" * 200 + "b"
    assert file_name_part(a) != file_name_part(b)
    assert file_name_part("../../etc/passwd") == "etc-passwd"
    assert file_name_part("wrinkles-C02") == "wrinkles-C02"
