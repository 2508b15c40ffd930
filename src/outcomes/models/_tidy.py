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


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment of p-values (family-wise error rate), in the given order."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p)
    m = len(p)
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(stepped, 1.0)
    return out


def format_table(table: pd.DataFrame, decimals: int = 3) -> str:
    """A tidy table as aligned text (p-values as <0.001 below that)."""
    shown = table.copy()
    for col in shown.columns:
        if col == "p_value" or col.startswith("p_"):
            shown[col] = [("<0.001" if v < 0.001 else f"{v:.3f}") if np.isfinite(v) else "" for v in shown[col]]
        elif pd.api.types.is_float_dtype(shown[col]):
            shown[col] = ["" if np.isnan(v) else f"{v:.{decimals}f}" for v in shown[col]]
    return shown.to_string()


class Fitted:
    """What every fitted model shares: ``summary`` (the tidy table), ``print_summary()``.

    A model sets ``_summary_title()`` (one line) and ``_summary_lines()`` (facts such as the
    number of rows); ``summary`` is its coefficient table.
    """

    summary: pd.DataFrame

    def _summary_title(self) -> str:
        return type(self).__name__

    def _summary_lines(self) -> list[str]:
        return []

    def _summary_extra(self) -> list[tuple[str, pd.DataFrame]]:
        return []

    def _shown_table(self) -> tuple[str, pd.DataFrame]:
        return ("coefficients", self.summary)

    def summary_text(self, decimals: int = 3) -> str:
        """The text :meth:`print_summary` prints."""
        title, table = self._shown_table()
        parts = [self._summary_title(), *(f"  {line}" for line in self._summary_lines()), "", title,
                 format_table(table, decimals)]
        for title, table in self._summary_extra():
            parts += ["", title, format_table(table, decimals)]
        return "\n".join(parts)

    def print_summary(self, decimals: int = 3) -> None:
        """Print the model, its data and its coefficient table in readable form."""
        print(self.summary_text(decimals))


