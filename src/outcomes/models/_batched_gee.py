"""statsmodels' GEE algorithm with the per-patient solves batched by cluster size.

Why: statsmodels GEE solves V_g⁻¹ [D_g, r_g] patient by patient in Python, several times per
iteration (120,000 solves for 20,000 patients), and rebuilds its per-patient lists first. Here
the working correlation R depends only on the cluster size m (exchangeable: ρ off the
diagonal; AR(1): ρ^|i−j| by position within the cluster, as statsmodels solves it;
independence: I), so patients are stacked by size into (G_m, m, ·) arrays and each size needs
one solve with its m×m R for all its patients at once (V_g = A_g^½ R A_g^½, A_g the variances).

Same iteration as statsmodels' ``GEE.fit`` (GLM start, Fisher-scoring updates of β alternating
with moment updates of ρ, stop when the score norm < ctol after at least one ρ update), same
moment estimators (``ddof_scale=0``, as geepack), same sandwich; a test checks the results equal
statsmodels' own loops on unbalanced data.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

_EPS = np.finfo(float).eps


class Family:
    """Canonical-link family: inverse link, its derivative, variance function."""

    def __init__(self, name: str) -> None:
        if name not in ("gaussian", "binomial", "poisson"):
            raise ValueError(f"family must be gaussian, binomial or poisson, got {name!r}")
        self.name = name

    def mean(self, eta: np.ndarray) -> np.ndarray:
        if self.name == "binomial":
            return 1 / (1 + np.exp(-eta))  # as statsmodels' logit link
        return eta if self.name == "gaussian" else np.exp(eta)

    def mean_deriv(self, eta: np.ndarray) -> np.ndarray:
        if self.name == "gaussian":
            return np.ones_like(eta)
        if self.name == "binomial":
            mu = self.mean(eta)
            return mu * (1 - mu)
        return np.exp(eta)

    def variance(self, mu: np.ndarray) -> np.ndarray:
        if self.name == "gaussian":
            return np.ones_like(mu)
        if self.name == "binomial":
            p = np.clip(mu, _EPS, 1 - _EPS)
            return p * (1 - p)
        return mu


class BatchedGEE:
    """GEE for y ~ x clustered by ``groups`` (any order), working correlation by cluster size."""

    def __init__(self, y: np.ndarray, x: np.ndarray, groups: np.ndarray, time: np.ndarray, family: str,
                 cov_struct: str) -> None:
        if cov_struct not in ("exchangeable", "ar1", "independence"):
            raise ValueError(f"cov_struct must be exchangeable, ar1 or independence, got {cov_struct!r}")
        self.y, self.x = np.asarray(y, dtype=float), np.asarray(x, dtype=float)
        self.family, self.cov_struct = Family(family), cov_struct
        codes = pd.factorize(np.asarray(groups))[0]
        order = np.argsort(codes, kind="stable")  # each cluster's rows together, in data order
        sizes = np.bincount(codes)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self.n_groups = len(sizes)
        self.index = {int(m): order[starts[sizes == m][:, None] + np.arange(m)] for m in np.unique(sizes)}
        if cov_struct == "ar1":  # pairs (j1 > j2) within a cluster and their time distance
            t = np.asarray(time, dtype=float)
            self.pairs = [(idx[:, j1], idx[:, j2]) for m, idx in self.index.items() for j1 in range(m)
                          for j2 in range(j1)]
            self.pair_dist = np.concatenate([np.abs(t[a] - t[b]) for a, b in self.pairs]) if self.pairs else np.zeros(0)
        self.dep = 0.0

    # -- pieces ------------------------------------------------------------------------------
    def _means(self, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        eta = self.x @ beta
        return self.family.mean(eta), eta

    def _std_resid(self, mu: np.ndarray, scale: float = 1.0) -> np.ndarray:
        return (self.y - mu) / np.sqrt(scale * self.family.variance(mu))

    def scale(self, mu: np.ndarray) -> float:
        return float(np.mean(self._std_resid(mu) ** 2))

    def correlation(self, m: int) -> np.ndarray:
        if self.cov_struct == "exchangeable":
            return np.full((m, m), self.dep) + (1 - self.dep) * np.eye(m)
        if self.cov_struct == "ar1":
            i = np.arange(m)
            return self.dep ** np.abs(i[:, None] - i[None, :])
        return np.eye(m)

    def _solved(self, beta: np.ndarray):
        """Per cluster size: D_g, V_g⁻¹ D_g and V_g⁻¹ r_g for all its clusters at once."""
        mu, eta = self._means(beta)
        sdev = np.sqrt(self.family.variance(mu))
        dmat = self.x * self.family.mean_deriv(eta)[:, None]
        resid = self.y - mu
        p = self.x.shape[1]
        for m, idx in self.index.items():
            r = self.correlation(m)
            if np.linalg.eigvalsh(r).min() <= 0:
                raise np.linalg.LinAlgError(f"working correlation for clusters of {m} is not positive definite")
            sd = sdev[idx][:, :, None]  # (G_m, m, 1)
            d = dmat[idx]  # (G_m, m, p)
            rhs = np.concatenate([d / sd, (resid[idx] / sdev[idx])[:, :, None]], axis=2)  # A^-½ [D, r]
            sol = np.linalg.solve(r, rhs.transpose(1, 0, 2).reshape(m, -1))  # R⁻¹ A^-½ [D, r], one solve
            sol = sol.reshape(m, len(idx), p + 1).transpose(1, 0, 2) / sd  # A^-½ R⁻¹ A^-½ [D, r]
            yield d, sol[:, :, :p], sol[:, :, p]

    def _bread_and_scores(self, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Σ_g D_g'V_g⁻¹D_g and the per-cluster scores D_g'V_g⁻¹r_g (one row per cluster)."""
        p = self.x.shape[1]
        bmat, scores = np.zeros((p, p)), []
        for d, vinv_d, vinv_r in self._solved(beta):
            bmat += d.reshape(-1, p).T @ vinv_d.reshape(-1, p)
            scores.append(np.einsum("gip,gi->gp", d, vinv_r))
        return bmat, np.concatenate(scores)

    def _update_dependence(self, mu: np.ndarray) -> None:
        if self.cov_struct == "exchangeable":
            r = self._std_resid(mu)
            scale = np.mean(r**2)
            pairs = sum(float(np.sum(r[idx].sum(axis=1) ** 2 - (r[idx] ** 2).sum(axis=1))) / 2
                        for idx in self.index.values())
            n_pairs = sum(len(idx) * m * (m - 1) / 2 for m, idx in self.index.items())
            self.dep = pairs / scale / n_pairs
        elif self.cov_struct == "ar1":
            self.dep = self._ar1_nogrid(mu)

    def _ar1_nogrid(self, mu: np.ndarray) -> float:
        """statsmodels' Autoregressive(grid=False): weighted least squares of each value on each
        earlier one of its cluster, r_j1 ≈ ρ^d r_j2, minimised by Brent from the same brackets."""
        if not self.pairs:
            return self.dep
        r = self._std_resid(mu, self.scale(mu))
        first = np.concatenate([r[a] for a, _ in self.pairs])
        second = np.concatenate([r[b] for _, b in self.pairs])
        dist = self.pair_dist
        var = (1.0 - self.dep ** (2 * dist)) / (1.0 - self.dep**2)
        wts = 1.0 / var
        wts /= wts.sum()

        def fitfunc(a):
            return np.dot((first - a**dist * second) ** 2, wts)

        b_lft, f_lft = 0.0, fitfunc(0.0)
        b_ctr, f_ctr = 0.5, fitfunc(0.5)
        while f_ctr > f_lft:
            b_ctr /= 2
            f_ctr = fitfunc(b_ctr)
            if b_ctr < 1e-8:
                return 0.0
        b_rgt, f_rgt = 0.75, fitfunc(0.75)
        while f_rgt < f_ctr:
            b_rgt = b_rgt + (1.0 - b_rgt) / 2
            f_rgt = fitfunc(b_rgt)
            if b_rgt > 1.0 - 1e-6:
                raise ValueError("Autoregressive: unable to find right bracket")
        from scipy import optimize  # here, not at import: scipy.optimize is slow to load

        return float(optimize.brent(fitfunc, brack=(b_lft, b_ctr, b_rgt)))

    def glm_start(self, max_iter: int = 100) -> np.ndarray:
        """The independence (GLM) fit by iteratively reweighted least squares, as GLM.fit."""
        if self.family.name == "gaussian":
            return np.linalg.lstsq(self.x, self.y, rcond=None)[0]
        mu = (self.y + 0.5) / 2 if self.family.name == "binomial" else (self.y + self.y.mean()) / 2
        eta = np.log(mu / (1 - mu)) if self.family.name == "binomial" else np.log(mu)
        beta = np.zeros(self.x.shape[1])
        for _ in range(max_iter):
            deriv = self.family.mean_deriv(eta)
            w = deriv**2 / self.family.variance(mu)
            z = eta + (self.y - mu) / deriv
            sw = np.sqrt(w)
            new = np.linalg.lstsq(self.x * sw[:, None], z * sw, rcond=None)[0]
            done = np.allclose(new, beta, rtol=1e-13, atol=1e-13)
            beta = new
            mu, eta = self._means(beta)
            if done:
                break
        return beta

    # -- the fit -----------------------------------------------------------------------------
    def fit(self, max_iter: int = 60, ctol: float = 1e-6) -> dict:
        beta = self.glm_start()
        score_norm, assoc_updates, singular = -1.0, 0, False
        for _ in range(max_iter):
            bmat, scores = self._bread_and_scores(beta)
            score = scores.sum(axis=0)
            try:
                update = np.linalg.solve(bmat, score)
            except np.linalg.LinAlgError:
                update = np.linalg.pinv(bmat) @ score
            beta = beta + update
            score_norm = float(np.sqrt(np.sum(score**2)))
            if score_norm < ctol and assoc_updates > 0:
                break
            self._update_dependence(self._means(beta)[0])
            assoc_updates += 1
        bmat, scores = self._bread_and_scores(beta)
        try:
            bread = np.linalg.inv(bmat)
        except np.linalg.LinAlgError:
            bread, singular = np.linalg.pinv(bmat), True
        mu = self._means(beta)[0]
        scale = self.scale(mu)
        return {"params": beta, "cov_robust": bread @ (scores.T @ scores) @ bread, "cov_naive": bread * scale,
                "scale": scale, "dependence": float(self.dep), "converged": score_norm < ctol and not singular,
                "score_norm": score_norm}
