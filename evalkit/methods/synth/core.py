"""The numerical core of the synthetic control method, free of designs and data frames.

- :func:`simplex_least_squares`: donor weights on the simplex, exactly (an active-set
  NNLS on an augmented system), whatever the scale of the data.
- :func:`fit_weights`: the outcome-only fit, or the predictor fit with the predictor
  weights V fixed or chosen by the nested optimisation of Abadie, Diamond & Hainmueller
  (2010) as R's ``Synth`` does it (docs/methods/synthetic_control.md).

Matrices follow Abadie & Gardeazabal (2003): one column per unit, ``*0`` for the donors
and ``*1`` for the treated unit; ``X`` holds predictors (rows), ``Z`` the outcome in the
fitted pre-intervention periods (rows).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize, nnls

#: Nelder-Mead restarts from the last best point, until an improvement smaller than this
RESTART_TOLERANCE = 1e-10
MAX_RESTARTS = 5


def simplex_least_squares(A: np.ndarray, b: np.ndarray, solver: "SimplexSolver | None" = None) -> np.ndarray:
    """``argmin ||A w - b||^2`` over ``w >= 0, sum(w) = 1``.

    Since ``b = b 1'w`` on the simplex, the problem is the point of the convex hull of the
    columns of ``C = A - b 1'`` nearest the origin. Solving the non-negative least squares
    ``min_{u >= 0} ||C u||^2 + (1'u - 1)^2`` and normalising, ``w = u / 1'u``, gives it
    exactly: writing ``u = s w`` the objective is ``s^2 ||C w||^2 + (s - 1)^2``, minimised
    by the nearest point w whatever s, and ``s = 1 / (1 + ||C w||^2) > 0``. ``C`` is first
    divided by its largest entry, which leaves w unchanged, so the solution does not
    depend on the scale of the data (an SLSQP from equal weights with its default
    absolute tolerance stops at once when the outcome is small, and silently).

    Parameters
    ----------
    A : ndarray, shape (m, J)
        One column per donor.
    b : ndarray, shape (m,)
        The treated unit.
    solver : SimplexSolver, optional
        Remembers the last support to try it first (for many nearby problems).

    Returns
    -------
    ndarray, shape (J,)
        The weights.
    """
    A = np.asarray(A, dtype=float)
    b = np.asarray(b, dtype=float)
    return nearest_hull_point(A - b[:, None], solver)


def nearest_hull_point(C: np.ndarray, solver: "SimplexSolver | None" = None) -> np.ndarray:
    """``argmin ||C w||^2`` over the simplex (see :func:`simplex_least_squares`)."""
    n_donors = C.shape[1]
    if n_donors == 1:
        return np.ones(1)
    size = float(np.max(np.abs(C))) if C.size else 0.0
    if not np.isfinite(size):
        raise ValueError("non-finite values in the synthetic-control fit")
    if size == 0.0:
        return np.full(n_donors, 1.0 / n_donors)
    C = C / size
    if solver is not None:
        w = solver.on_support(C)
        if w is not None:
            return w
    augmented = np.vstack([C, np.ones((1, n_donors))])
    target = np.zeros(augmented.shape[0])
    target[-1] = 1.0
    u, _ = nnls(augmented, target, maxiter=50 * max(n_donors, augmented.shape[0]))
    total = u.sum()
    if not total > 0:  # cannot happen in exact arithmetic (total = 1 / (1 + d^2))
        raise ValueError("the synthetic-control weights did not converge")
    w = u / total
    if solver is not None:
        solver.support = np.flatnonzero(w > 0)
    return w


class SimplexSolver:
    """Warm start for a sequence of nearby simplex least-squares problems (the nested V search).

    The last solution's support S is tried first: the nearest point on the face S solves
    ``G z = 1`` with ``G = C_S'C_S`` (``w = z / 1'z``); it is accepted only when it meets
    the optimality (KKT) conditions of the whole problem: w > 0 on S, ``c_j'C w = ||C w||^2``
    on S and ``>=`` for every other column j (to 1e-12, C scaled to largest entry 1);
    otherwise the active-set NNLS solves it from scratch.
    """

    def __init__(self):
        self.support: np.ndarray | None = None

    def on_support(self, C: np.ndarray) -> np.ndarray | None:
        S = self.support
        if S is None or len(S) == 0 or len(S) > C.shape[0]:
            return None
        CS = C[:, S]
        G = CS.T @ CS
        try:
            z = np.linalg.solve(G, np.ones(len(S)))
        except np.linalg.LinAlgError:
            return None
        total = z.sum()
        if not total > 0 or not np.all(z > 0):
            return None
        w_S = z / total
        point = CS @ w_S
        distance = float(point @ point)
        gradient = C.T @ point
        # optimality (KKT) of the whole problem, to rounding: equal on S, not below elsewhere
        # (this also refuses a G too ill-conditioned for the solve to be trusted)
        slack = gradient - distance
        if np.any(slack < -1e-12) or np.max(np.abs(slack[S])) > 1e-12:
            return None
        w = np.zeros(C.shape[1])
        w[S] = w_S
        return w


def standardise_predictors(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predictors divided by their standard deviation across units (Synth's default).

    ``X`` has one row per predictor and one column per unit (treated and donors). Returns
    the scaled matrix and the divisors.
    """
    divisor = X.std(axis=1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):  # a constant predictor: the caller decides
        return X / divisor[:, None], divisor


