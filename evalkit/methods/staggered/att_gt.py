"""Group-time average treatment effects ATT(g,t) (Callaway & Sant'Anna 2021) with their
influence functions, for a balanced panel held as a units-by-periods array.

Everything is in period positions (0 = the first period of the window); a unit's cohort
is the position of its adoption period, or :data:`NEVER`. The conventions are those of
R's ``did`` (``att_gt`` with ``panel = TRUE``):

* ``base_period="varying"``: a pre-period cell (t < g) compares t with t - 1; a
  post-period cell compares t with g - anticipation - 1. ``"universal"``: every cell
  compares with g - anticipation - 1, and that reference cell is 0 by construction.
* Controls: never-treated units, or not-yet-treated units: never-treated plus cohorts
  h with h > max(t, base) + anticipation, excluding the cohort being estimated.
* Influence functions on R's scale: the column of cell k has entries
  ``(n / n_k) * psi_i`` for the n_k units of the cell's treated and control groups and
  0 elsewhere, so ``var = sum(IF**2) / n**2`` with n all units.
* Covariates: outcome regression (DRDID ``reg_did_panel``), normalised inverse
  probability weighting (``std_ipw_did_panel``) or the locally efficient doubly robust
  estimator of Sant'Anna & Zhao (2020) (``drdid_panel``), with their influence
  functions including the estimation effect of the nuisance models. Without covariates
  the three coincide with the difference in mean changes, computed for all cells at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: cohort code of units that never adopt (larger than any period position)
NEVER = np.iinfo(np.int64).max // 4

ESTIMATIONS = ("regression", "ipw", "doubly_robust")


class GroupTimeError(ValueError):
    """A cell cannot be estimated (singular covariates, no overlap); ``cell`` names it."""

    def __init__(self, message: str, cohort: int, period: int):
        super().__init__(message)
        self.cohort = cohort
        self.period = period


@dataclass
class GroupTime:
    """All ATT(g,t) cells of one outcome, in cohort-then-period order."""

    cohort: np.ndarray       # (K,) adoption position g of each cell
    period: np.ndarray       # (K,) period position t
    base: np.ndarray         # (K,) base period position
    reference: np.ndarray    # (K,) bool: the universal-base reference cell (0 by construction)
    att: np.ndarray          # (K,)
    influence: np.ndarray    # (n, K)
    n_treated: np.ndarray    # (K,)
    n_control: np.ndarray    # (K,)
    unit_cohort: np.ndarray  # (n,) cohort of each unit, NEVER for never-treated
    cohorts: np.ndarray      # (G,) sorted adoption positions
    cohort_size: np.ndarray  # (G,)
    overlap_trimmed: int = 0  # control observations dropped by propensity-score trimming

    @property
    def n(self) -> int:
        return self.influence.shape[0]

    @property
    def post(self) -> np.ndarray:
        return self.period >= self.cohort

    @property
    def event_time(self) -> np.ndarray:
        return self.period - self.cohort

    @property
    def cohort_index(self) -> np.ndarray:
        """Position of each cell's cohort in :attr:`cohorts`."""
        return np.searchsorted(self.cohorts, self.cohort)

    @property
    def se(self) -> np.ndarray:
        return standard_errors(self.influence)


def standard_errors(influence: np.ndarray) -> np.ndarray:
    """Analytic standard errors from influence functions on R did's scale."""
    n = influence.shape[0]
    return np.sqrt(np.einsum("ij,ij->j", influence, influence)) / n


def cells(T: int, cohorts: np.ndarray, anticipation: int, base_period: str):
    """The (cohort, period, base, reference) arrays of every cell, cohort-major."""
    first = 1 if base_period == "varying" else 0
    periods = np.arange(first, T)
    g = np.repeat(cohorts, periods.size)
    t = np.tile(periods, cohorts.size)
    ref = g - anticipation - 1
    if base_period == "varying":
        base = np.where(t >= g, ref, t - 1)
        reference = np.zeros(g.size, dtype=bool)
    else:
        base = ref.copy()
        reference = t == ref
    return g, t, base, reference


