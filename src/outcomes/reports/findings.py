"""The reports' sentences, each generated from the numbers it states.

A finding is one markdown sentence for the key-findings box; a value from the data or a
parameter is escaped with :func:`outcomes.escaping.markdown_text` where it enters, and a
count of 1..min_cell-1 patients is never written out (:mod:`outcomes.privacy`). Metrics are
named by their display name from the contract's registry (``contract.METRICS[m].label``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from outcomes import config, contract, privacy
from outcomes.escaping import markdown_text

REFERENCE_AGE, OLDER_AGE = 45, 55


def name(metric: str) -> str:
    """The reader's name of a metric, lower case inside a sentence ("brown spots")."""
    label = contract.METRICS[metric].label
    return label[0].lower() + label[1:]


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _amount(metric: str | None, value: float) -> str:
    """An improvement in the unit it is counted in: "12.3%" (of the baseline), or "3.1 degrees" for
    a metric on an interval scale (CIELAB, ITA°: absolute change, never a percentage)."""
    return contract.METRICS[metric].amount(value) if metric in contract.METRICS else f"{value:.1f}%"


def _points(metric: str | None) -> str:
    """What a difference between two improvements is counted in: "points" (percentage points) or
    the metric's own unit on an interval scale."""
    return contract.METRICS[metric].points if metric in contract.METRICS else "points"


def sessions_cover(metric: str, description: str) -> str:
    """The title and first paragraph of a sessions-response report."""
    m = contract.METRICS[metric]
    counted = ("in percent" if m.scale == "ratio" else
               f"in {markdown_text(m.unit)}, not in percent ({name(metric)} has no true zero, so a percentage of "
               "the baseline would mean nothing)")
    return (f"# Sessions and response: {m.label}\n\n"
            f"How much {name(metric)} improves after each mesotherapy session, and whether it depends on age and "
            f"skin type. Improvement is the change from the patient's own baseline {counted}, positive = "
            f"better ({m.better} {name(metric)}, measured in {markdown_text(m.unit)}, is better). "
            f"Selection: {markdown_text(description)}.")


def too_few(n_measured: int, metric: str, needed: int, min_cell: int = config.MIN_CELL) -> str:
    """Why a selection gets no model, without writing a small count out."""
    words = privacy.count_text(n_measured, "patients", min_cell)
    words = f"Only {words}" if n_measured >= min_cell else _capital(words)
    return (f"{words} in this selection have a measurement of {name(metric)} after a session. The models need at "
            f"least {needed}, so this report stops here: widen the selection (clinic, concern, dates) or wait for "
            "more data.")


def who_was_modelled(n_selected: int, n_modelled: int, metric: str, min_cell: int = config.MIN_CELL) -> str:
    """Why fewer patients are modelled than selected (every one accounted for in words)."""
    left = n_selected - n_modelled
    if left <= 0:
        return f"All {privacy.count_text(n_selected, 'patients', min_cell)} selected are in the model."
    return (f"{_capital(privacy.count_text(n_modelled, 'patients', min_cell))} of the "
            f"{privacy.count_text(n_selected, 'patients', min_cell)} selected are modelled; the others have no "
            f"measurement of {name(metric)} after a session of their course with a baseline photo and a photo that "
            "passed the quality checks (their reasons are counted in the data-quality report).")


def headline(marginal: pd.DataFrame, n_patients: int, metric: str, at: int = 3,
             min_cell: int = config.MIN_CELL) -> str:
    """The answer in one sentence: average improvement after `at` sessions, with its 95% CI."""
    row = marginal.loc[marginal["sessions"] == min(at, int(marginal["sessions"].max()))].iloc[0]
    n = int(row["sessions"])
    sure = ("" if row["ci_low"] > 0 else "; the data cannot rule out no improvement")
    return (f"After {n} session{'' if n == 1 else 's'}, {name(metric)} improved by {_amount(metric, row['estimate'])} "
            "on average "
            f"(95% CI {row['ci_low']:.1f} to {row['ci_high']:.1f}) across the "
            f"{privacy.count_text(n_patients, 'patients', min_cell)} modelled{sure}.")


def naive_vs_model(naive: pd.DataFrame, marginal: pd.DataFrame, metric: str) -> str:
    """What the per-session averages do compared with the model, from the numbers themselves
    ("" when no session count has a shown average)."""
    if naive.empty:
        return ""
    last = int(min(naive["sessions"].max(), marginal["sessions"].max()))
    raw = float(naive.loc[naive["sessions"] == last, "estimate"].iloc[0])
    fit = float(marginal.loc[marginal["sessions"] == last, "estimate"].iloc[0])
    gap = raw - fit
    numbers = f"after {last} sessions: {_amount(metric, raw)} against the model's {_amount(metric, fit)}"
    points = _points(metric)
    if abs(gap) < 1:
        within = "1 point" if points == "points" else f"1.0 {points}"
        return f"Simple per-session averages of {name(metric)} agree with the model within {within} ({numbers})."
    if gap > 0:
        return (f"Simple per-session averages of {name(metric)} overstate the gain by {gap:.1f} {points} ({numbers}): "
                "the patients still measured that late responded better than those who stopped.")
    return (f"Simple per-session averages of {name(metric)} understate the gain by {-gap:.1f} {points} ({numbers}): "
            "the patients still measured that late responded less than the model expects of everyone.")


