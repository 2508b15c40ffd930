"""The reports' figures that ``outcomes.plots`` does not draw: grey-print safe, reader's names.

Every line is told apart by marker and line style, not colour alone; axes say what they show
in words and units; grades are integers.
"""
from __future__ import annotations

import pandas as pd

from outcomes import contract


def plot_course(expected: pd.DataFrame, points: pd.DataFrame, n_sessions: int | None = None, ax=None,
                title: str | None = None, unit: str = "%"):
    """The patient's measurements over the expected course (line), its confidence band (dark
    grey) and prediction band (light grey). Dots: during the course; open circles: after it
    (sessions >= `n_sessions`); crosses: quality-flagged photos. Grey-print safe. `unit`: what
    improvement is counted in (``contract.METRICS[m].improvement_unit``: "%" or e.g. "degrees")."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    if ax is None:
        _, ax = plt.subplots(figsize=(4, 3))
    x = expected["sessions"]
    ax.fill_between(x, expected["pred_low"], expected["pred_high"], color="0.88", lw=0, label="comparable patients")
    ax.fill_between(x, expected["ci_low"], expected["ci_high"], color="0.62", lw=0, label="expected (95% CI)")
    ax.plot(x, expected["estimate"], color="0.15", lw=1.4, ls="--")
    flagged = ~points["qc_ok"].astype(bool)
    good = points.loc[~flagged]
    ax.plot(good["sessions"], good["improvement"], "-", color="black", lw=1)
    during = good["sessions"] < n_sessions if n_sessions is not None else pd.Series(True, index=good.index)
    ax.plot(good.loc[during, "sessions"], good.loc[during, "improvement"], "o", color="black", ms=4.5,
            label="this patient")
    if (~during).any():
        ax.plot(good.loc[~during, "sessions"], good.loc[~during, "improvement"], "o", mfc="white", mec="black",
                ms=5, label="after the course")
    if flagged.any():
        ax.plot(points.loc[flagged, "sessions"], points.loc[flagged, "improvement"], "x", color="black", ms=6,
                label="flagged photo")
    ax.axhline(0, color="0.4", lw=0.6)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("completed sessions")
    ax.set_ylabel(f"improvement ({unit})")
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def patient_panels(progress, n_sessions: int):
    """One panel per metric of a patient's progress (:func:`outcomes.reports.patient.progress`):
    the patient against the expected course, their personal expected course (dotted, with the
    95% interval of a next measurement as thin dotted lines), or a note where no course may be shown."""
    import matplotlib.pyplot as plt

    shown = list(progress.panels)
    ncols = 2 if len(shown) > 1 else 1
    nrows = max(1, -(-len(shown) // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.7, 2.6 * nrows), squeeze=False)
    for ax, metric in zip(axes.ravel(), shown):
        expected, points, why = progress.panels[metric]
        label = contract.METRICS[metric].label
        if expected is None:
            ax.set_title(f"{label}: {why}", fontsize=9)
            ax.set_axis_off()
            continue
        plot_course(expected, points, n_sessions, ax=ax, title=label, unit=contract.METRICS[metric].improvement_unit)
        personal = progress.personal.get(metric)
        if personal is not None:
            ax.plot(personal["sessions"], personal["estimate"], ":", marker="s", ms=3, color="0.25", lw=1.3,
                    label="personal expected")
            for side in ("pred_low", "pred_high"):
                ax.plot(personal["sessions"], personal[side], ":", color="0.35", lw=0.7)
    for ax in axes.ravel()[len(shown):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def gais_responders(ordinal, ax=None):
    """Modelled probability of GAIS 3 (improved) or better by session count, in percent,
    with whole session counts on the x axis."""
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    ax = ordinal.plot(ax=ax, ylabel="GAIS 1-3 (improved or better)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("completed sessions")
    return ax


def flagged_by_clinic(outcomes: pd.DataFrame, min_cell: int, ax=None):
    """Share of each clinic's follow-up measurements flagged by the photo-quality checks (bars,
    largest first), against all clinics together (dashed line). A clinic whose share the table
    hides (:func:`outcomes.reports.tables.flag_shares`: fewer than `min_cell` patients, or hidden
    so that a small one cannot be worked out) is left out."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    from outcomes.escaping import plot_text
    from outcomes.reports.tables import flag_shares

    table = flag_shares(outcomes, ["clinic_id"], min_cell)
    shown = table.loc[table["pct_flagged"].map(lambda v: not isinstance(v, str))]
    shown = shown.astype({"pct_flagged": float}).sort_values("pct_flagged", kind="stable")
    follow_up = outcomes.loc[outcomes["sessions"] > 0]
    overall = 100 * float((~follow_up["qc_ok"].astype(bool)).mean()) if len(follow_up) else float("nan")
    if ax is None:
        _, ax = plt.subplots(figsize=(6.0, 0.45 * max(len(shown), 2) + 1.0))
    labels = [plot_text(f"Clinic {c}", max_length=30) for c in shown["clinic_id"]]
    ax.barh(labels, shown["pct_flagged"], color="0.6", edgecolor="black", linewidth=0.6, height=0.6)
    ax.axvline(overall, color="black", ls="--", lw=1.2, label=f"all clinics: {overall:.1f}%")
    for y, value in enumerate(shown["pct_flagged"]):
        ax.annotate(f"{value:.1f}%", (value, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8,
                    bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.6}, zorder=4)  # over the dashed line
    ax.xaxis.set_major_formatter(PercentFormatter(100))
    ax.set_xlim(0, max([overall, *shown["pct_flagged"], 1.0]) * 1.18)
    ax.set_xlabel("follow-up measurements flagged")
    ax.legend(fontsize=8, loc="lower right", frameon=True)
    ax.figure.tight_layout()
    return ax
