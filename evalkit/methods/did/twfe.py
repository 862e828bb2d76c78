"""Two-way fixed-effects regressions: the numerical core of ``did``.

A model has a unit effect, a period effect and *cells*: indicator columns of which each
observation belongs to at most one (the treated x post dummy ``D`` is one cell; Wooldridge's
extended TWFE has one cell per adoption cohort and period). The design is held as a sparse
matrix ``X = [unit dummies | period dummies except the first | cell dummies]``, so that

* ordinary least squares (``fit_ols``) and the Poisson pseudo-maximum-likelihood fit
  (``fit_poisson``, Newton's method with step halving, the log link and an exposure
  offset) solve small dense normal equations of size units + periods - 1 + cells,
  whatever the number of observations: fast enough to refit thousands of times for
  randomization inference;
* the cluster-robust ("sandwich") covariance sums the scores by cluster
  (``cluster_covariance``);
* ``TwoWayProjection`` partials the unit and period effects out of any vector (the
  annihilator ``M`` of the wild cluster bootstrap).

Everything is checked against statsmodels (OLS and GLM with dummy columns) and linearmodels
PanelOLS in tests/test_did.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg, sparse


@dataclass
class FixedEffectsDesign:
    """Unit, period and cell codes of the observations in a fit.

    Parameters
    ----------
    unit, time : int arrays
        Codes ``0..n_units-1`` and ``0..n_times-1``. Every code must occur.
    cell : int array
        ``-1`` for an observation in no cell, else ``0..n_cells-1``.
    """

    unit: np.ndarray
    time: np.ndarray
    cell: np.ndarray
    n_units: int
    n_times: int
    n_cells: int

    def __post_init__(self):
        n = len(self.unit)
        rows = np.arange(n)
        cols = [self.unit]
        row_parts = [rows]
        has_time = self.time > 0
        row_parts.append(rows[has_time])
        cols.append(self.n_units + self.time[has_time] - 1)
        has_cell = self.cell >= 0
        row_parts.append(rows[has_cell])
        cols.append(self.n_units + self.n_times - 1 + self.cell[has_cell])
        r = np.concatenate(row_parts)
        c = np.concatenate(cols)
        self.X = sparse.csr_matrix((np.ones(len(r)), (r, c)), shape=(n, self.n_params))

    @property
    def n_params(self) -> int:
        return self.n_units + self.n_times - 1 + self.n_cells

    @property
    def cell_slice(self) -> slice:
        start = self.n_units + self.n_times - 1
        return slice(start, start + self.n_cells)

    @property
    def n_nested(self) -> int:
        """Parameters nested in unit clusters (the unit effects)."""
        return self.n_units

    def cross(self, weights: np.ndarray) -> np.ndarray:
        """X' diag(weights) X, dense."""
        return (self.X.T @ self.X.multiply(weights[:, None])).toarray()

    def subset(self, keep: np.ndarray) -> FixedEffectsDesign:
        """The same codes on a subset of rows (codes must all still occur)."""
        return FixedEffectsDesign(self.unit[keep], self.time[keep], self.cell[keep],
                                  self.n_units, self.n_times, self.n_cells)