def age_difference(diff: pd.Series, at: int, metric: str | None = None) -> str:
    """An older patient against a reference one, in points (or `metric`'s own unit on an interval
    scale), with its CI and what it means."""
    word = "less" if diff["estimate"] < 0 else "more"
    clear = diff["ci_low"] > 0 or diff["ci_high"] < 0
    return (f"A {OLDER_AGE}-year-old is expected to gain {abs(diff['estimate']):.1f} {_points(metric)} {word} than a "
            f"{REFERENCE_AGE}-year-old after {at} sessions (95% CI {diff['ci_low']:.1f} to {diff['ci_high']:.1f})"
            + ("." if clear else "; the data cannot rule out no difference."))


def spread(between: float, within: float, at: int, metric: str | None = None) -> str:
    """How much patients and visits vary around the average curve."""
    points = _points(metric)
    return (f"Patients differ a lot: beyond age and skin type, a patient's own improvement after {at} sessions "
            f"typically sits about {between:.1f} {points} above or below the average curve, and single measurements "
            f"vary by about {within:.1f} {points} from visit to visit (photo and instrument noise).")


def plateau(table: pd.DataFrame, cells: pd.DataFrame, common_skin: str, overall: pd.Series, min_important: float,
            min_cell: int = config.MIN_CELL, metric: str | None = None) -> str:
    """The plateau of the largest group (`table`: ``model.plateau()``), claimed only when the
    overall gain (`overall`: a row of ``model.marginal()``) is credibly above zero (its 95% CI
    excludes 0) and at least `min_important` (``contract.METRICS[metric].min_important``, in points,
    or in `metric`'s own unit on an interval scale); else the sentence says it cannot be told."""
    if not (overall["ci_low"] > 0 and overall["estimate"] >= min_important):
        smallest = f"the smallest important change ({min_important:g} {_points(metric)})"
        why = (f"is not credibly above zero (its interval includes 0), let alone at least {smallest}"
               if not overall["ci_low"] > 0 else f"is credibly above zero but smaller than {smallest}, too small a "
               "gain to say where it levels off")
        return (f"Whether the gain levels off cannot be told: the overall gain after {int(overall['sessions'])} "
                f"sessions ({_amount(metric, overall['estimate'])}, 95% CI {overall['ci_low']:.1f} to "
                f"{overall['ci_high']:.1f}) {why}.")
    table = table.merge(cells, on=["age_band", "skin_type"], how="inner")
    main = table.loc[(table["skin_type"] == common_skin) & (table["n_patients"] >= min_cell)]
    if main.empty:
        return ""
    p = main.sort_values("n_patients", kind="stable").iloc[-1]
    group = f"For the largest group ({markdown_text(p['age_band'])}, skin type {markdown_text(common_skin)})"
    if p["plateau"] == float("inf"):
        return f"{group} the gain has not levelled off within the sessions observed."
    n = int(p["plateau"])
    return (f"{group} the gain levels off after {n} session{'' if n == 1 else 's'} (95% interval "
            f"{int(p['ci_low']) if np.isfinite(p['ci_low']) else 'not reached'} to "
            f"{int(p['ci_high']) if np.isfinite(p['ci_high']) else 'not reached'}).")


def threshold_text(threshold: float, metric: str) -> str:
    """A response threshold in its unit: "7%" (of the baseline), or "4 degrees" on an interval scale."""
    return contract.in_unit(threshold, contract.METRICS[metric].improvement_unit, "g")


def responders(responded: int, total: int, threshold: float, metric: str, min_cell: int = config.MIN_CELL) -> str:
    """Patients who reached the threshold, out of those with a measurement after a session of
    their course (said, so the count is not mistaken for the selection's), and what the threshold
    is: the metric's smallest important change (the default), or the value the report was asked for."""
    share = privacy.share_text(responded, total, "patients", min_cell)
    smallest = contract.METRICS[metric].min_important
    if threshold == smallest:
        why = f"the smallest important change in {name(metric)}"  # the body says why (above the noise)
    else:
        why = (f"as this report was asked (the smallest important change in {name(metric)} is "
               f"{threshold_text(smallest, metric)})")
    return (f"{_capital(share)} with a measurement of {name(metric)} after a session of their course responded at "
            f"some visit, a response being an improvement of at least {threshold_text(threshold, metric)}, {why}.")


def gais(responders_: int, total: int, min_cell: int = config.MIN_CELL) -> str:
    share = privacy.share_text(responders_, total, "patients", min_cell)
    return (f"{_capital(share)} were rated improved or better (GAIS 1-3) by the clinician at their last "
            "assessment.")


