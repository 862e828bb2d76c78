"""Randomization inference for the ATT(g,t) aggregations: adoption dates permuted across units.

Under the sharp null that the intervention changed nothing, the outcomes would have been
the same whichever units had adopted when, so the observed estimate is compared with the
estimates the same procedure gives when the vector of adoption dates (cohort labels,
"never" included) is permuted across the units (Fisher 1935; MacKinnon & Webb 2020). The
interval is the set of null effects the test does not reject (test inversion): a null
effect ``theta`` is removed from the observed adopting units' post-adoption outcomes
(subtracted on the difference scale; the rate divided by ``exp(theta)`` on the log-ratio
scale) and the test is run again on those data with the same assignments.

Why it is cheap. Without covariates every ATT(g,t) is a difference in mean changes, and
the cohort sizes, the cells and their control sets do not change when the labels are
permuted (the multiset of cohorts is the same), so each aggregated parameter m is a fixed
linear map of the outcome given which group each unit is in:

    A_m(X; assignment) = sum_i sum_t Lambda_m[group_i, t] X[i, t],

with Lambda_m (groups x periods) built once from the cells' weights. With
``P_m = X @ Lambda_m.T`` (units x groups), an assignment's statistic is a gather and a sum,
``sum_i P_m[i, group_i]``: O(units) per assignment and parameter. The parameter on shifted
data is affine in the shift (``X - theta M`` or ``X - (1 - exp(-theta)) M * X``), so the
test of any null needs only the three maps of X, M and M * X: bisection on the p-value is
exact and costs O(assignments) per step.

An engine module: numbers in, numbers out (the front end, :mod:`.staggered`, writes records).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...inference.randomization import count_assignments, distinct_assignments, p_value_of
from .aggte import Plan
from .att_gt import NEVER, GroupTime

#: doublings of the step out from the estimate (in standard errors) before an end counts as unbounded
MAX_DOUBLINGS = 40
#: bisection stops when the bracket is this many standard errors wide
TOLERANCE = 1e-7


# ----------------------------------------------------------------------------- which cells enter which parameter
def estimand_weights(plan: Plan, transition: int = 0) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(names, W, post): W[k, m] is cell k's weight in parameter m (:mod:`.aggte`'s conventions).

    Parameters: ``simple``, ``dynamic``, ``group``, ``calendar`` (the overall averages),
    ``event_<e>`` for every event time with an estimate, and the components ``group_<g>``
    (cohort position g) and ``calendar_<t>`` (period position t). ``post[m]`` says whether the
    parameter is a post-adoption one (its null effect is imposed on every post-adoption
    unit-period) or a pre-period event time (imposed on that event time's unit-periods).
    """
    gt = plan.gt
    K = gt.att.size
    share = plan.share
    names, columns, post = [], [], []

    def averaged(cells: np.ndarray) -> np.ndarray:
        w = np.zeros(K)
        w[cells] = share[cells] / share[cells].sum()
        return w

    simple = averaged(plan.post)
    events = np.unique(gt.event_time[plan.valid])
    event_w = {int(e): averaged(plan.valid & (gt.event_time == e)) for e in events}
    used = [e for e in event_w if e >= transition]
    dynamic = np.mean([event_w[e] for e in used], axis=0) if used else np.zeros(K)
    cohorts = np.unique(gt.cohort[plan.post])
    shares = gt.cohort_size[np.searchsorted(gt.cohorts, cohorts)] / gt.n
    group = np.zeros(K)
    for g, s in zip(cohorts, shares / shares.sum()):
        cells = plan.post & (gt.cohort == g)
        group[cells] = s / cells.sum()
    periods = np.unique(gt.period[plan.post])
    calendar = np.mean([averaged(plan.post & (gt.period == p)) for p in periods], axis=0) if periods.size else np.zeros(K)
    for name, w in (("simple", simple), ("dynamic", dynamic), ("group", group), ("calendar", calendar)):
        names.append(name)
        columns.append(w)
        post.append(True)
    for e, w in event_w.items():
        names.append(f"event_{e}")
        columns.append(w)
        post.append(e >= 0)
    for g in cohorts:
        cells = plan.post & (gt.cohort == g)
        names.append(f"group_{int(g)}")
        columns.append(cells / cells.sum())
        post.append(True)
    for p in periods:
        names.append(f"calendar_{int(p)}")
        columns.append(averaged(plan.post & (gt.period == p)))
        post.append(True)
    return names, np.column_stack(columns), np.array(post)


