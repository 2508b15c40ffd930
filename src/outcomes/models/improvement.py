"""The domain model: improvement after n sessions, by age and skin type.

``improvement ~ f(sessions) + age_c + skin_type + f(sessions):age_c + f(sessions):skin_type``
with a random intercept and slope per patient. ``improvement`` is the outcomes' column the models
fit: percent of the baseline for a ratio-scale metric, the change in the metric's own unit for an
interval-scale one (CIELAB, ITA°; docs/data-contract.md §4); ``contract.METRICS[m].improvement_unit``
names it. Why a mixed model and not per-session means:
patients who see no gain stop coming, so the later session counts hold mostly responders and
naive means climb. The mixed model uses every patient's early visits to learn their own
curve, so under dropout that depends on what was observed (missing at random) its population
curve stays honest.

Conventions (docs/models.md): ``age_c = (age - 45) / 10``; age bands <35, 35-44, 45-54, 55+;
unknown skin type, quality-flagged rows (by default), missing outcomes and the baseline rows
themselves are left out, and every row left out is counted in ``dropped_``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..contract import DEFAULT_VIEW, METRICS, SKIN_TYPE_DTYPE, min_important
from ._design import require_columns
from ._tidy import Coefficients, interval
from .mixed import OPTIMIZERS, MixedModel


AGE_CENTER = 45.0
AGE_SCALE = 10.0
AGE_BANDS = ("<35", "35-44", "45-54", "55+")
AGE_BAND_EDGES = (-np.inf, 35, 45, 55, np.inf)
AGE_BAND_DTYPE = pd.CategoricalDtype(list(AGE_BANDS), ordered=True)
OUTCOME = "improvement"
# A skin type seen in fewer patients (or at fewer session counts than its curve has parameters)
# cannot carry its own curve (a spline x skin-type interaction is 4 parameters per type); its rows
# are left out of the improvement model and counted.
MIN_PATIENTS_PER_SKIN_TYPE = 10


def age_band(age: pd.Series | np.ndarray | Sequence[float]) -> pd.Series:
    """<35, 35-44, 45-54, 55+ as an ordered categorical (missing age: NaN).

    A Series keeps its index, so the result lines up with the frame it came from
    (``df.assign(age_band=age_band(df["age"]))``).

    Examples
    --------
    >>> from outcomes import models
    >>> models.age_band([30, 35, 54.9, 55]).tolist()
    ['<35', '35-44', '45-54', '55+']
    """
    index = age.index if isinstance(age, pd.Series) else None
    values = pd.to_numeric(pd.Series(np.asarray(age, dtype=object), index=index), errors="raise").astype(float)
    bands = pd.cut(values, bins=list(AGE_BAND_EDGES), right=False, labels=list(AGE_BANDS))
    return pd.Series(bands, index=index, name="age_band").astype(AGE_BAND_DTYPE)


def centred_age(age) -> np.ndarray | pd.Series:
    """Age in decades above 45: the model's intercept is a 45-year-old."""
    return (age - AGE_CENTER) / AGE_SCALE


def split_tables(data: pd.DataFrame | Mapping[str, pd.DataFrame], patients: pd.DataFrame | None = None
                 ) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None]:
    """(outcomes, patients, sessions) from the dict `outcomes.load_processed` returns, or from an
    outcomes table alone (then patients is the one given, and there are no sessions)."""
    if isinstance(data, pd.DataFrame):
        return data, patients, None
    if isinstance(data, Mapping):
        if "outcomes" not in data:
            raise KeyError(f"the tables lack 'outcomes'; they hold {sorted(data)}")
        return data["outcomes"], data.get("patients") if patients is None else patients, data.get("sessions")
    raise TypeError(f"data must be the processed tables (a dict) or the outcomes table, not {type(data).__name__}")