def control_membership(cell_cohort, cell_period, cell_base, groups, control_group: str, anticipation: int):
    """(K, G + 1) bool: which cohorts (last column: never-treated) are controls of each cell."""
    never = groups == NEVER
    if control_group == "never_treated":
        return np.broadcast_to(never, (cell_cohort.size, groups.size)).copy()
    latest = np.maximum(cell_period, cell_base) + anticipation
    later = groups[None, :] > latest[:, None]
    return never[None, :] | (later & (groups[None, :] != cell_cohort[:, None]))


def group_time_att(outcome: np.ndarray, unit_cohort: np.ndarray, *, control_group: str = "never_treated",
                   anticipation: int = 0, base_period: str = "varying", covariates: np.ndarray | None = None,
                   estimation: str = "doubly_robust") -> GroupTime:
    """Estimate every ATT(g,t) with its influence function.

    Parameters
    ----------
    outcome : ndarray, shape (n, T)
        Outcome of each unit in each period (balanced, no missing values).
    unit_cohort : ndarray of int, shape (n,)
        Adoption position of each unit, :data:`NEVER` for never-treated units.
    control_group : {"never_treated", "not_yet_treated"}
    anticipation : int
        Periods before adoption in which units may already react.
    base_period : {"varying", "universal"}
    covariates : ndarray, shape (n, p) or (n, T, p), optional
        Covariates without an intercept; time-varying covariates are taken in the
        earlier of the two periods a cell compares, as R's ``did``.
    estimation : {"regression", "ipw", "doubly_robust"}
        Used only with covariates.

    Returns
    -------
    GroupTime
    """
    Y = np.asarray(outcome, dtype=float)
    n, T = Y.shape
    unit_cohort = np.asarray(unit_cohort, dtype=np.int64)
    cohorts, cohort_size = np.unique(unit_cohort[unit_cohort != NEVER], return_counts=True)
    g, t, base, reference = cells(T, cohorts, anticipation, base_period)
    groups = np.append(cohorts, NEVER)  # the never-treated as the last "cohort"
    unit_group = np.searchsorted(groups, unit_cohort)  # NEVER sorts last
    sizes = np.bincount(unit_group, minlength=groups.size).astype(float)
    controls = control_membership(g, t, base, groups, control_group, anticipation)
    g_index = np.searchsorted(groups, g)
    n_treated = sizes[g_index]
    n_control = controls @ sizes
    if covariates is None:
        att, influence = _unconditional(Y, unit_group, groups, sizes, g_index, t, base, controls)
        trimmed = 0
    else:
        att, influence, trimmed = _conditional(Y, unit_group, g_index, t, base, controls, np.asarray(covariates, float),
                                               estimation, g)
    att[reference] = 0.0
    influence[:, reference] = 0.0
    empty = n_control == 0
    att[empty] = np.nan
    influence[:, empty] = 0.0
    return GroupTime(cohort=g, period=t, base=base, reference=reference, att=att, influence=influence,
                     n_treated=n_treated, n_control=n_control, unit_cohort=unit_cohort, cohorts=cohorts,
                     cohort_size=cohort_size, overlap_trimmed=trimmed)


def _unconditional(Y, unit_group, groups, sizes, g_index, t, base, controls):
    """Difference in mean changes and its influence function, for every cell at once."""
    n = Y.shape[0]
    onehot = np.zeros((groups.size, n))
    onehot[unit_group, np.arange(n)] = 1.0
    means = (onehot @ Y) / np.maximum(sizes, 1.0)[:, None]       # (G+1, T)
    change = means[:, t] - means[:, base]                           # (G+1, K)
    k = np.arange(t.size)
    treated_change = change[g_index, k]
    weight = controls * sizes[None, :]                              # (K, G+1)
    n_control = weight.sum(axis=1)
    # cells without controls get NaN later; keep their arithmetic finite here
    safe_n_control = np.where(n_control > 0, n_control, np.inf)
    control_change = np.einsum("kh,hk->k", weight, change) / safe_n_control
    att = treated_change - control_change
    # IF_ik = n [D_ik (dY_ik - mu1_k) / n_g - C_ik (dY_ik - mu0_k) / n_C] = n (dY_ik a_hk - b_hk),
    # with a and b depending only on the unit's cohort h: gather them instead of masking
    k_of = np.arange(t.size)
    is_treated = np.zeros((groups.size, t.size))
    is_treated[g_index, k_of] = 1.0
    slope = is_treated / sizes[g_index] - controls.T / safe_n_control                        # (G+1, K)
    offset = is_treated * (treated_change / sizes[g_index]) - controls.T * (control_change / safe_n_control)
    influence = Y[:, t]
    influence -= Y[:, base]                                                                  # dY, (n, K)
    influence *= slope[unit_group]
    influence -= offset[unit_group]
    influence *= n
    return att, influence


