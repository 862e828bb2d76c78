"""Aggregations of ATT(g,t) (R did's ``aggte``): simple, dynamic (event study), group and
calendar, with influence functions that include the estimated cohort-share weights.

Every aggregation is linear in the cell parameters theta with weights built from the
cohort shares p_g = n_g / n (n all units). For a parameter averaging the cells k in a
set with weights p_g(k) / S, S = sum p_g(k), the influence function is

    IF_A = IF_theta @ w + sum_k (1{G_i = g(k)} - p_g(k)) (theta_k - A) / S,

the second term being R did's ``wif`` (the estimation effect of the shares). The same
functions aggregate any cell parameter with an influence function (the ATT, or the
treated units' mean outcome used for ratio translations).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .att_gt import GroupTime


@dataclass
class Aggregation:
    """Components (one per event time, cohort or period) and their overall average."""

    kind: str
    labels: np.ndarray          # event times, cohort positions or period positions
    values: np.ndarray          # (J,)
    influence: np.ndarray       # (n, J)
    overall: float
    overall_influence: np.ndarray  # (n,)
    overall_labels: np.ndarray  # which components the overall average uses


@dataclass
class Plan:
    """Which cells enter which component, fixed from the GroupTime layout."""

    gt: GroupTime
    share: np.ndarray            # (K,) p_g of each cell's cohort
    unit_group: np.ndarray       # (n,) cohort position of each unit, -1 for never-treated
    post: np.ndarray             # (K,) cells entering post-period aggregations
    valid: np.ndarray            # (K,) cells with an estimate


def make_plan(gt: GroupTime, transition: int = 0) -> Plan:
    """Post-period cells are t >= g + transition (transition = 0: R did's keepers)."""
    shares = gt.cohort_size / gt.n
    treated = np.isin(gt.unit_cohort, gt.cohorts)
    unit_group = np.where(treated, np.searchsorted(gt.cohorts, gt.unit_cohort), -1)
    valid = np.isfinite(gt.att)
    post = (gt.period >= gt.cohort + transition) & valid
    return Plan(gt=gt, share=shares[gt.cohort_index], unit_group=unit_group, post=post, valid=valid)


def grouped_average(plan: Plan, component: np.ndarray, n_components: int, theta: np.ndarray,
                    influence: np.ndarray, share_weights: bool = True):
    """Averages of theta over groups of cells, with their influence functions.

    ``component[k]`` is the component cell k belongs to (-1: none; every component in
    0..n_components-1 must have a cell). With ``share_weights`` the cells are weighted by
    their cohort's share and the influence function carries R did's ``wif`` term;
    otherwise it is a plain mean (R's per-cohort averages). Cost O(n K), not O(n K J).
    """
    use = (component >= 0) & plan.valid
    cells = np.flatnonzero(use)
    comp = component[cells]
    order = np.argsort(comp, kind="stable")
    cells, comp = cells[order], comp[order]
    raw = plan.share[cells] if share_weights else np.ones(cells.size)
    total = np.bincount(comp, weights=raw, minlength=n_components)
    w = raw / total[comp]
    values = np.bincount(comp, weights=w * theta[cells], minlength=n_components)
    starts = np.flatnonzero(np.r_[True, comp[1:] != comp[:-1]])
    agg_influence = np.add.reduceat(influence[:, cells] * w[None, :], starts, axis=1)
    if share_weights:
        B = w * (theta[cells] - values[comp])
        n_groups = plan.gt.cohorts.size
        cohort = plan.gt.cohort_index[cells]
        by_cohort = np.bincount(cohort * n_components + comp, weights=B / plan.share[cells],
                                minlength=n_groups * n_components).reshape(n_groups, n_components)
        extra = np.zeros((plan.unit_group.size, n_components))
        treated = plan.unit_group >= 0
        extra[treated] = by_cohort[plan.unit_group[treated]]
        agg_influence = agg_influence + extra - np.bincount(comp, weights=B, minlength=n_components)[None, :]
    return values, agg_influence


def share_weighted(plan: Plan, included: np.ndarray, theta: np.ndarray, influence: np.ndarray):
    """The cohort-share-weighted average of theta over the cells in ``included`` (K,) bool."""
    values, agg = grouped_average(plan, np.where(included, 0, -1), 1, theta, influence)
    return float(values[0]), agg[:, 0]


def _components(labels_of_cells: np.ndarray, included: np.ndarray):
    labels = np.unique(labels_of_cells[included])
    component = np.where(included, np.searchsorted(labels, labels_of_cells), -1)
    return labels, component


def simple(plan: Plan, theta, influence) -> Aggregation:
    value, inf = share_weighted(plan, plan.post, theta, influence)
    return Aggregation("simple", np.array([0]), np.array([value]), inf[:, None], value, inf, np.array([0]))


def dynamic(plan: Plan, theta, influence, transition: int = 0) -> Aggregation:
    """Event-study averages by e = t - g; overall = mean over e >= transition (R: e >= 0)."""
    events, component = _components(plan.gt.event_time, plan.valid)
    values, inf = grouped_average(plan, component, events.size, theta, influence)
    use = events >= transition
    return Aggregation("dynamic", events, values, inf, float(values[use].mean()), inf[:, use].mean(axis=1), events[use])


def group(plan: Plan, theta, influence) -> Aggregation:
    """Per-cohort averages over post cells; overall = cohort-share-weighted average."""
    gt = plan.gt
    cohorts, component = _components(gt.cohort, plan.post)
    values, inf = grouped_average(plan, component, cohorts.size, theta, influence, share_weights=False)
    shares = gt.cohort_size[np.searchsorted(gt.cohorts, cohorts)] / gt.n
    S = shares.sum()
    overall = float(shares @ values / S)
    # the estimated cohort shares' term (R did's wif over the cohorts)
    centred = (gt.unit_cohort[:, None] == cohorts[None, :]) - shares[None, :]
    overall_inf = inf @ (shares / S) + centred @ (values - overall) / S
    return Aggregation("group", cohorts, values, inf, overall, overall_inf, cohorts)


def calendar(plan: Plan, theta, influence) -> Aggregation:
    """Per-period averages over the cohorts treated by then; overall = mean over periods."""
    periods, component = _components(plan.gt.period, plan.post)
    values, inf = grouped_average(plan, component, periods.size, theta, influence)
    return Aggregation("calendar", periods, values, inf, float(values.mean()), inf.mean(axis=1), periods)


def aggregate_all(plan: Plan, theta: np.ndarray, influence: np.ndarray, transition: int = 0) -> dict:
    """The four aggregations of R did's ``aggte`` for one cell parameter."""
    return {
        "simple": simple(plan, theta, influence),
        "dynamic": dynamic(plan, theta, influence, transition),
        "group": group(plan, theta, influence),
        "calendar": calendar(plan, theta, influence),
    }


__all__ = ["Aggregation", "Plan", "make_plan", "grouped_average", "share_weighted", "simple", "dynamic", "group",
           "calendar", "aggregate_all"]
