"""Figures in one house style: seaborn, readable in grey print.

Every function takes ``ax=None`` (a new figure when None) and returns the Axes. Groups are
told apart by marker and line style as well as by colour, so a black-and-white printout of a
PDF report still reads. Confidence intervals are drawn as bands or error bars, never omitted.
"""
from __future__ import annotations

import itertools

import matplotlib.pyplot as _plt
import numpy as _np
import pandas as _pd
import seaborn as _sns

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", ":", "-.", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)))
PALETTE = "colorblind"
FIGSIZE = (6.0, 4.0)

__all__ = ["coefficients", "expected_curves", "fold_scores", "naive_vs_model", "partial_dependence",
           "probability_curves", "style", "survival_curves"]


def style() -> None:
    """Apply the house style (white grid, paper context, colour-blind palette).

    Returns
    -------
    None
        Changes matplotlib's rcParams for every figure made after the call.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> import seaborn as sns
    >>> from outcomes import plots
    >>> plots.style()
    >>> plt.rcParams["axes.grid"], sns.color_palette()[0] == sns.color_palette(plots.PALETTE)[0]
    (True, True)
    """
    _sns.set_theme(context="paper", style="whitegrid", palette=PALETTE, font_scale=1.1)


def _axes(ax, figsize: tuple[float, float] = FIGSIZE):
    style()
    if ax is None:
        _, ax = _plt.subplots(figsize=figsize, layout="constrained")
    return ax


def _groups(table: _pd.DataFrame, hue: str | None):
    if hue is None:
        yield None, table, (MARKERS[0], LINESTYLES[0], _sns.color_palette(PALETTE)[0])
        return
    levels = table[hue].cat.categories if isinstance(table[hue].dtype, _pd.CategoricalDtype) else sorted(table[hue].unique())
    styles = zip(itertools.cycle(MARKERS), itertools.cycle(LINESTYLES), itertools.cycle(_sns.color_palette(PALETTE)))
    for level, st in zip(levels, styles):
        part = table.loc[table[hue] == level]
        if not part.empty:
            yield level, part, st


def expected_curves(table: _pd.DataFrame, x: str = "sessions", y: str = "estimate", hue: str | None = "age_band",
                    ax=None, title: str | None = None, ylabel: str = "expected improvement (%)"):
    """Expected improvement against session count with 95% CI bands, one line per group.

    Parameters
    ----------
    table : DataFrame
        One row per (group, session count): columns `x`, `y`, `hue` (when given) and optionally
        ``ci_low``/``ci_high`` (drawn as a band), e.g. ``ImprovementModel.expected()``.
    x, y : str
        Columns for the session count and the expected improvement.
    hue : str or None
        Column whose levels get one line each (marker, line style and colour); None: one line.
    ax : matplotlib Axes, optional
        Where to draw; a new figure when None.
    title, ylabel : str, optional
        Axes title and y-axis label.

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> from outcomes import models, plots, simulation
    >>> model = models.fit_improvement(simulation.demo_tables(n_patients=120, seed=3), "hydration", interactions=())
    >>> table = model.expected(skin_types=["III"])
    >>> ax = plots.expected_curves(table)
    >>> ax.get_xlabel(), len(ax.get_lines()) == table["age_band"].nunique()
    ('completed sessions', True)
    >>> plt.close("all")
    """
    ax = _axes(ax)
    for level, part, (marker, ls, color) in _groups(table, hue):
        part = part.sort_values(x)
        ax.plot(part[x], part[y], marker=marker, linestyle=ls, color=color, label=None if level is None else str(level))
        if {"ci_low", "ci_high"} <= set(part.columns):
            ax.fill_between(part[x], part["ci_low"], part["ci_high"], color=color, alpha=0.15, linewidth=0)
    ax.set_xlabel("completed sessions")
    ax.set_ylabel(ylabel)
    if hue is not None:
        ax.legend(title=hue.replace("_", " "), frameon=False)
    if title:
        ax.set_title(title)
    ax.xaxis.get_major_locator().set_params(integer=True)
    return ax


