"""Sensitivity to parallel trends: Rambachan & Roth (2023) relative magnitudes, as in HonestDiD.

Rambachan, A. and Roth, J. (2023), "A More Credible Approach to Parallel Trends", Review of
Economic Studies 90(5):2555-2591; the R package HonestDiD (``computeConditionalCS_DeltaRM``,
``createSensitivityResults_relativeMagnitudes``).

Given event-study coefficients ``betahat`` (``num_pre`` pre-period coefficients, the reference
period left out, then ``num_post`` post-period coefficients) and their covariance ``sigma``,
write ``betahat = tau + delta`` with ``tau`` the treatment effects (0 before adoption) and
``delta`` the difference in trends that parallel trends assumes away. The relative-magnitudes
restriction Delta^RM(Mbar) allows every post-period change in ``delta`` (from one period to
the next, starting at the reference period) to be at most ``Mbar`` times the largest
pre-period change. The robust confidence set for ``theta = l' tau_post`` collects every value
not rejected by the conditional-least-favourable hybrid test of Andrews, Roth & Pakes (ARP),
inverted on a grid; Delta^RM is the union over which pre-period change is the largest, and
its sign, of polyhedral sets, so the set is the union of the sets for each. The breakdown
value Mbar* is the largest Mbar for which the set still excludes 0: how much worse than the
worst pre-period change a post-period change in trends would have to be to explain the
effect away.

The linear programs are solved with scipy.optimize.linprog (HiGHS). The least-favourable
critical value is simulated (``lf_sims`` draws, a fixed seed), as in HonestDiD, so results
agree with HonestDiD's to within that simulation's error, usually one grid step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy import optimize, stats

__all__ = ["RelativeMagnitudesCI", "relative_magnitudes_ci", "relative_magnitudes_breakdown", "original_ci"]

_TOL_LAMBDA = 1e-6


# ----------------------------------------------------------------------------- restrictions
def _rm_constraints(num_pre: int, num_post: int, mbar: float, s: int, max_positive: bool) -> np.ndarray:
    """A with Delta^RM_{s,+/-}(Mbar) = {delta : A delta <= 0} (HonestDiD's ``.create_A_RM``).

    ``delta`` runs over periods -num_pre..-1, 1..num_post (the reference period 0, where delta
    is 0, is dropped). Every first difference of delta is bounded in absolute value by the
    pre-period difference ending at period ``s`` (s = -(num_pre - 1)..0), taken as the largest
    and positive (``max_positive``) or negative: by 1 times it before the reference period and
    ``mbar`` times it after.
    """
    width = num_pre + num_post + 1
    first_diff = np.zeros((num_pre + num_post, width))
    for r in range(num_pre + num_post):
        first_diff[r, r:r + 2] = (-1.0, 1.0)
    v_max = np.zeros(width)
    v_max[num_pre + s - 1:num_pre + s + 1] = (-1.0, 1.0)
    if not max_positive:
        v_max = -v_max
    bound = np.vstack([np.tile(v_max, (num_pre, 1)), np.tile(mbar * v_max, (num_post, 1))])
    A = np.vstack([first_diff - bound, -first_diff - bound])
    A = A[np.sum(A * A, axis=1) > 1e-10]
    return np.delete(A, num_pre, axis=1)


def _construct_gamma(l_vec: np.ndarray) -> np.ndarray:
    """An invertible matrix with l' as its first row (the pivots of rref([l, I]))."""
    n = len(l_vec)
    columns = [l_vec] + [np.eye(n)[:, i] for i in range(n)]
    chosen = [columns[0]]
    for col in columns[1:]:
        if len(chosen) == n:
            break
        if np.linalg.matrix_rank(np.column_stack(chosen + [col])) > len(chosen):
            chosen.append(col)
    return np.column_stack(chosen).T


# ----------------------------------------------------------------------------- helpers
def _truncnorm_quantile(p: float, lo: float, hi: float, mu: float = 0.0, sd: float = 1.0) -> float:
    """Quantile of N(mu, sd^2) truncated to [lo, hi] (TruncatedNormal::norminvp, rescaled)."""
    a, b = (lo - mu) / sd, (hi - mu) / sd
    if not a < b:
        return float(mu + a * sd)
    q = float(stats.truncnorm.ppf(p, a, b))
    if not np.isfinite(q):
        q = b if p > 0.5 else a
    return float(mu + q * sd)


def _lp_eta(y: np.ndarray, X: np.ndarray, sd: np.ndarray):
    """min eta s.t. y - X delta <= eta * sd: eta, delta and the multipliers (HonestDiD ``.test_delta_lp_fn``)."""
    k = X.shape[1]
    if k == 1:
        solved = _lp_eta_one_nuisance(y, X[:, 0], sd)
        if solved is not None:
            return solved
    c = np.zeros(k + 1)
    c[0] = 1.0
    res = optimize.linprog(c, A_ub=-np.column_stack([sd, X]), b_ub=-y, bounds=[(None, None)] * (k + 1),
                           method="highs")
    if res.status != 0:
        return None
    return float(res.fun), res.x[1:], -np.asarray(res.ineqlin.marginals, dtype=float)


def _lp_eta_one_nuisance(y: np.ndarray, x: np.ndarray, sd: np.ndarray):
    """The same program with one nuisance parameter, solved exactly: the optimum is where a
    rising and a falling line a_i + b_i delta cross (a = y / sd, b = -x / sd), and the two
    binding multipliers solve lambda_i sd_i + lambda_j sd_j = 1, lambda_i x_i + lambda_j x_j = 0.
    Returns None (use the general solver) when the optimum is not a unique crossing of two lines."""
    a, b = y / sd, -x / sd
    up, down, flat = np.flatnonzero(b > 1e-12), np.flatnonzero(b < -1e-12), np.abs(b) <= 1e-12
    if len(up) == 0 or len(down) == 0:
        return None
    bi, bj = b[up][:, None], b[down][None, :]
    values = (bi * a[down][None, :] - bj * a[up][:, None]) / (bi - bj)
    best = values.max()
    tie = 1e-12 * max(1.0, abs(best))
    if np.sum(values >= best - tie) != 1:
        return None  # ties: a degenerate vertex, leave it to the solver
    if flat.any() and a[flat].max() >= best - tie:
        top = np.flatnonzero(flat)[np.argmax(a[flat])]
        if a[top] <= best + tie or np.sum(a[flat] >= a[top] - tie) != 1:
            return None  # ties: leave it to the solver
        # one flat line binds alone: eta is its height; the dual vertex puts all weight on it
        lam = np.zeros(len(y))
        lam[top] = 1.0 / sd[top]
        return float(a[top]), np.array([0.0]), lam
    pi, pj = np.unravel_index(int(np.argmax(values)), values.shape)
    i, j = up[pi], down[pj]
    delta = (a[j] - a[i]) / (b[i] - b[j])
    system = np.array([[sd[i], sd[j]], [x[i], x[j]]])
    lam_ij = np.linalg.solve(system, np.array([1.0, 0.0]))
    lam = np.zeros(len(y))
    lam[[i, j]] = lam_ij
    return float(best), np.array([delta]), lam


_MAX_BASES = 20000


def _dual_vertices(X: np.ndarray, sd: np.ndarray) -> np.ndarray | None:
    """Vertices of {lambda >= 0 : sd' lambda = 1, X' lambda = 0}, the dual of the eta program.

    The set is bounded (sd > 0), so eta(y) = max over its vertices of lambda' y for every y:
    the least-favourable draws and the test at every theta then need no linear program. The
    vertices are the basic solutions on k + 1 of the M rows (k nuisance parameters); None when
    there are more than ``_MAX_BASES`` such bases (the caller solves the programs instead).

    On a basis B the solution is the (one-dimensional) null space of X_B' scaled so that
    sd_B' lambda_B = 1, and it is feasible exactly when that null vector has one sign, whatever
    sd > 0 is. So the vertices' directions depend on X alone (:func:`_vertex_directions`,
    cached: X is the same for every piece of Delta^RM and every Mbar) and sd only rescales them.
    """
    directions = _vertex_directions(np.ascontiguousarray(X, dtype=float).tobytes(), X.shape)
    if directions is None:
        return None
    return directions / (directions @ sd)[:, None]


@lru_cache(maxsize=64)
def _vertex_directions(x_bytes: bytes, shape: tuple[int, int]) -> np.ndarray | None:
    """The dual vertices for sd = 1 (each sums to 1), from X's bytes; None as :func:`_dual_vertices`."""
    from itertools import combinations
    from math import comb

    X = np.frombuffer(x_bytes, dtype=float).reshape(shape)
    M, k = X.shape
    if comb(M, k + 1) > _MAX_BASES:
        return None
    system = np.vstack([np.ones(M), X.T])
    rhs = np.zeros(k + 1)
    rhs[0] = 1.0
    found = []
    for rows in combinations(range(M), k + 1):
        sub = system[:, rows]
        if abs(np.linalg.det(sub)) < 1e-12 * np.prod(np.linalg.norm(sub, axis=0)):
            continue
        lam_rows = np.linalg.solve(sub, rhs)
        if np.all(lam_rows >= -1e-12):
            lam = np.zeros(M)
            lam[list(rows)] = np.clip(lam_rows, 0.0, None)
            found.append(lam)
    if not found:
        return None
    out = np.array(found)
    # the same vertex reached from several bases (a degenerate vertex) is kept once
    _, first = np.unique(np.round(out / np.abs(out).max(), 12), axis=0, return_index=True)
    out = out[np.sort(first)]
    out.setflags(write=False)
    return out


def _row_max(values: np.ndarray) -> np.ndarray:
    """``values.max(axis=1)`` for many rows of a few columns, column by column: the same numbers
    (NaN included), without numpy's per-row reduction over a short axis (four times slower here)."""
    out = values[:, 0].copy()
    for j in range(1, values.shape[1]):
        np.maximum(out, values[:, j], out=out)
    return out


def _eta_many(Y: np.ndarray, X: np.ndarray, sd: np.ndarray, vertices: np.ndarray | None = None) -> np.ndarray:
    """eta = min_delta max_i (y_i - X_i delta) / sd_i for each row of Y (the least-favourable draws)."""
    k = X.shape[1]
    a = Y / sd
    if k >= 2:
        if vertices is None:
            vertices = _dual_vertices(X, sd)
        if vertices is not None:
            return _row_max(Y @ vertices.T)
    if k == 0:
        return _row_max(a)
    if k == 1:
        # one nuisance parameter: the minimum of an upper envelope of lines is reached where a
        # rising and a falling line cross (or at the highest flat line)
        b = -X[:, 0] / sd
        up, down, flat = b > 1e-12, b < -1e-12, np.abs(b) <= 1e-12
        floor = a[:, flat].max(axis=1) if flat.any() else np.full(len(Y), -np.inf)
        if not up.any() or not down.any():
            return floor  # the lines can all be pushed down: only the flat ones bound eta
        bi, bj = b[up][:, None], b[down][None, :]
        ai, aj = a[:, up][:, :, None], a[:, down][:, None, :]
        crossings = (bi * aj - bj * ai) / (bi - bj)
        return np.maximum(crossings.reshape(len(Y), -1).max(axis=1), floor)
    out = np.empty(len(Y))
    for i, y in enumerate(Y):
        solved = _lp_eta(y, X, sd)
        out[i] = np.nan if solved is None else solved[0]
    return out


@lru_cache(maxsize=16)
def _standard_normals(seed: int, sims: int, dim: int) -> np.ndarray:
    """The standard normal draws ``default_rng(seed).multivariate_normal`` starts from (read-only, cached)."""
    out = np.random.default_rng(seed).standard_normal((sims, dim))
    out.setflags(write=False)
    return out


def _least_favorable_cv(X: np.ndarray | None, sigma: np.ndarray, kappa: float, sims: int, seed: int,
                        vertices: np.ndarray | None = None) -> float:
    """1 - kappa quantile of eta under the least favourable null (ARP section 6.2).

    The draws are exactly ``default_rng(seed).multivariate_normal(0, sigma, sims, method="eigh")``
    (the same standard normals times the same eigen-factor), with the standard normals
    generated once per seed and size: every piece of Delta^RM at every Mbar reuses them.
    """
    s, u = np.linalg.eigh(sigma)
    factor = u * np.sqrt(np.abs(s))
    normals = _standard_normals(seed, sims, len(sigma))
    sd = np.sqrt(np.diag(sigma))
    X = np.zeros((len(sigma), 0)) if X is None else X
    if X.shape[1] >= 2:
        vertices = _dual_vertices(X, sd) if vertices is None else vertices
        if vertices is not None:
            # eta = max over the dual vertices of draws @ vertex = normals @ (vertex @ factor):
            # the vertices (a handful) times the factor first, not every draw times it
            eta = _row_max(normals @ (vertices @ factor).T)
            return float(np.nanquantile(eta, 1 - kappa))
    eta = _eta_many(normals @ factor.T, X, sd, vertices)
    return float(np.nanquantile(eta, 1 - kappa))


# ----------------------------------------------------------------------------- ARP, no nuisance
def _vlo_vup(gamma, sigma, A, b, z):
    c = sigma @ gamma / float(gamma @ sigma @ gamma)
    Ac = A @ c
    objective = np.divide(b - A @ z, Ac, out=np.zeros_like(Ac), where=Ac != 0)
    vlo = objective[Ac < 0].max() if (Ac < 0).any() else -np.inf
    vup = objective[Ac > 0].min() if (Ac > 0).any() else np.inf
    return float(vlo), float(vup)


def _test_no_nuisance_lf(y, sigma, A, d, alpha, lf_cv) -> bool:
    """HonestDiD ``.testInIdentifiedSet_LF_Hybrid``: True when the test rejects."""
    sd = np.sqrt(np.diag(A @ sigma @ A.T))
    At, dt = A / sd[:, None], d / sd
    moments = At @ y - dt
    j = int(np.argmax(moments))
    if moments[j] > lf_cv:
        return True
    gamma = At[j]
    Abar = At - At[j][None, :]
    dbar = dt - dt[j]
    sigmabar = float(np.sqrt(gamma @ sigma @ gamma))
    c = sigma @ gamma / float(gamma @ sigma @ gamma)
    z = y - c * float(gamma @ y)
    vlo, vup = _vlo_vup(gamma, sigma, Abar, dbar, z)
    critical = _truncnorm_quantile(1 - alpha, vlo, vup, mu=float(dt[j]), sd=sigmabar)
    return bool(moments[j] + dt[j] > critical)


# ----------------------------------------------------------------------------- ARP with nuisance
@dataclass
class _LPResult:
    status: int
    fun: float
    x: np.ndarray


def _max_program(s_T, gamma, sigma, W, c, vertices=None):
    """max f'x s.t. W'x = e_1, x >= 0 (HonestDiD ``.max_program``), returned as a minimisation of -f'x.

    The feasible set is the dual polytope of the eta program: with its vertices at hand the
    maximum is the best vertex."""
    f = s_T + (sigma @ gamma) / float(gamma @ sigma @ gamma) * c
    if vertices is not None:
        values = vertices @ f
        top = int(np.argmax(values))
        return _LPResult(0, -float(values[top]), vertices[top].copy())
    if W.shape[1] == 2:
        # one nuisance parameter: the vertices have one weight on a row with W[i, 1] = 0 or two
        # on rows of opposite sign; the feasible set is bounded, so the best vertex is the optimum
        sd, x = W[:, 0], W[:, 1]
        best, arg = -np.inf, None
        for i in np.flatnonzero(np.abs(x) <= 1e-15):
            value = f[i] / sd[i]
            if value > best:
                best, arg = value, {i: 1.0 / sd[i]}
        pos, neg = np.flatnonzero(x > 1e-15), np.flatnonzero(x < -1e-15)
        if len(pos) and len(neg):
            xi, xj = x[pos][:, None], x[neg][None, :]
            det = sd[pos][:, None] * xj - sd[neg][None, :] * xi
            wi, wj = xj / det, -xi / det
            values = wi * f[pos][:, None] + wj * f[neg][None, :]
            k = int(np.argmax(values))
            if values.flat[k] > best:
                pi, pj = np.unravel_index(k, values.shape)
                best, arg = values.flat[k], {pos[pi]: wi[pi, pj], neg[pj]: wj[pi, pj]}
        if arg is not None:
            solution = np.zeros(len(f))
            for i, w in arg.items():
                solution[i] = w
            return _LPResult(0, -float(best), solution)
    beq = np.zeros(W.shape[1])
    beq[0] = 1.0
    res = optimize.linprog(-f, A_eq=W.T, b_eq=beq, bounds=[(0, None)] * len(f), method="highs")
    return _LPResult(res.status, float(res.fun) if res.status == 0 else np.nan,
                     res.x if res.x is not None else np.zeros(len(f)))


def _is_solution(c, tol, s_T, gamma, sigma, W, vertices=None):
    res = _max_program(s_T, gamma, sigma, W, c, vertices)
    if res.status != 0:
        return False, res
    return abs(c - (-res.fun)) <= tol, res


def _vlo_vup_dual(eta, s_T, gamma, sigma, W, vertices=None):
    """Truncation points by bisection over the dual vertex (ARP appendix D, algorithm 1)."""
    tol_c, tol_eq, maxiters, switchiters = 1e-6, 1e-6, 10000, 10
    sigma_b = float(np.sqrt(gamma @ sigma @ gamma))
    low_initial, high_initial = min(-100.0, eta - 20 * sigma_b), max(100.0, eta + 20 * sigma_b)
    ok, _ = _is_solution(eta, tol_eq, s_T, gamma, sigma, W, vertices)
    if not ok:
        return eta, np.inf
    b = (sigma @ gamma) / float(gamma @ sigma @ gamma)

    def roundeps(x):
        return 0.0 if abs(x) < np.finfo(float).eps ** 0.75 else x

    def search(start, towards_high: bool):
        ok, res = _is_solution(start, tol_eq, s_T, gamma, sigma, W, vertices)
        if ok:
            return np.inf if towards_high else -np.inf
        dif, iters = 0.0, 1
        mid = roundeps(float(res.x @ s_T)) / (1 - float(res.x @ b))
        while True:
            ok, res = _is_solution(mid, tol_eq, s_T, gamma, sigma, W, vertices)
            if ok or iters >= maxiters:
                break
            iters += 1
            if iters >= switchiters:
                dif = tol_c + 1
                break
            mid = roundeps(float(res.x @ s_T)) / (1 - float(res.x @ b))
        low, high = (eta, mid) if towards_high else (mid, eta)
        while dif > tol_c and iters < maxiters:
            iters += 1
            mid = (high + low) / 2
            ok, _ = _is_solution(mid, tol_eq, s_T, gamma, sigma, W, vertices)
            if towards_high:
                low, high = (mid, high) if ok else (low, mid)
            else:
                low, high = (low, mid) if ok else (mid, high)
            dif = high - low
        return mid

    vup = search(high_initial, True)
    vlo = search(low_initial, False)
    return vlo, vup


def _eta_from_vertices(y, X, sd, vertices):
    """eta and its dual vertex from the precomputed vertices; the solver when the best two tie."""
    values = vertices @ y
    order = np.argsort(values)[::-1]
    best = values[order[0]]
    if len(order) > 1 and values[order[1]] >= best - 1e-10 * max(1.0, abs(best)):
        return _lp_eta(y, X, sd)
    return float(best), None, vertices[order[0]].copy()


def _lp_conditional_test(y, X, sigma, alpha, kappa, lf_cv, vertices=None) -> bool:
    """HonestDiD ``.lp_conditional_test_fn`` with the least-favourable hybrid: True when it rejects."""
    M, k = X.shape
    sd = np.sqrt(np.diag(sigma))
    solved = _lp_eta(y, X, sd) if vertices is None or k < 2 else _eta_from_vertices(y, X, sd, vertices)
    if solved is None:
        return False
    eta, _, lam = solved
    if eta > lf_cv:
        return True
    mod_size = (alpha - kappa) / (1 - kappa)
    binding = lam > _TOL_LAMBDA
    degenerate = int(binding.sum()) != k + 1
    X_B = X[binding]
    full_rank = X_B.shape[0] > 0 and np.linalg.matrix_rank(X_B) == min(X_B.shape) if k > 0 else X_B.shape[0] > 0
    if degenerate or not full_rank:
        gamma = lam
        sigma_b = float(np.sqrt(gamma @ sigma @ gamma))
        if sigma_b < 1e-10:
            return eta > 0
        W = np.column_stack([sd, X])
        s_T = y - (sigma @ gamma) * float(gamma @ y) / float(gamma @ sigma @ gamma)
        vlo, vup = _vlo_vup_dual(eta, s_T, gamma, sigma, W, vertices if k >= 2 else None)
        maxstat = eta / sigma_b
        zlo, zup = vlo / sigma_b, min(vup, lf_cv) / sigma_b
    else:
        B = np.column_stack([sd[binding], X_B])
        S_B = np.eye(M)[binding]
        S_Bc = np.eye(M)[~binding]
        B_inv_S = np.linalg.solve(B, S_B)
        Gamma_B = np.column_stack([sd[~binding], X[~binding]]) @ B_inv_S - S_Bc
        v_B = B_inv_S[0]
        sigma2_b = float(v_B @ sigma @ v_B)
        if not sigma2_b > 0:
            return bool(eta > 0)   # the binding combination has no variance: what dividing by 0 gave, without the warning
        sigma_b = np.sqrt(sigma2_b)
        rho = Gamma_B @ sigma @ v_B / sigma2_b
        bounds = np.divide(-Gamma_B @ y, rho, out=np.zeros_like(rho), where=rho != 0) + float(v_B @ y)
        vlo = bounds[rho > 0].max() if (rho > 0).any() else -np.inf
        vup = bounds[rho < 0].min() if (rho < 0).any() else np.inf
        maxstat = eta / sigma_b
        zlo, zup = vlo / sigma_b, min(vup, lf_cv) / sigma_b
    if not (zlo <= maxstat <= zup):
        return False
    critical = max(0.0, _truncnorm_quantile(1 - mod_size, zlo, zup))
    return bool(maxstat > critical)


# ----------------------------------------------------------------------------- one (s, sign)
@dataclass
class _Piece:
    """The test of Delta^RM_{s,+/-}(Mbar) for every theta, its least-favourable value computed once."""

    betahat: np.ndarray
    sigma: np.ndarray
    num_pre: int
    num_post: int
    l_vec: np.ndarray
    A: np.ndarray
    alpha: float
    kappa: float
    lf_sims: int
    seed: int
    lf_cv: float = field(init=False)

    def __post_init__(self):
        A, npre, npost = self.A, self.num_pre, self.num_post
        if npost == 1:
            self.lf_cv = _least_favorable_cv(None, A @ self.sigma @ A.T, self.kappa, self.lf_sims, self.seed)
            return
        gamma = _construct_gamma(self.l_vec)
        a_gamma_inv = A[:, npre:npre + npost] @ np.linalg.inv(gamma)
        self.a1, self.X = a_gamma_inv[:, 0], a_gamma_inv[:, 1:]
        # post-period moments only (HonestDiD's default postPeriodMomentsOnly = TRUE)
        self.rows = np.flatnonzero(np.any(A[:, npre:] != 0, axis=1))
        self.Y = A @ self.betahat
        self.sigma_y = (A @ self.sigma @ A.T)[np.ix_(self.rows, self.rows)]
        self.vertices = (_dual_vertices(self.X[self.rows], np.sqrt(np.diag(self.sigma_y)))
                         if self.X.shape[1] >= 2 else None)
        self.lf_cv = _least_favorable_cv(self.X[self.rows], self.sigma_y, self.kappa, self.lf_sims, self.seed,
                                         self.vertices)

    def rejects(self, theta: float) -> bool:
        if self.num_post == 1:
            y = self.betahat.copy()
            y[self.num_pre] -= theta
            return _test_no_nuisance_lf(y, self.sigma, self.A, np.zeros(len(self.A)), self.alpha, self.lf_cv)
        y = (self.Y - self.a1 * theta)[self.rows]
        return _lp_conditional_test(y, self.X[self.rows], self.sigma_y, self.alpha, self.kappa, self.lf_cv,
                                    self.vertices)


def _pieces(betahat, sigma, num_pre, num_post, l_vec, mbar, alpha, lf_sims, seed) -> list[_Piece]:
    return list(_lazy_pieces(betahat, sigma, num_pre, num_post, l_vec, mbar, alpha, lf_sims, seed))


def _lazy_pieces(betahat, sigma, num_pre, num_post, l_vec, mbar, alpha, lf_sims, seed):
    """The pieces one at a time: a search that stops at the first piece accepting builds no more."""
    for s in range(-(num_pre - 1), 1):
        for positive in (True, False):
            A = _rm_constraints(num_pre, num_post, mbar, s, positive)
            yield _Piece(betahat, sigma, num_pre, num_post, l_vec, A, alpha, alpha / 10, lf_sims, seed)


def _target_weights(target: str, num_post: int, l_vec):
    if l_vec is not None:
        return l_vec
    if target == "first":
        return np.eye(num_post)[0]
    if target == "average":
        return np.full(num_post, 1.0 / num_post)
    raise ValueError(f"target is '{target}'; use 'first' or 'average', or give l_vec")


def _check_inputs(betahat, sigma, num_pre: int, num_post: int, l_vec):
    betahat = np.asarray(betahat, dtype=float).ravel()
    sigma = np.asarray(sigma, dtype=float)
    if num_pre < 1 or num_post < 1:
        raise ValueError("relative magnitudes need at least one pre-period and one post-period coefficient")
    if betahat.shape != (num_pre + num_post,) or sigma.shape != (len(betahat), len(betahat)):
        raise ValueError(f"betahat has {betahat.size} values and sigma is {sigma.shape}; expected "
                         f"{num_pre + num_post} pre- and post-period coefficients and a square covariance")
    if not np.allclose(sigma, sigma.T, rtol=1e-8, atol=1e-14):
        raise ValueError("sigma is not symmetric")
    l_vec = np.eye(num_post)[0] if l_vec is None else np.asarray(l_vec, dtype=float).ravel()
    if l_vec.shape != (num_post,):
        raise ValueError(f"l_vec has {l_vec.size} weights for {num_post} post-periods")
    return betahat, sigma, l_vec


# ----------------------------------------------------------------------------- public
@dataclass
class RelativeMagnitudesCI:
    """The robust confidence set at one Mbar: its hull on the grid, and the grid itself."""

    mbar: float
    lb: float
    ub: float
    grid: np.ndarray
    accept: np.ndarray

    @property
    def excludes_zero(self) -> bool:
        return bool(self.lb > 0 or self.ub < 0)


def original_ci(betahat, sigma, num_pre: int, num_post: int, l_vec=None, alpha: float = 0.05) -> tuple[float, float]:
    """The usual interval for l' tau_post, assuming parallel trends (HonestDiD ``constructOriginalCS``)."""
    betahat, sigma, l_vec = _check_inputs(betahat, sigma, num_pre, num_post, l_vec)
    post = slice(num_pre, num_pre + num_post)
    est = float(l_vec @ betahat[post])
    se = float(np.sqrt(l_vec @ sigma[post, post] @ l_vec))
    z = stats.norm.ppf(1 - alpha / 2)
    return float(est - z * se), float(est + z * se)


def relative_magnitudes_ci(betahat, sigma, num_pre: int, num_post: int, mbar: float, l_vec=None,
                           alpha: float = 0.05, target: str = "first", grid_points: int = 1000,
                           grid_lb: float | None = None,
                           grid_ub: float | None = None, lf_sims: int = 20000, seed: int = 0,
                           search: str = "grid") -> RelativeMagnitudesCI:
    """Robust confidence set for l' tau_post under Delta^RM(mbar), HonestDiD's C-LF method.

    Parameters
    ----------
    betahat, sigma
        Event-study coefficients (``num_pre`` pre-periods then ``num_post`` post-periods, the
        reference period left out) and their covariance.
    mbar : float
        How many times the largest pre-period change in trends a post-period change may be.
    l_vec : array, optional
        Weights on the post-period effects; default from ``target``: ``first`` (the first
        post-period, HonestDiD's default) or ``average`` (equal weights).
    grid_points, grid_lb, grid_ub
        Test inversion grid; HonestDiD's default is 1000 points on +/- 20 standard errors of
        l' betahat_post around 0.
    lf_sims, seed
        Draws for the least-favourable critical value, and their seed. HonestDiD draws 1000,
        whose simulation error moves an end of the interval by a grid step from one seed to
        the next; 20000 draws (cheap here: the programs are solved by vertex enumeration)
        reproduce the R package's published intervals.
    search : {"grid", "bisect"}
        ``grid`` tests every grid point (HonestDiD). ``bisect`` finds the same hull on the same
        grid with a few dozen tests: from the grid point nearest the estimate (accepted), a
        bisection on the grid index towards each end for the outermost accepted point, then
        a check of every 50th grid point beyond it; when the estimate's point is rejected or
        a checked point is accepted (a set with gaps) it falls back to the full grid. Then
        ``accept`` marks the hull, not each point.
    """
    betahat, sigma, l_vec = _check_inputs(betahat, sigma, num_pre, num_post,
                                          _target_weights(target, num_post, l_vec))
    if search not in ("grid", "bisect"):
        raise ValueError(f"search is '{search}'; use 'grid' or 'bisect'")
    post = slice(num_pre, num_pre + num_post)
    sd_theta = float(np.sqrt(l_vec @ sigma[post, post] @ l_vec))
    lo = -20 * sd_theta if grid_lb is None else grid_lb
    hi = 20 * sd_theta if grid_ub is None else grid_ub
    grid = np.linspace(lo, hi, grid_points)
    pieces = _pieces(betahat, sigma, num_pre, num_post, l_vec, mbar, alpha, lf_sims, seed)
    tested: dict[int, bool] = {}

    def accepted(i: int) -> bool:
        # the set is a union: theta is in it as soon as one piece accepts it
        if i not in tested:
            tested[i] = any(not piece.rejects(float(grid[i])) for piece in pieces)
        return tested[i]

    hull = _hull_by_bisection(grid, float(l_vec @ betahat[post]), accepted) if search == "bisect" else None
    if hull is not None:
        accept = np.zeros(grid_points, dtype=bool)
        accept[hull[0]:hull[1] + 1] = True
    else:
        accept = np.array([accepted(i) for i in range(grid_points)], dtype=bool)
    if accept.any():
        lb, ub = float(grid[accept].min()), float(grid[accept].max())
    else:
        lb = ub = float("nan")
    return RelativeMagnitudesCI(float(mbar), lb, ub, grid, accept)


def _hull_by_bisection(grid: np.ndarray, estimate: float, accepted) -> tuple | None:
    """(first, last) accepted grid index found by bisection (``search="bisect"``), or None to scan the grid."""
    n = len(grid)
    start = int(np.clip(np.searchsorted(grid, estimate), 0, n - 1))
    if start > 0 and abs(grid[start - 1] - estimate) <= abs(grid[start] - estimate):
        start -= 1
    if not accepted(start):
        return None
    ends = []
    for edge, step in ((0, 1), (n - 1, -1)):
        if accepted(edge):
            ends.append(edge)
            continue
        outside, inside = edge, start          # rejected, accepted
        while abs(inside - outside) > 1:
            mid = (outside + inside) // 2
            if accepted(mid):
                inside = mid
            else:
                outside = mid
        # a set with a gap would hide accepted points beyond the one found: look for them
        for j in range(edge, outside, 50 * step):
            if accepted(j):
                return None
        ends.append(inside)
    return ends[0], ends[1]


def relative_magnitudes_breakdown(betahat, sigma, num_pre: int, num_post: int, alpha: float = 0.05, l_vec=None,
                                  target: str = "first", mbar_max: float = 10.0, tol: float = 1e-3,
                                  lf_sims: int = 20000,
                                  seed: int = 0) -> dict:
    """Breakdown value Mbar*: the largest Mbar whose robust confidence set excludes 0.

    The robust set excludes 0 when every piece of Delta^RM(Mbar) rejects theta = 0; that is
    monotone in Mbar (the restriction sets are nested), so Mbar* is found by bisection to
    ``tol`` (piece by piece: see the comment in the code). HonestDiD reads the same value off a
    grid of Mbar values instead; the two agree
    except where the accepted set has a gap around 0, which the grid's hull would cover.
    ``target`` (``first`` or ``average``) or ``l_vec`` chooses the effect, as for
    :func:`relative_magnitudes_ci`.

    Returns
    -------
    dict
        ``breakdown`` (Mbar*; 0.0 when even Mbar = 0 does not exclude 0, i.e. the effect is
        not distinguishable from 0 once the largest pre-period change is allowed for at all;
        ``mbar_max`` with ``capped`` True when the set still excludes 0 there),
        ``original_ci`` (assuming parallel trends), ``significant`` (the original interval
        excludes 0), ``estimate`` (l' betahat_post), ``tol``, ``alpha``, ``method``.
    """
    betahat, sigma, l_vec = _check_inputs(betahat, sigma, num_pre, num_post,
                                          _target_weights(target, num_post, l_vec))
    lo_ci, hi_ci = original_ci(betahat, sigma, num_pre, num_post, l_vec, alpha)
    estimate = float(l_vec @ betahat[num_pre:num_pre + num_post])

    def excludes_zero(mbar: float) -> bool:
        # all() stops at the first piece that accepts 0, and the pieces are built as they are asked for
        pieces = _lazy_pieces(betahat, sigma, num_pre, num_post, l_vec, mbar, alpha, lf_sims, seed)
        return all(piece.rejects(0.0) for piece in pieces)

    result = {"estimate": estimate, "original_ci": (float(lo_ci), float(hi_ci)),
              "significant": bool(lo_ci > 0 or hi_ci < 0),
              "alpha": alpha, "tol": tol, "capped": False, "l_vec": l_vec.tolist(),
              "method": "Rambachan & Roth (2023) relative magnitudes, ARP conditional least-favourable hybrid "
                        "(HonestDiD C-LF)"}
    if not excludes_zero(0.0):
        return {**result, "breakdown": 0.0}
    if excludes_zero(mbar_max):
        return {**result, "breakdown": float(mbar_max), "capped": True}

    def piece_rejects(key: tuple[int, bool], mbar: float) -> bool:
        A = _rm_constraints(num_pre, num_post, mbar, key[0], key[1])
        return _Piece(betahat, sigma, num_pre, num_post, l_vec, A, alpha, alpha / 10, lf_sims, seed).rejects(0.0)

    def bisect(key: tuple[int, bool]) -> float:
        low, high = 0.0, float(mbar_max)
        while high - low > tol:
            mid = (low + high) / 2
            if piece_rejects(key, mid):
                low = mid
            else:
                high = mid
        return low

    # 0 is excluded while every piece rejects it, so Mbar* is the smallest of the pieces' own
    # breakdown values. The bisection on [0, mbar_max] of the piece with the smallest one visits
    # the same midpoints, with the same outcomes, as a bisection testing every piece at each
    # midpoint: one piece is bisected, every other is tested once at the value found, and only
    # a piece that accepts 0 there is bisected in turn.
    low: float | None = None
    for key in [(s, positive) for s in range(-(num_pre - 1), 1) for positive in (True, False)]:
        if low is None or not piece_rejects(key, low):
            low = bisect(key)
    return {**result, "breakdown": low}
