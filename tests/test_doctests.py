"""The Examples sections of the public API run (issue 12): doctest over outcomes.models,
outcomes.plots, clean / load_processed / simulate and the package docstring, on the package's
own demo data (plots, models) or a cohort simulated into a temporary folder (clean, loader).

Run here rather than by ``--doctest-modules`` over the whole package, so the suite runs only
the modules whose examples are kept fast (a 120-patient demo cohort, made once per process).
"""
from __future__ import annotations

import doctest
import importlib

import matplotlib
import pytest
from threadpoolctl import threadpool_limits

matplotlib.use("Agg")

MODULES = ["outcomes", "outcomes.simulation", "outcomes.models.improvement", "outcomes.models.mixed",
           "outcomes.models.gee", "outcomes.models.ordinal", "outcomes.models.response", "outcomes.models.predict",
           "outcomes.plots", "outcomes.cleaning", "outcomes.loader"]


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = [t for t in finder.find(module, name) if t.examples]
    assert tests, f"{name} has no examples"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    # one OpenMP thread: on a shared 2-core machine the boosting examples (outcomes.plots,
    # outcomes.models.predict) are many times slower oversubscribed; the results are the same
    with threadpool_limits(limits=1, user_api="openmp"):
        for test in tests:
            runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (output above)"


def test_every_public_model_has_an_example():
    from outcomes import models

    missing = [n for n in models.__all__ if n != "SingularFitWarning" and ">>>" not in (getattr(models, n).__doc__ or "")]
    assert not missing, f"no runnable example in: {missing}"


def test_every_public_plot_and_entry_point_has_an_example():
    import outcomes
    from outcomes import plots

    public = {f"plots.{n}": getattr(plots, n) for n in plots.__all__}
    public |= {f"outcomes.{n}": getattr(outcomes, n) for n in outcomes.__all__ if callable(getattr(outcomes, n))}
    assert {"outcomes.clean", "outcomes.CleanResult", "outcomes.load_processed", "outcomes.simulate"} <= set(public)
    missing = [n for n, obj in public.items() if ">>>" not in (obj.__doc__ or "")]
    assert not missing, f"no runnable example in: {missing}"
