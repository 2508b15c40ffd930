"""Coefficient tables in one tidy shape, so every model reads the same in a notebook.

Columns: estimate, std_error, ci_low, ci_high, p_value (Wald, normal reference), indexed by
term as the model formula names it.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

TIDY_COLUMNS = ("estimate", "std_error", "ci_low", "ci_high", "p_value")


def tidy_table(
    estimate: Sequence[float] | pd.Series,
    std_error: Sequence[float] | pd.Series,
    terms: Sequence[str] | None = None,
    level: float = 0.95,
) -> pd.DataFrame:
    """Wald table: estimate ± z·SE and the two-sided p-value of estimate = 0."""
    from scipy import special  # here, not at import: scipy takes a tenth of a second to load

    est = np.asarray(estimate, dtype=float)
    se = np.asarray(std_error, dtype=float)
    if terms is None:
        terms = list(estimate.index) if isinstance(estimate, pd.Series) else [str(i) for i in range(len(est))]
    z = special.ndtri(0.5 + level / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = 2 * special.ndtr(-np.abs(est / se))
    table = pd.DataFrame(
        {"estimate": est, "std_error": se, "ci_low": est - z * se, "ci_high": est + z * se, "p_value": p},
        index=pd.Index(list(terms), name="term"),
    )
    return table


def interval(estimate: np.ndarray, std_error: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Normal-theory interval for arrays of estimates."""
    from scipy import special

    z = special.ndtri(0.5 + level / 2)
    return estimate - z * std_error, estimate + z * std_error
