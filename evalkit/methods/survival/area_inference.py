"""Inference for a weighted difference of per-area changes: the restricted-mean DiD.

``rmst_difference_did`` is ``sum_T w_a c_a / sum_T w_a - sum_C w_a c_a / sum_C w_a``: each
area's change ``c_a`` (its own before/after restricted-mean difference) is one number, so
the inference is a two-sample problem on the areas, whatever the number of episodes. With
few areas the area-cluster bootstrap is too narrow (issue 12: 84-91% coverage with 4
adopting and 8 comparison areas), so two area-level procedures are offered here:

* :func:`area_randomization`: which areas adopted is re-assigned across the areas (every
  assignment when there are at most ``max_enumerate``, else ``reps`` at random), the
  weighted difference recomputed with each area keeping its change and weight; the
  p-value is the share of assignments at least as extreme (evalkit.inference.randomization),
  and the interval is the set of effects ``theta`` not rejected once ``theta`` is taken
  off the adopting areas' changes (test inversion; exact, because the statistic is
  linear in ``theta``). With ``1 / alpha`` assignments or fewer no interval exists.
* :func:`area_t`: the weighted difference over its area-level standard error (each group's
  ``m / (m - 1) sum (w_a / W)^2 (c_a - mean)^2``), Welch-Satterthwaite degrees of freedom
  when both groups have at least three areas, else the pooled within-group spread with
  ``G - 2`` degrees of freedom.

Both return an :class:`AreaInference`; the front end (survival.py) builds the record.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from ...inference.randomization import invert_randomization_test, randomization_test

#: fewest areas in each group for Welch's separate variances (below: the pooled spread)
WELCH_MIN_AREAS = 3
#: assignments enumerated exactly up to this many (C(16, 8) = 12,870 is enumerated; above, random)
MAX_ENUMERATE = 20000


@dataclass
class AreaInference:
    """One procedure's interval and p-value (ends None: no bound; p None: no test)."""

    se: float | None
    low: float | None
    high: float | None
    p_value: float | None
    method: str
    note: str | None = None
    details: dict = field(default_factory=dict)


def weighted_difference(change: np.ndarray, weights: np.ndarray, treated: np.ndarray) -> float:
    """The weighted mean change of the treated areas minus that of the comparison areas."""
    t, c = treated, ~treated
    return float(np.sum(weights[t] * change[t]) / np.sum(weights[t]) - np.sum(weights[c] * change[c]) / np.sum(weights[c]))


def _group_variance(change: np.ndarray, weights: np.ndarray) -> float | None:
    """Variance of a weighted mean of m areas, ``m / (m - 1) sum (w / W)^2 (c - mean)^2`` (None with one area)."""
    m = change.size
    if m < 2:
        return None
    share = weights / weights.sum()
    mean = float(np.sum(share * change))
    return float(m / (m - 1) * np.sum(share ** 2 * (change - mean) ** 2))


def area_se(change: np.ndarray, weights: np.ndarray, treated: np.ndarray,
            rule: str = "auto") -> tuple[float | None, float | None, str]:
    """Standard error of the weighted difference, its degrees of freedom and the rule used.

    ``welch``: each group's own variance, Satterthwaite's degrees of freedom (both groups
    need two areas). ``pooled``: the areas' spread around their own group's mean is pooled
    (every area assumed to vary alike) with ``G - 2`` degrees of freedom. ``auto``: Welch
    when both groups have at least WELCH_MIN_AREAS areas, else pooled: with two adopting
    areas Welch's variance of that side rests on one degree of freedom and its interval
    covered 89.6% (docs/methods/survival_did.md). None when there is no spread to use.
    """
    t, c = treated, ~treated
    if rule == "auto":
        rule = "welch" if min(int(t.sum()), int(c.sum())) >= WELCH_MIN_AREAS else "pooled"
    if rule == "welch":
        vt, vc = _group_variance(change[t], weights[t]), _group_variance(change[c], weights[c])
        if vt is None or vc is None:
            return None, None, rule
        v = vt + vc
        if v <= 0:
            return 0.0, None, rule
        df = v ** 2 / (vt ** 2 / (t.sum() - 1) + vc ** 2 / (c.sum() - 1))
        return float(np.sqrt(v)), float(df), rule
    n = change.size
    if n < 3:
        return None, None, rule
    residual = 0.0
    for side in (t, c):
        share = weights[side] / weights[side].sum()
        residual += float(np.sum((change[side] - np.sum(share * change[side])) ** 2))
    sigma2 = residual / (n - 2)
    v = sum(sigma2 * float(np.sum((weights[side] / weights[side].sum()) ** 2)) for side in (t, c))
    return float(np.sqrt(v)), float(n - 2), rule


def area_t(change: np.ndarray, weights: np.ndarray, treated: np.ndarray, alpha: float,
           rule: str = "auto") -> AreaInference:
    """Interval and p-value from a t reference on the area-level changes (module docstring)."""
    estimate = weighted_difference(change, weights, treated)
    se, df, rule = area_se(change, weights, treated, rule)
    words = ("t reference on the area-level changes: Welch standard error, Satterthwaite degrees of freedom"
             if rule == "welch" else "t reference on the area-level changes: pooled within-group spread, G - 2 "
             "degrees of freedom")
    if se is None or df is None or not se > 0:
        return AreaInference(se, None, None, None, words, note="the areas' changes do not vary, so no interval "
                             "can be given from them", details={"se_rule": rule, "df": df})
    critical = float(stats.t.ppf(1 - alpha / 2, df))
    p_value = float(2 * stats.t.sf(abs(estimate / se), df))
    return AreaInference(se, estimate - critical * se, estimate + critical * se, p_value, words,
                         details={"se_rule": rule, "df": df, "critical": critical})


