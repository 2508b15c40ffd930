"""statsmodels' MixedLM, with its likelihood, score and Hessian computed from per-group sums.

Why: MixedLM evaluates the likelihood with a Python loop over groups (patients), so one
evaluation of 20,000 patients takes seconds and a fit minutes. With random effects on a few
columns (here: intercept and slope), everything the likelihood needs is a handful of sums per
group — Z'Z, Z'X, Z'y — plus X'X, X'y and y'y overall. Woodbury and Sylvester then give
V⁻¹ products and log-determinants as batched q×q algebra over all groups at once.

Same parametrisation, same formulas, same optimizers, same results object as statsmodels (the
tests compare likelihood, score and Hessian with statsmodels' own loops); only the arithmetic
is reorganised. Models outside that case (variance components, penalties, fixed parameters)
fall back to statsmodels' loops.

Notation, per group g with V_g = I + Z Ψ Z' (Ψ: random-effect covariance relative to the
residual variance): W = (I + S Ψ)⁻¹ with S = Z'Z, so Z'V⁻¹Z = W S, Z'V⁻¹X = W Z'X,
Z'V⁻¹r = W Z'r, a'V⁻¹b = a'b − (Z'a)' Ψ W (Z'b), and log|V| = log|I + S Ψ|.
"""
from __future__ import annotations

import functools
import warnings

import numpy as np
import pandas as pd
import statsmodels
from scipy import sparse
from statsmodels.base.model import LikelihoodModel
from statsmodels.regression import mixed_linear_model as _sm_mixed
from statsmodels.regression.mixed_linear_model import MixedLM, MixedLMParams, MixedLMResults, MixedLMResultsWrapper

# The statsmodels releases whose MixedLM internals this module was read against (the tests in
# tests/test_models_mixed.py pin its numbers to statsmodels' own). Any other release, or one
# without the internals below, gets plain statsmodels (its per-patient loops) and a warning.
# (0.15.0 is the lock's and runs the tests; 0.14.4's MixedLM.__init__, _reparam, _augment_exog,
# get_fe_params, get_scale, loglike, hessian and fit differ from 0.15.0's only in formatting and
# warning categories, checked by comparing their source.)
TESTED_STATSMODELS = ("0.14", "0.15")
# what the batched path reads, replaces or re-implements (MixedLM.__init__ without the split)
REQUIRED_INTERNALS = {
    MixedLM: ("_reparam", "_make_param_names", "group_list", "_augment_exog", "get_fe_params", "get_scale",
              "loglike", "score", "hessian"),
    MixedLMParams: ("from_packed", "get_packed"),
    _sm_mixed: ("VCSpec", "_dot"),
}
# what MixedLM.__init__ builds per group, one Python object per patient: statsmodels' own loops
# read it, the batched path never does. At 100,000 patients building it was 19-35% of a whole
# fit_mixed (cProfile: 3.4 s of 9.8 s), so it is built only if something asks for it.
_SPLIT = ("row_indices", "endog_li", "exog_li", "exog_re_li", "exog_re2_li", "_aex_r", "_aex_r2")