def attach_columns(rows: pd.DataFrame, columns: Sequence[str], patients: pd.DataFrame | None = None,
                   sessions: pd.DataFrame | None = None) -> pd.DataFrame:
    """``rows`` with each of ``columns`` present: a column of ``rows`` itself, else the patient's
    value from ``patients``, else the value of the session the measurement follows (session
    number = ``rows["sessions"]``) from ``sessions`` (product, practitioner_id, ...; ``area`` is the
    outcomes' own column, the patient's treated area)."""
    out = rows.copy()
    for col in columns:
        if col in out:
            continue
        if patients is not None and col in patients:
            out[col] = out["patient_id"].map(patients.drop_duplicates("patient_id").set_index("patient_id")[col])
        elif sessions is not None and col in sessions and "session_number" in sessions:
            done = sessions.dropna(subset=["session_number"]).drop_duplicates(["patient_id", "session_number"])
            key = done.set_index(["patient_id", done["session_number"].astype(int)])[col]
            out[col] = key.reindex(pd.MultiIndex.from_arrays([out["patient_id"], out["sessions"].astype(int)])).to_numpy()
        else:
            known = sorted(set(rows.columns) | set(() if patients is None else patients.columns)
                           | set(() if sessions is None else sessions.columns))
            raise KeyError(f"no column {col!r} in the outcomes, patients or sessions tables; columns: {known}"
                           + ("" if sessions is not None else " (pass the processed tables, not only outcomes, "
                                                              "for session-level columns)"))
    return out


