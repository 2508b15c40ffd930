"""Clinic benchmarking for chains: adjusted improvement per clinic on a funnel plot.

"Is clinic C02 different from the others?" Raw clinic averages mix case-mix (older patients,
darker skin types, harder concerns) with performance, and a small clinic's average swings by
chance. So each clinic's mean improvement after a chosen number of sessions is *adjusted*: the
improvement model (outcomes.models.fit_improvement) is fitted with the clinic and the patient's
concern as covariates beside age and skin type, and the clinic's marginal mean at that session
count averages the model over all the chain's fitted patients as if each were treated there
(``marginal_means("clinic_id", at={"sessions": k})``).

Chance is then shown as a funnel plot (Spiegelhalter DJ, "Funnel plots for comparing
institutional performance", Statistics in Medicine 2005;24:1185-1202): each clinic's adjusted
mean against its number of patients, around the chain's overall mean, with 95% and 99.8%
control limits ``overall ± z * sigma / sqrt(n)`` (z = 1.960 and 3.090). A clinic of the chain's
usual performance falls outside the 95% limits 1 time in 20 by chance, outside the 99.8% limits
1 time in 500: the latter is the signal worth acting on. ``sigma`` is the spread of one
patient's worth of information, taken from the model: the clinics' standard errors scaled by
their size (``sigma^2`` = mean of ``n * SE^2``), so the funnel narrows as the model's own
precision does.

Clinics are anonymised ("Clinic A", "Clinic B", ...) unless ``show_clinic_ids``; the letters
follow a stable order (a hash of the id, not the id's own order, so "Clinic A" is not simply
the first id) and stay with a clinic as long as the chain's list of clinics is the same.
Anyone who holds the list of ids and this code can undo it: the letters keep a report that
leaves the chain from naming clinics, they are not a secret inside it. Clinics with fewer than
``min_cell`` patients are neither plotted nor tabled; the report counts them.
"""
from __future__ import annotations

import hashlib
import string

import numpy as np
import pandas as pd

from outcomes import config, contract
from outcomes.escaping import markdown_text, plot_text
from outcomes.models.improvement import improvement_unit

LEVELS = (0.95, 0.998)
CLINIC = "clinic_id"


def z_value(level: float) -> float:
    """Two-sided normal quantile for a control limit: 1.960 for 95%, 3.090 for 99.8%."""
    from scipy import stats

    return float(stats.norm.ppf(1 - (1 - level) / 2))