def area_randomization(change: np.ndarray, weights: np.ndarray, treated: np.ndarray, alpha: float, reps: int,
                       rng: np.random.Generator) -> AreaInference:
    """Randomization test over which areas adopted, interval by test inversion (module docstring)."""
    n = change.size
    estimate = weighted_difference(change, weights, treated)
    se, _, rule = area_se(change, weights, treated)
    index = np.arange(n)

    def statistic(assignment: dict) -> float:
        mask = np.zeros(n, dtype=bool)
        mask[list(assignment)] = True
        return weighted_difference(change, weights, mask)

    test = randomization_test(statistic, list(index), {int(i): "adopts" for i in index[treated]}, rng, reps=reps,
                              max_enumerate=max(MAX_ENUMERATE, reps + 1))
    assignments = test.assignments
    assert assignments is not None  # randomization_test always records the assignments it scored
    masks = np.zeros((len(assignments), n), dtype=np.bool_)
    for row, assignment in enumerate(assignments):
        masks[row, list(assignment)] = True
    w_t = masks * weights
    w_c = np.logical_not(masks) * weights
    sum_t, sum_c = w_t.sum(axis=1), w_c.sum(axis=1)

    def statistics_at(theta: float) -> np.ndarray:
        shifted = change - theta * treated       # the hypothesised effect taken off the adopting areas
        return w_t @ shifted / sum_t - w_c @ shifted / sum_c

    scale = se if se is not None and se > 0 else max(float(np.std(change)), 1e-6)
    inverted = invert_randomization_test(statistics_at, estimate, scale, alpha, test.smallest_p,
                                         p_at_zero=test.p_value, linear=True, statistics_at_zero=test.statistics)
    n_treated = int(treated.sum())
    how = (f"all {test.n_assignments} assignments" if test.exhaustive else f"{test.reps} random assignments")
    method = (f"randomization test over which areas adopted ({how} of {n_treated} adopting among {n} areas), "
              "interval by test inversion")
    note = None
    p_value: float | None = test.p_value
    if inverted.reason == "too_few_assignments":
        areas = "one adopting area" if n_treated == 1 else f"{n_treated} adopting areas"
        note = (f"with {areas} among {n} no interval at {1 - alpha:.0%} is possible: which areas adopted can be "
                f"re-assigned in only {test.n_assignments} ways, so the smallest p-value is {test.smallest_p:.3g}, "
                f"not below {alpha:g}")
        p_value = None  # it can never fall below alpha: reported in details, not as a test
    elif inverted.reason == "unbounded":
        side = "on either side of" if inverted.low is None and inverted.high is None else (
            "below" if inverted.low is None else "above")
        note = (f"the randomization test rejects no difference {side} the estimate at {1 - alpha:.0%}, so the "
                "interval is unbounded")
    details = {"randomization": {**test.to_dict(), "interval": inverted.to_dict()}, "se_rule": rule}
    return AreaInference(se, inverted.low, inverted.high, p_value, method, note=note, details=details)


def area_bootstrap(change: np.ndarray, weights: np.ndarray, treated: np.ndarray, alpha: float, reps: int,
                   rng: np.random.Generator) -> tuple[float, float, float, float | None]:
    """Area-cluster bootstrap of the weighted difference (at least 2 areas a side): se, interval, p.

    Areas are resampled within each group, after inflating each area's deviation from its
    group's mean change by sqrt(m / (m - 1)) (m areas): the bootstrap variance of a mean of
    m clusters is otherwise (m - 1) / m of the unbiased one. Percentile interval; the
    p-value is the Wald p-value with the replicates' standard deviation. (Measured with 4
    adopting and 8 comparison areas it covers too little: docs/methods/survival_did.md.)
    """
    t_idx, c_idx = np.flatnonzero(treated), np.flatnonzero(~treated)
    resampled = change.astype(float).copy()
    for selected in (t_idx, c_idx):
        m = selected.size
        if m > 1:
            group_mean = float(np.sum(change[selected] * weights[selected]) / np.sum(weights[selected]))
            resampled[selected] = group_mean + np.sqrt(m / (m - 1)) * (change[selected] - group_mean)
    draws_t = t_idx[rng.integers(0, t_idx.size, size=(reps, t_idx.size))]
    draws_c = c_idx[rng.integers(0, c_idx.size, size=(reps, c_idx.size))]

    def resampled_mean(selected: np.ndarray) -> np.ndarray:
        return (resampled[selected] * weights[selected]).sum(axis=-1) / weights[selected].sum(axis=-1)

    replicates = resampled_mean(draws_t) - resampled_mean(draws_c)
    estimate = weighted_difference(change, weights, treated)
    se = float(np.std(replicates, ddof=1))
    low, high = (float(q) for q in np.quantile(replicates, [alpha / 2, 1 - alpha / 2]))
    p_value = float(2 * stats.norm.sf(abs(estimate / se))) if se > 0 else None
    return se, low, high, p_value


def assignments_possible(n_treated: int, n_areas: int) -> int:
    """How many ways ``n_treated`` adopting areas can be chosen among ``n_areas``."""
    from math import comb

    return comb(n_areas, n_treated)


__all__ = ["AreaInference", "area_bootstrap", "area_randomization", "area_se", "area_t", "assignments_possible", "weighted_difference",
           "MAX_ENUMERATE", "WELCH_MIN_AREAS"]