def loadings(gt: GroupTime, W: np.ndarray, controls: np.ndarray, T: int) -> tuple[np.ndarray, np.ndarray]:
    """(Lambda, Tau), each (M, groups, T): the parameters' and the treated means' linear maps.

    A unit in group h contributes ``a[k, h] (X[t_k] - X[base_k])`` to cell k, with
    ``a = 1{h = g_k} / n_g - controls[k, h] / n_C[k]``; the treated mean of cell k is the
    mean of X[t_k] over cohort g_k.
    """
    groups = np.append(gt.cohorts, NEVER)
    sizes = np.append(gt.cohort_size, np.sum(gt.unit_cohort == NEVER)).astype(float)
    K = gt.att.size
    g_index = np.searchsorted(groups, gt.cohort)
    own = np.zeros((K, groups.size))
    own[np.arange(K), g_index] = 1.0 / sizes[g_index]
    n_control = controls @ sizes
    safe = np.where(n_control > 0, n_control, np.inf)
    a = own - controls / safe[:, None]
    at_t = np.zeros((K, T))
    at_t[np.arange(K), gt.period] = 1.0
    at_base = np.zeros((K, T))
    at_base[np.arange(K), gt.base] = 1.0
    Lambda = np.einsum("km,kh,kt->mht", W, a, at_t - at_base)
    Tau = np.einsum("km,kh,kt->mht", W, own, at_t)
    return Lambda, Tau


# ----------------------------------------------------------------------------- assignments
@dataclass
class Assignments:
    """Group index of every unit under each assignment (row 0: the observed one)."""

    groups: np.ndarray        # (B, n) int
    n_assignments: int        # distinct assignments of the labels to the units
    exhaustive: bool

    @property
    def reps(self) -> int:
        return self.groups.shape[0] - 1

    @property
    def smallest_p(self) -> float:
        return 1.0 / self.groups.shape[0]


def draw_assignments(unit_group: np.ndarray, rng: np.random.Generator, reps: int, max_enumerate: int) -> Assignments:
    """Every distinct permutation of the labels when there are at most ``max_enumerate``, else
    the observed one and ``reps`` uniform random permutations (with replacement)."""
    observed = np.asarray(unit_group, dtype=np.int64)
    labels = observed.tolist()
    total = count_assignments(labels)
    if total <= max_enumerate:
        rows = [observed] + [np.array(a) for a in distinct_assignments(labels) if list(a) != labels]
        return Assignments(np.vstack(rows), total, True)
    rows = [observed] + [observed[rng.permutation(observed.size)] for _ in range(reps)]
    return Assignments(np.vstack(rows), total, False)


# ----------------------------------------------------------------------------- the test and its inversion
@dataclass
class Parameter:
    """One parameter's statistics under every assignment, affine in the null effect."""

    att: np.ndarray           # (B,) the parameter on the outcome
    att_mask: np.ndarray      # (B,) on the 0/1 mask of shifted unit-periods
    att_masked: np.ndarray    # (B,) on the outcome inside the mask
    treated: np.ndarray       # (B,) the treated units' mean outcome (same weights)
    treated_masked: np.ndarray

    def difference(self, theta: float) -> np.ndarray:
        return self.att - theta * self.att_mask

    def log_ratio(self, theta: float) -> np.ndarray:
        factor = np.expm1(-theta)                    # exp(-theta) - 1: the masked rates times exp(-theta)
        att = self.att + factor * self.att_masked
        treated = self.treated + factor * self.treated_masked
        counterfactual = treated - att
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.log(treated) - np.log(counterfactual)
        out[~((treated > 0) & (counterfactual > 0))] = np.nan
        return out