def _one_blas_thread(method):
    """Run ``method`` with BLAS on one thread. Its products are tall and thin (G rows, a handful
    of columns): a second thread gains little, and when other jobs share the cores OpenBLAS's
    threads wait for each other. Measured on the 2-core machine with other jobs running (load
    5-6): a 100,000-patient fit took 3.3-5.1 s with OpenBLAS's two threads, 1.2-2.2 s with one
    (idle machine, two threads: 0.86 s)."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        global _BLAS
        if _BLAS is None:
            from threadpoolctl import ThreadpoolController

            _BLAS = ThreadpoolController()  # found once (~1 ms); a limit then costs microseconds
        with _BLAS.limit(limits=1, user_api="blas"):
            return method(*args, **kwargs)

    return wrapper


_BLAS = None


class StatsmodelsInternalsWarning(RuntimeWarning):
    """The batched path is off: statsmodels is not a release it was checked against."""


def accelerator_problem() -> str | None:
    """Why the batched path cannot be used with the installed statsmodels (None: it can)."""
    release = ".".join(statsmodels.__version__.split(".")[:2])
    if release not in TESTED_STATSMODELS:
        return f"statsmodels {statsmodels.__version__} is not one of the tested releases {TESTED_STATSMODELS}"
    missing = [f"{getattr(owner, '__name__', owner)}.{name}" for owner, names in REQUIRED_INTERNALS.items()
               for name in names if not hasattr(owner, name)]
    if missing:
        return f"statsmodels {statsmodels.__version__} lacks {', '.join(missing)}"
    return None


class GroupedMixedLM(MixedLM):
    """MixedLM(endog, exog, groups, exog_re) with batched per-group algebra (plain MixedLM, with
    a StatsmodelsInternalsWarning, when :func:`accelerator_problem` finds a reason)."""

    def __init__(self, endog, exog, groups, exog_re, use_sqrt: bool = True) -> None:
        problem = accelerator_problem()
        self._batched = problem is None
        z = np.asarray(exog_re, dtype=float)
        self._re_sq = (z * z).sum(axis=0)  # Σ z² per random-effect column (on_boundary's scale)
        self._cov_sing = 0  # statsmodels' loops count singular covariances here (set by MixedLM.fit)
        if not self._batched:
            warnings.warn(f"{problem}: mixed models are fitted with statsmodels' own per-patient loops "
                          "(same estimates, much slower)", StatsmodelsInternalsWarning, stacklevel=2)
            super().__init__(endog, exog, groups=groups, exog_re=exog_re, use_sqrt=use_sqrt)
            return
        self._init_without_split(endog, exog, groups, exog_re, use_sqrt)
        self._sums(groups, z)

    @_one_blas_thread
    def _sums(self, groups, z: np.ndarray) -> None:
        """The per-group sums everything batched is computed from."""
        y = np.asarray(self.endog, dtype=float)
        x = np.asarray(self.exog, dtype=float)
        codes, uniques = pd.factorize(np.asarray(groups), sort=False)
        n, q = x.shape[0], z.shape[1]
        member = sparse.csr_array((np.ones(n), (codes, np.arange(n))), shape=(len(uniques), n))
        self._zz = np.stack([member @ (z[:, [a]] * z) for a in range(q)], axis=1)  # (G, q, q)
        self._zx = np.stack([member @ (z[:, [a]] * x) for a in range(q)], axis=1)  # (G, q, p)
        self._zy = member @ (z * y[:, None])  # (G, q)
        self._xx, self._xy, self._yy = x.T @ x, x.T @ y, float(y @ y)

    def _init_without_split(self, endog, exog, groups, exog_re, use_sqrt: bool) -> None:
        """MixedLM.__init__ (statsmodels 0.14/0.15, no variance components) up to, not including,
        the per-group split (see _SPLIT), which __getattr__ builds on first use."""
        if np.ndim(exog) == 1:
            exog = np.asarray(exog)[:, None]
        if np.ndim(exog_re) == 1:
            exog_re = np.asarray(exog_re)[:, None]
        LikelihoodModel.__init__(self, endog, exog, groups=groups, exog_re=exog_re, missing="none")
        self.use_sqrt, self.reml, self.fe_pen, self.re_pen = use_sqrt, True, None, None
        self.k_vc, self.exog_vc = 0, _sm_mixed.VCSpec([], [], [])
        self._init_keys.extend(["use_sqrt", "exog_vc"])
        self.k_fe = exog.shape[1]
        self.data.exog_re = exog_re
        self.exog_re = np.asarray(exog_re)
        self.k_re = self.exog_re.shape[1]
        self.k_re2 = self.k_re * (self.k_re + 1) // 2
        if not self.data._param_names:
            self.data.param_names, self.data.exog_re_names, self.data.exog_re_names_full = (
                self._make_param_names(exog_re))
        self.k_params = self.k_fe + self.k_re2
        self.group_labels = sorted(pd.unique(np.asarray(groups)))  # = sorted(set(groups)), in C
        self.n_groups = len(self.group_labels)
        self.nobs = self.n_totobs = len(self.endog)
        if self.exog_names is None:
            self.exog_names = [f"FE{k + 1:d}" for k in range(self.exog.shape[1])]
        self._lin, self._quad = self._reparam()

    def __getattr__(self, name: str):
        # only called when ordinary lookup fails: the per-group split, built as MixedLM.__init__ does
        if name in _SPLIT and self.__dict__.get("_batched"):
            self._build_split()
            return self.__dict__[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _build_split(self) -> None:
        """MixedLM.__init__'s per-group split, line for line, for statsmodels' own loops."""
        row_indices = {s: [] for s in self.group_labels}
        for i, g in enumerate(self.groups):
            row_indices[g].append(i)
        self.row_indices = row_indices
        self.endog_li = self.group_list(self.endog)
        self.exog_li = self.group_list(self.exog)
        self.exog_re_li = self.group_list(self.exog_re)
        self.exog_re2_li = [np.dot(x.T, x) for x in self.exog_re_li]
        self._aex_r, self._aex_r2 = [], []
        for i in range(self.n_groups):
            a = self._augment_exog(i)
            self._aex_r.append(a)
            self._aex_r2.append(_sm_mixed._dot(a.T, a))

    # -- when the batched path applies ---------------------------------------------------
    def _grouped(self) -> bool:
        return (self._batched and self.k_vc == 0 and self.k_re > 0 and getattr(self, "cov_pen", None) is None
                and getattr(self, "fe_pen", None) is None and getattr(self, "_freepat", None) is None)

    def _as_params(self, params, has_fe: bool) -> MixedLMParams:
        if type(params) is MixedLMParams:
            return params
        return MixedLMParams.from_packed(params, self.k_fe, self.k_re, self.use_sqrt, has_fe=has_fe)

    def _from_chol(self, chol: np.ndarray) -> MixedLMParams:
        return MixedLMParams.from_packed(np.asarray(chol, dtype=float), self.k_fe, self.k_re, use_sqrt=True,
                                         has_fe=False)

    def _gls(self, cov_re: np.ndarray, fe_params: np.ndarray | None = None) -> dict:
        """The pieces of the likelihood at relative covariance cov_re (GLS fixed effects unless
        given). The last cov_re's are kept: optimizers ask for likelihood and score at one point,
        and the Newton check and results_at ask again at given fixed effects (5 of 18
        evaluations of a fit recomputed everything for that, cProfile); only the residual parts
        depend on them."""
        cov_re = np.asarray(cov_re, dtype=float)
        key = cov_re.tobytes()
        if getattr(self, "_gls_cache", (None,))[0] != key:
            self._gls_cache = (key, self._gls_at(cov_re))
        g = self._gls_cache[1]
        if fe_params is None:
            return g
        return {**g, **self._residual_parts(g, np.asarray(fe_params, dtype=float))}

    def _gls_at(self, cov_re: np.ndarray) -> dict:
        # about half of a fit at 100,000 patients (cProfile): stacked q×q products as sums of
        # q broadcast products (_bmm), sums over groups as single matrix-vector products
        q = self.k_re
        w, logdet = _inv_logdet(np.eye(q) + _bmm(self._zz, cov_re))  # W (G, q, q) and Σ log|I + S Ψ|
        k = _bmm(cov_re, w)  # Ψ W = (Ψ⁻¹ + S)⁻¹ when Ψ is invertible
        kzx = _bmm(k, self._zx)
        xvx = self._xx - _group_sum(self._zx, kzx)
        xvy = self._xy - kzx.reshape(-1, kzx.shape[-1]).T @ self._zy.ravel()
        yvy = self._yy - float(np.sum(self._zy * _apply(k, self._zy)))
        g = {"w": w, "xvx": xvx, "xvy": xvy, "yvy": yvy, "logdet_v": logdet}
        return {**g, **self._residual_parts(g, np.linalg.solve(xvx, xvy))}

    def _residual_parts(self, g: dict, beta: np.ndarray) -> dict:
        """r'V⁻¹r (qf) and Z'V⁻¹r per group (u) for residuals r = y − Xβ."""
        qf = g["yvy"] - 2 * beta @ g["xvy"] + beta @ g["xvx"] @ beta
        zx_beta = (self._zx.reshape(-1, self._zx.shape[-1]) @ beta).reshape(self._zy.shape)
        return {"beta": beta, "qf": qf, "u": _apply(g["w"], self._zy - zx_beta)}

    def _fac(self) -> int:
        return self.n_totobs - self.k_fe if self.reml else self.n_totobs

    # -- statsmodels' interface -------------------------------------------------------------
    @_one_blas_thread
    def fit(self, *args, **kwargs):
        return super().fit(*args, **kwargs)

    def get_fe_params(self, cov_re, vcomp, tol=1e-10):
        if not self._grouped() or self.k_fe == 0:
            return super().get_fe_params(cov_re, vcomp, tol)
        return self._gls(np.asarray(cov_re, dtype=float))["beta"], False

    def get_scale(self, fe_params, cov_re, vcomp):
        if not self._grouped():
            return super().get_scale(fe_params, cov_re, vcomp)
        return self._gls(np.asarray(cov_re, dtype=float), fe_params)["qf"] / self._fac()

    def loglike(self, params, profile_fe=True):
        if not self._grouped():
            return super().loglike(params, profile_fe)
        params = self._as_params(params, has_fe=False)
        g = self._gls(params.cov_re, None if profile_fe else params.fe_params)
        fac = self._fac()
        like = -g["logdet_v"] / 2 - fac * np.log(g["qf"]) / 2
        if self.reml:
            like -= np.linalg.slogdet(g["xvx"])[1] / 2
        return like - fac * np.log(2 * np.pi) / 2 + fac * np.log(fac) / 2 - fac / 2

    def score(self, params, profile_fe=True):
        if not (self._grouped() and profile_fe):
            return super().score(params, profile_fe)
        packed = params
        params = self._as_params(params, has_fe=False)
        d = self._score_matrix(params.cov_re)
        if not self.use_sqrt:
            return _packed(d)
        rows, cols = np.tril_indices(self.k_re)
        if type(packed) is MixedLMParams:
            lower = np.linalg.cholesky(params.cov_re)
        else:  # the optimizer's own L (any signs, singular allowed), not a re-factorisation of L L'
            lower = np.zeros((self.k_re, self.k_re))
            lower[rows, cols] = np.asarray(packed, dtype=float)[: rows.size]
        return 2 * (d @ lower)[rows, cols]  # Ψ = L L': d/dL_ab = 2 (D L)_ab

    def _score_matrix(self, cov_re: np.ndarray) -> np.ndarray:
        """D with d loglike = tr(D dΨ) (β and the residual variance profiled out)."""
        g = self._gls(cov_re)
        w, u = g["w"], g["u"]
        # 25-32% of a fit at 100,000 patients (cProfile): each sum over groups is one product of
        # (G, ·) matrices (BLAS, no transposed copies), then a trace over the small cells
        q, p, n_groups = self.k_re, self.k_fe, u.shape[0]
        ws = (w.reshape(n_groups, q * q).T @ self._zz.reshape(n_groups, q * q)).reshape(q, q, q, q)
        d = -np.einsum("abbc->ac", ws) / 2 + self._fac() / (2 * g["qf"]) * (u.T @ u)  # Σ_g W S
        if self.reml:
            c = _bmm(w, self._zx)  # Z'V⁻¹X
            c_xvx_inv = c.reshape(-1, p) @ np.linalg.inv(g["xvx"])
            cmc = (c_xvx_inv.reshape(n_groups, q * p).T @ c.reshape(n_groups, q * p)).reshape(q, p, q, p)
            d += np.einsum("apbp->ab", cmc) / 2  # Σ_g C xvx⁻¹ C'

        return (d + d.T) / 2

    def hessian(self, params):
        """Hessian in (fixed effects, Ψ) with the residual variance profiled out, as statsmodels'.

        The last answer is kept: the Newton check's final point is the point results_at
        reports, and each Hessian was ~9% of a fit at 100,000 patients (cProfile)."""
        if not self._grouped():
            return super().hessian(params)
        params = self._as_params(params, has_fe=True)
        key = (np.asarray(params.cov_re, dtype=float).tobytes(), np.asarray(params.fe_params, dtype=float).tobytes(),
               self.reml)
        if getattr(self, "_hessian_cache", (None,))[0] != key:
            self._hessian_cache = (key, self._hessian_at(params))
        return self._hessian_cache[1].copy(), False

    def _hessian_at(self, params: MixedLMParams) -> np.ndarray:
        # Every term is a sum over groups of products of a few entries of u, A = Z'V⁻¹Z and
        # C = Z'V⁻¹X, so each is one matrix product over the G groups (BLAS) of those entries;
        # E_j (the derivative direction of packed parameter j) only picks which cells to add.
        # The per-group (m, G, q, ·) stacks this replaces made the Hessians ~27% of a fit at
        # 100,000 patients (cProfile), einsum before them ~36%.
        g = self._gls(params.cov_re, params.fe_params)
        w, u, xvx, rvir, fac = g["w"], g["u"], g["xvx"], g["qf"], self._fac()
        q, k_fe, n_groups = self.k_re, self.k_fe, u.shape[0]
        a = _bmm(w, self._zz).reshape(n_groups, q * q)  # A per group, cell (r, s) at r*q + s
        c = _bmm(w, self._zx).reshape(n_groups, q * k_fe)  # C per group, row r at r*p ... r*p + p
        rows, cols = np.tril_indices(q)
        cells = [[(r, s), (s, r)] if r != s else [(r, r)] for r, s in zip(rows, cols)]  # E_j = Σ e_r e_s'
        m = len(cells)
        uu = u.T @ u  # Σ_g u_r u_s
        uc = (u.T @ c).reshape(q, q, k_fe)  # [s, r] = Σ_g u_s C_r
        uua = ((u[:, :, None] * u[:, None, :]).reshape(n_groups, q * q).T @ a).reshape(q, q, q, q)  # u_s u_s' A_rr'
        aa = (a.T @ a).reshape(q, q, q, q)  # [s, r', s', r] = Σ_g A_sr' A_s'r
        b = np.array([sum(uu[r, s] for r, s in cells[j]) for j in range(m)])  # u'E_j u
        hess_fere = -fac / rvir * np.array([sum(uc[s, r] for r, s in cells[j]) for j in range(m)])
        d = np.zeros((m, m))  # 2 Σ_g (E_j u)' A (E_k u)
        tr_eaea = np.zeros((m, m))  # Σ_g tr(E_j A E_k A)
        for j in range(m):
            for k in range(m):
                for r, s in cells[j]:
                    for r2, s2 in cells[k]:
                        d[j, k] += 2 * uua[s, s2, r, r2]
                        tr_eaea[j, k] += aa[s, r2, s2, r]
        hess_re = tr_eaea / 2 - fac / 2 * (d / rvir - np.outer(b, b) / rvir**2)
        if self.reml:
            cc = (c.T @ c).reshape(q, k_fe, q, k_fe)  # [r, :, s, :] = Σ_g C_r' C_s
            xtax = np.stack([sum(cc[r, :, s, :] for r, s in cells[j]) for j in range(m)])  # C'E_j C
            ql = np.linalg.solve(xvx[None], xtax)
            # [s, r'][r, :, s', :] = Σ_g A_sr' C_r' C_s'
            cac = {(s, r2): ((c * a[:, [s * q + r2]]).T @ c).reshape(q, k_fe, q, k_fe)
                   for s in range(q) for r2 in range(q)}
            xvx_inv = np.linalg.inv(xvx)
            for j1 in range(m):
                for j2 in range(j1 + 1):
                    f = sum(cac[s, r2][r, :, s2, :] for r, s in cells[j2] for r2, s2 in cells[j1])  # C'E_j2 A E_j1 C
                    extra = (np.sum(ql[j1].T * ql[j2]) - np.trace(xvx_inv @ (f + f.T))) / 2
                    hess_re[j1, j2] += extra
                    if j1 != j2:
                        hess_re[j2, j1] += extra
        hess = np.zeros((k_fe + m, k_fe + m))
        hess[:k_fe, :k_fe] = -fac * xvx / rvir
        hess[:k_fe, k_fe:] = hess_fere.T
        hess[k_fe:, :k_fe] = hess_fere
        hess[k_fe:, k_fe:] = hess_re
        return hess

    @_one_blas_thread
    def results_at(self, chol: np.ndarray, reml: bool) -> MixedLMResultsWrapper:
        """statsmodels' results object at a given point, exactly as the end of MixedLM.fit
        builds it, without running an optimizer (which may step off a boundary optimum)."""
        self.reml, self.cov_pen, self.fe_pen, self._freepat = reml, None, None, None
        params = self._from_chol(chol)
        cov_re_unscaled, vcomp_unscaled = params.cov_re, params.vcomp
        fe_params, _ = self.get_fe_params(cov_re_unscaled, vcomp_unscaled)
        params.fe_params = fe_params
        scale = self.get_scale(fe_params, cov_re_unscaled, vcomp_unscaled)
        hess, _ = self.hessian(params)
        results = MixedLMResults(self, params.get_packed(use_sqrt=False, has_fe=True), np.linalg.inv(-hess) / scale)
        results.params_object = params
        results.fe_params = fe_params
        results.cov_re = scale * cov_re_unscaled
        results.vcomp = scale * vcomp_unscaled
        results.scale = scale
        results.cov_re_unscaled = cov_re_unscaled
        results.method = "REML" if reml else "ML"
        results.converged = True
        results.hist = None
        results.reml = reml
        results.cov_pen = None
        results.k_fe, results.k_re, results.k_re2, results.k_vc = self.k_fe, self.k_re, self.k_re2, self.k_vc
        results.use_sqrt = self.use_sqrt
        results.freepat = None
        return MixedLMResultsWrapper(results)

    def on_boundary(self, cov_re: np.ndarray, tol: float = 1e-6) -> bool:
        """Is Ψ at the edge of its space: a random effect whose variance is negligible next to
        the residual's (on the data's own scale), or random effects perfectly correlated?"""
        var = np.diag(cov_re)
        on_data_scale = var * self._re_sq / self.n_totobs
        if np.any(on_data_scale < tol):
            return True
        corr = cov_re / np.sqrt(np.outer(var, var))
        return bool(np.linalg.eigvalsh(corr).min() < tol)

    # -- a second-order check of the optimum ------------------------------------------------
    def profile_derivatives(self, chol: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """Profiled log-likelihood, gradient and Hessian in the packed Cholesky factor of Ψ.

        Ψ = L L' with L free (no constraint), so a variance at zero is an ordinary stationary
        point. The Hessian is statsmodels' (in Ψ, at the GLS fixed effects) with the fixed
        effects profiled out (Schur complement), carried to L by the chain rule.
        """
        q, k_fe = self.k_re, self.k_fe
        rows, cols = np.tril_indices(q)
        lower = np.zeros((q, q))
        lower[rows, cols] = chol
        params = self._from_chol(chol)
        cov_re = params.cov_re
        params.fe_params = self.get_fe_params(cov_re, params.vcomp)[0]
        loglike = self.loglike(params, profile_fe=True)
        grad_psi = self._psi_gradient(params)
        full, _ = self.hessian(params)
        h_fe, h_cross, h_psi = full[:k_fe, :k_fe], full[k_fe:, :k_fe], full[k_fe:, k_fe:]
        hess_psi = h_psi - h_cross @ np.linalg.solve(h_fe, h_cross.T)
        m = rows.size
        jac = np.zeros((m, m))  # d Ψ_packed / d L_packed
        second = np.zeros((m, m, m))  # d² Ψ_packed / d L_m d L_n
        unit = np.zeros((m, q, q))
        unit[np.arange(m), rows, cols] = 1.0
        for i in range(m):
            jac[:, i] = (unit[i] @ lower.T + lower @ unit[i].T)[rows, cols]
            for j in range(m):
                second[:, i, j] = (unit[i] @ unit[j].T + unit[j] @ unit[i].T)[rows, cols]
        grad = jac.T @ grad_psi
        hess = jac.T @ hess_psi @ jac + np.einsum("k,kij->ij", grad_psi, second)
        return float(loglike), grad, (hess + hess.T) / 2

    def _psi_gradient(self, params: MixedLMParams) -> np.ndarray:
        """Gradient of the profiled log-likelihood in the packed Ψ (not its Cholesky factor)."""
        if self._grouped():
            return _packed(self._score_matrix(params.cov_re))
        use_sqrt, self.use_sqrt = self.use_sqrt, False  # statsmodels' score in Ψ itself
        try:
            return np.asarray(super().score(params, profile_fe=True), dtype=float)
        finally:
            self.use_sqrt = use_sqrt

    @_one_blas_thread
    def newton(self, chol: np.ndarray, max_iter: int = 50) -> dict:
        """Newton's method on the profiled likelihood from ``chol`` (packed Cholesky factor).

        Scale-free: steps and the stopping rule use the Hessian, so badly scaled time units do
        not fool it the way a gradient tolerance does. Returns the point reached, the
        Newton decrement there (the likelihood a further Newton step would gain; ~0 at a
        maximum) and the smallest eigenvalue of the Jacobi-scaled negative Hessian
        (> 0: a strict maximum; ~0: the data cannot pin every variance parameter).
        """
        x = np.asarray(chol, dtype=float).copy()
        for iteration in range(max_iter + 1):
            loglike, grad, hess = self.profile_derivatives(x)
            scale = 1 / np.sqrt(np.maximum(np.abs(np.diag(hess)), 1e-300))
            neg = -(scale[:, None] * hess * scale[None, :])
            curvature = float(np.linalg.eigvalsh(neg).min())
            if not (np.isfinite(loglike) and np.all(np.isfinite(neg))) or curvature <= 0:
                return {"chol": x, "loglike": loglike, "decrement": np.inf, "curvature": curvature,
                        "iterations": iteration}
            step = scale * np.linalg.solve(neg, scale * grad)
            decrement = float(grad @ step) / 2
            if decrement < 1e-10 or iteration == max_iter:
                break
            t = 1.0
            while t > 1e-8 and not self.loglike(self._from_chol(x + t * step)) >= loglike:
                t /= 2
            if t <= 1e-8:
                break
            x = x + t * step
        return {"chol": x, "loglike": loglike, "decrement": decrement, "curvature": curvature,
                "iterations": iteration}


def _group_sum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Σ_g a_g' b_g for stacks a (G, q, k) and b (G, q, l), as one matrix product."""
    return a.reshape(-1, a.shape[-1]).T @ b.reshape(-1, b.shape[-1])


