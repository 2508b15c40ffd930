"""Fit the richest model the selection can carry, and say plainly when it had to be simpler.

A report on a small clinic or a narrow date range may not hold enough patients for every
interaction; a model that did not converge must not be reported as if it had, and a singular
fit (random effects the data cannot support: perfectly correlated, or a variance at 0) is not
kept while a simpler structure fits properly. Reports try a short list of specifications,
richest first, and keep the first that converges without being singular.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def first_converged(attempts: Sequence[tuple[str, Callable[[], Any]]]) -> tuple[Any | None, str, list[str]]:
    """(model, its label, what went wrong before it) for the first attempt that converged and
    is not singular.

    Each attempt is ``(plain-language label, zero-argument fit function)``; a model counts
    as converged unless it has ``converged_ == False``, and as singular when ``singular_`` is
    True. If every converged attempt was singular, the first of them is returned (its
    ``singular_`` says so); (None, "", problems) if none converged.
    """
    problems: list[str] = []
    singular: tuple[Any, str, list[str]] | None = None
    for label, fit in attempts:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                model = fit()
            except (ValueError, RuntimeError, np.linalg.LinAlgError) as exc:
                problems.append(f"{label}: {exc}")
                continue
        if not getattr(model, "converged_", True):
            problems.append(f"{label}: did not converge")
        elif getattr(model, "singular_", False):
            problems.append(f"{label}: singular fit ({model.singular_reason_})")
            singular = singular or (model, label, list(problems))
        else:
            return model, label, problems
    if singular is not None:
        return singular[0], singular[1], problems
    return None, "", problems


def improvement_attempts(outcomes, metric: str, **spec) -> list[tuple[str, Callable[[], Any]]]:
    """The improvement models a report tries, richest first, each with its plain-language label.

    The random part is simplified before the curve: a singular fit (a patient's level and rate
    moving together, common because improvement is 0 at baseline) falls back to each patient's
    own rate without a separate level, which keeps the shape of the curve.
    """
    from outcomes import models

    return [
        ("age and skin type may change the shape of the curve",
         lambda: models.fit_improvement(outcomes, metric, **spec)),
        ("age and skin type may change the shape of the curve; each patient's own rate, no separate level",
         lambda: models.fit_improvement(outcomes, metric, random_intercept=False, **spec)),
        ("one curve shape, shifted by age and skin type",
         lambda: models.fit_improvement(outcomes, metric, interactions=(), **spec)),
        ("one curve shape, without a patient-specific rate",
         lambda: models.fit_improvement(outcomes, metric, interactions=(), random_slope=False, **spec)),
    ]
