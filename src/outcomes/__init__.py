"""Honest statistics on mesotherapy outcomes.

The public face for analysts::

    import outcomes
    result = outcomes.clean("data/raw", "data/processed")   # validate, normalise, link
    tables = outcomes.load_processed("data/processed")     # dict of typed DataFrames
    model = outcomes.models.fit_improvement(tables, "hydration")  # the reports' rows
    model.print_summary()

Examples
--------
The same on a small simulated cohort (in memory):

>>> import outcomes
>>> tables = outcomes.simulation.demo_tables(n_patients=120, seed=3)
>>> model = outcomes.models.fit_improvement(tables, "hydration", interactions=())
>>> model.converged_
True

Heavy parts (models, plots, reports) load on first use, so `import outcomes` stays quick.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    # name: (module, attribute or None for the module itself)
    "clean": ("outcomes.cleaning", "clean"),
    "CleanResult": ("outcomes.cleaning", "CleanResult"),
    "load_processed": ("outcomes.loader", "load_processed"),
    "simulate": ("outcomes.simulation", "simulate"),
    "simulation": ("outcomes.simulation", None),
    "contract": ("outcomes.contract", None),
    "config": ("outcomes.config", None),
    "models": ("outcomes.models", None),
    "plots": ("outcomes.plots", None),
    "privacy": ("outcomes.privacy", None),
    "reports": ("outcomes.reports", None),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'outcomes' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