def _packed(d: np.ndarray) -> np.ndarray:
    """Gradient in the packed lower triangle of a symmetric Ψ from D (dloglike = tr(D dΨ)):
    an off-diagonal entry stands for two cells."""
    rows, cols = np.tril_indices(d.shape[0])
    return np.where(rows == cols, 1.0, 2.0) * d[rows, cols]


def _inv_logdet(a: np.ndarray) -> tuple[np.ndarray, float]:
    """Inverses of a stack of q×q matrices (G, q, q) and the sum of their log|det|.

    For q ≤ 2 (random intercept, intercept and slope) by the closed forms: LAPACK's per-matrix
    calls (inv and slogdet) were ~35% of each likelihood evaluation, and the evaluations about
    half of a fit at 100,000 patients (cProfile)."""
    q = a.shape[-1]
    if q == 1:
        return 1 / a, float(np.log(np.abs(a[:, 0, 0])).sum())
    if q == 2:
        det = a[:, 0, 0] * a[:, 1, 1] - a[:, 0, 1] * a[:, 1, 0]
        inv = np.empty_like(a)
        inv[:, 0, 0], inv[:, 1, 1] = a[:, 1, 1], a[:, 0, 0]
        inv[:, 0, 1], inv[:, 1, 0] = -a[:, 0, 1], -a[:, 1, 0]
        return inv / det[:, None, None], float(np.log(np.abs(det)).sum())
    return np.linalg.inv(a), float(np.linalg.slogdet(a)[1].sum())