def probability_curves(table: _pd.DataFrame, x: str = "sessions", hue: str | None = None, ax=None,
                       ylabel: str = "probability", title: str | None = None):
    """Probabilities (0-1) against x with CI error bars, one marker/line style per group.

    Parameters
    ----------
    table : DataFrame
        Columns `x`, ``estimate``, ``ci_low``, ``ci_high`` (probabilities) and `hue` when given,
        e.g. ``OrdinalModel.responder_probability(new)``.
    x : str
        Column for the x axis.
    hue : str or None
        Column whose levels get one line each; None: one line.
    ax : matplotlib Axes, optional
        Where to draw; a new figure when None.
    ylabel, title : str, optional
        Y-axis label and Axes title.

    Returns
    -------
    matplotlib Axes
        The y axis spans 0 to 1.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> import pandas as pd
    >>> from outcomes import models, plots, simulation
    >>> tables = simulation.demo_tables(n_patients=120, seed=3)
    >>> model = models.fit_ordinal(models.gais_frame(tables["assessments"], tables["patients"]))
    >>> new = pd.DataFrame({"sessions": [1, 2, 3, 4], "age_c": 0.0, "skin_type": "III"})
    >>> ax = plots.probability_curves(model.responder_probability(new), ylabel="P(improved or better)")
    >>> ax.get_lines()[0].get_xdata().tolist(), ax.get_ylim() == (0, 1), ax.get_ylabel()
    ([1, 2, 3, 4], True, 'P(improved or better)')
    >>> plt.close("all")
    """
    ax = _axes(ax)
    for level, part, (marker, ls, color) in _groups(table, hue):
        part = part.sort_values(x)
        err = _np.vstack([part["estimate"] - part["ci_low"], part["ci_high"] - part["estimate"]])
        ax.errorbar(part[x], part["estimate"], yerr=err, marker=marker, linestyle=ls, color=color, capsize=3,
                    label=None if level is None else str(level))
    ax.set_ylim(0, 1)
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel(ylabel)
    if hue is not None:
        ax.legend(title=hue.replace("_", " "), frameon=False)
    if title:
        ax.set_title(title)
    return ax


def coefficients(table: _pd.DataFrame, ax=None, title: str | None = None):
    """Forest plot of a tidy coefficient table (estimate with 95% CI per term).

    Parameters
    ----------
    table : DataFrame
        Columns ``estimate``, ``ci_low``, ``ci_high``; the index labels the terms (first row
        drawn at the top), e.g. a model's ``summary`` or ``effects()``.
    ax : matplotlib Axes, optional
        Where to draw; a new figure when None.
    title : str, optional
        Axes title.

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> from outcomes import models, plots, simulation
    >>> model = models.fit_improvement(simulation.demo_tables(n_patients=120, seed=3), "hydration", interactions=())
    >>> table = model.effects()
    >>> ax = plots.coefficients(table)
    >>> len(ax.get_yticks()) == len(table), ax.get_yticklabels()[-1].get_text() == table.index[0]
    (True, True)
    >>> plt.close("all")
    """
    ax = _axes(ax)
    t = table.iloc[::-1]
    ypos = _np.arange(len(t))
    ax.errorbar(t["estimate"], ypos, xerr=_np.vstack([t["estimate"] - t["ci_low"], t["ci_high"] - t["estimate"]]),
                fmt="o", color="black", ecolor="0.4", capsize=3)
    ax.axvline(0, color="0.5", linestyle="--", linewidth=1)
    ax.set_yticks(ypos, [str(i) for i in t.index])
    ax.set_xlabel("estimate (95% CI)")
    if title:
        ax.set_title(title)
    return ax


def survival_curves(curves: _pd.DataFrame, ax=None, title: str | None = None):
    """Share of patients NOT yet responding against session count (step curves), by group.

    Parameters
    ----------
    curves : DataFrame
        Kaplan-Meier curves: columns ``group``, ``sessions``, ``survival`` and optionally
        ``ci_low``/``ci_high``, e.g. ``ResponseModel.curves_``. One group: no legend.
    ax : matplotlib Axes, optional
        Where to draw; a new figure when None.
    title : str, optional
        Axes title.

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> from outcomes import models, plots, simulation
    >>> model = models.fit_response(simulation.demo_tables(n_patients=120, seed=3), "hydration", by="sex")
    >>> ax = plots.survival_curves(model.curves_)
    >>> ax.get_ylabel(), [t.get_text() for t in ax.get_legend().get_texts()] == sorted(model.curves_["group"].unique())
    ('share not yet responding', True)
    >>> plt.close("all")
    """
    ax = _axes(ax)
    hue = "group" if curves["group"].nunique() > 1 else None
    for level, part, (marker, ls, color) in _groups(curves, hue):
        part = part.sort_values("sessions")
        ax.step(part["sessions"], part["survival"], where="post", linestyle=ls, color=color,
                label=None if level is None else str(level))
        ax.plot(part["sessions"], part["survival"], marker=marker, linestyle="none", color=color)
        if {"ci_low", "ci_high"} <= set(part.columns):
            ax.fill_between(part["sessions"], part["ci_low"], part["ci_high"], step="post", color=color, alpha=0.12,
                            linewidth=0)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("completed sessions")
    ax.set_ylabel("share not yet responding")
    if hue:
        ax.legend(frameon=False)
    if title:
        ax.set_title(title)
    ax.xaxis.get_major_locator().set_params(integer=True)
    return ax


