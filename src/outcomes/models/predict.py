"""Predictive model: how well can improvement after n sessions be predicted for a NEW patient?

Gradient boosting (HistGradientBoostingRegressor) and a regularised linear baseline (ridge on
sessions, log1p(sessions), age and skin type), scored by cross-validation grouped by patient
(GroupKFold): a patient's visits are never split between training and test, otherwise the
model would be graded on people it has already seen. The mixed model's population curve is
scored on the very same folds and rows, so the comparison is like for like. Permutation
importance (on each fold's test rows) and partial dependence (final model on all rows) say
which of sessions, age and skin type the predictions lean on.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..contract import DEFAULT_VIEW, SKIN_TYPES
from ._tidy import Fitted
from .improvement import OUTCOME, ImprovementModel, model_rows, split_tables

if TYPE_CHECKING:
    from sklearn.ensemble import HistGradientBoostingRegressor

FEATURES = ("sessions", "age", "skin_type")


def _boosting_features(rows: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"sessions": rows["sessions"].astype(float).to_numpy(),
                         "age": rows["age"].astype(float).to_numpy(),
                         "skin_type": rows["skin_type"].cat.codes.astype(float).to_numpy()})


def _linear_features(rows: pd.DataFrame) -> np.ndarray:
    s = rows["sessions"].astype(float).to_numpy()
    onehot = (rows["skin_type"].astype(str).to_numpy()[:, None] == np.array(SKIN_TYPES[1:])[None, :]).astype(float)
    return np.column_stack([s, np.log1p(s), rows["age"].astype(float).to_numpy(), onehot])


def boosting_model(seed: int = 0) -> HistGradientBoostingRegressor:
    from sklearn.ensemble import HistGradientBoostingRegressor  # here, not at import: sklearn is slow to load

    return HistGradientBoostingRegressor(max_iter=200, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=20,
                                         categorical_features=[False, False, True], random_state=seed)


def linear_model():
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))


class PredictiveModel(Fitted):
    """Boosting vs ridge vs the mixed model's population curve, on patient-grouped folds.

    Fitted attributes: ``scores_`` (MAE and R² per fold and model), ``importance_``,
    ``partial_dependence_``, ``model_`` (boosting on all rows), ``folds_``, ``rows_``,
    ``dropped_``. Its ``summary`` is the cross-validation table (it has no coefficients).

    Examples
    --------
    >>> from outcomes import models, simulation
    >>> tables = simulation.demo_tables(n_patients=120, seed=3)
    >>> p = models.PredictiveModel("hydration", n_splits=2, n_repeats=1, compare_mixed=False).fit(tables)
    >>> p.summary.columns.tolist()
    ['mae', 'mae_sd', 'r2', 'r2_sd', 'folds']
    """

    def __init__(self, metric: str, view: str | None = DEFAULT_VIEW, patients: pd.DataFrame | None = None,
                 n_splits: int = 5, include_flagged: bool = False, seed: int = 0, compare_mixed: bool = True,
                 n_repeats: int = 5) -> None:
        self.metric, self.view, self.patients = metric, view, patients
        self.n_splits, self.include_flagged, self.seed = n_splits, include_flagged, seed
        self.compare_mixed, self.n_repeats = compare_mixed, n_repeats

    def fit(self, data: pd.DataFrame | Mapping[str, pd.DataFrame]) -> PredictiveModel:
        """Fit to the processed tables or the outcomes table (rows as for ``fit_improvement``)."""
        from threadpoolctl import threadpool_limits

        outcomes, patients, _ = split_tables(data, self.patients)
        # small tables: one OpenMP thread is faster than threads fighting over a busy machine
        with threadpool_limits(limits=1, user_api="openmp"):
            return self._fit(outcomes, patients)

    def _fit(self, outcomes: pd.DataFrame, patients: pd.DataFrame | None) -> PredictiveModel:
        from sklearn.inspection import permutation_importance
        from sklearn.metrics import mean_absolute_error, r2_score
        from sklearn.model_selection import GroupKFold

        rows, self.dropped_ = model_rows(outcomes, self.metric, self.view, self.include_flagged, patients=patients)
        rows = rows.reset_index(drop=True)
        groups = rows["patient_id"].to_numpy()
        y = rows[OUTCOME].to_numpy(float)
        xb, xl = _boosting_features(rows), _linear_features(rows)
        scores, importances, self.folds_ = [], [], []
        start = None  # each fold's mixed model starts where the previous one ended (verified anyway)
        for fold, (train, test) in enumerate(GroupKFold(n_splits=self.n_splits).split(xb, y, groups)):
            overlap = set(groups[train]) & set(groups[test])
            if overlap:  # GroupKFold guarantees this; checked because the whole comparison rests on it
                raise RuntimeError(f"fold {fold}: patients in both train and test: {sorted(overlap)[:5]}")
            test_patients = frozenset(groups[test])
            mm = None
            if self.compare_mixed:
                mm = ImprovementModel(self.metric, view=None, include_flagged=True).fit(rows.loc[train], start=start)
                start = mm.mixed_.theta_
            # score every model on the same rows: those of skin types every model was fitted on
            seen = set(rows.loc[train, "skin_type"].astype(str)) & (set(mm.skin_types_) if mm else set(SKIN_TYPES))
            test = test[rows.loc[test, "skin_type"].astype(str).isin(seen).to_numpy()]
            self.folds_.append({"fold": fold, "train_patients": frozenset(groups[train]),
                                "test_patients": test_patients, "scored_rows": len(test)})
            preds = {}
            hgb = boosting_model(self.seed).fit(xb.iloc[train], y[train])
            preds["boosting"] = hgb.predict(xb.iloc[test])
            preds["ridge"] = linear_model().fit(xl[train], y[train]).predict(xl[test])
            if mm is not None:
                preds["mixed model"] = mm.predict(rows.loc[test], ci=False)["estimate"].to_numpy()
            for name, p in preds.items():
                scores.append({"fold": fold, "model": name, "mae": mean_absolute_error(y[test], p),
                               "r2": r2_score(y[test], p), "n_test": len(test)})
            imp = permutation_importance(hgb, xb.iloc[test], y[test], scoring="neg_mean_absolute_error",
                                         n_repeats=self.n_repeats, random_state=self.seed)
            importances.append(imp.importances_mean)
        self.scores_ = pd.DataFrame(scores)
        imp = np.array(importances)
        self.importance_ = pd.DataFrame({"feature": list(FEATURES), "mae_increase": imp.mean(axis=0),
                                         "sd_over_folds": imp.std(axis=0, ddof=1)}).sort_values("mae_increase",
                                                                                                ascending=False)
        self.model_ = boosting_model(self.seed).fit(xb, y)
        self.partial_dependence_ = self._partial_dependence(xb)
        self.rows_ = rows
        return self

    def _partial_dependence(self, xb: pd.DataFrame) -> pd.DataFrame:
        """Average prediction over the rows, at every observed value of each feature. The rows
        hold few distinct (sessions, age, skin type) combinations: averaging over those,
        weighted by their counts, is the same average and far fewer predictions."""
        from sklearn.inspection import partial_dependence

        distinct, counts = np.unique(xb.to_numpy(), axis=0, return_counts=True)
        distinct = pd.DataFrame(distinct, columns=xb.columns)
        out = []
        for i, feature in enumerate(FEATURES):
            pdp = partial_dependence(self.model_, distinct, [i], kind="average", method="brute",
                                     categorical_features=[False, False, True], sample_weight=counts,
                                     custom_values={feature: np.unique(xb[feature])})
            values = pdp["grid_values"][0]
            if feature == "skin_type":
                values = np.array(SKIN_TYPES, dtype=object)[values.astype(int)]
            out.append(pd.DataFrame({"feature": feature, "value": values, "average": pdp["average"][0]}))
        return pd.concat(out, ignore_index=True)

    @property
    def summary(self) -> pd.DataFrame:
        """MAE and R² per model: mean and SD over the folds (same folds, same rows)."""
        g = self.scores_.groupby("model", sort=False)
        return pd.DataFrame({"mae": g["mae"].mean(), "mae_sd": g["mae"].std(ddof=1), "r2": g["r2"].mean(),
                             "r2_sd": g["r2"].std(ddof=1), "folds": g.size()})

    def _summary_title(self) -> str:
        return f"PredictiveModel: {self.metric}, {self.n_splits}-fold cross-validation grouped by patient"

    def _summary_lines(self) -> list[str]:
        return [f"{len(self.rows_)} rows, {self.rows_['patient_id'].nunique()} patients; MAE in points, mean and SD "
                "over the folds (same folds, same rows for every model)"]

    def _shown_table(self) -> tuple[str, pd.DataFrame]:
        return ("prediction error on unseen patients", self.summary)

    def _summary_extra(self) -> list[tuple[str, pd.DataFrame]]:
        return [("permutation importance (increase of MAE)", self.importance_.set_index("feature"))]

    def predict(self, new: pd.DataFrame) -> pd.DataFrame:
        """Boosting prediction (fitted on all rows) for rows with sessions, age, skin_type."""
        new = new.assign(skin_type=pd.Categorical(new["skin_type"].astype(object), categories=list(SKIN_TYPES),
                                                  ordered=True))
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="openmp"):
            pred = self.model_.predict(_boosting_features(new))
        return pd.DataFrame({"estimate": pred}, index=new.index)

    def plot(self, ax=None, metric: str = "mae", **kwargs):
        """Score per fold for each model; ``kwargs`` go to :func:`outcomes.plots.fold_scores`."""
        from .. import plots

        kwargs.setdefault("title", f"{self.metric}: {metric.upper()} per fold (grouped by patient)")
        return plots.fold_scores(self.scores_, metric=metric, ax=ax, **kwargs)

    def __repr__(self) -> str:
        if not hasattr(self, "scores_"):
            return f"PredictiveModel({self.metric!r}; unfitted)"
        return f"PredictiveModel({self.metric!r}; rows={len(self.rows_)}, folds={self.n_splits})"


def fit_predictive(data: pd.DataFrame | Mapping[str, pd.DataFrame], metric: str, *, view: str | None = DEFAULT_VIEW,
                   patients: pd.DataFrame | None = None, n_splits: int = 5, include_flagged: bool = False,
                   seed: int = 0, compare_mixed: bool = True, n_repeats: int = 5) -> PredictiveModel:
    """Fit a :class:`PredictiveModel`: ``PredictiveModel(metric, ...).fit(data)``.

    Examples
    --------
    >>> from outcomes import models, simulation
    >>> tables = simulation.demo_tables(n_patients=120, seed=3)
    >>> p = models.fit_predictive(tables, "hydration", n_splits=2, n_repeats=1)
    >>> p.summary.index.tolist()
    ['boosting', 'ridge', 'mixed model']
    """
    return PredictiveModel(metric, view=view, patients=patients, n_splits=n_splits, include_flagged=include_flagged,
                           seed=seed, compare_mixed=compare_mixed, n_repeats=n_repeats).fit(data)
