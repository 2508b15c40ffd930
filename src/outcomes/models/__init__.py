"""Models for improvement versus session count, age and skin type.

See docs/models.md for what each model assumes and how the tests check it.
"""
from .gee import GEEModel, fit_gee
from .improvement import ImprovementModel, age_band, improvement_model, naive_means
from .mixed import MixedModel, compare_curves, fit_mixed
from .ordinal import OrdinalModel, fit_ordinal, gais_frame

__all__ = [
    "GEEModel", "ImprovementModel", "MixedModel", "OrdinalModel",
    "age_band", "compare_curves", "fit_gee", "fit_mixed", "fit_ordinal", "gais_frame",
    "improvement_model", "naive_means",
]
