"""Fit the richest model the selection can carry, and say plainly when it had to be simpler.

A report on a small clinic or a narrow date range may not hold enough patients for every
interaction; a model that did not converge must not be reported as if it had. Reports try
a short list of specifications, richest first, and keep the first that converges.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def first_converged(attempts: Sequence[tuple[str, Callable[[], Any]]]) -> tuple[Any | None, str, list[str]]:
    """(model, its label, what went wrong before it) for the first attempt that converged.

    Each attempt is ``(plain-language label, zero-argument fit function)``; a model counts
    as converged unless it has ``converged == False``. (None, "", problems) if none did.
    """
    problems: list[str] = []
    for label, fit in attempts:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                model = fit()
            except (ValueError, RuntimeError, np.linalg.LinAlgError) as exc:
                problems.append(f"{label}: {exc}")
                continue
        if getattr(model, "converged", True):
            return model, label, problems
        problems.append(f"{label}: did not converge")
    return None, "", problems
