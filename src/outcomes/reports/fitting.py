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


NOT_CONVERGED = "did not converge"


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
            problems.append(f"{label}: {NOT_CONVERGED}")
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


# The models need this many times `min_cell` patients measured after a session.
MIN_CELLS_FOR_MODELS = 4


def measured_patients(outcomes, metric: str) -> int:
    """Patients with an improvement of `metric` measured after a session."""
    rows = outcomes.loc[(outcomes["metric"] == metric) & (outcomes["sessions"] > 0) & outcomes["improvement"].notna()]
    return int(rows["patient_id"].nunique())


def in_plain_words(problem: str) -> str:
    """What went wrong with a fit, for a practitioner: 'label: singular fit (random effects
    perfectly correlated (corr(Intercept, ...) = +1.000))' -> 'the data cannot tell ...'."""
    from outcomes.models.mixed import PERFECT_CORRELATION, ZERO_VARIANCE

    if PERFECT_CORRELATION in problem:
        return "the data cannot tell each patient's own starting level apart from their own rate of improvement"
    if ZERO_VARIANCE in problem:
        level = "Intercept" in problem.split(ZERO_VARIANCE, 1)[1]
        return (f"patients' own {'starting levels' if level else 'rates of improvement'} do not differ measurably "
                "in this selection")
    if NOT_CONVERGED in problem:
        return "the fit did not settle on an answer"
    return "the fit failed on these data"


def plain_reasons(problems: Sequence[str]) -> str:
    """The problems of :func:`first_converged` in plain words, each said once."""
    return "; ".join(dict.fromkeys(map(in_plain_words, problems)))


def improvement_model(outcomes, metric: str, min_cell: int, *, details: bool = False,
                      **spec) -> tuple[Any | None, list[str]]:
    """(the richest improvement model that fits, notes for the reader on how it was chosen).

    None, with a plain-words note, when fewer than ``MIN_CELLS_FOR_MODELS * min_cell`` patients
    have a measurement after a session, or when no specification converged. The notes say what
    went wrong in plain words; with `details` (the technical report) also in the model's terms.
    """
    from outcomes.escaping import markdown_text
    from outcomes.reports import findings

    n, needed = measured_patients(outcomes, metric), MIN_CELLS_FOR_MODELS * min_cell
    if n < needed:
        return None, [findings.too_few(n, metric, needed, min_cell)]
    model, chosen, problems = first_converged(improvement_attempts(outcomes, metric, **spec))
    plain = plain_reasons(problems)
    detail = f" In the model's terms: {'; '.join(map(markdown_text, problems))}." if details and problems else ""
    if model is None:
        return None, [f"The model could not be fitted reliably on this selection ({plain}), so no curves are "
                      f"shown.{detail}"]
    notes = []
    if problems:
        notes.append(f"The richest model could not be fitted reliably on this selection ({plain}); the report uses "
                     f"a simpler one ({markdown_text(chosen)}).{detail}")
    if model.singular_:
        terms = f" In the model's terms: {markdown_text(model.singular_reason_)}." if details else ""
        notes.append("Even this model is on the boundary: the data cannot tell patients' own rates of improvement "
                      f"apart; treat its curves with care.{terms}")
    return model, notes


def predictive_model(outcomes, metric: str, cv_folds: int, **spec) -> tuple[Any, list[str]]:
    """(the cross-validated predictive models, notes): compared with the mixed model when it
    fits in every fold, else without it (and a note says so)."""
    from outcomes import models

    predictive, _, problems = first_converged([
        ("compared with the mixed model", lambda: models.fit_predictive(outcomes, metric, n_splits=cv_folds, **spec)),
        ("without the mixed model", lambda: models.fit_predictive(outcomes, metric, n_splits=cv_folds,
                                                                    compare_mixed=False, **spec)),
    ])
    if predictive is None:
        raise ValueError("the predictive models could not be fitted: " + "; ".join(problems))
    notes = ["The mixed model could not be fitted in every cross-validation fold of this selection, so it is left "
             "out of the comparison."] if problems else []
    return predictive, notes