def control_limits(overall: float, sigma: float, n: np.ndarray | float, level: float
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The funnel's limits for providers of ``n`` patients: ``overall ± z(level) * sigma / sqrt(n)``."""
    half = z_value(level) * sigma / np.sqrt(np.asarray(n, dtype=float))
    return overall - half, overall + half


def letters(i: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA, ... (spreadsheet column names)."""
    out = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        out = string.ascii_uppercase[r] + out
    return out


def anonymous_labels(clinic_ids) -> dict[str, str]:
    """{clinic id: "Clinic A", ...} in a stable order that does not follow the ids' own order."""
    ids = sorted({str(c) for c in clinic_ids}, key=lambda c: (hashlib.sha256(c.encode("utf-8")).hexdigest(), c))
    return {c: f"Clinic {letters(i)}" for i, c in enumerate(ids)}


def clinic_table(model, sessions: int, *, min_cell: int = config.MIN_CELL, show_clinic_ids: bool = False
                 ) -> pd.DataFrame:
    """Each clinic's adjusted mean improvement after ``sessions`` sessions, against the funnel.

    ``model`` is a fitted :class:`~outcomes.models.ImprovementModel` with ``clinic_id`` among
    its covariates. One row per clinic with at least ``min_cell`` modelled patients, by label:
    ``clinic`` (its label: ``Clinic A``…, or its id with ``show_clinic_ids``), ``n_patients``,
    ``estimate``, ``std_error``, ``ci_low``/``ci_high`` (95%), ``overall``, ``sigma``,
    ``difference`` (estimate - overall), the limits for its size (``low_95``, ``high_95``,
    ``low_998``, ``high_998``) and ``position``: ``"within"``, ``"outside 95%"`` or
    ``"outside 99.8%"``. The overall mean is the patient-weighted mean of every clinic's
    adjusted mean (small ones too). ``attrs``: metric, sessions, n_clinics, suppressed (clinics
    not shown), min_cell, adjusted_for, unit (what improvement is counted in: "%" of the baseline,
    or the metric's own unit on an interval scale). ``sessions`` must lie in the model's observed range.
    """
    if CLINIC not in getattr(model, "covariates", ()):
        raise ValueError("the model must be fitted with covariates including 'clinic_id' "
                         "(models.fit_improvement(tables, metric, covariates=['concern', 'clinic_id']))")
    if not 1 <= int(sessions) <= model.max_sessions_:
        raise ValueError(f"sessions must be from 1 to {model.max_sessions_} (the session counts the model saw), "
                         f"got {sessions!r}")
    means = model.marginal_means(CLINIC, at={"sessions": int(sessions)})
    n = model.rows_.groupby(model.rows_[CLINIC].astype(str), observed=True)["patient_id"].nunique()
    table = means.assign(n_patients=n.reindex(means.index).fillna(0).astype(int).to_numpy())
    weights = table["n_patients"].to_numpy(dtype=float)
    overall = float(np.sum(weights * table["estimate"]) / weights.sum())
    sigma = float(np.sqrt(np.mean(weights * table["std_error"].to_numpy() ** 2)))
    table["overall"], table["sigma"] = overall, sigma
    table["difference"] = table["estimate"] - overall
    for level, name in zip(LEVELS, ("95", "998")):
        table[f"low_{name}"], table[f"high_{name}"] = control_limits(overall, sigma, table["n_patients"], level)
    outside_998 = (table["estimate"] < table["low_998"]) | (table["estimate"] > table["high_998"])
    outside_95 = (table["estimate"] < table["low_95"]) | (table["estimate"] > table["high_95"])
    table["position"] = np.where(outside_998, "outside 99.8%", np.where(outside_95, "outside 95%", "within"))
    labels = {c: c for c in table.index} if show_clinic_ids else anonymous_labels(table.index)
    table.insert(0, "clinic", [labels[c] for c in table.index])
    shown = table.loc[table["n_patients"] >= min_cell].sort_values("clinic").reset_index(drop=True)
    shown = shown[["clinic", "n_patients", "estimate", "std_error", "ci_low", "ci_high", "overall", "sigma",
                   "difference", "low_95", "high_95", "low_998", "high_998", "position"]]
    shown.attrs = {"metric": model.metric, "sessions": int(sessions), "n_clinics": len(table),
                   "suppressed": int(len(table) - len(shown)), "min_cell": int(min_cell),
                   "adjusted_for": ["age", "skin type", *(c.replace("_", " ") for c in model.covariates if c != CLINIC)],
                   "unit": improvement_unit(model.metric)}
    return shown


MARKERS = {"within": ("o", "white", "within the 95% limits"),
           "outside 95%": ("^", "0.55", "outside the 95% limits"),
           "outside 99.8%": ("s", "black", "outside the 99.8% limits")}


def funnel_plot(table: pd.DataFrame, ax=None, title: str | None = None):
    """The funnel plot of :func:`clinic_table`: clinics as labelled markers (shape and fill say
    where each lies, so it reads in greyscale), the overall mean (solid), 95% limits (dashed)
    and 99.8% limits (dotted). Returns the axes."""
    from outcomes import plots

    ax = plots._axes(ax, figsize=(6.6, 2.7))  # about its printed size on page 1 (66 mm high at most, report.css)
    overall, sigma = float(table["overall"].iloc[0]), float(table["sigma"].iloc[0])
    top = max(float(table["n_patients"].max()) * 1.15, 10.0)
    n = np.linspace(max(2.0, float(table["n_patients"].min()) * 0.6), top, 200)
    ax.axhline(overall, color="black", lw=1.2, ls="-", label="chain's overall mean")
    for level, ls in zip(LEVELS, ("--", ":")):
        low, high = control_limits(overall, sigma, n, level)
        ax.plot(n, low, color="black", lw=1.0, ls=ls, label=f"{100 * level:g}% control limits")
        ax.plot(n, high, color="black", lw=1.0, ls=ls)
    for position, (marker, fill, label) in MARKERS.items():
        part = table.loc[table["position"] == position]
        if len(part):
            ax.scatter(part["n_patients"], part["estimate"], marker=marker, s=60, facecolor=fill,
                       edgecolor="black", linewidth=1.0, zorder=3, label=label)
    for row in table.itertuples():
        ax.annotate(plot_text(row.clinic, max_length=24), (row.n_patients, row.estimate), xytext=(6, 4),
                    textcoords="offset points", fontsize=8)
    ax.set_xlim(0, top)
    ax.set_xlabel("patients in the clinic")
    ax.set_ylabel(f"adjusted improvement after {table.attrs.get('sessions', '')} sessions ({_unit(table)})"
                  .replace("  ", " "))
    if title:
        ax.set_title(plot_text(title, max_length=90))
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)  # off the lines
    return ax


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The clinics as a reader sees them: label, patients, adjusted mean (95% CI), difference
    from the chain, the 99.8% limits for its size, where it lies."""
    ci = [f"{e:.1f} ({lo:.1f} to {hi:.1f})" for e, lo, hi in zip(table["estimate"], table["ci_low"], table["ci_high"])]
    limits = [f"{lo:.1f} to {hi:.1f}" for lo, hi in zip(table["low_998"], table["high_998"])]
    return pd.DataFrame({"clinic": table["clinic"], "patients": table["n_patients"],
                         f"adjusted improvement, {_unit(table)} (95% CI)": ci, "difference from the chain": table["difference"],
                         "99.8% limits": limits, "position": table["position"]})


def _unit(table: pd.DataFrame) -> str:
    return table.attrs.get("unit", "%")


def _amount(table: pd.DataFrame, value: float) -> str:
    return contract.in_unit(value, _unit(table))


def suppressed_text(table: pd.DataFrame) -> str:
    """One sentence on the clinics left out for size (or that none were)."""
    k, min_cell = table.attrs.get("suppressed", 0), table.attrs.get("min_cell", config.MIN_CELL)
    if not k:
        return f"Every clinic had at least {min_cell} modelled patients; all {len(table)} are shown."
    return (f"{k} clinic{'s' if k != 1 else ''} with fewer than {min_cell} modelled patients "
            f"{'are' if k != 1 else 'is'} not shown (too few patients to compare, and to protect them); "
            "their patients still count in the model and the chain's mean.")


def findings(table: pd.DataFrame) -> list[str]:
    """The headline in plain words: which clinics lie outside the limits, by how much, how sure."""
    k = table.attrs.get("sessions", "")
    if table.empty:
        return [f"No clinic had enough modelled patients to be compared after {k} sessions."]
    overall = float(table["overall"].iloc[0])
    out = []
    for row in table.loc[table["position"] != "within"].sort_values("difference").itertuples():
        more = "more" if row.difference > 0 else "less"
        limits = "99.8%" if row.position == "outside 99.8%" else "95%"
        low, high = (row.low_998, row.high_998) if limits == "99.8%" else (row.low_95, row.high_95)
        points = "points" if _unit(table) == "%" else _unit(table)
        out.append(f"**{markdown_text(row.clinic)}**'s patients improved {abs(row.difference):.1f} {points} {more} "
                   f"than the chain's {_amount(table, overall)} after {k} sessions: {_amount(table, row.estimate)} "
                   f"(95% CI {row.ci_low:.1f} to "
                   f"{row.ci_high:.1f}), outside the {limits} limits for a clinic of {row.n_patients} patients "
                   f"({low:.1f} to {high:.1f})"
                   + (", a difference chance alone gives less than 1 time in 500." if limits == "99.8%" else
                      "; outside the 95% limits only, which 1 clinic in 20 is by chance alone."))
    if not (table["position"] == "outside 99.8%").any():
        out.insert(0, f"No clinic's adjusted improvement after {k} sessions lies outside the 99.8% control limits "
                      f"around the chain's {_amount(table, overall)}: the clinics' differences are within what chance gives "
                      f"({len(table)} clinics compared).")
    adjusted = [markdown_text(a) for a in table.attrs.get("adjusted_for", ["age", "skin type"])]
    words = ", ".join(adjusted[:-1]) + f" and {adjusted[-1]}" if len(adjusted) > 1 else adjusted[0]
    out.append(f"Adjusted for the patients' {words}: each clinic is compared as if it had treated "
               "the chain's patients.")
    return out


def title(metric: str, sessions: int) -> str:
    """The report's title (markdown), the metric escaped."""
    return f"# Clinic benchmarking: {markdown_text(metric)} after {int(sessions)} sessions"


def model_text(model, label: str) -> str:
    """What was fitted, in words (markdown); a clear error when nothing could be."""
    if model is None:
        raise ValueError("no improvement model with clinic and concern could be fitted to these data")
    n_clinics = model.rows_[CLINIC].nunique()
    return (f"Fitted: {markdown_text(label)}; {model.n_patients_:,} patients in {n_clinics} clinics, "
            f"up to {model.max_sessions_} sessions.")


def caption(table: pd.DataFrame) -> str:
    """The funnel plot's caption (markdown)."""
    k = table.attrs.get("sessions", "")
    return (f"Adjusted mean improvement after {k} sessions ({_unit(table)}) of each clinic against its number of patients. "
            "Solid line: the chain's mean; dashed: 95% control limits; dotted: 99.8% control limits. "
            "Circles lie within the 95% limits, triangles outside them, squares outside the 99.8% limits.")
