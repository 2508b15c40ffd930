"""Reports: papermill runs of the notebooks in notebooks/, turned into PDFs without code.

* ``outcomes.reports.sections`` what each report shows: tables, figures, findings (one module per report);
* ``outcomes.reports.cohort``   the processed tables and the report's patient selection;
* ``outcomes.reports.show``     how notebooks display it (findings, figures, tables);
* ``outcomes.reports.pdf``      executed notebook -> HTML without code -> A4 PDF;
* ``outcomes.reports.runner``   parameter checks, papermill runs, the grid, ``outcomes report``;
* ``outcomes.reports.runs``     each run's own folder, the index of runs, ``latest``, leftovers.

Submodules load on first use so a notebook importing ``show`` stays light.
"""
from __future__ import annotations

import importlib
from typing import Any

__all__ = ["sections", "cohort", "show", "pdf", "runner", "runs"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        module = importlib.import_module(f"outcomes.reports.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'outcomes.reports' has no attribute {name!r}")