def structured_solve(design: FixedEffectsDesign, weights: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve ``X' diag(weights) X  x = rhs`` by eliminating the diagonal blocks.

    The period block is diagonal (an observation has one period) and so is the cell block
    (it has at most one cell). Cells are eliminated first; when every cell lies in one
    period (Wooldridge's cohort x period cells, or no cells) the period block stays
    diagonal and is eliminated next, leaving a units x units system; otherwise the periods
    are eliminated first, leaving units + cells. Either way the dense solve is small, which
    keeps thousands of refits fast (and clear of multi-threaded BLAS on tiny matrices).
    """
    U, T, K = design.n_units, design.n_times, design.n_cells
    unit, time, cell = design.unit, design.time, design.cell
    a = np.bincount(unit, weights, minlength=U)
    l_full = np.bincount(time, weights, minlength=T)
    W_full = np.bincount(unit * T + time, weights, minlength=U * T).reshape(U, T)
    g_a, g_l, g_t = rhs[:U], rhs[U:U + T - 1], rhs[U + T - 1:]
    l, W = l_full[1:], W_full[:, 1:]
    if K == 0:
        return _two_block(a, W, l, g_a, g_l, np.empty(0))
    has = cell >= 0
    c, u, t, w = cell[has], unit[has], time[has], weights[has]
    d = np.bincount(c, w, minlength=K)
    C_a = np.bincount(u * K + c, w, minlength=U * K).reshape(U, K)
    C_l_full = np.bincount(t * K + c, w, minlength=T * K).reshape(T, K)
    C_l = C_l_full[1:]
    cell_time = np.full(K, -1)
    cell_time[c] = t
    one_period = bool(np.all(np.bincount(c, minlength=K) == np.bincount(c, (t == cell_time[c]).astype(float),
                                                                             minlength=K)))
    if one_period:
        # eliminate the cells: the period block stays diagonal
        inv_d = 1.0 / d
        A = np.diag(a) - (C_a * inv_d) @ C_a.T
        B = W - (C_a * inv_d) @ C_l.T
        L = l - np.sum(C_l ** 2 * inv_d, axis=1)
        r_a = g_a - C_a @ (g_t * inv_d)
        r_l = g_l - C_l @ (g_t * inv_d)
        x_a, x_l = _two_block_dense(A, B, L, r_a, r_l)
        x_t = (g_t - C_a.T @ x_a - C_l.T @ x_l) * inv_d
        return np.concatenate([x_a, x_l, x_t])
    # eliminate the periods: units and cells remain
    inv_l = 1.0 / l
    M_aa = np.diag(a) - (W * inv_l) @ W.T
    M_at = C_a - (W * inv_l) @ C_l
    M_tt = np.diag(d) - (C_l.T * inv_l) @ C_l
    M = np.block([[M_aa, M_at], [M_at.T, M_tt]])
    r = np.concatenate([g_a - W @ (g_l * inv_l), g_t - C_l.T @ (g_l * inv_l)])
    x_at = np.linalg.solve(M, r)
    x_a, x_t = x_at[:U], x_at[U:]
    x_l = (g_l - W.T @ x_a - C_l @ x_t) * inv_l
    return np.concatenate([x_a, x_l, x_t])


def _two_block(a, W, l, g_a, g_l, x_t):
    x_a, x_l = _two_block_dense(np.diag(a), W, l, g_a, g_l)
    return np.concatenate([x_a, x_l, x_t])


def _two_block_dense(A: np.ndarray, B: np.ndarray, L: np.ndarray, r_a: np.ndarray, r_l: np.ndarray):
    """Solve [[A, B], [B', diag(L)]] [x_a; x_l] = [r_a; r_l] by eliminating the diagonal block."""
    inv_L = 1.0 / L
    S = A - (B * inv_L) @ B.T
    x_a = np.linalg.solve(S, r_a - B @ (r_l * inv_L))
    x_l = (r_l - B.T @ x_a) * inv_L
    return x_a, x_l


@dataclass
class FixedEffectsFit:
    params: np.ndarray        # [unit effects | period effects 1.. | cells]
    fitted: np.ndarray        # mu (Poisson) or X b (OLS), on the response scale
    residuals: np.ndarray     # y - fitted
    hessian: np.ndarray       # X' W X at the solution
    iterations: int = 1
    converged: bool = True

    def cells(self, design: FixedEffectsDesign) -> np.ndarray:
        return self.params[design.cell_slice]


def fit_ols(design: FixedEffectsDesign, y: np.ndarray) -> FixedEffectsFit:
    """Least squares with unit, period and cell dummies."""
    ones = np.ones(len(y))
    params = structured_solve(design, ones, design.X.T @ y)
    fitted = design.X @ params
    return FixedEffectsFit(params, fitted, y - fitted, design.cross(ones))


def fit_poisson(design: FixedEffectsDesign, y: np.ndarray, offset: np.ndarray | None = None,
                start: np.ndarray | None = None, tol: float = 1e-11, max_iter: int = 100) -> FixedEffectsFit:
    """Poisson pseudo-maximum likelihood (log link) by Newton's method.

    The outcome may be any non-negative number (PPML). Convergence: the largest Newton
    step below ``tol`` (on the log scale). Every unit, period and cell must have a
    positive total, or its effect is minus infinity (see ``separated``).
    """
    offset = np.zeros(len(y)) if offset is None else offset
    X = design.X
    if start is None:
        params = np.zeros(design.n_params)
        # unit effects: the log of each unit's mean rate, so the first step is short
        totals = np.bincount(design.unit, weights=y, minlength=design.n_units)
        expected = np.bincount(design.unit, weights=np.exp(offset), minlength=design.n_units)
        params[: design.n_units] = np.log(totals / expected)
    else:
        params = start.copy()
    eta = X @ params + offset
    mu = np.exp(eta)
    deviance = _poisson_deviance(y, mu)
    converged = False
    for iteration in range(1, max_iter + 1):  # noqa: B007 - the count is returned after the loop
        step = structured_solve(design, mu, X.T @ (y - mu))
        size = 1.0
        while True:
            candidate = params + size * step
            eta_c = X @ candidate + offset
            mu_c = np.exp(np.minimum(eta_c, 700.0))
            deviance_c = _poisson_deviance(y, mu_c)
            if deviance_c <= deviance * (1 + 1e-12) + 1e-12 or size < 1e-6:
                break
            size /= 2.0
        params, mu, deviance = candidate, mu_c, deviance_c
        if np.max(np.abs(size * step)) < tol:
            converged = True
            break
    H = design.cross(mu)
    return FixedEffectsFit(params, mu, y - mu, H, iteration, converged)


def _poisson_deviance(y: np.ndarray, mu: np.ndarray) -> float:
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(y > 0, y * np.log(y / mu), 0.0)
    return float(2.0 * np.sum(term - (y - mu)))


def separated(design: FixedEffectsDesign, y: np.ndarray) -> np.ndarray:
    """Observations whose Poisson mean is 0 at the optimum: in a unit, period or cell with no counts.

    Such observations do not affect the other parameters (Correia, Guimaraes & Zylkin
    2020); they are left out of the fit and given a fitted mean of 0. Repeated until
    stable, as dropping one kind can empty another.
    """
    drop = np.zeros(len(y), dtype=bool)
    while True:
        keep = ~drop
        changed = False
        for codes, size in ((design.unit, design.n_units), (design.time, design.n_times),
                            (design.cell, design.n_cells)):
            valid = keep & (codes >= 0)
            totals = np.bincount(codes[valid], weights=y[valid], minlength=size)
            counts = np.bincount(codes[valid], minlength=size)
            empty = (counts > 0) & (totals <= 0)
            if empty.any():
                hit = valid & empty[np.where(codes >= 0, codes, 0)]
                if hit.any():
                    drop |= hit
                    changed = True
        if not changed:
            return drop


def cluster_scores(design: FixedEffectsDesign, residuals: np.ndarray, clusters: np.ndarray,
                   n_clusters: int) -> np.ndarray:
    """Sum of x_i * residual_i over the observations of each cluster: (clusters, params)."""
    weighted = design.X.multiply(residuals[:, None]).tocsr()
    indicator = sparse.csr_matrix((np.ones(len(clusters)), (clusters, np.arange(len(clusters)))),
                                  shape=(n_clusters, len(clusters)))
    return (indicator @ weighted).toarray()


def cluster_covariance(design: FixedEffectsDesign, fit: FixedEffectsFit, clusters: np.ndarray,
                       n_clusters: int, correction: float = 1.0) -> np.ndarray:
    """Cluster-robust covariance ``correction * H^-1 (sum_g s_g s_g') H^-1`` of all parameters."""
    scores = cluster_scores(design, fit.residuals, clusters, n_clusters)
    bread = linalg.inv(fit.hessian, check_finite=False)
    bread = (bread + bread.T) / 2.0
    meat = scores.T @ scores
    cov = correction * bread @ meat @ bread
    return (cov + cov.T) / 2.0


class TwoWayProjection:
    """The annihilator of unit and period effects, ``M v = v - Z (Z'Z)^-1 Z'v``."""

    def __init__(self, unit: np.ndarray, time: np.ndarray, n_units: int, n_times: int):
        self.design = FixedEffectsDesign(unit, time, np.full(len(unit), -1), n_units, n_times, 0)
        self._factor = linalg.cho_factor(self.design.cross(np.ones(len(unit))))

    def __call__(self, values: np.ndarray) -> np.ndarray:
        Z = self.design.X
        coef = linalg.cho_solve(self._factor, Z.T @ values)
        return values - Z @ coef


__all__ = ["FixedEffectsDesign", "FixedEffectsFit", "fit_ols", "fit_poisson", "separated", "compact", "structured_solve",
           "cluster_scores", "cluster_covariance", "TwoWayProjection"]


def compact(design: FixedEffectsDesign, keep: np.ndarray) -> tuple[FixedEffectsDesign, dict]:
    """The design on the rows ``keep``, with unit, period and cell codes renumbered.

    Returns the design and, for each of ``unit``, ``time`` and ``cell``, the original codes
    of the new ones (``codes[kind][new] = old``).
    """
    unit_old, unit = np.unique(design.unit[keep], return_inverse=True)
    time_old, time = np.unique(design.time[keep], return_inverse=True)
    cells = design.cell[keep]
    cell_old = np.unique(cells[cells >= 0])
    cell = np.full(len(cells), -1)
    cell[cells >= 0] = np.searchsorted(cell_old, cells[cells >= 0])
    new = FixedEffectsDesign(unit, time, cell, len(unit_old), len(time_old), len(cell_old))
    return new, {"unit": unit_old, "time": time_old, "cell": cell_old}
