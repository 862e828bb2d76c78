"""Stratified Cox proportional-hazards regression with Efron or Breslow ties, a
cluster-robust (sandwich) covariance, and the Schoenfeld-residual test of proportional
hazards, vectorised for hundreds of thousands of episodes.

Conventions are those of R's ``survival`` package (Therneau), so that results match
``coxph(Surv(t, d) ~ x + strata(s) + cluster(c), ties = "efron")`` and ``cox.zph(fit)``:

- partial likelihood per stratum; at a time with d tied events, Efron's approximation
  uses d terms with denominators ``S0 - (l / d) D0`` for l = 0..d-1 (``D0``: the risk
  weights of the tied events), Breslow's uses ``S0`` d times;
- the robust covariance is ``I^-1 (sum_c U_c U_c') I^-1`` with ``U_c`` the sum of the
  (Efron-adjusted) score residuals of cluster c: R's ``coxph(..., cluster = )`` with no
  small-sample factor;
- the proportional-hazards test is ``cox.zph`` (survival >= 3.0): a score test for adding
  ``g(t) x`` with ``g`` the left-continuous Kaplan-Meier transform of time, centred on the
  events, per covariate and globally, using the model-based information.

Why not statsmodels ``PHReg``: its likelihood, gradient and score residuals loop in
Python over every distinct event time of every stratum (minutes apart in police data, so
hundreds of thousands of iterations per Newton step) and its score residuals use the
Breslow form even when ``ties="efron"``, so its ``groups=`` robust covariance differs from
R's with tied times. Here the covariates are few indicators, so the risk sets are kept as
counts per covariate pattern at each event time (exact integers, computed once) and every
Newton step is a handful of matrix products (docs/methods/survival_did.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from ...data.durations import frequency_weights, group_time_order
from ...data.sources import release_unused_memory

#: largest number of distinct covariate rows the pattern-count engine accepts (it keeps an
#: episodes x patterns table of counts: indicators for a DiD give 3)
MAX_PATTERNS = 64


class CoxError(ValueError):
    """The model cannot be fitted (no events, a constant covariate, no convergence)."""


@dataclass
class CoxFit:
    """A fitted stratified Cox model.

    Attributes
    ----------
    names : list of str
    params : ndarray
        Log hazard ratios.
    cov : ndarray
        Model-based covariance: the inverse information.
    robust_cov : ndarray or None
        Cluster-robust covariance (when clusters were given).
    loglik, loglik_null : float
        Log partial likelihood at the estimate and at zero.
    """

    names: list
    params: np.ndarray
    cov: np.ndarray
    robust_cov: np.ndarray | None
    loglik: float
    loglik_null: float
    iterations: int
    n: int
    events: int
    strata: int
    clusters: int | None
    ties: str
    information: np.ndarray | None = field(repr=False, default=None)
    #: what :meth:`zph` needs of the data: risk sets, time, event and weights (set by fit_cox)
    _risk: tuple[_RiskSets, np.ndarray, np.ndarray, np.ndarray | None] | None = field(repr=False, default=None)

    def se(self, robust: bool = True) -> np.ndarray:
        cov = self.robust_cov if robust and self.robust_cov is not None else self.cov
        return np.sqrt(np.diag(cov))

    #: the test computed inside :func:`fit_cox` (its ``zph`` argument), by transform
    _zph_done: dict = field(repr=False, default_factory=dict)

    def zph(self, transform: str = "km") -> dict:
        """The proportional-hazards test (R ``cox.zph``) for each covariate and globally.

        Returns
        -------
        dict
            ``{"terms": {name: {"chisq", "df", "p"}}, "global": {"chisq", "df", "p"}}``.
        """
        if transform in self._zph_done:
            return self._zph_done[transform]
        return _zph(self, transform)


class _RiskSets:
    """Event tie groups and, at each, the number at risk per covariate pattern.

    Rows may carry frequency weights (how many identical subjects a row stands for): the
    counts at risk and the events are then sums of weights, and the tables are exactly
    those of the expanded data.

    At a group of ``d`` tied events, Efron's ``l``-th term (l = 0..d-1) has the risk set
    ``S - (l / d) D`` (``S``: the risk weights at the time, ``D``: those of its tied events),
    written here as ``R + u D`` with ``R = S - D`` (those at risk who are not found then,
    counted directly) and ``u = (d - l) / d``: both parts are sums of non-negative numbers,
    so nothing cancels when a group's events are most of its risk set. The risk set's
    covariate sums are ``R1 + u D1`` in the same way. Everything a Newton step, the score
    residuals and ``cox.zph`` need is then a per-group combination of ``R0, D0, R1, D1`` and
    a few sums over the group's terms of ``u^a / den^b`` (``den = R0 + u D0``; see
    :meth:`term_sums`): the per-term work does not grow with the number of covariates, and
    no vector of a covariate mean per term is ever made. Breslow's terms all have
    ``u = 1``, so their sums are closed forms. The terms are summed block by block
    (:meth:`blocks`), so no more than a few MB per vector is made at once.
    """

    #: Efron terms per block of whole groups (a few MB per vector)
    BLOCK_TERMS = 1 << 18
    #: the per-group term sums a Newton step needs (names as in :meth:`term_sums`)
    NEWTON_SUMS = ("inv", "u_inv", "inv2", "u_inv2", "u2_inv2")
    #: and those the score residuals need besides
    RESIDUAL_SUMS = ("c_inv", "c_inv2", "uc_inv2")

    def __init__(self, time, event, X, strata, weights=None):
        n, p = X.shape
        self.n, self.p = n, p
        self._last: tuple | None = None  # (ties, beta bytes) and the per-group sums at that beta
        patterns, pattern = _covariate_patterns(X)
        if len(patterns) > MAX_PATTERNS:
            raise CoxError(f"{len(patterns)} distinct covariate rows; this engine handles indicator covariates "
                           f"(at most {MAX_PATTERNS} patterns)")
        K = len(patterns)
        self.patterns, self.K = patterns, K
        order = group_time_order(strata, time)  # by stratum, then time (ties in any order)
        self.order = order
        s_s, t_s, e_s, k_s = strata[order], time[order], event[order], pattern[order]
        w_s = np.ones(n, dtype=np.int64) if weights is None else weights[order]
        new_block = np.ones(n, dtype=bool)
        new_block[1:] = (s_s[1:] != s_s[:-1]) | (t_s[1:] != t_s[:-1])
        block = np.cumsum(new_block) - 1
        block_first = np.flatnonzero(new_block)
        block_events = np.bincount(block, weights=np.where(e_s, w_s, 0), minlength=block_first.size).astype(np.int64)
        event_block = block_events > 0
        self.G = int(event_block.sum())
        if self.G == 0:
            raise CoxError("no episode is found (every one is censored)")
        g_first = block_first[event_block]
        self.group_time = t_s[g_first]
        self.d = block_events[event_block]
        # at risk per pattern at each event group: subjects of the stratum with time >= t,
        # as exact integer counts from reverse cumulative sums of the pattern indicators
        stratum_new = np.ones(n, dtype=bool)
        stratum_new[1:] = s_s[1:] != s_s[:-1]
        stratum_first = np.flatnonzero(stratum_new)
        stratum_end = np.append(stratum_first[1:], n)
        stratum_of_row = np.cumsum(stratum_new) - 1
        onehot = np.zeros((n + 1, K), dtype=np.int64)
        onehot[np.arange(n), k_s] = w_s
        rc = np.cumsum(onehot[::-1], axis=0)[::-1]  # rc[j] = counts over rows j..n-1
        del onehot
        end = stratum_end[stratum_of_row[g_first]]
        at_risk = rc[g_first] - rc[end]
        del rc
        # events per pattern in each event group, and those at risk then who are not found then
        group_of_block = np.cumsum(event_block) - 1
        ev_rows = np.flatnonzero(e_s)
        events = np.bincount(group_of_block[block[ev_rows]] * K + k_s[ev_rows], weights=w_s[ev_rows],
                             minlength=self.G * K).reshape(self.G, K).astype(np.int64)
        # stored pattern by pattern (K x G, each row contiguous): every product below is
        # a few vector operations with numpy's own summation, whatever the BLAS threads
        self.E = np.ascontiguousarray(events.T, dtype=float)
        self.R = np.ascontiguousarray((at_risk - events).T, dtype=float)  # exact: integer counts
        del at_risk, events
        self.events_per_pattern = self.E.sum(axis=1)
        # Efron terms: one per event, l = 0..d-1 within its group
        self.starts = np.cumsum(self.d) - self.d
        self.n_terms = int(self.d.sum())
        # blocks of whole groups of about BLOCK_TERMS terms: (first group, end group, first term, end term)
        cuts = np.searchsorted(self.starts, np.arange(0, self.n_terms, self.BLOCK_TERMS), side="right") - 1
        group_bounds = np.unique(np.append(cuts, self.G)).tolist()
        term_bounds = np.append(self.starts, self.n_terms)[group_bounds].tolist()
        self._blocks = list(zip(group_bounds[:-1], group_bounds[1:], term_bounds[:-1], term_bounds[1:]))
        # per sorted subject: how many event groups precede or share its (stratum, time),
        # and how many belong to earlier strata (for within-stratum cumulative sums)
        group_mark = np.zeros(n, dtype=np.int64)
        group_mark[g_first] = 1
        self.groups_upto = np.cumsum(group_mark)
        groups_before_stratum = self.groups_upto - group_mark
        self.groups_before_stratum = groups_before_stratum[stratum_first][stratum_of_row]
        self.subject_group = np.full(n, -1, dtype=np.int64)
        self.subject_group[e_s] = group_of_block[block[e_s]]
        self.sorted_event = e_s
        self.sorted_pattern = k_s
        self.n_strata = int(stratum_first.size)

    def spread(self, per_group: np.ndarray) -> np.ndarray:
        """A per-group vector repeated over each group's Efron terms."""
        return np.repeat(per_group, self.d)

    def blocks(self):
        """(groups, terms, d, local starts) of each block: slices of whole groups and of
        their terms, the groups' sizes, and each group's first term within the block."""
        for g0, g1, t0, t1 in self._blocks:
            yield slice(g0, g1), slice(t0, t1), self.d[g0:g1], self.starts[g0:g1] - t0

    def term_sums(self, R0: np.ndarray, D0: np.ndarray, efron: bool, names) -> tuple[dict, float]:
        """Per-group sums over the Efron terms, and the sum of every term's log denominator.

        With ``den = R0 + u D0``, ``u = (d - l) / d`` and ``c = l / d`` for term l of a group
        of d: ``inv`` = sum 1/den, ``u_inv`` = sum u/den, ``inv2`` = sum 1/den^2, ``u_inv2``
        = sum u/den^2, ``u2_inv2`` = sum u^2/den^2, ``c_inv`` = sum c/den, ``c_inv2`` = sum
        c/den^2, ``uc_inv2`` = sum u c/den^2 (``names`` says which). Breslow: u = 1, c = 0.
        """
        if not efron:
            den = R0 + D0
            inv = self.d / den
            inv2 = inv / den
            closed = {"inv": inv, "u_inv": inv, "inv2": inv2, "u_inv2": inv2, "u2_inv2": inv2}
            zero = np.zeros(self.G)
            return {name: closed.get(name, zero) for name in names}, float((self.d * np.log(den)).sum())
        sums = {name: np.empty(self.G) for name in names}
        logs = np.empty(self.G)  # per group, so the total does not depend on the blocks
        for groups, terms, d, local_starts in self.blocks():
            size = np.repeat(d.astype(float), d)
            later = np.repeat(self.starts[groups] + d, d)  # d - l = (group's end) - (term number)
            later -= np.arange(terms.start, terms.stop)
            u = later / size
            den = np.repeat(R0[groups], d)
            den += u * np.repeat(D0[groups], d)
            logs[groups] = np.add.reduceat(np.log(den), local_starts)
            inv = np.reciprocal(den, out=den)
            u_inv = u * inv
            c_inv = None
            for name in names:
                if name == "inv":
                    value = inv
                elif name == "u_inv":
                    value = u_inv
                elif name == "inv2":
                    value = inv * inv
                elif name == "u_inv2":
                    value = u_inv * inv
                elif name == "u2_inv2":
                    value = u_inv * u_inv
                else:
                    if c_inv is None:
                        c_inv = (size - later) / size * inv  # c = l / d
                    value = {"c_inv": c_inv, "c_inv2": c_inv * inv, "uc_inv2": c_inv * u_inv}[name]
                sums[name][groups] = np.add.reduceat(value, local_starts)
        return sums, float(logs.sum())

    def sums(self, beta: np.ndarray, ties: str, extra: tuple = ()) -> dict:
        """The per-pattern weights, the groups' risk-set sums and their term sums at ``beta``.

        The last call's values are kept: a fit evaluates its final ``beta`` once in the
        Newton loop and again for the score residuals and the ``cox.zph`` test. ``extra``
        names term sums wanted besides :attr:`NEWTON_SUMS` (computed once and added)."""
        key = (ties, np.asarray(beta, dtype=float).tobytes())
        if self._last is None or self._last[0] != key:
            eta = self.patterns @ beta
            eta_shift = eta - eta.max()
            w = np.exp(eta_shift)
            wx = w[:, None] * self.patterns
            R0, R1 = _combine(self.R, w), _combine(self.R, wx)
            D0, D1 = _combine(self.E, w), _combine(self.E, wx)
            efron = ties == "efron"
            term, log_total = self.term_sums(R0, D0, efron, self.NEWTON_SUMS)
            self._last = (key, {"eta_shift": eta_shift, "w": w, "efron": efron, "R0": R0, "D0": D0, "R1": R1,
                                "D1": D1, "log_total": log_total, **_read_only(term)})
            _read_only(self._last[1])
        values = self._last[1]
        missing = [name for name in extra if name not in values]
        if missing:
            more, _ = self.term_sums(values["R0"], values["D0"], values["efron"], missing)
            values.update(_read_only(more))
        return values

    def mean_sums(self, values: dict) -> np.ndarray:
        """Per group, the sum over its terms of the risk set's mean covariates (p x G)."""
        return values["R1"] * values["inv"] + values["D1"] * values["u_inv"]

    def loglik_derivatives(self, beta: np.ndarray, ties: str):
        """Log partial likelihood, score and information at ``beta``."""
        values = self.sums(beta, ties)
        loglik = float(self.events_per_pattern @ values["eta_shift"] - values["log_total"])
        score = self.events_per_pattern @ self.patterns - self.mean_sums(values).sum(axis=1)
        return loglik, score, self._information(values, None)

    def _information(self, values: dict, group_weight):
        """``sum_terms weight * V_term``, V_term the covariance of the covariates over the
        term's risk set (group_weight None, i.e. 1: the information; g(t) and g(t)^2 per
        group: the blocks of cox.zph's matrix)."""
        a0, a1 = values["inv"], values["u_inv"]
        q0, q1, q2 = values["inv2"], values["u_inv2"], values["u2_inv2"]
        if group_weight is not None:
            a0, a1, q0, q1, q2 = (group_weight * v for v in (a0, a1, q0, q1, q2))
        pattern_weight = ((self.R * a0).sum(axis=1) + (self.E * a1).sum(axis=1)) * values["w"]
        second = np.einsum("k,ki,kj->ij", pattern_weight, self.patterns, self.patterns)
        R1, D1 = values["R1"], values["D1"]
        cross = _gram(R1, D1, q1)
        means = _gram(R1, R1, q0) + cross + cross.T + _gram(D1, D1, q2)
        return second - means

    #: subjects per chunk of score residuals (a few MB per array)
    RESIDUAL_CHUNK = 1 << 17

    def score_residual_chunks(self, beta: np.ndarray, ties: str):
        """Per-subject score residuals (R ``residuals(fit, "score")``) in the sorted order, as
        (slice of sorted subjects, p columns) for a chunk of subjects at a time: a cluster sum
        needs no full-length residual array (the national fit's largest step otherwise)."""
        values = self.sums(beta, ties, self.RESIDUAL_SUMS)
        p = self.p
        R1, D1, w = values["R1"], values["D1"], values["w"]
        # per group: sum over its terms of 1/den, of mean/den, of mean, of c/den and of c mean/den
        A1 = (R1 * values["inv2"] + D1 * values["u_inv2"]).T
        M1 = (self.mean_sums(values) / self.d).T
        B0 = values["c_inv"]
        B1 = (R1 * values["c_inv2"] + D1 * values["uc_inv2"]).T
        cA0 = np.concatenate([[0.0], np.cumsum(values["inv"])])
        cA1 = np.vstack([np.zeros((1, p)), np.cumsum(A1, axis=0)])
        # the last use of this step's sums in a fit: dropped before the per-subject arrays are made
        self._last = None
        del values, R1, D1, A1
        for first in range(0, self.n, self.RESIDUAL_CHUNK):
            rows = slice(first, min(self.n, first + self.RESIDUAL_CHUNK))
            upto, before = self.groups_upto[rows], self.groups_before_stratum[rows]
            H0 = cA0[upto] - cA0[before]
            H1 = cA1[upto] - cA1[before]
            pattern = self.sorted_pattern[rows]
            x = self.patterns[pattern]
            wi = w[pattern]
            resid = -wi[:, None] * (x * H0[:, None] - H1)
            ev = self.sorted_event[rows]
            ge = self.subject_group[rows][ev]
            resid[ev] += (x[ev] - M1[ge]) + wi[ev][:, None] * (x[ev] * B0[ge][:, None] - B1[ge])
            yield rows, resid

    def score_residuals(self, beta: np.ndarray, ties: str) -> np.ndarray:
        """Per-subject (per-row) score residuals (R ``residuals(fit, "score")``), in input order."""
        out = np.empty((self.n, self.p))
        for rows, resid in self.score_residual_chunks(beta, ties):
            out[self.order[rows]] = resid
        return out

    def cluster_score_sums(self, beta: np.ndarray, ties: str, clusters: np.ndarray, n_clusters: int,
                           weights: np.ndarray | None) -> np.ndarray:
        """Per cluster (codes 0..n_clusters-1 per input row), the sum of its rows' score
        residuals, each counted ``weights`` times (frequency weights): n_clusters x p."""
        sorted_clusters = clusters[self.order]
        sorted_weights = None if weights is None else weights[self.order]
        summed = np.zeros((n_clusters, self.p))
        for rows, resid in self.score_residual_chunks(beta, ties):
            if sorted_weights is not None:
                resid *= sorted_weights[rows][:, None]
            for j in range(self.p):
                summed[:, j] += np.bincount(sorted_clusters[rows], weights=resid[:, j], minlength=n_clusters)
        return summed