def fold_scores(scores: _pd.DataFrame, metric: str = "mae", ax=None, title: str | None = None):
    """Cross-validation score per fold for each model (points), with the mean (bar outline).

    Parameters
    ----------
    scores : DataFrame
        One row per (fold, model): columns ``model`` and `metric`, e.g. ``PredictiveModel.scores_``.
    metric : str
        Score column to draw (``mae`` or ``r2``).
    ax : matplotlib Axes, optional
        Where to draw; a new figure when None.
    title : str, optional
        Axes title.

    Returns
    -------
    matplotlib Axes
        One bar per model, in the order the models first appear in `scores`.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> from outcomes import models, plots, simulation
    >>> model = models.fit_predictive(simulation.demo_tables(n_patients=120, seed=3), "hydration", n_splits=2,
    ...                               n_repeats=1, compare_mixed=False)
    >>> ax = plots.fold_scores(model.scores_)
    >>> [t.get_text() for t in ax.get_xticklabels()], ax.get_ylabel()
    (['boosting', 'ridge'], 'MAE')
    >>> plt.close("all")
    """
    ax = _axes(ax)
    models = list(dict.fromkeys(scores["model"]))
    for i, (m, marker) in enumerate(zip(models, itertools.cycle(MARKERS))):
        vals = scores.loc[scores["model"] == m, metric].to_numpy()
        ax.bar(i, vals.mean(), color="none", edgecolor="0.3", hatch=["", "//", "..", "xx"][i % 4])
        ax.plot(_np.full(len(vals), i), vals, marker=marker, linestyle="none", color="black")
    ax.set_xticks(range(len(models)), models)
    ax.set_ylabel(metric.upper() if metric in ("mae", "r2") else metric)
    if title:
        ax.set_title(title)
    return ax


def partial_dependence(table: _pd.DataFrame, feature: str, ax=None, title: str | None = None):
    """Partial dependence of the predictive model's prediction on one feature.

    Parameters
    ----------
    table : DataFrame
        Columns ``feature``, ``value``, ``average``, e.g. ``PredictiveModel.partial_dependence_``.
    feature : str
        The feature to draw: a numeric one as a line, a categorical one as one point per level.
    ax : matplotlib Axes, optional
        Where to draw; a new figure when None.
    title : str, optional
        Axes title.

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> from outcomes import models, plots, simulation
    >>> model = models.fit_predictive(simulation.demo_tables(n_patients=120, seed=3), "hydration", n_splits=2,
    ...                               n_repeats=1, compare_mixed=False)
    >>> ax = plots.partial_dependence(model.partial_dependence_, "skin_type")
    >>> ax.get_xlabel(), [t.get_text() for t in ax.get_xticklabels()]
    ('skin type', ['I', 'II', 'III', 'IV', 'V'])
    >>> plt.close("all")
    """
    ax = _axes(ax)
    part = table.loc[table["feature"] == feature]
    numeric = _pd.api.types.is_numeric_dtype(part["value"])
    if numeric:
        ax.plot(part["value"], part["average"], marker="o", color="black")
    else:
        ax.plot(range(len(part)), part["average"], marker="s", linestyle="--", color="black")
        ax.set_xticks(range(len(part)), part["value"].astype(str))
    ax.set_xlabel(feature.replace("_", " "))
    ax.set_ylabel("average predicted improvement (%)")
    if title:
        ax.set_title(title)
    return ax


def naive_vs_model(naive: _pd.DataFrame, model: _pd.DataFrame, ax=None, title: str | None = None,
                   ylabel: str = "expected improvement (%)"):
    """Per-session means of the observed rows against the mixed model's population curve.

    Parameters
    ----------
    naive : DataFrame
        Per-session means with CIs (``sessions``, ``estimate``, ``ci_low``, ``ci_high``), e.g.
        :func:`outcomes.models.naive_means`.
    model : DataFrame
        The model's population curve in the same columns, e.g. ``ImprovementModel.marginal()``.
    ax : matplotlib Axes, optional
        Where to draw; a new figure when None.
    title : str, optional
        Axes title.
    ylabel : str, optional
        y-axis label: name the unit of improvement (``contract.METRICS[m].improvement_unit``).

    Returns
    -------
    matplotlib Axes
        Two lines, labelled "naive per-session mean" and "mixed model".

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> from outcomes import models, plots, simulation
    >>> tables = simulation.demo_tables(n_patients=120, seed=3)
    >>> model = models.fit_improvement(tables, "hydration", interactions=())
    >>> ax = plots.naive_vs_model(models.naive_means(tables, "hydration"), model.marginal())
    >>> [t.get_text() for t in ax.get_legend().get_texts()]
    ['naive per-session mean', 'mixed model']
    >>> plt.close("all")
    """
    ax = _axes(ax)
    table = _pd.concat([naive.assign(source="naive per-session mean"), model.assign(source="mixed model")])
    table["source"] = _pd.Categorical(table["source"], categories=["naive per-session mean", "mixed model"])
    return expected_curves(table, hue="source", ax=ax, title=title, ylabel=ylabel)
