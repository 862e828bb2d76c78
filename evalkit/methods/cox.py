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
    information: np.ndarray = field(repr=False, default=None)
    _risk: object = field(repr=False, default=None)

    def se(self, robust: bool = True) -> np.ndarray:
        cov = self.robust_cov if robust and self.robust_cov is not None else self.cov
        return np.sqrt(np.diag(cov))

    def zph(self, transform: str = "km") -> dict:
        """The proportional-hazards test (R ``cox.zph``) for each covariate and globally.

        Returns
        -------
        dict
            ``{"terms": {name: {"chisq", "df", "p"}}, "global": {"chisq", "df", "p"}}``.
        """
        return _zph(self, transform)


class _RiskSets:
    """Event tie groups and, at each, the number at risk per covariate pattern."""

    def __init__(self, time, event, X, strata):
        n, p = X.shape
        self.n, self.p = n, p
        patterns, pattern = _covariate_patterns(X)
        if len(patterns) > MAX_PATTERNS:
            raise CoxError(f"{len(patterns)} distinct covariate rows; this engine handles indicator covariates "
                           f"(at most {MAX_PATTERNS} patterns)")
        K = len(patterns)
        self.patterns, self.pattern, self.K = patterns, pattern, K
        order = np.lexsort((time, strata))
        self.order = order
        s_s, t_s, e_s, k_s = strata[order], time[order], event[order], pattern[order]
        new_block = np.ones(n, dtype=bool)
        new_block[1:] = (s_s[1:] != s_s[:-1]) | (t_s[1:] != t_s[:-1])
        block = np.cumsum(new_block) - 1
        block_first = np.flatnonzero(new_block)
        block_events = np.bincount(block, weights=e_s, minlength=block_first.size).astype(np.int64)
        event_block = block_events > 0
        self.G = int(event_block.sum())
        if self.G == 0:
            raise CoxError("no episode is found (every one is censored)")
        g_first = block_first[event_block]
        self.group_stratum = s_s[g_first]
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
        onehot[np.arange(n), k_s] = 1
        rc = np.cumsum(onehot[::-1], axis=0)[::-1]  # rc[j] = counts over rows j..n-1
        end = stratum_end[stratum_of_row[g_first]]
        self.C = (rc[g_first] - rc[end]).astype(float)
        # events per pattern in each event group
        group_of_block = np.cumsum(event_block) - 1
        ev_rows = np.flatnonzero(e_s)
        self.E = np.bincount(group_of_block[block[ev_rows]] * K + k_s[ev_rows],
                             minlength=self.G * K).reshape(self.G, K).astype(float)
        self.events_per_pattern = self.E.sum(axis=0)
        # Efron terms: one per event, l = 0..d-1 within its group
        self.row_group = np.repeat(np.arange(self.G), self.d)
        starts = np.cumsum(self.d) - self.d
        self.row_l = np.arange(self.row_group.size) - starts[self.row_group]
        # per sorted subject: how many event groups precede or share its (stratum, time),
        # and how many belong to earlier strata (for within-stratum cumulative sums)
        group_mark = np.zeros(n, dtype=np.int64)
        group_mark[g_first] = 1
        self.groups_upto = np.cumsum(group_mark)
        groups_before_stratum = np.cumsum(group_mark) - group_mark
        self.groups_before_stratum = groups_before_stratum[stratum_first][stratum_of_row]
        self.subject_group = np.full(n, -1, dtype=np.int64)
        self.subject_group[e_s] = group_of_block[block[e_s]]
        self.sorted_event = e_s
        self.sorted_pattern = k_s
        self.n_strata = int(stratum_first.size)

    def terms(self, beta: np.ndarray, ties: str):
        """Per-pattern weights and the Efron (or Breslow) terms at ``beta``."""
        eta = self.patterns @ beta
        eta_shift = eta - eta.max()
        w = np.exp(eta_shift)
        wx = w[:, None] * self.patterns
        S0, S1 = self.C @ w, self.C @ wx
        D0, D1 = self.E @ w, self.E @ wx
        g = self.row_group
        frac = self.row_l / self.d[g] if ties == "efron" else np.zeros(g.size)
        denom = S0[g] - frac * D0[g]
        mean = (S1[g] - frac[:, None] * D1[g]) / denom[:, None]
        return eta, eta_shift, w, frac, denom, mean

    def loglik_derivatives(self, beta: np.ndarray, ties: str):
        """Log partial likelihood, score and information at ``beta``."""
        eta, eta_shift, w, frac, denom, mean = self.terms(beta, ties)
        loglik = float(self.events_per_pattern @ eta_shift - np.log(denom).sum())
        score = self.events_per_pattern @ self.patterns - mean.sum(axis=0)
        info = self._information(w, frac, denom, mean, np.ones(denom.size))
        return loglik, score, info

    def _information(self, w, frac, denom, mean, row_weight):
        """``sum_rows row_weight * V_row``, V_row the Efron-weighted covariance of the risk set
        (row_weight 1: the information; g(t) and g(t)^2: the blocks of cox.zph's matrix)."""
        g = self.row_group
        cw = np.bincount(g, weights=row_weight / denom, minlength=self.G)
        ew = np.bincount(g, weights=row_weight * frac / denom, minlength=self.G)
        pattern_weight = (cw @ self.C - ew @ self.E) * w
        second = np.einsum("k,ki,kj->ij", pattern_weight, self.patterns, self.patterns)
        return second - np.einsum("r,ri,rj->ij", row_weight, mean, mean)

    def score_residuals(self, beta: np.ndarray, ties: str) -> np.ndarray:
        """Per-subject score residuals (R ``residuals(fit, "score")``), in input order."""
        _, _, w, frac, denom, mean = self.terms(beta, ties)
        g = self.row_group
        p = self.p
        A0 = np.bincount(g, weights=1.0 / denom, minlength=self.G)
        B0 = np.bincount(g, weights=frac / denom, minlength=self.G)
        A1 = np.column_stack([np.bincount(g, weights=mean[:, j] / denom, minlength=self.G) for j in range(p)])
        B1 = np.column_stack([np.bincount(g, weights=frac * mean[:, j] / denom, minlength=self.G) for j in range(p)])
        M1 = np.column_stack([np.bincount(g, weights=mean[:, j], minlength=self.G) for j in range(p)]) / self.d[:, None]
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
    """Distinct rows of X and each row's pattern index (column codes combined into one key:
    much faster than ``np.unique(X, axis=0)`` on long data)."""
    key = np.zeros(X.shape[0], dtype=np.int64)
    radix = 1
    for j in range(X.shape[1]):
        values, codes = np.unique(X[:, j], return_inverse=True)
        if radix * len(values) > 2 ** 62 // 2:
            patterns, pattern = np.unique(X, axis=0, return_inverse=True)
            return patterns, pattern.reshape(-1)
        key += codes.reshape(-1).astype(np.int64) * radix
        radix *= len(values)
    keys, first, pattern = np.unique(key, return_index=True, return_inverse=True)
    return X[first], pattern.reshape(-1)