def _conditional(Y, unit_group, g_index, t, base, controls, covariates, estimation, g):
    """Per-cell DRDID panel estimators, fitted once per distinct sample and covariate period."""
    if estimation not in ESTIMATIONS:
        raise ValueError(f"estimation must be one of {ESTIMATIONS}")
    n = Y.shape[0]
    K = t.size
    att = np.full(K, np.nan)
    influence = np.zeros((n, K))
    time_varying = covariates.ndim == 3
    covariate_period = np.minimum(t, base) if time_varying else np.zeros(K, dtype=np.int64)
    # cells sharing treated cohort, control set and covariate period share both nuisance fits
    keys = np.column_stack([g_index, covariate_period, controls.astype(np.int64)])
    _, batch = np.unique(keys, axis=0, return_inverse=True)
    batch = batch.ravel()
    trimmed = 0
    for b in np.unique(batch):
        members = np.flatnonzero(batch == b)
        first = members[0]
        treated = unit_group == g_index[first]
        control = controls[first][unit_group]
        sample = treated | control
        if not control.any():
            continue
        X = covariates[:, covariate_period[first], :] if time_varying else covariates
        X = np.column_stack([np.ones(int(sample.sum())), X[sample]])
        dY = Y[np.ix_(sample, t[members])] - Y[np.ix_(sample, base[members])]
        try:
            a, psi, dropped = drdid_panel(dY, treated[sample], X, estimation)
        except np.linalg.LinAlgError as exc:
            raise GroupTimeError(str(exc), int(g[first]), int(t[first])) from None
        n_sample = int(sample.sum())
        att[members] = a
        influence[np.ix_(sample, members)] = (n / n_sample) * psi
        trimmed = max(trimmed, dropped)
    return att, influence, trimmed


# ----------------------------------------------------------------------------- DRDID (panel)
PS_CAP = 1 - 1e-6      # DRDID: avoid dividing by zero
TRIM_LEVEL = 0.995     # DRDID: controls with a propensity score at or above this get no weight


def logit_fit(X: np.ndarray, d: np.ndarray, tol: float = 1e-12, max_iter: int = 100) -> np.ndarray:
    """Fitted probabilities of a logit of d on X by Newton-Raphson (maximum likelihood)."""
    beta = np.zeros(X.shape[1])
    p_bar = np.clip(d.mean(), 1e-6, 1 - 1e-6)
    beta[0] = np.log(p_bar / (1 - p_bar))
    for _ in range(max_iter):
        eta = X @ beta
        p = 1.0 / (1.0 + np.exp(-eta))
        w = p * (1 - p)
        try:
            step = np.linalg.solve(X.T @ (w[:, None] * X), X.T @ (d - p))
        except np.linalg.LinAlgError:
            raise np.linalg.LinAlgError("the propensity score cannot be fitted: the covariates separate the adopting "
                                        "units from the comparison units, or are collinear") from None
        beta += step
        if np.max(np.abs(step)) < tol * (1 + np.max(np.abs(beta))):
            break
    return 1.0 / (1.0 + np.exp(-(X @ beta)))


def _check_conditioning(matrix: np.ndarray, what: str) -> None:
    if 1.0 / np.linalg.cond(matrix) < np.finfo(float).eps:
        raise np.linalg.LinAlgError(f"the {what} design matrix is singular")


