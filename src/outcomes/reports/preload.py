"""What every report worker imports, loaded once per run by the runner's fork server.

Each report runs in a fresh worker process. Imported there, these libraries cost about 1.45 s
of every report (benchmarks/bench_reports.py, 2-core machine): nbformat 0.74 s (jsonschema
compiles an optional RFC 3987 grammar when it is imported: 0.68 s), nbconvert 0.35 s and
WeasyPrint 0.38 s, the last about 30% of a sessions-response report's PDF step. The fork
server imports them once and forks each worker from there, so a worker starts with them loaded.

Importing this module never fails: a library that cannot load here (say, WeasyPrint without
Pango) is simply imported again by the worker that needs it, and its error is reported there,
by the report it belongs to. It must not import numpy, pandas or anything that starts threads:
the fork server forks from this state.
"""
from __future__ import annotations

import importlib
import warnings

MODULES = ("nbformat", "nbconvert", "weasyprint")
LOADED: list[str] = []

for _name in MODULES:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # WeasyPrint nags about an optional system library
            importlib.import_module(_name)
    except Exception:  # noqa: BLE001 - the worker imports it again and reports the error
        continue
    LOADED.append(_name)
