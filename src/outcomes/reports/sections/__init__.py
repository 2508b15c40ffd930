"""The content of the report notebooks, as functions the notebooks call and tests can check.

A report notebook is narrative (markdown cells) plus one call per section, e.g.
``report.cohort()``. Each call returns a :class:`Section`: the tables (privacy rules already
applied), figures, notes and plain-language findings of that part of the report, in the order
they are shown. In a notebook the section displays itself through ``outcomes.reports.show``;
in a test its tables and findings are plain Python objects, no kernel needed.

* ``data_quality``       10-data-quality: what came in, what was rejected, photo flags;
* ``sessions_response``  20-sessions-response: improvement vs sessions for one metric;
* ``patient_progress``   30-patient-progress: one patient against the cohort's expected course.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pandas as pd

__all__ = ["Section", "Report", "section"]


class Section:
    """What one part of a report shows, in order, and the findings it adds to the report."""

    def __init__(self) -> None:
        self.items: list[tuple[str, tuple, dict]] = []
        self.findings: list[str] = []

    # -- building ------------------------------------------------------------------------
    def add_table(self, data: pd.DataFrame, caption: str, **options: Any) -> Section:
        """A table for `show.table` (options: labels, decimals, index, max_rows)."""
        self.items.append(("table", (data, caption), options))
        return self

    def add_figure(self, fig, caption: str) -> Section:
        self.items.append(("figure", (fig, caption), {}))
        return self

    def add_note(self, text: str, kind: str = "note") -> Section:
        self.items.append(("note", (text, kind), {}))
        return self

    def add_text(self, markdown: str) -> Section:
        """A paragraph (or a heading) whose words depend on the data."""
        self.items.append(("text", (markdown,), {}))
        return self

    def add_findings_box(self, findings: list[str]) -> Section:
        self.items.append(("findings", (findings,), {}))
        return self

    def add_finding(self, text: str) -> Section:
        """A plain-language finding for the report's key-findings box (shown first in the PDF)."""
        self.findings.append(text)
        return self

    # -- reading (tests, consoles) ---------------------------------------------------------
    def _of(self, kind: str) -> list[tuple]:
        return [args for k, args, _ in self.items if k == kind]

    @property
    def tables(self) -> list[tuple[str, pd.DataFrame]]:
        """(caption, table) for every table, in order."""
        return [(caption, data) for data, caption in self._of("table")]

    def table(self, caption_start: str) -> pd.DataFrame:
        """The table whose caption starts with `caption_start`."""
        for caption, data in self.tables:
            if caption.startswith(caption_start):
                return data
        raise KeyError(f"no table captioned {caption_start!r}; captions: {[c for c, _ in self.tables]}")

    @property
    def figures(self) -> list[tuple[str, Any]]:
        """(caption, matplotlib figure) for every figure, in order."""
        return [(caption, fig) for fig, caption in self._of("figure")]

    @property
    def notes(self) -> list[str]:
        return [text for text, _ in self._of("note")]

    @property
    def texts(self) -> list[str]:
        return [text for (text,) in self._of("text")]

    def close(self) -> None:
        """Close this section's figures without showing them (tests, batch use)."""
        import matplotlib.pyplot as plt

        for _, fig in self.figures:
            plt.close(fig)

    # -- showing ---------------------------------------------------------------------------
    def show(self) -> list:
        """Display every item through outcomes.reports.show, in order (figures are closed)."""
        from outcomes.reports import show

        shown = []
        for kind, args, options in self.items:
            shown.append(getattr(show, kind)(*args, **options))
        return shown

    def _ipython_display_(self) -> None:
        self.show()

    def __repr__(self) -> str:
        parts = [f"{kind}: {args[1] if kind in ('table', 'figure') else args[0]}" for kind, args, _ in self.items]
        return "Section(" + "; ".join(str(p)[:80] for p in parts) + ")"


def section(method: Callable[..., None]) -> Callable[..., Section]:
    """Make a report method ``(self, sec, ...)`` return its filled Section and record its
    findings under the method's name (re-running a cell replaces them, never duplicates)."""

    @functools.wraps(method)
    def run(self: Report, *args: Any, **kwargs: Any) -> Section:
        sec = Section()
        method(self, sec, *args, **kwargs)
        self.findings_[method.__name__] = sec.findings
        return sec

    return run


class Report:
    """Base of the report objects: the findings each section added, in the order shown."""

    def __init__(self) -> None:
        self.findings_: dict[str, list[str]] = {}

    @classmethod
    def load(cls, processed_dir: str = "", **parameters: Any) -> Report:
        """The report on a processed folder ("" means data/processed), with its parameters."""
        from outcomes.reports import cohort

        return cls(cohort.load(processed_dir), **parameters)

    @property
    def findings(self) -> list[str]:
        return [f for found in self.findings_.values() for f in found]

    def key_findings(self) -> Section:
        """The findings box (tag its cell `findings`: the PDF moves it to the front)."""
        return Section().add_findings_box(self.findings)