def drdid_panel(dY: np.ndarray, treated: np.ndarray, X: np.ndarray, estimation: str):
    """DRDID's panel estimators for several outcome changes sharing one sample.

    Parameters
    ----------
    dY : ndarray, shape (m, k) or (m,)
        Outcome change of each of the m units for k cells.
    treated : ndarray of bool, shape (m,)
    X : ndarray, shape (m, p)
        Covariates with an intercept column.
    estimation : {"regression", "ipw", "doubly_robust"}

    Returns
    -------
    att : ndarray (k,)
    influence : ndarray (m, k)
        DRDID's influence function (``se = sqrt(mean(IF**2) / m)``).
    trimmed : int
        Control units given no weight by propensity-score trimming.
    """
    dY = dY.reshape(dY.shape[0], -1)
    m = dY.shape[0]
    D = treated.astype(float)
    trimmed = 0
    if estimation in ("ipw", "doubly_robust"):
        ps = np.minimum(logit_fit(X, D), PS_CAP)
        keep = np.ones(m, dtype=bool)
        keep[~treated] = ps[~treated] < TRIM_LEVEL
        trimmed = int((~keep).sum())
        H = X.T @ ((ps * (1 - ps))[:, None] * X)
        _check_conditioning(H, "propensity score")
        asy_ps = ((D - ps)[:, None] * X) @ (np.linalg.inv(H) * m)          # (m, p)
        w_treat = keep * D
        w_cont = keep * ps * (1 - D) / (1 - ps)
    if estimation in ("regression", "doubly_robust"):
        Xc = X[~treated]
        XpX = Xc.T @ Xc / m
        _check_conditioning(XpX, "outcome regression")
        beta = np.linalg.solve(Xc.T @ Xc, Xc.T @ dY[~treated])
        fitted = X @ beta
        resid_c = (1 - D)[:, None] * (dY - fitted)                          # controls' residuals
        XpX_inv = np.linalg.inv(XpX)

        def ols_effect(M):  # asy.lin.rep.ols %*% M for every column
            return resid_c * (X @ (XpX_inv @ M))[:, None]

    if estimation == "doubly_robust":
        r = dY - fitted
        eta_t = (w_treat @ r) / w_treat.sum()
        eta_c = (w_cont @ r) / w_cont.sum()
        inf_t1 = w_treat[:, None] * (r - eta_t)
        inf_t2 = ols_effect((w_treat[:, None] * X).mean(axis=0))
        inf_c1 = w_cont[:, None] * (r - eta_c)
        M2 = X.T @ (w_cont[:, None] * (r - eta_c)) / m                      # (p, k)
        inf_c2 = asy_ps @ M2
        inf_c3 = ols_effect((w_cont[:, None] * X).mean(axis=0))
        psi = (inf_t1 - inf_t2) / w_treat.mean() - (inf_c1 + inf_c2 - inf_c3) / w_cont.mean()
        return eta_t - eta_c, psi, trimmed
    if estimation == "ipw":
        eta_t = (w_treat @ dY) / w_treat.sum()
        eta_c = (w_cont @ dY) / w_cont.sum()
        inf_t = w_treat[:, None] * (dY - eta_t) / w_treat.mean()
        inf_c1 = w_cont[:, None] * (dY - eta_c)
        M2 = X.T @ (w_cont[:, None] * (dY - eta_c)) / m
        inf_c2 = asy_ps @ M2
        psi = inf_t - (inf_c1 + inf_c2) / w_cont.mean()
        return eta_t - eta_c, psi, trimmed
    # outcome regression: treated mean change minus the controls' model predicted for the treated
    p_treat = D.mean()
    eta_t = (D @ dY) / D.sum()
    eta_c = (D @ fitted) / D.sum()
    inf_t = D[:, None] * (dY - eta_t) / p_treat
    inf_c1 = D[:, None] * (fitted - eta_c)
    inf_c2 = ols_effect((D[:, None] * X).mean(axis=0))
    psi = inf_t - (inf_c1 + inf_c2) / p_treat
    return eta_t - eta_c, psi, trimmed


__all__ = ["NEVER", "GroupTime", "GroupTimeError", "group_time_att", "drdid_panel", "logit_fit", "standard_errors"]
