"""Reproducible installs: `make setup` installs requirements.lock, the lock stays within
pyproject's ranges, and code that leans on a library's internals has an upper bound for it."""
from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
# libraries whose internals the code relies on without a private import (the scan below finds those)
INTERNALS = {"statsmodels": "models/_grouped_mixedlm.py subclasses MixedLM and reimplements its likelihood algebra"}
IMPORT_NAMES = {"yaml": "pyyaml", "sklearn": "scikit-learn", "IPython": "ipython", "PIL": "pillow",
                "pillow_heif": "pillow-heif", "colour": "colour-science", "cv2": "opencv-python-headless",
                "skimage": "scikit-image"}


def _pyproject() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    return {canonicalize_name(r.name): r for r in map(Requirement, reqs)}


def _lock() -> dict[str, list[Requirement]]:
    pins: dict[str, list[Requirement]] = {}
    for line in LOCK.read_text().splitlines():
        line = line.split(" #")[0].strip()
        if line and not line.startswith(("#", "-")):
            req = Requirement(line)
            pins.setdefault(canonicalize_name(req.name), []).append(req)
    return pins


def test_lock_pins_every_dependency_within_its_range():
    pins = _lock()
    assert pins, "requirements.lock is empty"
    for name, wanted in _pyproject().items():
        assert name in pins, f"{name} is in pyproject.toml but not in requirements.lock: run `make lock`"
        for pin in pins[name]:
            (spec,) = pin.specifier  # exactly one ==version per line
            assert spec.operator == "==", f"{pin} is not an exact pin"
            assert wanted.specifier.contains(spec.version, prereleases=True), (
                f"requirements.lock pins {pin}, outside pyproject.toml's {wanted}: run `make lock`")
    for name, lines in pins.items():  # every line is a plain exact pin, every package pinned once per platform
        assert all(len(p.specifier) == 1 and next(iter(p.specifier)).operator == "==" for p in lines), name
        assert len(lines) == 1 or all(p.marker is not None for p in lines), f"{name} pinned twice without markers"


def test_lock_applies_to_this_python():
    # the lock is universal (uv --universal): every dependency has a pin whose marker holds here
    pins = _lock()
    for name in _pyproject():
        assert any(p.marker is None or p.marker.evaluate() for p in pins[name]), f"no pin of {name} for this Python"


def test_setup_installs_the_lock_then_the_package_without_its_dependencies():
    plan = subprocess.run(["make", "-n", "-B", "setup"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    installs = [line for line in plan.splitlines() if "pip install" in line and "--upgrade pip" not in line]
    assert len(installs) == 2, plan
    assert installs[0].endswith("-r requirements.lock") and installs[1].endswith("--no-deps -e ."), plan
    database = subprocess.run(["make", "-n", "-p", "setup"], cwd=ROOT, capture_output=True, text=True).stdout
    stamp = re.search(r"^\.venv/\.installed: (.*)$", database, re.M)
    assert stamp and {"pyproject.toml", "requirements.lock"} <= set(stamp.group(1).split()), "a new lock must reinstall"


def _private_imports(src: Path = ROOT / "src") -> dict[str, list[str]]:
    """Third-party distributions the code under `src` imports a private module or name from -> where."""
    found: dict[str, list[str]] = {}
    for path in sorted(src.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
                continue
            top = node.module.split(".")[0]
            if top == "outcomes" or top in sys.stdlib_module_names:
                continue
            private = [p for p in node.module.split(".") if p.startswith("_") and not p.startswith("__")]
            private += [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
            if private:
                where = f"{path.relative_to(src.parent)}:{node.lineno} {'.'.join([node.module, *private[-1:]])}"
                found.setdefault(canonicalize_name(IMPORT_NAMES.get(top, top)), []).append(where)
    return found


def test_the_scan_finds_private_imports(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "m.py").write_text("from numpy._core.multiarray import _set_madvise_hugepage\n"
                                           "from pandas import DataFrame\nfrom . import _local\n")
    assert list(_private_imports(tmp_path / "src")) == ["numpy"]


def test_code_relying_on_a_librarys_internals_has_an_upper_bound_for_it():
    deps = _pyproject()
    relied = {name: [why] for name, why in INTERNALS.items()}
    for name, where in _private_imports().items():
        relied.setdefault(name, []).extend(where)
    for name, why in relied.items():
        assert name in deps, f"{name} is used ({why}) but not a dependency"
        assert any(s.operator in ("<", "<=", "~=", "==") for s in deps[name].specifier), (
            f"{name} needs an upper bound in pyproject.toml (and environment.yml): {why}")


def test_every_library_the_package_imports_is_a_declared_dependency():
    # a package that arrives only as another's dependency may go away in that one's next version
    deps = _pyproject()
    imported: dict[str, str] = {}
    for path in sorted((ROOT / "src").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and not node.level and node.module else [])
            for name in names:
                top = name.split(".")[0]
                if top != "outcomes" and top not in sys.stdlib_module_names:
                    imported.setdefault(canonicalize_name(IMPORT_NAMES.get(top, top)), str(path.relative_to(ROOT)))
    assert "statsmodels" in imported  # the scan works
    undeclared = {name: where for name, where in imported.items() if name not in deps}
    assert not undeclared, f"imported but not in pyproject.toml's dependencies: {undeclared}"


def test_no_private_papermill_call():
    # papermill's public inspect_notebook reads the parameters; its private _infer_parameters is not used
    assert "papermill" not in _private_imports()


def test_parameters_read_from_a_notebook_whose_path_has_braces(tmp_path):
    # papermill treats a notebook path as a format template ("{x}" is a parameter): ours is read from a copy
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    from outcomes.reports import params

    folder = tmp_path / "clinic {name}"
    folder.mkdir()
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "mesotherapy-outcomes", "display_name": "Python", "language": "python"}
    nb.cells = [new_code_cell("n: int = 3  # how many\nlabel = 'x'", metadata={"tags": ["parameters"]})]
    nbformat.write(nb, folder / "nb {0}.ipynb")
    found = params.declared_parameters(folder / "nb {0}.ipynb")
    assert found["n"]["type"] == "int" and found["label"]["type"] == "str"
    with pytest.raises(params.ParameterError, match="no cell tagged"):
        nb.cells[0].metadata["tags"] = []
        nbformat.write(nb, folder / "none.ipynb")
        params.declared_parameters(folder / "none.ipynb")


def test_ci_draws_the_same_property_examples_on_every_machine():
    probe = "import conftest; from hypothesis import settings; print(settings.default.derandomize, settings.default.database)"
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    ci = subprocess.run([sys.executable, "-c", probe], cwd=ROOT / "tests", env={**env, "CI": "true"},
                        capture_output=True, text=True, check=True).stdout.split()
    local = subprocess.run([sys.executable, "-c", probe], cwd=ROOT / "tests", env=env,
                           capture_output=True, text=True, check=True).stdout.split()
    assert ci == ["True", "None"] and local[0] == "False"
