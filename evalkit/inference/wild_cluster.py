"""The restricted wild cluster bootstrap (WCR) for one coefficient of a linear model.

Cameron, Gelbach & Miller (2008); MacKinnon & Webb (2017) for few and unequal clusters and
Webb's six-point weights; the fast algorithm of Roodman, MacKinnon, Nielsen & Webb (2019,
Stata's ``boottest``).

Model ``y = Z g + X b + u`` with nuisance effects ``Z`` absorbed by a projection ``M``
(for ``did``: unit and period fixed effects), clusters ``g = 1..G``, and the hypothesis
``b_j = r``:

1. Fit the model with ``b_j = r`` imposed; restricted residuals ``u_r``.
2. For each draw of cluster weights ``w_g`` (Rademacher +-1, or Webb's six points
   +-sqrt(1/2), +-1, +-sqrt(3/2) with probability 1/6 each):
   ``y* = Z g_r + X b_r + w_g u_r``; refit; ``t* = (b*_j - r) / se*(b*_j)`` with the same
   cluster-robust standard error as the original t statistic.
3. Symmetric p-value: the share of draws with ``|t*| > |t|`` (boottest's and wildboottest's
   convention). When every Rademacher sign vector is enumerated the test is the
   sign-change randomization test, whose draws include the observed sample (all weights
   +1) and its mirror image, so :func:`wild_cluster_bootstrap` then counts ties,
   ``|t*| >= |t|``: the p-value is never below ``2 / 2^G`` (with 3 clusters the strict
   share can be 0 from only 8 sign vectors).

Because everything is linear in ``w``, each draw costs O(G^2) after an O(n G) set-up:
``t*(w) = (n . w) / sqrt(c |K w|^2)`` with ``n`` and ``K`` built once, and both are linear
in ``r``, so the confidence interval (the set of ``r`` the test does not reject) is found by
bisection on the same draws. With Rademacher weights and ``2^G <= reps`` every sign vector
is enumerated once (as boottest does).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

WEIGHTS = ("rademacher", "webb")
WEBB_POINTS = np.array([-np.sqrt(1.5), -1.0, -np.sqrt(0.5), np.sqrt(0.5), 1.0, np.sqrt(1.5)])
TIE_TOLERANCE = 1e-10


def draw_weights(rng: np.random.Generator, n_clusters: int, reps: int, kind: str = "webb") -> tuple[np.ndarray, bool]:
    """A (clusters, draws) matrix of wild weights, and whether it enumerates every sign vector."""
    if kind == "rademacher":
        if 2 ** n_clusters <= reps:
            signs = np.array(list(itertools.product([-1.0, 1.0], repeat=n_clusters))).T
            return signs, True
        return rng.integers(0, 2, size=(n_clusters, reps)).astype(float) * 2.0 - 1.0, False
    if kind == "webb":
        return WEBB_POINTS[rng.integers(0, 6, size=(n_clusters, reps))], False
    raise ValueError(f"weights must be one of {WEIGHTS}")


@dataclass
class WildClusterResult:
    estimate: float
    se: float                  # cluster-robust, with the correction ``c``
    t_stat: float
    p_value: float
    null: float
    t_boot: np.ndarray
    weights: str
    enumerated: bool
    ci_low: float | None = None
    ci_high: float | None = None

    @property
    def reps(self) -> int:
        return len(self.t_boot)

    def to_dict(self) -> dict:
        return {"t": self.t_stat, "p_value": self.p_value, "null": self.null, "reps": self.reps,
                "weights": self.weights, "enumerated": self.enumerated, "ci_low": self.ci_low, "ci_high": self.ci_high}

    def histogram(self, bins: int = 30) -> dict:
        finite = self.t_boot[np.isfinite(self.t_boot)]
        counts, edges = np.histogram(finite, bins=bins)
        return {"edges": edges.tolist(), "counts": counts.tolist(), "observed": self.t_stat}


class _Pieces:
    """n(r) = n0 + r n1 and K(r) = K0 + r K1 of ``t*(w) = n.w / sqrt(c |K w|^2)``."""

    def __init__(self, y, X, clusters, n_clusters, column, project):
        Xt = project(X)
        yt = project(y)
        self.XtX_inv = np.linalg.inv(Xt.T @ Xt)
        k = X.shape[1]
        others = [i for i in range(k) if i != column]
        # restricted residuals u(r) = u0 + r u1: residuals of yt - r Xt_j on the other regressors
        if others:
            Xo = Xt[:, others]
            annihilate = lambda v: v - Xo @ np.linalg.lstsq(Xo, v, rcond=None)[0]  # noqa: E731
        else:
            annihilate = lambda v: v  # noqa: E731
        u0 = annihilate(yt)
        u1 = -annihilate(Xt[:, column])
        a = self.XtX_inv[column]
        self.parts = [self._linear_pieces(u, Xt, clusters, n_clusters, a, project) for u in (u0, u1)]
        self.Xt, self.yt, self.a = Xt, yt, a

    def _linear_pieces(self, u, Xt, clusters, n_clusters, a, project):
        G = n_clusters
        # A_h = M(u * 1[cluster h]) for each cluster h (n x G)
        U = np.zeros((len(u), G))
        U[np.arange(len(u)), clusters] = u
        A = project(U)
        Xa = Xt @ a                                         # x_i' a
        # f[g, h] = a' X_g' A_{h, g}
        f = np.zeros((G, G))
        np.add.at(f, clusters, Xa[:, None] * A)
        # P[h] = X_h' u_h ; q[g] = a' X_g' X_g
        P = np.zeros((G, Xt.shape[1]))
        np.add.at(P, clusters, Xt * u[:, None])
        q = np.zeros((G, Xt.shape[1]))
        np.add.at(q, clusters, Xa[:, None] * Xt)
        K = f - q @ self.XtX_inv @ P.T
        numerator = P @ a
        return numerator, K

    def at(self, r: float):
        (n0, K0), (n1, K1) = self.parts
        return n0 + r * n1, K0 + r * K1


def bootstrap_t(y: np.ndarray, X: np.ndarray, clusters: np.ndarray, column: int, W: np.ndarray,
                project: Callable[[np.ndarray], np.ndarray] | None = None, null: float = 0.0,
                correction: float = 1.0, ci_level: float | None = None, weights: str = "webb",
                enumerated: bool = False, count_ties: bool = False) -> WildClusterResult:
    """The WCR test of ``b[column] = null`` with the weight matrix ``W`` (clusters x draws).

    Parameters
    ----------
    y, X : arrays
        Outcome (n) and regressors (n x k), before the nuisance effects are projected out.
    clusters : int array
        Cluster codes ``0..G-1``.
    project : callable, optional
        The annihilator of the absorbed effects, applied to vectors and matrices.
    correction : float
        Small-sample factor of the cluster-robust variance (it cancels in the p-value).
    ci_level : float, optional
        If given (e.g. 0.95), the interval of nulls the test does not reject at 1 - level.
    count_ties : bool
        Count draws with ``|t*| = |t|`` (to a relative 1e-10) as extreme: the exact
        randomization p-value when ``W`` enumerates every sign vector.
    """
    X = np.asarray(X, dtype=float).reshape(len(y), -1)
    project = project or (lambda v: v)
    clusters = np.asarray(clusters)
    G = int(clusters.max()) + 1
    pieces = _Pieces(np.asarray(y, float), X, clusters, G, column, project)
    Xt, yt = pieces.Xt, pieces.yt
    b = pieces.XtX_inv @ (Xt.T @ yt)
    resid = yt - Xt @ b
    scores = np.zeros((G, X.shape[1]))
    np.add.at(scores, clusters, Xt * resid[:, None])
    cov = correction * pieces.XtX_inv @ scores.T @ scores @ pieces.XtX_inv
    se = float(np.sqrt(cov[column, column]))
    estimate = float(b[column])

    def t_draws(r: float) -> np.ndarray:
        numerator, K = pieces.at(r)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (numerator @ W) / np.sqrt(correction * np.sum((K @ W) ** 2, axis=0))

    constant_draw = np.all(W == W[:1], axis=0)   # every cluster weighted alike: the sample itself, or its mirror

    def p_value(r: float) -> tuple[float, np.ndarray]:
        t_obs = (estimate - r) / se
        t_star = t_draws(r)
        if count_ties:
            # the observed sample and its mirror are ties by construction: count them exactly,
            # not through rounding (far from the estimate, as the interval search goes, t* loses digits)
            extreme = (np.abs(t_star) >= abs(t_obs) * (1 - TIE_TOLERANCE)) | constant_draw
            return float(np.mean(extreme)), t_star
        return float(np.mean(np.abs(t_star) > abs(t_obs) * (1 + TIE_TOLERANCE))), t_star

    p, t_star = p_value(null)
    result = WildClusterResult(estimate, se, (estimate - null) / se, p, null, t_star, weights, enumerated)
    if ci_level is not None:
        alpha = 1.0 - ci_level
        result.ci_low = _invert(lambda r: p_value(r)[0], estimate, se, alpha, -1.0)
        result.ci_high = _invert(lambda r: p_value(r)[0], estimate, se, alpha, 1.0)
    return result


def _invert(p_of: Callable[[float], float], estimate: float, se: float, alpha: float, side: float) -> float:
    """The null farthest from the estimate on one side that is not rejected at alpha (to se * 1e-7)."""
    inside, step = estimate, 2.0 * se
    outside = None
    for _ in range(40):
        candidate = estimate + side * step
        if p_of(candidate) < alpha:
            outside = candidate
            break
        inside, step = candidate, step * 2.0
    if outside is None:
        return side * np.inf
    while abs(outside - inside) > 1e-7 * se:
        middle = (inside + outside) / 2.0
        if p_of(middle) < alpha:
            outside = middle
        else:
            inside = middle
    return float((inside + outside) / 2.0)


def wild_cluster_bootstrap(y, X, clusters, column: int, rng: np.random.Generator, reps: int = 999,
                           weights: str = "webb", project=None, null: float = 0.0, correction: float = 1.0,
                           ci_level: float | None = None) -> WildClusterResult:
    """Draw the weights from ``rng`` and run :func:`bootstrap_t` (ties counted when every sign vector is enumerated)."""
    clusters = np.asarray(clusters)
    W, enumerated = draw_weights(rng, int(clusters.max()) + 1, reps, weights)
    return bootstrap_t(y, X, clusters, column, W, project, null, correction, ci_level, weights, enumerated,
                       count_ties=enumerated)


__all__ = ["WEIGHTS", "WEBB_POINTS", "draw_weights", "bootstrap_t", "wild_cluster_bootstrap", "WildClusterResult"]