def best_predictor(scores: pd.DataFrame, metric: str) -> str:
    best = scores.sort_values("mae", kind="stable").iloc[0]
    return (f"Predicting one new patient's {name(metric)} improvement is hard: the best model "
            f"({markdown_text(best['model'])}) is off by {best['mae']:.1f} {_points(metric)} on average "
            f"(R² {best['r2']:.2f}).")


# -- data quality -----------------------------------------------------------------------------------
def inputs(counts: pd.DataFrame) -> str:
    if counts.empty:
        return "This snapshot has no manifest.json, so the input counts are unknown."
    read = int(pd.to_numeric(counts.get("read"), errors="coerce").sum())
    rejected = int(pd.to_numeric(counts.get("rejected"), errors="coerce").sum())
    return f"{read:,} rows were read; {rejected:,} were rejected with a reason ({100 * rejected / max(read, 1):.1f}%)."


def top_rejection(reasons: pd.DataFrame) -> str:
    if reasons.empty:
        return "No rows were rejected."
    top = reasons.iloc[0]
    where = f"{markdown_text(top['table'])}.{markdown_text(top['column'])}"
    return f"The most common rejection: {markdown_text(top['reason'])} in {where} ({int(top['rows']):,} rows)."


def worst_clinic(by_clinic: pd.DataFrame) -> str:
    shown = by_clinic.loc[by_clinic["pct_flagged"].map(lambda v: not isinstance(v, str))]
    if shown.empty:
        return ""
    worst = shown.loc[shown["pct_flagged"].astype(float).idxmax()]
    return (f"Clinic {markdown_text(worst['clinic_id'])} has the most flagged photos: {worst['pct_flagged']:.1f}% of "
            "its follow-up measurements.")


def without_baseline(outcomes: pd.DataFrame, min_cell: int = config.MIN_CELL) -> str:
    none = outcomes["qc_reasons"].astype(str).str.contains("no_baseline").groupby(outcomes["patient_id"]).any()
    share = privacy.share_text(int(none.sum()), len(none), "patients", min_cell)
    return f"{_capital(share)} lack a baseline for at least one metric; those measurements cannot show improvement."


def median_sessions(patients: pd.DataFrame, min_cell: int = config.MIN_CELL) -> str:
    """The median completed sessions (not for fewer than `min_cell` patients: one patient's count)."""
    done = patients["n_sessions"]
    if patients["patient_id"].nunique() < min_cell:
        return ""
    return (f"Patients completed a median of {done.median():.0f} sessions (middle half: {done.quantile(0.25):.0f} to "
            f"{done.quantile(0.75):.0f}).")


def gais_last(gais_: pd.DataFrame, min_cell: int = config.MIN_CELL) -> str:
    """Responders (GAIS <= 3) at the last assessment, among all patients assessed."""
    last = gais_.sort_values("sessions", kind="stable").groupby("patient_id").tail(1)
    return gais(int((last["score"] <= contract.GAIS_RESPONDER_MAX).sum()), len(last), min_cell)


def of_selection(concern: str = "", area: str = "") -> str:
    """What a report's title adds for its concern and treated area, in the reader's words
    (" (fine lines, neck)"; "" for all patients), escaped for markdown."""
    parts = [contract.CONCERN_NAMES.get(concern, concern)] if concern else []
    parts += [area] if area else []
    return f" ({markdown_text(', '.join(parts))})" if parts else ""


def elsewhere(metric: str, concern: str = "", area: str = "") -> str:
    """Where the material this report leaves out is, named as those reports are titled (the
    technical report of the same metric, concern and area, as the grid makes them)."""
    of = of_selection(concern, area)
    return (f"**Elsewhere.** The clinicians' GAIS ratings are reported once, for all metrics, in the *Data quality* "
            f"report. The statistician's material for this metric (the model's terms, a population-average cross-check "
            f"by GEE, and how well one new patient can be predicted) is in the *Technical report: "
            f"{contract.METRICS[metric].label}{of}*.")


def gee_agreement(both: pd.DataFrame, metric: str | None = None) -> str:
    """The mixed model's and the GEE's average after the last session count, side by side
    (`both`: ``tables.gee_and_mixed``; `metric` names the unit)."""
    last = both.loc[both["sessions"] == both["sessions"].max()].set_index("model")
    n, mixed, gee = int(both["sessions"].max()), last.loc["mixed model"], last.loc["GEE"]
    overlap = mixed["ci_low"] <= gee["ci_high"] and gee["ci_low"] <= mixed["ci_high"]
    return (f"After {n} sessions the mixed model expects {_amount(metric, mixed['estimate'])} (95% CI "
            f"{mixed['ci_low']:.1f} to {mixed['ci_high']:.1f}) and GEE {_amount(metric, gee['estimate'])} "
            f"({gee['ci_low']:.1f} to {gee['ci_high']:.1f}): "
            + ("their intervals overlap." if overlap else "their intervals do not overlap, so dropout may depend on "
               "the outcome."))
