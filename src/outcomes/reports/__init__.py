"""Reports: papermill runs of the notebooks in notebooks/, turned into PDFs without code.

* ``outcomes.reports.tables``   the report tables (privacy rules applied), pure functions;
* ``outcomes.reports.findings`` the reports' sentences, each generated from the numbers it states;
* ``outcomes.reports.figures``  figures ``outcomes.plots`` does not draw (patient panels, GAIS);
* ``outcomes.reports.patient``  one patient against comparable patients (the patient report's numbers);
* ``outcomes.reports.fitting``  the richest model a selection carries, and notes on why not richer;
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

__all__ = ["tables", "findings", "figures", "patient", "fitting", "cohort", "show", "pdf", "runner", "runs"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        module = importlib.import_module(f"outcomes.reports.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'outcomes.reports' has no attribute {name!r}")