def weights_given_v(v: np.ndarray, X1: np.ndarray, X0: np.ndarray, solver: SimplexSolver | None = None) -> np.ndarray:
    """Inner problem: ``argmin (X1 - X0 w)' diag(v) (X1 - X0 w)`` on the simplex."""
    root = np.sqrt(np.abs(v))
    return simplex_least_squares(root[:, None] * X0, root * X1, solver)


@dataclass
class WeightFit:
    """Donor weights and how they were found."""

    weights: np.ndarray
    v: np.ndarray | None           # predictor weights (sum 1), None for the outcome-only fit
    loss_v: float                  # mean squared outcome error over the fitted periods
    loss_w: float | None           # (X1 - X0 w)' V (X1 - X0 w) on standardised predictors
    start: str                     # which starting value won: outcome_only, equal, regression, fixed
    evaluations: int = 0


def _outcome_loss(w: np.ndarray, Z1: np.ndarray, Z0: np.ndarray) -> float:
    r = Z1 - Z0 @ w
    return float(r @ r / len(r))


def _to_v(x: np.ndarray) -> np.ndarray:
    a = np.abs(x)
    total = a.sum()
    return a / total if total > 0 else np.full(len(a), 1.0 / len(a))


def _regression_start(X1: np.ndarray, X0: np.ndarray, Z1: np.ndarray, Z0: np.ndarray) -> np.ndarray | None:
    """Synth's second starting value: squared coefficients of the outcome on the predictors."""
    X_all = np.column_stack([X1, X0]).T                       # units x predictors
    design = np.column_stack([np.ones(X_all.shape[0]), X_all])
    if design.shape[0] <= design.shape[1] or np.linalg.matrix_rank(design) < design.shape[1]:
        return None
    Z_all = np.column_stack([Z1, Z0]).T                       # units x periods
    beta = np.linalg.solve(design.T @ design, design.T @ Z_all)[1:]
    start = np.sum(beta ** 2, axis=1)
    if not np.all(np.isfinite(start)) or start.sum() <= 0:
        return None
    return start / start.sum()


