"""Design matrices built once and rebuilt identically for new data.

Every model turns "outcome ~ f(time) + covariates" into numbers the same way, so term names
agree between `.fixed`, `.predict` and the figures. Categorical columns become treatment
contrasts with their first (present) level as reference; the shape of time is one of
`identity`, `log1p` or `spline` (a cubic B-spline whose knots are fixed by the fitted data).
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import patsy

TIME_TRANSFORMS = ("identity", "log1p", "spline")
SPLINE_DF = 3
_ENV = patsy.EvalEnvironment([{"np": np}])


def time_term(time: str, transform: str, spline_df: int = SPLINE_DF) -> str:
    """The formula term for the chosen shape of the time (session-count) effect."""
    if transform == "identity":
        return time
    if transform == "log1p":
        return f"np.log1p({time})"
    if transform == "spline":
        return f"bs({time}, df={spline_df})"
    raise ValueError(f"time_transform must be one of {TIME_TRANSFORMS}, got {transform!r}")


def curve_rhs(time: str, transform: str, covariates: Sequence[str] = (), interactions: Sequence[str] = (),
              spline_df: int = SPLINE_DF) -> str:
    """``f(time) + covariates + f(time):interaction ...``: the right-hand side every curve model uses.

    An interaction lets a covariate change the *size* of the time effect, so it must also be a
    covariate (its main effect in the model)."""
    unknown = set(interactions) - set(covariates)
    if unknown:
        raise ValueError(f"interactions {sorted(unknown)} must also be covariates")
    t = time_term(time, transform, spline_df)
    return " + ".join([t, *covariates, *(f"{t}:{c}" for c in interactions)])


def panel_rows(data: pd.DataFrame, outcome: str, time: str, group: str, covariates: Sequence[str]) -> pd.DataFrame:
    """The complete rows of a repeated-measures model, categoricals coded, sorted by group and time
    (statsmodels wants each group's rows together)."""
    cols = [outcome, time, group, *covariates]
    require_columns(data, cols)
    rows = as_categories(complete_rows(data, cols), covariates)
    return rows.sort_values([group, time], kind="stable")


def is_categorical(series: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series))


def as_categories(data: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Non-numeric columns become categoricals holding only the levels present.

    Ordered categoricals (skin type I < ... < VI) keep their order, others are sorted; unused
    levels are dropped so no all-zero column makes the design singular.
    """
    out = data.copy()
    for col in columns:
        s = out[col]
        if isinstance(s.dtype, pd.CategoricalDtype):
            out[col] = s.cat.remove_unused_categories()
        elif is_categorical(s):
            out[col] = pd.Categorical(s.astype(object), categories=sorted(s.dropna().unique()))
    return out


@dataclass
class Design:
    """A right-hand side, remembered so predictions use the same coding and spline knots."""

    rhs: str
    categorical_levels: dict[str, list] = field(default_factory=dict)
    info: patsy.DesignInfo | None = None

    def fit(self, data: pd.DataFrame) -> pd.DataFrame:
        matrix = patsy.dmatrix(self.rhs, data, eval_env=_ENV, return_type="dataframe", NA_action="raise")
        self.info = matrix.design_info
        used = set(re.findall(r"[A-Za-z_]\w*", self.rhs))  # only the formula's columns (not e.g. ids)
        for col, values in data.items():
            if col in used and isinstance(values.dtype, pd.CategoricalDtype):
                self.categorical_levels[col] = list(values.cat.categories)
        return matrix

    def build(self, new: pd.DataFrame) -> pd.DataFrame:
        """The design matrix for new rows (same columns, same coding) as the fitted data."""
        if self.info is None:
            raise RuntimeError("fit the design before building new rows")
        new = new.copy()
        for col, levels in self.categorical_levels.items():
            if col in new:
                unknown = set(pd.Series(new[col]).dropna().astype(object)) - set(levels)
                if unknown:
                    raise ValueError(
                        f"column {col!r} has levels {sorted(map(str, unknown))} the model was not fitted on "
                        f"(fitted levels: {levels})"
                    )
                new[col] = pd.Categorical(new[col].astype(object), categories=levels,
                                          ordered=isinstance(new[col].dtype, pd.CategoricalDtype) and new[col].dtype.ordered)
        (matrix,) = patsy.build_design_matrices([self.info], new, return_type="dataframe", NA_action="raise")
        return matrix

    @property
    def columns(self) -> list[str]:
        return list(self.info.column_names) if self.info is not None else []


def require_columns(data: pd.DataFrame, columns: Sequence[str], what: str = "data") -> None:
    missing = [c for c in columns if c not in data.columns]
    if missing:
        raise KeyError(f"{what} lacks column(s) {missing}; it has {list(data.columns)}")


def complete_rows(data: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Rows with every model column present (models cannot use a row with a hole)."""
    return data.loc[data[list(columns)].notna().all(axis=1)]
