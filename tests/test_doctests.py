"""The Examples sections of the public model API run (issue 12): doctest over outcomes.models,
outcomes.simulation.demo_tables and the package docstring, on the package's own demo data.

Run here rather than by ``--doctest-modules`` over the whole package, so the suite runs only
the modules whose examples are kept fast (a 120-patient demo cohort, made once per process).
"""
from __future__ import annotations

import doctest
import importlib

import matplotlib
import pytest

matplotlib.use("Agg")

MODULES = ["outcomes", "outcomes.simulation", "outcomes.models.improvement", "outcomes.models.mixed",
           "outcomes.models.gee", "outcomes.models.ordinal", "outcomes.models.response", "outcomes.models.predict"]


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = [t for t in finder.find(module, name) if t.examples]
    assert tests, f"{name} has no examples"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (output above)"


def test_every_public_model_has_an_example():
    from outcomes import models

    missing = [n for n in models.__all__ if n != "SingularFitWarning" and ">>>" not in (getattr(models, n).__doc__ or "")]
    assert not missing, f"no runnable example in: {missing}"