def fit_cox(time, event, X, strata=None, cluster=None, ties: str = "efron", names=None,
            max_iter: int = 30, tol: float = 1e-11) -> CoxFit:
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

    Raises
    ------
    CoxError
        No events, a covariate without variation within strata, or no convergence.
    """
    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=bool)
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    n, p = X.shape
    names = list(names) if names is not None else [f"x{j}" for j in range(p)]
    if ties not in ("efron", "breslow"):
        raise ValueError("ties must be efron or breslow")
    strata_codes = np.zeros(n, dtype=np.int64) if strata is None else np.unique(np.asarray(strata), return_inverse=True)[1].reshape(-1)
    risk = _RiskSets(time, event, X, strata_codes)
    beta = np.zeros(p)
    loglik, score, info = risk.loglik_derivatives(beta, ties)
    loglik_null = loglik
    iterations = 0
    converged = False
    for iterations in range(1, max_iter + 1):
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
    if np.linalg.matrix_rank(info) < p:
        raise CoxError("the information matrix is singular: a covariate does not vary within strata")
    cov = np.linalg.inv(info)
    robust = None
    n_clusters = None
    if cluster is not None:
        clusters = np.unique(np.asarray(cluster), return_inverse=True)[1].reshape(-1)
        n_clusters = int(clusters.max()) + 1
        resid = risk.score_residuals(beta, ties)
        summed = np.column_stack([np.bincount(clusters, weights=resid[:, j], minlength=n_clusters) for j in range(p)])
        robust = cov @ (summed.T @ summed) @ cov
    return CoxFit(names=names, params=beta, cov=cov, robust_cov=robust, loglik=loglik, loglik_null=loglik_null,
                  iterations=iterations, n=n, events=int(event.sum()), strata=risk.n_strata, clusters=n_clusters,
                  ties=ties, information=info, _risk=(risk, time, event))


def _km_transform(time: np.ndarray, event: np.ndarray, at: np.ndarray) -> np.ndarray:
    """``1 - S(t-)`` of the pooled Kaplan-Meier curve at times ``at`` (R cox.zph ``km``)."""
    times, inverse = np.unique(time, return_inverse=True)
    n_at = np.bincount(inverse, minlength=times.size)
    d_at = np.bincount(inverse, weights=event.astype(float), minlength=times.size)
    n_risk = n_at[::-1].cumsum()[::-1]
    surv = np.cumprod(1.0 - d_at / n_risk)
    position = np.searchsorted(times, at, side="left")  # times strictly below `at`
    left = np.concatenate([[1.0], surv])[position]
    return 1.0 - left


def _zph(fit: CoxFit, transform: str) -> dict:
    risk, time, event = fit._risk
    if transform == "km":
        g_group = _km_transform(time, event, risk.group_time)
    elif transform == "identity":
        g_group = risk.group_time.copy()
    elif transform == "log":
        g_group = np.log(risk.group_time)
    else:
        raise ValueError(f"unknown transform {transform!r}")
    g_group = g_group - g_group[risk.row_group].mean()  # centred over the events, as cox.zph
    g_row = g_group[risk.row_group]
    _, _, w, frac, denom, mean = risk.terms(fit.params, fit.ties)
    p = risk.p
    # sum over events of g(t) (x_i - xbar(t)): events weighted by g, minus the Efron means
    g_x_events = risk.E.T @ g_group  # sum of g over the events of each pattern
    u_time = g_x_events @ risk.patterns - (g_row[:, None] * mean).sum(axis=0)
    i11 = fit.information
    i12 = risk._information(w, frac, denom, mean, g_row)
    i22 = risk._information(w, frac, denom, mean, g_row ** 2)
    imat = np.block([[i11, i12], [i12.T, i22]])
    u = np.concatenate([np.zeros(p), u_time])
    terms = {}
    for j, name in enumerate(fit.names):
        kk = list(range(p)) + [p + j]
        sub_u = u[kk]
        chisq = float(sub_u @ np.linalg.solve(imat[np.ix_(kk, kk)], sub_u))
        terms[name] = {"chisq": chisq, "df": 1, "p": float(stats.chi2.sf(chisq, 1))}
    chisq = float(u @ np.linalg.solve(imat, u))
    return {"transform": transform, "terms": terms,
            "global": {"chisq": chisq, "df": p, "p": float(stats.chi2.sf(chisq, p))}}


__all__ = ["CoxFit", "CoxError", "fit_cox", "MAX_PATTERNS"]
