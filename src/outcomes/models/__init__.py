"""Models for improvement versus session count, age and skin type.

See docs/models.md for what each model assumes and how the tests check it.
"""
from .gee import GEEModel, fit_gee
from .improvement import ImprovementModel, age_band, improvement_model, naive_means
from .mixed import MixedModel, compare_curves, fit_mixed
from .ordinal import OrdinalModel, fit_ordinal, gais_frame
from .predict import PredictiveModel, predictive_model
from .response import ResponseModel, first_response, sessions_to_response

__all__ = [
    "GEEModel", "ImprovementModel", "MixedModel", "OrdinalModel", "PredictiveModel", "ResponseModel",
    "age_band", "compare_curves", "first_response", "fit_gee", "fit_mixed", "fit_ordinal", "gais_frame",
    "improvement_model", "naive_means", "predictive_model", "sessions_to_response",
]
