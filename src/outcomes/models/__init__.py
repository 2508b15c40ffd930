"""Models for improvement versus session count, age and skin type.

See docs/models.md for what each model assumes and how the tests check it.
"""
from .mixed import MixedModel, compare_curves, fit_mixed

__all__ = ["MixedModel", "compare_curves", "fit_mixed"]