class PermutationTest:
    """Randomization tests of every aggregated parameter, sharing the assignments."""

    def __init__(self, gt: GroupTime, plan: Plan, outcome: np.ndarray, controls: np.ndarray,
                 assignments: Assignments, transition: int = 0):
        self.assignments = assignments
        Y = np.asarray(outcome, dtype=float)
        n, T = Y.shape
        names, W, post = estimand_weights(plan, transition)
        Lambda, Tau = loadings(gt, W, controls, T)
        self.names = names
        groups = np.append(gt.cohorts, NEVER)
        observed = np.searchsorted(groups, gt.unit_cohort)
        treated = gt.unit_cohort != NEVER
        start = np.where(treated, gt.unit_cohort, T)          # observed adoption position (T: never)
        periods = np.arange(T)[None, :]
        post_mask = (periods >= start[:, None]).astype(float)
        rows = np.arange(n)[None, :]
        A = assignments.groups
        if not np.array_equal(A[0], observed):
            raise ValueError("the first assignment must be the observed one")
        self.parameters: dict[str, Parameter] = {}
        for m, name in enumerate(names):
            if post[m]:
                mask = post_mask
            else:
                e = int(name.split("_", 1)[1])
                mask = (treated[:, None] & (periods == (start[:, None] + e))).astype(float)

            def stat(X, load):
                P = X @ load.T                                   # (n, groups)
                return P[rows, A].sum(axis=1)

            masked = mask * Y
            self.parameters[name] = Parameter(stat(Y, Lambda[m]), stat(mask, Lambda[m]), stat(masked, Lambda[m]),
                                              stat(Y, Tau[m]), stat(masked, Tau[m]))

    def statistics(self, name: str, ratio: bool, theta: float = 0.0) -> np.ndarray:
        parameter = self.parameters[name]
        return parameter.log_ratio(theta) if ratio else parameter.difference(theta)

    def p_value(self, name: str, ratio: bool, theta: float = 0.0) -> float:
        return p_value_of(self.statistics(name, ratio, theta))

    def interval(self, name: str, ratio: bool, estimate: float, se: float, alpha: float) -> Inverted:
        """The null effects not rejected at ``alpha`` (log scale for a ratio), by bracketing and bisection."""
        if self.assignments.smallest_p >= alpha:
            return Inverted(None, None, "too_few_assignments")
        if not np.isfinite(estimate):
            return Inverted(None, None, "no_estimate")
        scale = se if np.isfinite(se) and se > 0 else max(abs(estimate), 1.0) * 0.1
        ends = [_end(lambda t: self.p_value(name, ratio, t) >= alpha, estimate, scale, side, ratio) for side in (-1, 1)]
        reason = None if all(e is not None for e in ends) else "unbounded"
        return Inverted(ends[0], ends[1], reason)


@dataclass
class Inverted:
    """An interval by test inversion; an end is None when the test rejects nothing on that side."""

    low: float | None
    high: float | None
    reason: str | None        # "too_few_assignments", "unbounded", "no_estimate" or None


def _end(accepted, estimate: float, scale: float, side: int, ratio: bool) -> float | None:
    """Step out from the estimate by doubling steps until a null is rejected, then bisect."""
    inside, outside, step = estimate, None, 2.0 * scale
    for _ in range(MAX_DOUBLINGS):
        theta = estimate + side * step
        if ratio and abs(theta) > 700:          # exp overflows: no rate ratio is that far
            break
        if accepted(theta):
            inside, step = theta, step * 2.0
        else:
            outside = theta
            break
    if outside is None:
        return None
    for _ in range(200):
        if abs(outside - inside) <= TOLERANCE * scale:
            break
        middle = 0.5 * (inside + outside)
        if accepted(middle):
            inside = middle
        else:
            outside = middle
    return float(inside)


__all__ = ["estimand_weights", "loadings", "Assignments", "draw_assignments", "PermutationTest", "Inverted"]