class Coefficients(Fitted):
    """Joint tests and adjusted contrasts for a model with ``fixed_``, ``cov_fixed_`` and a ``design_``.

    ``wald_test("skin_type")`` asks whether *every* coefficient involving a variable (its main
    effect and its interactions) is zero: "does the outcome depend on skin type at all?".
    """

    fixed_: pd.DataFrame
    cov_fixed_: pd.DataFrame

    def _variable_name(self, variable: str) -> str:
        """The model's column for a variable an analyst names (e.g. age -> age_c)."""
        return variable

    def _model_rows(self) -> pd.DataFrame:
        """The fitted rows, categoricals coded as the model saw them."""
        return self.rows_

    def _prepare_at(self, at: dict | None) -> dict:
        """``at`` in the model's own columns."""
        return dict(at or {})

    def terms_of(self, variable: str) -> list[str]:
        """The coefficient names (rows of ``summary``) that involve ``variable``."""
        import re

        name = self._variable_name(variable)
        pattern = re.compile(rf"(?<![\w.]){re.escape(name)}(?![\w])")
        info = self.design_.info
        names = []
        for term, cols in info.term_slices.items():
            if any(pattern.search(factor.name()) for factor in term.factors):
                names += info.column_names[cols]
        names = [n for n in names if n in self.fixed_.index]
        if not names:
            raise KeyError(f"no coefficient involves {variable!r}; the coefficients are {list(self.fixed_.index)}")
        return names

    def wald_test(self, variable: str) -> pd.Series:
        """Joint Wald test that every coefficient involving ``variable`` is 0.

        Returns ``chi2``, ``df`` (the number of coefficients) and ``p_value`` (chi-square
        reference), with the ``terms`` tested.
        """
        from scipy import stats

        names = self.terms_of(variable)
        b = self.fixed_.loc[names, "estimate"].to_numpy()
        v = self.cov_fixed_.loc[names, names].to_numpy()
        stat = float(b @ np.linalg.solve(v, b))
        return pd.Series({"variable": variable, "chi2": stat, "df": len(names),
                          "p_value": float(stats.chi2.sf(stat, len(names))), "terms": names}, name="wald_test")

    # -- levels of a factor, averaged over the fitted rows ---------------------------------------
    def _level_designs(self, variable: str, at: dict | None) -> tuple[list, np.ndarray]:
        """(levels, their average design rows): the fitted rows with ``variable`` set to each
        level in turn and the columns in ``at`` set to the given values, averaged."""
        name = self._variable_name(variable)
        rows = self._model_rows()
        if name not in rows:
            raise KeyError(f"{variable!r} is not a column of the model's rows; it has {list(rows.columns)}")
        if not isinstance(rows[name].dtype, pd.CategoricalDtype):
            raise ValueError(f"{variable!r} is not categorical; compare levels of a categorical column "
                             "(or use contrast() for a numeric one)")
        base = rows.assign(**self._prepare_at(at))
        levels = list(rows[name].cat.categories)
        columns = list(self.fixed_.index)
        x = np.stack([self.design_.build(base.assign(**{name: pd.Categorical([lv] * len(base), dtype=rows[name].dtype)}))
                      .loc[:, columns].to_numpy().mean(axis=0) for lv in levels])
        return levels, x

    def _linear(self, x: np.ndarray, index: pd.Index, level: float) -> pd.DataFrame:
        est = x @ self.fixed_["estimate"].to_numpy()
        se = np.sqrt(np.einsum("ij,jk,ik->i", x, self.cov_fixed_.to_numpy(), x))
        return tidy_table(est, se, terms=list(index), level=level).rename_axis(index.name)

    def marginal_means(self, variable: str, at: dict | None = None, level: float = 0.95) -> pd.DataFrame:
        """Expected outcome at each level of ``variable`` (emmeans-style), with CI.

        The fitted rows, with ``variable`` set to the level and every column in ``at`` (e.g.
        ``{"sessions": 3}``) set to its value, are averaged: other covariates stay as observed.
        """
        levels, x = self._level_designs(variable, at)
        return self._linear(x, pd.Index([str(v) for v in levels], name=variable), level)

    def compare_levels(self, variable: str, at: dict | None = None, level: float = 0.95) -> pd.DataFrame:
        """Each level of ``variable`` against the average of the other levels, adjusted.

        Marginal means as in :meth:`marginal_means`; one row per level, labelled
        ``"<level> vs the rest"``. ``p_value`` is Holm-adjusted over the levels (``p_unadjusted``
        kept); ``ci_low``/``ci_high`` are Bonferroni intervals (level ``1 - (1 - level)/k``
        each, so all k hold together with at least ``level`` confidence).
        """
        levels, x = self._level_designs(variable, at)
        k = len(levels)
        if k < 2:
            raise ValueError(f"{variable!r} has a single level in the fitted rows; nothing to compare")
        rest = (x.sum(axis=0)[None, :] - x) / (k - 1)
        index = pd.Index([f"{v} vs the rest" for v in levels], name="contrast")
        table = self._linear(x - rest, index, 1 - (1 - level) / k)
        table["p_unadjusted"] = table["p_value"]
        table["p_value"] = holm(table["p_value"].to_numpy())
        return table

    # -- terms by what they mean ----------------------------------------------------------------
    _labels: dict[str, str] = {}  # a column's readable name and unit step, e.g. age_c -> "age +10 years"

    def effects(self, times: Sequence[float] | None = None, level: float = 0.95) -> pd.DataFrame:
        """The fixed part by what it means, as a tidy table (for curve models with a time).

        A spline coefficient (``bs(sessions, df=3)[0]``) or an interaction
        (``...:skin_type[T.II]``) means little on its own; the differences it makes do. Rows:

        - ``sessions = k vs t0``: the change in the expected outcome from the first observed
          time ``t0`` to ``k``, for the reference group (first level of each categorical
          covariate, 0 for numeric ones);
        - ``skin_type II vs I [at sessions = k]``: the difference between a level and the
          reference level (at each ``k`` when the covariate changes the time effect);
        - ``age_c +1 [at sessions = k]``: one unit more of a numeric covariate.

        ``times``: the values of k (default: the observed times, at most 12 of them).
        """
        rows = self._model_rows()
        time = self._time_column()
        observed = np.sort(rows[time].unique())
        if times is None:
            times = observed if len(observed) <= 12 else np.unique(np.quantile(observed, np.linspace(0, 1, 12)))
        times = [t for t in np.atleast_1d(times)]
        t0 = observed[0]
        base = {}
        for col in self.covariates:
            s = rows[col]
            base[col] = pd.Categorical([s.cat.categories[0]], dtype=s.dtype) if isinstance(s.dtype, pd.CategoricalDtype) \
                else [0.0]
        columns = list(self.fixed_.index)

        def x(at_time, **change):
            frame = pd.DataFrame({**base, time: [at_time]})
            for col, value in change.items():
                s = rows[col]
                frame[col] = pd.Categorical([value], dtype=s.dtype) if isinstance(s.dtype, pd.CategoricalDtype) \
                    else [value]
            return self.design_.build(frame).loc[:, columns].to_numpy()[0]

        def fmt(t):
            return f"{t:g}" if isinstance(t, (int, float, np.integer, np.floating)) else str(t)

        labels, vectors = [], []
        for t in times:
            if t != t0:
                labels.append(f"{time} = {fmt(t)} vs {fmt(t0)}")
                vectors.append(x(t) - x(t0))
        for col in self.covariates:
            s = rows[col]
            at_times = times if col in self.interactions else [t0]
            suffix = (lambda t: f" at {time} = {fmt(t)}") if col in self.interactions else (lambda t: "")
            name = self._labels.get(col, f"{col} +1")
            if isinstance(s.dtype, pd.CategoricalDtype):
                ref = s.cat.categories[0]
                for level_ in s.cat.categories[1:]:
                    for t in at_times:
                        labels.append(f"{col} {level_} vs {ref}{suffix(t)}")
                        vectors.append(x(t, **{col: level_}) - x(t, **{col: ref}))
            else:
                for t in at_times:
                    labels.append(f"{name}{suffix(t)}")
                    vectors.append(x(t, **{col: 1.0}) - x(t, **{col: 0.0}))
        return self._linear(np.array(vectors), pd.Index(labels, name="effect"), level)

    def _time_column(self) -> str:
        if not hasattr(self, "time"):
            raise TypeError(f"{type(self).__name__} has no time effect; its coefficients (summary) are its effects")
        return self.time

    def _needs_effects(self) -> bool:
        """Do the raw coefficients need translating (a spline, or a covariate that changes the time effect)?"""
        return getattr(self, "time_transform", "") == "spline" or bool(getattr(self, "interactions", ()))

    def _shown_table(self) -> tuple[str, pd.DataFrame]:
        if self._needs_effects():
            return ("effects by meaning (raw coefficients: .summary)", self.effects())
        return ("coefficients", self.summary)

    def _forest(self, ax, **kwargs):
        """Forest plot of the effects by meaning (spline / interactions) or of the coefficients."""
        from .. import plots

        table = self.effects() if self._needs_effects() else self.fixed_.drop(index="Intercept", errors="ignore")
        return plots.coefficients(table, ax=ax, **kwargs)