def _nelder_mead(loss, x0: np.ndarray, maxiter: int) -> tuple[np.ndarray, float, int]:
    """Nelder-Mead restarted from its last best point until it stops improving.

    Each run (at most ``maxiter`` iterations) starts from R's ``optim`` simplex (each
    coordinate moved by a tenth of the largest); a single run often stalls on the
    piecewise-smooth nested loss. At most ``MAX_RESTARTS`` runs: the nested problem is not
    convex, so this is a deterministic budget, not a guarantee of the global minimum.
    """
    k = len(x0)
    x = _to_v(np.asarray(x0, dtype=float))
    best = loss(x)
    evaluations = 1
    for _ in range(MAX_RESTARTS):
        step = 0.1 * np.max(np.abs(x))
        simplex = np.vstack([x, x + step * np.eye(k)])
        result = minimize(loss, x, method="Nelder-Mead",
                          options={"maxiter": maxiter, "xatol": 1e-7, "fatol": 1e-14, "initial_simplex": simplex})
        evaluations += int(result.nfev)
        improved = result.fun < best - RESTART_TOLERANCE * max(abs(best), 1e-300)
        if result.fun <= best:
            x, best = _to_v(result.x), float(result.fun)
        if not improved:
            break
    return x, best, evaluations


def fit_weights(Z1: np.ndarray, Z0: np.ndarray, X1: np.ndarray | None = None, X0: np.ndarray | None = None,
                optimise_v: str = "nested") -> WeightFit:
    """Donor weights for one treated unit.

    Parameters
    ----------
    Z1, Z0 : ndarray
        Outcome in the fitted pre-intervention periods, treated (T,) and donors (T, J).
    X1, X0 : ndarray, optional
        Predictors, already standardised, treated (k,) and donors (k, J). Without them the
        weights fit the outcome directly: ``argmin ||Z1 - Z0 w||^2`` on the simplex.
    optimise_v : {"nested", "none"}
        With predictors: choose V to minimise the outcome error (nested), or use equal V.
    """
    Z1 = np.asarray(Z1, dtype=float)
    Z0 = np.asarray(Z0, dtype=float)
    if X1 is None or X0 is None or len(X1) == 0:
        w = simplex_least_squares(Z0, Z1)
        return WeightFit(weights=w, v=None, loss_v=_outcome_loss(w, Z1, Z0), loss_w=None, start="outcome_only")
    k = len(X1)
    # the outcome loss is compared, never thresholded, so its scale only matters to the
    # optimiser's tolerances: work on the outcome divided by its root mean square
    scale = float(np.sqrt(np.mean(np.concatenate([Z1, Z0.ravel()]) ** 2))) or 1.0
    z1, z0 = Z1 / scale, Z0 / scale

    solver = SimplexSolver()
    differences = X0 - X1[:, None]

    def loss(x):
        a = np.abs(x)
        root = np.sqrt(a / a.sum()) if a.sum() > 0 else np.full(k, np.sqrt(1.0 / k))
        r = z1 - z0 @ nearest_hull_point(root[:, None] * differences, solver)
        return float(r @ r) / len(r)

    if optimise_v == "none" or k == 1:
        v = np.full(k, 1.0 / k)
        start, evaluations = "fixed", 1
    else:
        starts = [("equal", np.full(k, 1.0 / k))]
        regression = _regression_start(X1, X0, z1, z0)
        if regression is not None:
            starts.append(("regression", regression))
        best = None
        evaluations = 0
        for name, x0 in starts:
            x, value, n = _nelder_mead(loss, x0, maxiter=50 * k)
            evaluations += n
            if best is None or value < best[1]:
                best = (x, value, name)
        assert best is not None  # the equal-weights start is always tried
        v, _, start = best
    w = weights_given_v(v, X1, X0)
    residual = X1 - X0 @ w
    return WeightFit(weights=w, v=v, loss_v=_outcome_loss(w, Z1, Z0), loss_w=float(residual @ (v * residual)),
                     start=start, evaluations=evaluations)


__all__ = ["simplex_least_squares", "nearest_hull_point", "SimplexSolver", "standardise_predictors", "weights_given_v",
           "fit_weights", "WeightFit"]
