"""`make lab`'s working copies: made once from the templates, never overwritten, opened unmodified."""
from __future__ import annotations

import sys

import nbformat

from outcomes import config, lab


def test_working_copies_made_once_never_overwritten(tmp_path):
    templates, work = tmp_path / "notebooks", tmp_path / "notebooks" / "work"
    templates.mkdir()
    for name in ("20-sessions-response.ipynb", "30-patient-progress.ipynb"):
        (templates / name).write_bytes((config.NOTEBOOKS_DIR / name).read_bytes())

    made = lab.working_copies(templates, work)
    assert [p.name for p in made] == ["20-sessions-response.ipynb", "30-patient-progress.ipynb"]
    copy = nbformat.read(made[0], as_version=4)
    template = nbformat.read(templates / made[0].name, as_version=4)
    # the kernel's own version (ipykernel writes sys.version.split()[0]), so JupyterLab sees no change
    assert copy.metadata.language_info == {**template.metadata.language_info, "version": sys.version.split()[0]}
    assert copy.cells == template.cells

    made[0].write_text(made[0].read_text().replace('"hydration"', '"wrinkles"'))  # the analyst's edit
    edited = made[0].read_bytes()
    (templates / "10-data-quality.ipynb").write_bytes((config.NOTEBOOKS_DIR / "10-data-quality.ipynb").read_bytes())
    assert [p.name for p in lab.working_copies(templates, work)] == ["10-data-quality.ipynb"]
    assert made[0].read_bytes() == edited
    assert "version" not in nbformat.read(templates / made[0].name, as_version=4).metadata.language_info
