"""Models for improvement versus session count, age and skin type.

One style for every model (as in lifelines or pingouin): an estimator object whose
``fit(data)`` returns itself, fitted attributes ending in ``_``, ``summary`` the tidy
coefficient table (estimate, std_error, ci_low, ci_high, p_value; index = term),
``print_summary()``, ``plot(ax=None, **kwargs)``. The ``fit_*`` functions construct and fit
in one call. See docs/models.md for what each model assumes and how the tests check it.
"""
from .gee import GEEModel, fit_gee
from .improvement import ImprovementModel, age_band, fit_improvement, naive_means
from .mixed import MixedModel, SingularFitWarning, compare_curves, fit_mixed, lr_test
from .ordinal import OrdinalModel, fit_ordinal, gais_frame
from .predict import PredictiveModel, fit_predictive
from .response import ResponseModel, first_response, fit_response

__all__ = [
    "GEEModel", "ImprovementModel", "MixedModel", "OrdinalModel", "PredictiveModel", "ResponseModel",
    "SingularFitWarning", "age_band", "compare_curves", "first_response", "fit_gee", "fit_improvement", "fit_mixed",
    "fit_ordinal", "fit_predictive", "fit_response", "gais_frame", "lr_test", "naive_means",
]
