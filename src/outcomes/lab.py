"""The analyst's JupyterLab works on copies, because the committed notebooks are report templates.

`make lab` runs ``python -m outcomes.lab`` before it starts JupyterLab in ``notebooks/work/``
(git-ignored): each notebook of ``notebooks/`` is copied there once and never overwritten, so
an analyst's edits, outputs and parameters stay in the copy and a scheduled run only ever sees
the committed notebook and ``reports.yml``. A copy gets this Python's version in its
``language_info`` (the one field the templates leave out, as it differs between machines), so
JupyterLab opens it unmodified.
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat

from outcomes import config

WORK_DIR = config.NOTEBOOKS_DIR / "work"


def working_copies(templates: Path = config.NOTEBOOKS_DIR, work: Path = WORK_DIR) -> list[Path]:
    """Copy each template notebook into `work` unless a copy is there; returns the new copies."""
    work.mkdir(parents=True, exist_ok=True)
    made = []
    for template in sorted(templates.glob("*.ipynb")):
        copy = work / template.name
        if copy.exists():
            if template.stat().st_mtime > copy.stat().st_mtime:
                print(f"{copy}: the template {template} changed since this copy was made; "
                      "delete (or rename) the copy to get the new one")
            continue
        nb = nbformat.read(template, as_version=4)
        # the kernel (this environment's Python) writes its version here when a notebook opens
        nb.metadata.setdefault("language_info", {})["version"] = sys.version.split()[0]
        with open(copy, "x", encoding="utf-8") as f:  # "x": never replaces a file
            nbformat.write(nb, f)
        made.append(copy)
        print(f"{copy}: your working copy of {template}")
    return made


if __name__ == "__main__":
    working_copies(*(Path(a) for a in sys.argv[1:3]))