def _apply(m: np.ndarray, v: np.ndarray) -> np.ndarray:
    """m_g v_g for a stack of matrices (G, q, q) and vectors (G, q)."""
    out = m[:, :, 0] * v[:, [0]]
    for j in range(1, v.shape[1]):
        out += m[:, :, j] * v[:, [j]]
    return out


def _bmm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a_g b_g for stacks (G, q, q) and (G, q, k), either of them possibly one (q, ·) matrix.

    A sum of q broadcast products: for q = 1 or 2 this is 2-3x faster than numpy's stacked
    matmul, which runs a small product per group."""
    out = a[..., :, 0, None] * b[..., None, 0, :]
    for j in range(1, a.shape[-1]):
        out += a[..., :, j, None] * b[..., None, j, :]
    return out


def off_the_boundary(chol: np.ndarray, share: float = 0.1) -> np.ndarray:
    """A packed Cholesky factor with every diagonal entry at least ``share`` of its row's length.

    Where a diagonal entry is 0 (random effects perfectly correlated, or a variance at 0) the
    likelihood is symmetric in it, so its gradient is 0 and gradient methods cannot leave, even
    when the maximum lies inside. A start from here can."""
    chol = np.asarray(chol, dtype=float)
    q = int(round((np.sqrt(8 * chol.size + 1) - 1) / 2))
    rows, cols = np.tril_indices(q)
    lower = np.zeros((q, q))
    lower[rows, cols] = chol
    for j in range(q):
        floor = share * np.linalg.norm(lower[j, : j + 1])
        if abs(lower[j, j]) < floor:
            lower[j, j] = floor
    return lower[rows, cols]