def model_rows(
    outcomes: pd.DataFrame,
    metric: str,
    view: str | None = DEFAULT_VIEW,
    include_flagged: bool = False,
    keep_baseline: bool = False,
    patients: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows a model of one metric may use, and a count of every row left out and why.

    With ``patients`` (holding ``n_sessions``, the completed sessions), the follow-up visits
    after the course are left out: their effect is fading, a different question from "what
    does the n-th session bring". Without it every visit is used.
    """
    require_columns(outcomes, ["patient_id", "metric", "sessions", OUTCOME, "age", "skin_type", "qc_ok"], "outcomes")
    rows = outcomes.loc[outcomes["metric"] == metric]
    if rows.empty:
        raise ValueError(f"no rows for metric {metric!r}; metrics present: {sorted(outcomes['metric'].unique())}")
    steps = []
    if view is not None and "view" in rows:
        if not (rows["view"] == view).any():
            raise ValueError(f"metric {metric!r} has no {view!r} view; views present: {sorted(rows['view'].unique())}"
                             " (pass view=None to pool views)")
        steps.append((f"view other than {view}", rows["view"] != view))
    if not include_flagged:
        steps.append(("quality-flagged (qc_ok False)", ~rows["qc_ok"].astype(bool)))
    steps.append(("missing outcome", rows[OUTCOME].isna()))
    steps.append(("unknown skin type", rows["skin_type"].isna()))
    steps.append(("missing age", rows["age"].isna()))
    if not keep_baseline:
        steps.append(("baseline row (sessions 0)", rows["sessions"] == 0))
    if patients is not None:
        require_columns(patients, ["patient_id", "n_sessions"], "patients")
        done = rows["patient_id"].map(patients.drop_duplicates("patient_id").set_index("patient_id")["n_sessions"])
        steps.append(("follow-up after the course (fading)", rows["sessions"] >= done))
    keep = pd.Series(True, index=rows.index)
    counts = []
    for reason, drop in steps:
        drop = drop.fillna(False).astype(bool) & keep
        counts.append({"reason": reason, "rows": int(drop.sum())})
        keep &= ~drop
    rows = rows.loc[keep].copy()
    rows["sessions"] = rows["sessions"].astype(int)
    rows["age_c"] = centred_age(rows["age"].astype(float))
    rows["skin_type"] = rows["skin_type"].astype(SKIN_TYPE_DTYPE)
    return rows, pd.DataFrame(counts)


def thin_skin_types(rows: pd.DataFrame, interactions: Sequence[str] = ("age", "skin_type"),
                    time_transform: str = "spline", spline_df: int = 3) -> tuple[pd.Series, str]:
    """(rows of a skin type too thin for its own curve, the reason in words): the model's last
    row filter, also used by the reports' patient flow so that its counts match ``n_patients_``.

    A skin type with its own curve (sessions x skin type) needs as many session counts as the
    curve has parameters, else the design is singular; and at least
    ``MIN_PATIENTS_PER_SKIN_TYPE`` patients.
    """
    need = (spline_df + 1 if time_transform == "spline" else 2) if "skin_type" in interactions else 1
    per_type = rows.groupby("skin_type", observed=True).agg(patients=("patient_id", "nunique"),
                                                              counts=("sessions", "nunique"))
    sparse = per_type[(per_type["patients"] < MIN_PATIENTS_PER_SKIN_TYPE) | (per_type["counts"] < need)]
    reason = f"skin type with < {MIN_PATIENTS_PER_SKIN_TYPE} patients or < {need} session counts" + (
        f" ({', '.join(f'{k}: {p} patients, {c} counts' for k, p, c in sparse.itertuples())})"
        if len(sparse) else "")
    return rows["skin_type"].isin(sparse.index), reason


class ImprovementModel(Coefficients):
    """Expected improvement after 1..N sessions by age band and skin type, and the plateau.

    ``improvement ~ f(sessions) + age_c + skin_type [+ covariates] + f(sessions):age_c +
    f(sessions):skin_type`` (``improvement``: percent of baseline, or the metric's own unit on an
    interval scale) with a random intercept and slope per patient (a :class:`MixedModel`,
    kept as ``mixed_``). Fitted attributes end in ``_``: ``fixed_`` (= ``summary``), ``random_``,
    ``converged_``, ``singular_``, ``singular_reason_``, ``llf_``, ``dropped_`` (rows left out,
    by reason), ``rows_``, ``n_patients_``.

    Parameters
    ----------
    metric : str
        The metric to model (a value of the outcomes' ``metric`` column).
    covariates : sequence of str
        Further adjustment columns beyond age and skin type: any column of the outcomes
        (``clinic_id``, ``concern``, ``area``: the patient's treated area, ``sex``), of the patients
        table, or of the sessions table (``product``, ``practitioner_id``: the value at the session
        the measurement follows; needs the processed tables in :meth:`fit`). Main effects; rows missing one are
        left out and counted.
    view : str or None
        Photo view (default ``front``); None pools views.
    patients : DataFrame or None
        The patients table; with it the follow-up visits after each patient's course are left
        out (taken from the tables when :meth:`fit` gets the processed tables).
    time_transform : {"spline", "log1p", "identity"}
        Shape of the session effect.
    interactions : sequence of {"age", "skin_type"}
        Covariates that may change the size of the session effect.
    include_flagged : bool
        Keep quality-flagged rows (``qc_ok == False``); default False, as the reports.
    random_slope : bool
        A patient-specific rate of improvement (else only a patient-specific level).
    random_intercept : bool
        A patient-specific level. Improvement is 0 at baseline by definition, so a patient's
        level and rate often move together (a singular fit); ``random_intercept=False`` keeps
        only the rate: each patient's curve is the average one scaled up or down.
    reml, optimizers, spline_df
        As for :class:`MixedModel`.

    Examples
    --------
    >>> from outcomes import models, simulation
    >>> tables = simulation.demo_tables(n_patients=120, seed=3)
    >>> m = models.ImprovementModel("hydration", interactions=()).fit(tables)
    >>> m.converged_, m.summary.columns.tolist()
    (True, ['estimate', 'std_error', 'ci_low', 'ci_high', 'p_value'])
    >>> bool(m.wald_test("sessions")["p_value"] < 0.05)
    True
    """

    def __init__(
        self,
        metric: str,
        covariates: Sequence[str] = (),
        view: str | None = DEFAULT_VIEW,
        patients: pd.DataFrame | None = None,
        time_transform: str = "spline",
        interactions: Sequence[str] = ("age", "skin_type"),
        include_flagged: bool = False,
        random_slope: bool = True,
        reml: bool = True,
        optimizers: Sequence[str] = OPTIMIZERS,
        spline_df: int = 3,
        random_intercept: bool = True,
    ) -> None:
        bad = set(interactions) - {"age", "skin_type"}
        if bad:
            raise ValueError(f"interactions are with 'age' and/or 'skin_type', not {sorted(bad)}")
        taken = set(covariates) & {"age", "age_c", "skin_type", "sessions", OUTCOME, "patient_id"}
        if taken:
            raise ValueError(f"covariates {sorted(taken)} are already in the model (or are its outcome, time or "
                             "group); give other columns")
        self.metric = metric
        self.covariates = tuple(covariates)
        self.view = view
        self.patients = patients
        self.time_transform = time_transform
        self.interactions = tuple(interactions)
        self.include_flagged = include_flagged
        self.random_slope = random_slope
        self.random_intercept = random_intercept
        self.reml = reml
        self.optimizers = tuple(optimizers)
        self.spline_df = spline_df

    def fit(self, data: pd.DataFrame | Mapping[str, pd.DataFrame], start: np.ndarray | None = None
            ) -> ImprovementModel:
        """Fit to the processed tables (the dict from ``outcomes.load_processed``: the follow-up
        visits and session-level covariates come from its patients and sessions tables) or to an
        outcomes table alone; ``start``: see :meth:`MixedModel.fit`."""
        outcomes, patients, sessions = split_tables(data, self.patients)
        rows, dropped = model_rows(outcomes, self.metric, self.view, self.include_flagged, patients=patients)
        if self.covariates:
            rows = attach_columns(rows, self.covariates, patients, sessions)
            missing = rows[list(self.covariates)].isna().any(axis=1)
            dropped = pd.concat([dropped, pd.DataFrame([{"reason": f"missing {', '.join(self.covariates)}",
                                                         "rows": int(missing.sum())}])], ignore_index=True)
            rows = rows.loc[~missing]
        thin, reason = thin_skin_types(rows, self.interactions, self.time_transform, self.spline_df)
        self.dropped_ = pd.concat([dropped, pd.DataFrame([{"reason": reason, "rows": int(thin.sum())}])],
                                  ignore_index=True)
        rows = rows.loc[~thin]
        if rows["sessions"].nunique() < 2:
            raise ValueError(f"{self.metric}: need measurements after at least two different session counts")
        inter = tuple("age_c" if c == "age" else c for c in self.interactions)
        self.mixed_ = MixedModel(
            OUTCOME, "sessions", "patient_id", ("age_c", "skin_type", *self.covariates), self.random_slope,
            self.time_transform, self.reml, inter, self.optimizers, self.spline_df,
            random_intercept=self.random_intercept,
        ).fit(rows, start=start)
        m = self.mixed_
        m._labels = {"age_c": "age +10 years"}
        self.fixed_, self.cov_fixed_, self.random_, self.design_ = m.fixed_, m.cov_fixed_, m.random_, m.design_
        self.converged_, self.singular_, self.singular_reason_, self.llf_ = (
            m.converged_, m.singular_, m.singular_reason_, m.llf_)
        self.rows_ = rows
        self.max_sessions_ = int(rows["sessions"].max())
        self.skin_types_ = list(self.mixed_.rows_["skin_type"].cat.categories)
        per_patient = rows.assign(band=age_band(rows["age"])).drop_duplicates("patient_id")
        self.band_ages_ = per_patient.groupby("band", observed=True)["age"].mean().reindex(list(AGE_BANDS))
        self.n_patients_ = int(rows["patient_id"].nunique())
        return self

    @property
    def summary(self) -> pd.DataFrame:
        """The tidy coefficient table (``fixed_``): estimate, std_error, ci_low, ci_high, p_value."""
        return self.fixed_

    def _summary_title(self) -> str:
        return f"ImprovementModel: {self.metric} ({self.view or 'all views'}), {self.mixed_.formula}"

    def _summary_lines(self) -> list[str]:
        left_out = ", ".join(f"{r.reason}: {r.rows}" for r in self.dropped_.itertuples() if r.rows)
        return [*self.mixed_._summary_lines()[:1], f"{self.n_patients_} patients; rows left out: {left_out or 'none'}"]

    def _summary_extra(self) -> list[tuple[str, pd.DataFrame]]:
        return self.mixed_._summary_extra()

    def _shown_table(self) -> tuple[str, pd.DataFrame]:
        return self.mixed_._shown_table()

    def effects(self, times: Sequence[int] | None = None, level: float = 0.95) -> pd.DataFrame:
        """The fixed part by meaning (see :meth:`MixedModel.effects`), at 1..N sessions by default:
        ``sessions = k vs 1``, ``skin_type III vs II at sessions = k``, ``age +10 years at sessions = k``."""
        return self.mixed_.effects(np.arange(1, self.max_sessions_ + 1) if times is None else times, level)

    # -- the comparisons of Coefficients, in the model's own columns ------------------------------
    def _variable_name(self, variable: str) -> str:
        return "age_c" if variable == "age" else variable

    def _model_rows(self) -> pd.DataFrame:
        return self.mixed_.rows_

    def _prepare_at(self, at: dict | None) -> dict:
        at = dict(at or {})
        if "age" in at:
            at["age_c"] = float(centred_age(float(at.pop("age"))))
        return at

    # -- predictions -------------------------------------------------------------
    def frame(self, sessions, age, skin_type) -> pd.DataFrame:
        """Rows the model can predict for (broadcast scalars)."""
        sessions, age, skin = np.broadcast_arrays(np.atleast_1d(sessions), np.atleast_1d(np.asarray(age, dtype=float)),
                                                  np.atleast_1d(np.asarray(skin_type, dtype=object)))
        return pd.DataFrame({
            "sessions": sessions.astype(int), "age": age, "age_c": centred_age(age),
            "skin_type": pd.Categorical(skin, dtype=SKIN_TYPE_DTYPE),
        })

    def predict(self, new: pd.DataFrame, ci: bool = True, level: float = 0.95,
                prediction: bool = False) -> pd.DataFrame:
        """Population-mean improvement for rows with sessions, age and skin_type, with its CI;
        ``prediction=True`` adds pred_low/pred_high, the band where ``level`` of comparable
        patients' single measurements fall (see :meth:`MixedModel.predict`)."""
        new = new.assign(age_c=centred_age(new["age"].astype(float)))
        return self.mixed_.predict(new, ci=ci, level=level, prediction=prediction)

    def contrast(self, a: pd.DataFrame, b: pd.DataFrame, level: float = 0.95, average: bool = False,
                 labels: Sequence[str] | str | None = None) -> pd.DataFrame:
        """Difference in expected improvement between matching rows of a and b, as a tidy table
        (``average=True``: between the averages of a's and b's rows; ``labels``: the rows' names),
        e.g. ``m.contrast(m.frame(3, 55, "III"), m.frame(3, 45, "III"), labels="age 55 vs 45")``."""
        a = a.assign(age_c=centred_age(a["age"].astype(float)))
        b = b.assign(age_c=centred_age(b["age"].astype(float)))
        return self.mixed_.contrast(a, b, level, average=average, labels=labels)

    def _grid(self, sessions=None, skin_types=None) -> pd.DataFrame:
        sessions = np.arange(1, self.max_sessions_ + 1) if sessions is None else np.atleast_1d(sessions)
        skin_types = self.skin_types_ if skin_types is None else list(np.atleast_1d(skin_types))
        bands = self.band_ages_.dropna()
        grid = pd.MultiIndex.from_product([bands.index, skin_types, sessions],
                                          names=["age_band", "skin_type", "sessions"]).to_frame(index=False)
        frame = self.frame(grid["sessions"], grid["age_band"].map(bands).astype(float), grid["skin_type"])
        frame.insert(0, "age_band", pd.Categorical(grid["age_band"], dtype=AGE_BAND_DTYPE))
        return frame

    def expected(self, sessions=None, skin_types=None, level: float = 0.95) -> pd.DataFrame:
        """Expected improvement after 1..N sessions for each age band x skin type, with CI.

        ``age`` is the mean age of the fitted patients in the band.
        """
        grid = self._grid(sessions, skin_types)
        pred = self.mixed_.predict(grid, ci=True, level=level)
        out = pd.concat([grid.drop(columns="age_c"), pred], axis=1)
        out.insert(0, "metric", self.metric)
        return out

    def marginal(self, sessions=None, level: float = 0.95) -> pd.DataFrame:
        """Expected improvement averaged over this cohort's patients (their own age and skin
        type), i.e. the population mean the naive per-session means try to estimate."""
        sessions = np.arange(1, self.max_sessions_ + 1) if sessions is None else np.atleast_1d(sessions)
        patients = self.mixed_.rows_.drop_duplicates("patient_id")
        every = pd.concat([patients.assign(sessions=int(n)) for n in sessions], ignore_index=True)
        x = self.mixed_.design_matrix(every).to_numpy().reshape(len(sessions), len(patients), -1).mean(axis=1)
        est = x @ self.fixed_["estimate"].to_numpy()
        se = np.sqrt(np.einsum("ij,jk,ik->i", x, self.mixed_.cov_fixed_.to_numpy(), x))
        low, high = interval(est, se, level)
        return pd.DataFrame({"sessions": np.asarray(sessions, dtype=int), "estimate": est, "std_error": se,
                             "ci_low": low, "ci_high": high})

    def plateau(self, gain: float | None = None, n_draws: int = 1000, seed: int = 0, level: float = 0.95
                ) -> pd.DataFrame:
        """First session count n after which one more session adds less than ``gain`` (percentage
        points, or the metric's own unit on an interval scale); None: the metric's smallest
        important change from the registry (``contract.min_important(metric)``;
        ``contract.DEFAULT_MIN_IMPORTANT`` for a metric it does not know).

        Uncertainty by parametric bootstrap of the fixed effects: ``n_draws`` draws from their
        estimated sampling distribution N(beta, cov), the plateau recomputed for each draw;
        ci_low/ci_high are percentiles of those plateaus. ``inf`` means "not reached within
        the session counts observed" (one more session still adds at least ``gain``).
        """
        if gain is None:
            gain = min_important(self.metric)
        grid = self._grid()
        x = self.mixed_.design_matrix(grid).to_numpy()
        beta = self.fixed_["estimate"].to_numpy()
        rng = np.random.default_rng(seed)
        draws = rng.multivariate_normal(beta, self.mixed_.cov_fixed_.to_numpy(), size=n_draws, method="eigh")
        keys = ["age_band", "skin_type"]
        out = []
        alpha = (1 - level) / 2
        for (band, skin), idx in grid.groupby(keys, observed=True, sort=False).groups.items():
            idx = np.asarray(idx)
            order = np.argsort(grid.loc[idx, "sessions"].to_numpy())
            idx = idx[order]
            n = grid.loc[idx, "sessions"].to_numpy()
            point = _first_small_gain(x[idx] @ beta, n, gain)
            boot = np.array([_first_small_gain(v, n, gain) for v in (x[idx] @ draws.T).T])
            out.append({"age_band": band, "skin_type": skin, "age": grid.loc[idx[0], "age"], "gain": gain,
                        "plateau": point, "ci_low": np.quantile(boot, alpha, method="inverted_cdf"),
                        "ci_high": np.quantile(boot, 1 - alpha, method="inverted_cdf"),
                        "share_not_reached": float(np.isinf(boot).mean()), "n_draws": n_draws})
        table = pd.DataFrame(out)
        table["age_band"] = table["age_band"].astype(AGE_BAND_DTYPE)
        table["skin_type"] = table["skin_type"].astype(SKIN_TYPE_DTYPE)
        return table.sort_values(keys).reset_index(drop=True)

    def plot(self, ax=None, skin_type: str | None = None, **kwargs):
        """Expected improvement vs sessions by age band for one skin type (the most common);
        ``kwargs`` go to :func:`outcomes.plots.expected_curves`."""
        from .. import plots

        if skin_type is None:
            skin_type = self.mixed_.rows_["skin_type"].mode().iloc[0]
        table = self.expected(skin_types=[skin_type])
        kwargs.setdefault("title", f"{self.metric}: expected improvement, skin type {skin_type}")
        kwargs.setdefault("ylabel", f"expected improvement ({improvement_unit(self.metric)})")
        return plots.expected_curves(table, hue="age_band", ax=ax, **kwargs)

    def __repr__(self) -> str:
        if not hasattr(self, "mixed_"):
            return f"ImprovementModel({self.metric!r}; unfitted)"
        return (f"ImprovementModel({self.metric!r}; patients={self.n_patients_}, rows={self.mixed_.n_obs_}, "
                f"converged={self.converged_}" + (f", SINGULAR: {self.singular_reason_}" if self.singular_ else "") + ")")


def improvement_unit(metric: str) -> str:
    """The unit the improvement of `metric` is counted in: "%" of the baseline, or the metric's own
    unit on an interval scale (a metric the built-in registry does not know: "%")."""
    known = METRICS.get(metric)
    return known.improvement_unit if known is not None else "%"


def _first_small_gain(values: np.ndarray, sessions: np.ndarray, gain: float) -> float:
    """values[i] is E(sessions[i]) on consecutive session counts; first n with E(n+1)-E(n) < gain."""
    steps = np.diff(values)
    consecutive = np.diff(sessions) == 1
    hits = np.flatnonzero((steps < gain) & consecutive)
    return float(sessions[hits[0]]) if hits.size else np.inf


def fit_improvement(
    data: pd.DataFrame | Mapping[str, pd.DataFrame],
    metric: str,
    *,
    covariates: Sequence[str] = (),
    view: str | None = DEFAULT_VIEW,
    patients: pd.DataFrame | None = None,
    time_transform: str = "spline",
    interactions: Sequence[str] = ("age", "skin_type"),
    include_flagged: bool = False,
    random_slope: bool = True,
    reml: bool = True,
    optimizers: Sequence[str] = OPTIMIZERS,
    spline_df: int = 3,
    random_intercept: bool = True,
    start: np.ndarray | None = None,
) -> ImprovementModel:
    """Fit the domain model for one metric: ``ImprovementModel(metric, ...).fit(data)``.

    Parameters
    ----------
    data : dict of DataFrame or DataFrame
        The processed tables (``outcomes.load_processed``), or the outcomes table alone. Given
        the tables, the rows are the reports' rows: front view, quality-flagged photos and
        baselines left out, and the follow-up visits after each course left out (from the
        patients table). Given only the outcomes table, pass ``patients=`` for the same rows.
    metric : str
        The metric to model, e.g. ``"hydration"``.
    covariates, view, patients, time_transform, interactions, include_flagged, random_slope, reml, optimizers, spline_df, random_intercept
        See :class:`ImprovementModel`.
    start : array or None
        A warm start (``mixed_.theta_`` of a similar fit); see :meth:`MixedModel.fit`.

    Returns
    -------
    ImprovementModel
        Fitted.

    Examples
    --------
    >>> from outcomes import models, simulation
    >>> tables = simulation.demo_tables(n_patients=120, seed=3)
    >>> m = models.fit_improvement(tables, "hydration", covariates=["clinic_id"], interactions=())
    >>> int(m.wald_test("clinic_id")["df"]) == m.rows_["clinic_id"].nunique() - 1
    True
    >>> m.compare_levels("clinic_id").columns.tolist()
    ['estimate', 'std_error', 'ci_low', 'ci_high', 'p_value', 'p_unadjusted']
    """
    return ImprovementModel(metric, covariates=covariates, view=view, patients=patients,
                            time_transform=time_transform, interactions=interactions,
                            include_flagged=include_flagged, random_slope=random_slope, reml=reml,
                            optimizers=optimizers, spline_df=spline_df,
                            random_intercept=random_intercept).fit(data, start=start)


def naive_means(data: pd.DataFrame | Mapping[str, pd.DataFrame], metric: str, *, view: str | None = DEFAULT_VIEW,
                include_flagged: bool = False, patients: pd.DataFrame | None = None,
                level: float = 0.95) -> pd.DataFrame:
    """Per-session means of the observed rows: what a spreadsheet would show. Biased upward
    when non-responders stop coming; kept for comparison, not for conclusions. ``data`` and
    the rows as for :func:`fit_improvement`.

    Examples
    --------
    >>> from outcomes import models, simulation
    >>> naive = models.naive_means(simulation.demo_tables(n_patients=120, seed=3), "hydration")
    >>> naive.columns.tolist()
    ['sessions', 'estimate', 'n', 'std_error', 'ci_low', 'ci_high']
    """
    outcomes, patients, _ = split_tables(data, patients)
    rows, _ = model_rows(outcomes, metric, view, include_flagged, patients=patients)
    g = rows.groupby("sessions")[OUTCOME]
    out = g.agg(estimate="mean", sd="std", n="count").reset_index()
    out["std_error"] = out["sd"] / np.sqrt(out["n"])
    out["ci_low"], out["ci_high"] = interval(out["estimate"].to_numpy(), out["std_error"].to_numpy(), level)
    return out.drop(columns="sd")
