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
    those of the expanded data. The Efron terms are one per event (subject), ``d`` per
    tie group, stored group after group: ``np.repeat(per_group, d)`` spreads a group's
    value over its terms and ``np.add.reduceat(per_term, starts)`` sums them back.

    Only what a Newton step sums over all the terms at once (``denom`` and ``mean``) is
    held at full length. Everything else per term (the Efron fractions ``l / d``, the
    inverses and products that are summed within each group) is made for a block of
    whole groups at a time (:meth:`blocks`): a sum within a group reads that group's
    terms only, so the sums are exactly those over full-length vectors, and the national
    fit holds a few vectors of 3.5 million floats fewer at once.
    """

    #: Efron terms per block of whole groups (a few MB per vector)
    BLOCK_TERMS = 1 << 18

    def __init__(self, time, event, X, strata, weights=None):
        n, p = X.shape
        self.n, self.p = n, p
        self._last_terms: tuple | None = None  # (ties, beta bytes) and the arrays of terms()
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
        self.C = (rc[g_first] - rc[end]).astype(float)
        del rc
        # events per pattern in each event group
        group_of_block = np.cumsum(event_block) - 1
        ev_rows = np.flatnonzero(e_s)
        self.E = np.bincount(group_of_block[block[ev_rows]] * K + k_s[ev_rows], weights=w_s[ev_rows],
                             minlength=self.G * K).reshape(self.G, K).astype(float)
        self.events_per_pattern = self.E.sum(axis=0)
        # Efron terms: one per event, l = 0..d-1 within its group, weighted l / d
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

    def fractions(self, groups: slice, terms: slice, d: np.ndarray) -> np.ndarray:
        """Efron's ``l / d`` for the terms of a block (l = term number - its group's first)."""
        frac = np.arange(terms.start, terms.stop, dtype=float)
        frac -= np.repeat(self.starts[groups].astype(float), d)
        frac /= np.repeat(d.astype(float), d)
        return frac

    def terms(self, beta: np.ndarray, ties: str):
        """Per-pattern weights and the Efron (or Breslow) terms at ``beta``.

        ``denom`` (one per term) and ``mean`` (p x terms: the Efron-weighted mean covariates
        of the risk set) are made on contiguous vectors, the Efron shares of tied events
        block by block (the slow part of a Newton step on millions of events); ``efron``
        is False for Breslow (every term of a group has the whole risk set).

        The last call's arrays are kept: a fit evaluates its final ``beta`` once in the
        Newton loop and again for the score residuals and the ``cox.zph`` test, and on
        the national extract each evaluation is about 0.1 s and 90 MB of per-term
        vectors. A call at another ``beta`` drops them before making its own, so no
        more is held at once than before. Nothing here or in the callers writes into
        the arrays returned."""
        cache_key = (ties, np.asarray(beta, dtype=float).tobytes())
        if self._last_terms is not None and self._last_terms[0] == cache_key:
            return self._last_terms[1]
        self._last_terms = None
        eta = self.patterns @ beta
        eta_shift = eta - eta.max()
        w = np.exp(eta_shift)
        wx = w[:, None] * self.patterns
        # einsum, not @: BLAS would spread these tall, thin products over threads that
        # mostly wait (and compete with other jobs on a small machine)
        S0, S1 = np.einsum("gk,k->g", self.C, w), np.einsum("gk,kj->jg", self.C, wx)
        D0, D1 = np.einsum("gk,k->g", self.E, w), np.einsum("gk,kj->jg", self.E, wx)
        efron = ties == "efron"
        # filled block by block (the same values as at full length, no full-length scratch);
        # Efron: minus l / d of the tied events' share
        denom = np.empty(self.n_terms)
        for groups, terms, d, _ in self.blocks():
            denom[terms] = np.repeat(S0[groups], d)
            if efron:
                share = np.repeat(D0[groups], d)
                share *= self.fractions(groups, terms, d)
                denom[terms] -= share
        del S0, D0
        # the log-likelihood's sum of log denominators, the logs written into ``mean``'s
        # first row before it is filled: no vector of a float per event beside it
        mean = np.empty((self.p, self.n_terms))
        log_denominators = float(np.log(denom, out=mean[0]).sum())
        for groups, terms, d, _ in self.blocks():
            frac = self.fractions(groups, terms, d) if efron else None
            for j in range(self.p):
                row = mean[j, terms]
                row[:] = np.repeat(S1[j, groups], d)
                if frac is not None:
                    share = np.repeat(D1[j, groups], d)
                    share *= frac
                    row -= share
                row /= denom[terms]
        del S1, D1
        self._last_terms = (cache_key, (eta, eta_shift, w, efron, denom, mean, log_denominators))
        return eta, eta_shift, w, efron, denom, mean, log_denominators

    def loglik_derivatives(self, beta: np.ndarray, ties: str):
        """Log partial likelihood, score and information at ``beta``."""
        _, eta_shift, w, efron, denom, mean, log_denominators = self.terms(beta, ties)
        loglik = float(self.events_per_pattern @ eta_shift - log_denominators)
        score = self.events_per_pattern @ self.patterns - mean.sum(axis=1)
        info = self._information(w, efron, denom, mean, None)
        return loglik, score, info

    def _information(self, w, efron: bool, denom, mean, row_weight):
        """``sum_rows row_weight * V_row``, V_row the Efron-weighted covariance of the risk set
        (row_weight None, i.e. 1: the information; g(t) and g(t)^2: the blocks of cox.zph's
        matrix)."""
        cw, ew = np.empty(self.G), np.zeros(self.G)
        for groups, terms, d, local_starts in self.blocks():
            inverse = 1.0 / denom[terms] if row_weight is None else row_weight[terms] / denom[terms]
            cw[groups] = np.add.reduceat(inverse, local_starts)
            if efron:
                inverse *= self.fractions(groups, terms, d)
                ew[groups] = np.add.reduceat(inverse, local_starts)
        pattern_weight = (np.einsum("g,gk->k", cw, self.C) - np.einsum("g,gk->k", ew, self.E)) * w
        second = np.einsum("k,ki,kj->ij", pattern_weight, self.patterns, self.patterns)
        if row_weight is None:
            return second - np.einsum("ir,jr->ij", mean, mean)
        return second - np.einsum("ir,jr,r->ij", mean, mean, row_weight)  # no weighted copy of mean

    def score_residuals(self, beta: np.ndarray, ties: str) -> np.ndarray:
        """Per-subject (per-row) score residuals (R ``residuals(fit, "score")``), in input order."""
        _, _, w, efron, denom, mean, _ = self.terms(beta, ties)
        p, G = self.p, self.G
        A0, A1, M1 = np.empty(G), np.empty((G, p)), np.empty((G, p))
        B0, B1 = np.zeros(G), np.zeros((G, p))
        for groups, terms, d, local_starts in self.blocks():
            inverse = 1.0 / denom[terms]
            A0[groups] = np.add.reduceat(inverse, local_starts)
            for j in range(p):
                A1[groups, j] = np.add.reduceat(mean[j, terms] * inverse, local_starts)
                M1[groups, j] = np.add.reduceat(mean[j, terms], local_starts)
            if efron:
                inverse *= self.fractions(groups, terms, d)
                B0[groups] = np.add.reduceat(inverse, local_starts)
                for j in range(p):
                    B1[groups, j] = np.add.reduceat(mean[j, terms] * inverse, local_starts)
        M1 /= self.d[:, None]
        # the last use of this step's terms in a fit: dropped before the per-subject arrays are made
        self._last_terms = None
        del mean, denom
        cA0 = np.concatenate([[0.0], np.cumsum(A0)])
        cA1 = np.vstack([np.zeros((1, p)), np.cumsum(A1, axis=0)])
        upto, before = self.groups_upto, self.groups_before_stratum
        H0 = cA0[upto] - cA0[before]
        H1 = cA1[upto] - cA1[before]
        x = self.patterns[self.sorted_pattern]
        wi = w[self.sorted_pattern]
        resid = -wi[:, None] * (x * H0[:, None] - H1)
        ev = self.sorted_event
        ge = self.subject_group[ev]
        resid[ev] += (x[ev] - M1[ge]) + wi[ev][:, None] * (x[ev] * B0[ge][:, None] - B1[ge])
        out = np.empty_like(resid)
        out[self.order] = resid
        return out


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
        resid = risk.score_residuals(beta, ties)
        if weights is not None:
            resid *= weights[:, None]
        summed = np.column_stack([np.bincount(clusters, weights=resid[:, j], minlength=fitted.clusters)
                                  for j in range(p)])
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
    # centred over the events, as cox.zph; the per-term vector is centred in place (the same
    # subtraction per term as spreading the centred groups, without a second such vector)
    g_row = risk.spread(g_group)
    centre = g_row.mean()
    g_group = g_group - centre
    g_row -= centre
    _, _, w, efron, denom, mean, _ = risk.terms(fit.params, fit.ties)
    p = risk.p
    # sum over events of g(t) (x_i - xbar(t)): events weighted by g, minus the Efron means
    g_x_events = np.einsum("gk,g->k", risk.E, g_group)  # sum of g over the events of each pattern
    u_time = g_x_events @ risk.patterns - np.einsum("ir,r->i", mean, g_row)
    i11 = fit.information
    i12 = risk._information(w, efron, denom, mean, g_row)
    np.square(g_row, out=g_row)  # now g(t)^2 per term, in place
    i22 = risk._information(w, efron, denom, mean, g_row)
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