def _read_only(values: dict) -> dict:
    """The dict, its arrays made read-only: the cached sums are shared by the steps that reuse
    them (and, for Breslow, some are one array), so a write would change them all."""
    for value in values.values():
        if isinstance(value, np.ndarray):
            value.setflags(write=False)
    return values


def _combine(by_pattern: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``sum_k weight[k] * by_pattern[k]`` (K x G rows; weight K or K x p): G, or p x G."""
    if weight.ndim == 1:
        out = by_pattern[0] * weight[0]
        for k in range(1, len(weight)):
            out += by_pattern[k] * weight[k]
        return out
    return np.stack([_combine(by_pattern, weight[:, j]) for j in range(weight.shape[1])])


def _gram(A: np.ndarray, B: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``sum_g weight[g] A[:, g] B[:, g]'`` for p x G rows (numpy's pairwise sums, no BLAS)."""
    return np.array([[float((a * weight * b).sum()) for b in B] for a in A])


def _covariate_patterns(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of X (in increasing order of the column codes, the first column
    varying fastest) and each row's pattern index. Column codes are combined into one key
    (much faster than ``np.unique(X, axis=0)`` on long data); 0/1 indicator columns need
    no sort at all, and the distinct keys are found by counting when they are few."""
    column_values, key = [], np.zeros(X.shape[0], dtype=np.int64)
    radix = 1
    for j in range(X.shape[1]):
        column = X[:, j]
        if ((column == 0) | (column == 1)).all():
            values, codes = np.array([0.0, 1.0]), (column == 1).astype(np.int64)
        else:
            values, codes = np.unique(column, return_inverse=True)
            codes = codes.reshape(-1).astype(np.int64)
        if radix * len(values) > 2 ** 62 // 2:
            patterns, pattern = np.unique(X, axis=0, return_inverse=True)
            return patterns, pattern.reshape(-1)
        key += codes * radix
        column_values.append((values, radix))
        radix *= len(values)
    if radix <= 1 << 20:
        present = np.flatnonzero(np.bincount(key, minlength=radix))
        lookup = np.zeros(radix, dtype=np.int64)
        lookup[present] = np.arange(present.size)
        keys, pattern = present, lookup[key]
    else:
        keys, pattern = np.unique(key, return_inverse=True)
        pattern = pattern.reshape(-1)
    patterns = np.column_stack([values[(keys // r) % len(values)] for values, r in column_values]) \
        if column_values else np.zeros((keys.size, 0))
    return patterns.astype(float).reshape(keys.size, X.shape[1]), pattern


def fit_cox(time, event, X, strata=None, cluster=None, ties: str = "efron", names=None,
            max_iter: int = 30, tol: float = 1e-11, weights=None, zph: str | None = None) -> CoxFit:
    """Fit a stratified Cox model by Newton-Raphson (with step halving, as R's coxph).

    Parameters
    ----------
    time : array_like
        Follow-up time (hours to found or to censoring).
    event : array_like of bool
        True when the event (found) was observed.
    X : array_like, shape (n, p)
        Covariates (indicators: at most ``MAX_PATTERNS`` distinct rows).
    strata : array_like, optional
        Stratum labels: each has its own baseline hazard.
    cluster : array_like, optional
        Cluster labels for the robust covariance.
    ties : {"efron", "breslow"}
    max_iter, tol
        Newton iterations, and convergence on the largest step and relative log-likelihood change.
    weights : array_like of int, optional
        Frequency weights: how many identical subjects (same stratum, cluster, time, event
        and covariates) each row stands for. The fit is that of the expanded data (the
        same risk sets, events and Efron terms; the cluster sums of the score residuals
        add each row's residual ``weight`` times), computed on the distinct rows. Not R's
        case weights: R's Efron approximation counts tied rows, so ``coxph(weights = )``
        on collapsed rows differs from ``coxph`` on the episodes; this equals the latter.
    zph : str, optional
        A ``cox.zph`` transform ("km", "identity", "log"): the proportional-hazards test is
        computed inside the fit, from the last Newton step's terms, and the risk sets are
        not kept (tens of MB nationally): ``CoxFit.zph`` gives that test, the same as
        computed afterwards, and only that one.

    Raises
    ------
    CoxError
        No events, a covariate without variation within strata, or no convergence.
    """
    if zph not in (None, *ZPH_TRANSFORMS):  # before the fit, not after it
        raise ValueError(f"unknown cox.zph transform {zph!r}: one of {', '.join(ZPH_TRANSFORMS)}")
    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=bool)
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    n, p = X.shape
    names = list(names) if names is not None else [f"x{j}" for j in range(p)]
    if ties not in ("efron", "breslow"):
        raise ValueError("ties must be efron or breslow")
    if weights is not None:
        weights = frequency_weights(weights, n)
        if (weights == 0).any():
            nonzero = weights > 0
            time, event, X, weights = time[nonzero], event[nonzero], X[nonzero], weights[nonzero]
            strata = None if strata is None else np.asarray(strata)[nonzero]
            cluster = None if cluster is None else np.asarray(cluster)[nonzero]
            n = X.shape[0]
    strata_codes = np.zeros(n, dtype=np.int64) if strata is None else np.unique(np.asarray(strata), return_inverse=True)[1].reshape(-1)
    risk = _RiskSets(time, event, X, strata_codes, weights)
    release_unused_memory()  # the risk sets' construction scratch, else resident through the Newton steps
    beta = np.zeros(p)
    loglik, score, info = risk.loglik_derivatives(beta, ties)
    loglik_null = loglik
    iterations = 0
    converged = False
    for iterations in range(1, max_iter + 1):  # noqa: B007 - the count is reported after the loop
        try:
            step = np.linalg.solve(info, score)
        except np.linalg.LinAlgError:
            raise CoxError("the information matrix is singular: a covariate does not vary within strata") from None
        new_beta = beta + step
        new_loglik, new_score, new_info = risk.loglik_derivatives(new_beta, ties)
        halvings = 0
        while (not np.isfinite(new_loglik) or new_loglik < loglik - 1e-12 * abs(loglik)) and halvings < 30:
            step /= 2.0
            new_beta = beta + step
            new_loglik, new_score, new_info = risk.loglik_derivatives(new_beta, ties)
            halvings += 1
        change = abs(new_loglik - loglik)
        beta, loglik, score, info = new_beta, new_loglik, new_score, new_info
        if np.max(np.abs(step)) < tol or change <= tol * max(1.0, abs(loglik)) * 1e-3:
            converged = True
            break
    if not converged:
        raise CoxError(f"Newton-Raphson did not converge in {max_iter} iterations")
    release_unused_memory()  # the Newton steps' freed scratch, before the test and the residuals add theirs
    if np.linalg.matrix_rank(info) < p:
        raise CoxError("the information matrix is singular: a covariate does not vary within strata")
    cov = np.linalg.inv(info)
    n_subjects = n if weights is None else int(weights.sum())
    events = int(event.sum()) if weights is None else int(weights[event].sum())
    fitted = CoxFit(names=names, params=beta, cov=cov, robust_cov=None, loglik=loglik, loglik_null=loglik_null,
                    iterations=iterations, n=n_subjects, events=events, strata=risk.n_strata, clusters=None,
                    ties=ties, information=info, _risk=(risk, time, event, weights))
    if zph is not None:
        # before the score residuals, which drop the last step's terms that the test reuses
        fitted._zph_done[zph] = _zph(fitted, zph)
        release_unused_memory()  # the test's per-term vector, before the residuals' arrays
    if cluster is not None:
        clusters = np.unique(np.asarray(cluster), return_inverse=True)[1].reshape(-1)
        fitted.clusters = int(clusters.max()) + 1
        summed = risk.cluster_score_sums(beta, ties, clusters, fitted.clusters, weights)
        fitted.robust_cov = cov @ (summed.T @ summed) @ cov
    if zph is not None:
        fitted._risk = None
    return fitted


def _km_transform(time: np.ndarray, event: np.ndarray, at: np.ndarray, weights=None) -> np.ndarray:
    """``1 - S(t-)`` of the pooled Kaplan-Meier curve at times ``at`` (R cox.zph ``km``)."""
    order = np.argsort(time)  # one sort: distinct times and each row's time index
    sorted_time = time[order]
    new = np.ones(sorted_time.size, dtype=bool)
    new[1:] = sorted_time[1:] != sorted_time[:-1]
    times = sorted_time[new]
    inverse = np.empty(time.size, dtype=np.int64)
    inverse[order] = np.cumsum(new) - 1
    n_at = np.bincount(inverse, weights=weights, minlength=times.size)
    d_at = np.bincount(inverse, weights=event.astype(float) if weights is None else np.where(event, weights, 0),
                       minlength=times.size)
    n_risk = n_at[::-1].cumsum()[::-1]
    surv = np.cumprod(1.0 - d_at / n_risk)
    position = np.searchsorted(times, at, side="left")  # times strictly below `at`
    left = np.concatenate([[1.0], surv])[position]
    return 1.0 - left


#: the transforms of time R's cox.zph offers that this test implements
ZPH_TRANSFORMS = ("km", "identity", "log")


def _zph(fit: CoxFit, transform: str) -> dict:
    if fit._risk is None and fit._zph_done:
        raise ValueError(f"this fit kept only the {', '.join(fit._zph_done)} proportional-hazards test (fit_cox's "
                         f"zph argument) and not the risk sets: refit with zph={transform!r}")
    if fit._risk is None or fit.information is None:
        raise ValueError("the proportional-hazards test needs the risk sets fit_cox keeps: fit the model with fit_cox")
    risk, time, event, weights = fit._risk
    if transform == "km":
        g_group = _km_transform(time, event, risk.group_time, weights)
    elif transform == "identity":
        g_group = risk.group_time.copy()
    elif transform == "log":
        g_group = np.log(risk.group_time)
    else:
        raise ValueError(f"unknown transform {transform!r}")
    # centred over the events (every Efron term of a group shares its time), as cox.zph
    g_group = g_group - float(risk.d @ g_group) / risk.n_terms
    values = risk.sums(fit.params, fit.ties)
    p = risk.p
    # sum over events of g(t) (x_i - xbar(t)): events weighted by g, minus the Efron means
    g_x_events = (risk.E * g_group).sum(axis=1)  # sum of g over the events of each pattern
    u_time = g_x_events @ risk.patterns - (risk.mean_sums(values) * g_group).sum(axis=1)
    i11 = fit.information
    i12 = risk._information(values, g_group)
    i22 = risk._information(values, g_group * g_group)
    imat = np.block([[i11, i12], [i12.T, i22]])
    u = np.concatenate([np.zeros(p), u_time])
    def score_test(sub_u: np.ndarray, sub_i: np.ndarray, df: int) -> dict:
        # singular when g(t) does not vary over the events (one event time): no test, None
        try:
            chisq = float(sub_u @ np.linalg.solve(sub_i, sub_u))
        except np.linalg.LinAlgError:
            return {"chisq": None, "df": df, "p": None}
        return {"chisq": chisq, "df": df, "p": float(stats.chi2.sf(chisq, df))}

    terms = {}
    for j, name in enumerate(fit.names):
        kk = list(range(p)) + [p + j]
        terms[name] = score_test(u[kk], imat[np.ix_(kk, kk)], 1)
    return {"transform": transform, "terms": terms, "global": score_test(u, imat, p)}


__all__ = ["CoxFit", "CoxError", "fit_cox", "MAX_PATTERNS"]
