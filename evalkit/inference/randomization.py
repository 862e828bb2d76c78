"""Randomization inference by re-assigning adoption dates across areas.

Under the sharp null hypothesis that the intervention changed nothing in any area, the
outcomes would have been the same whichever areas had adopted when. So the observed
estimate is compared with the estimates the same procedure gives when the vector of
adoption dates (including "never") is permuted across the areas (Fisher 1935; for
difference-in-differences with few treated areas, MacKinnon & Webb 2020). The p-value is
the share of assignments whose statistic is at least as far from zero as the observed one,
the observed assignment included:

* when the number of distinct assignments is at most ``max_enumerate``, every one is
  computed once and the p-value is exact;
* otherwise ``reps`` permutations are drawn at random (with replacement) and
  ``p = (1 + #{|T_b| >= |T_obs|}) / (reps + 1)``.

An assignment whose statistic cannot be computed (NaN: e.g. the areas it treats have no
counts at all) counts as at least as extreme: the p-value stays conservative, never
smaller because some assignments could not be fitted.

The procedure is generic: ``statistic`` maps an adoption mapping (unit -> adoption period,
never-treated units left out, as :attr:`AnalysisData.adoption`) to a number, so any
estimator can reuse it.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

#: relative tolerance under which a permuted statistic counts as a tie with the observed one
TIE_TOLERANCE = 1e-9


@dataclass
class RandomizationResult:
    """What a randomization test found."""

    observed: float
    p_value: float
    statistics: np.ndarray   # the statistic of every assignment computed (observed first when exhaustive)
    n_assignments: int       # distinct assignments of the adoption dates to the areas
    exhaustive: bool         # every assignment computed (exact p-value)
    reps: int                # assignments computed besides the observed one
    #: the adoption mappings in the order of ``statistics`` (observed first): test inversion
    #: re-uses exactly these for every null effect
    assignments: list | None = None

    @property
    def smallest_p(self) -> float:
        """The smallest p-value this test can give."""
        return 1.0 / self.n_assignments if self.exhaustive else 1.0 / (self.reps + 1)

    def histogram(self, bins: int = 30) -> dict:
        """The permutation distribution as plain lists, for the report's figure."""
        finite = self.statistics[np.isfinite(self.statistics)]
        counts, edges = np.histogram(finite, bins=bins)
        return {"edges": edges.tolist(), "counts": counts.tolist(), "observed": self.observed,
                "non_finite": int(len(self.statistics) - len(finite))}

    def to_dict(self) -> dict:
        return {"observed": self.observed, "p_value": self.p_value, "n_assignments": self.n_assignments,
                "exhaustive": self.exhaustive, "reps": self.reps, "smallest_p": self.smallest_p,
                "non_finite": int(np.sum(~np.isfinite(self.statistics)))}


def count_assignments(values: Sequence[Hashable]) -> int:
    """Distinct arrangements of a multiset: n! / prod(count_v!)."""
    total = math.factorial(len(values))
    for count in Counter(values).values():
        total //= math.factorial(count)
    return total


def distinct_assignments(values: Sequence[Hashable]) -> Iterator[tuple]:
    """Every distinct arrangement of ``values`` over len(values) positions, in a fixed order."""
    n = len(values)
    levels = sorted(Counter(values).items(), key=lambda kv: _sort_key(kv[0]))

    def place(free: tuple, remaining: list) -> Iterator[dict]:
        if not remaining:
            yield {}
            return
        (value, count), rest = remaining[0], remaining[1:]
        for chosen in itertools.combinations(free, count):
            left = tuple(p for p in free if p not in chosen)
            for tail in place(left, rest):
                yield {**{p: value for p in chosen}, **tail}

    for slots in place(tuple(range(n)), levels):
        yield tuple(slots[i] for i in range(n))


def _sort_key(value):
    return (value is None, str(value))


def randomization_test(statistic: Callable[[dict], float], units: Sequence, adoption: Mapping,
                       rng: np.random.Generator, reps: int = 999, max_enumerate: int = 5000) -> RandomizationResult:
    """Permute adoption dates across ``units`` and recompute ``statistic``.

    Parameters
    ----------
    statistic : callable
        Maps an adoption mapping (unit -> period, for adopting units only) to a float.
        Two-sided: its absolute value is compared.
    units : sequence
        The areas whose adoption dates are exchanged (treated and comparison areas).
    adoption : mapping
        The observed adoption period of each adopting unit; units absent never adopt.
    rng : numpy Generator
        Seeded from the design; used only when the assignments are drawn at random.
    reps : int
        Random assignments drawn when there are more than ``max_enumerate``.
    max_enumerate : int
        Enumerate every distinct assignment when there are at most this many.
    """
    units = list(units)
    dates = [adoption.get(u) for u in units]
    observed = float(statistic(_mapping(units, dates)))
    n_assignments = count_assignments(dates)
    if n_assignments <= max_enumerate:
        values = []
        mappings = [_mapping(units, dates)]
        observed_tuple = tuple(dates)
        for assignment in distinct_assignments(dates):
            if assignment == observed_tuple:
                continue
            mappings.append(_mapping(units, assignment))
            values.append(statistic(mappings[-1]))
        stats = np.array([observed] + values, dtype=float)
        p = _share_extreme(stats, observed, len(stats))
        return RandomizationResult(observed, p, stats, n_assignments, True, len(values), mappings)
    draws = np.empty(reps)
    positions = np.arange(len(units))
    mappings = [_mapping(units, dates)]
    for b in range(reps):
        order = rng.permutation(positions)
        mappings.append(_mapping(units, [dates[i] for i in order]))
        draws[b] = statistic(mappings[-1])
    stats = np.concatenate([[observed], draws])
    p = _share_extreme(stats, observed, reps + 1)
    return RandomizationResult(observed, p, stats, n_assignments, False, reps, mappings)


#: steps out from the estimate, in standard errors, at which a non-linear statistic is
#: recomputed until the null is rejected (beyond the last the interval is unbounded)
INVERSION_STEPS = (1.0, 2.0, 3.0, 4.5, 6.5, 9.0, 13.0, 20.0, 30.0, 50.0)


@dataclass
class InvertedInterval:
    """The nulls a randomization test does not reject: ``low``/``high`` None when unbounded or impossible."""

    low: float | None
    high: float | None
    method: str
    reason: str | None = None      # "too_few_assignments", "unbounded" (an end never rejected), or None
    nulls_evaluated: int = 0       # null effects at which every assignment was recomputed

    def to_dict(self) -> dict:
        return {"low": self.low, "high": self.high, "method": self.method, "reason": self.reason,
                "nulls_evaluated": self.nulls_evaluated}


def p_value_of(stats: np.ndarray) -> float:
    """The randomization p-value of a vector of statistics whose first entry is the observed one."""
    return _share_extreme(stats, float(stats[0]), len(stats))


def invert_randomization_test(statistics_at: Callable[[float], np.ndarray], estimate: float, se: float,
                              alpha: float, smallest_p: float, p_at_zero: float | None = None,
                              linear: bool = False, refine: int = 0,
                              statistics_at_zero: np.ndarray | None = None) -> InvertedInterval:
    """The interval of null effects ``theta`` that the randomization test does not reject at ``alpha``.

    ``statistics_at(theta)`` recomputes the statistic for every assignment (the observed one
    first, the same assignments for every ``theta``) on the data with the null effect
    ``theta`` removed from the observed treated cells, so ``statistics_at(theta)[0]`` is
    about ``estimate - theta``. The test of ``theta`` is the randomization test of those
    statistics (:func:`p_value_of`). ``statistics_at_zero`` (the test's own statistics)
    saves one evaluation.

    * ``linear``: the statistic is linear in the outcome (the linear TWFE), so
      ``T_b(theta) = T_b(0) - theta c_b``: two evaluations give every null exactly, and each
      end is found by bisection to 1e-7 standard errors.
    * otherwise (the Poisson log ratio, close to linear in ``theta``): the ends of the
      linear model through the statistics at 0 and at the estimate are refitted exactly.
      With ``refine = 0`` (default) each end is read off the line through the refits at
      the estimate and at that guess (three refits of every assignment in all; the error
      is second order in the distance from the guess: tests/test_did.py compares it with
      refined ends). With ``refine > 0``, or when that line never rejects, the end is
      bracketed between an accepted and a rejected refit (stepping out by
      ``INVERSION_STEPS`` standard errors when needed), ``refine`` times narrowed at the
      root of the assignments' linear interpolation, and read off the final interpolation.

    A null is rejected when its p-value is below ``alpha``; with ``1 / alpha`` assignments or
    fewer (``smallest_p >= alpha``) no null is ever rejected: no interval at ``1 - alpha``
    exists and both ends are None.
    """
    method = ("test inversion: the null effects the randomization test does not reject at "
              f"alpha = {alpha:g}, the same assignments for every null")
    if smallest_p >= alpha:
        return InvertedInterval(None, None, method, "too_few_assignments", 0)
    cache: dict[float, np.ndarray] = {}
    if statistics_at_zero is not None:
        cache[0.0] = np.asarray(statistics_at_zero, dtype=float)
    free = len(cache)

    def exact(theta: float) -> np.ndarray:
        theta = float(theta)
        if theta not in cache:
            cache[theta] = np.asarray(statistics_at(theta), dtype=float)
        return cache[theta]

    if linear:
        base = exact(0.0)
        slope = base - exact(1.0)
        ends = [_bisect_linear(lambda t: p_value_of(base - t * slope) >= alpha, estimate, se, side)
                for side in (-1.0, 1.0)]
    else:
        anchor = estimate + 2.0 * se if abs(estimate) < 0.5 * se else 0.0
        at_estimate, at_anchor = exact(estimate), exact(anchor)
        slope = (at_anchor - at_estimate) / (anchor - estimate)
        model = lambda t: at_estimate + (t - estimate) * slope  # noqa: E731
        ends = [_nonlinear_end(exact, model, estimate, se, alpha, side, refine) for side in (-1.0, 1.0)]
        if p_at_zero is not None:
            # the interpolation must not contradict the test of no effect itself (p_at_zero, exact)
            k = 0 if estimate > 0 else 1                    # the end on the side of 0
            end = ends[k]
            inside = end is None or (end <= 0.0 if k == 0 else end >= 0.0)
            if p_at_zero >= alpha and not inside:
                ends[k] = 0.0
            elif p_at_zero < alpha and inside and end is not None:
                ends[k] = 1e-9 * se * (1.0 if k == 0 else -1.0)
    low, high = (None if e is None else float(e) for e in ends)
    return InvertedInterval(low, high, method, None if (low is not None and high is not None) else "unbounded",
                            len(cache) - free)


def randomization_interval_note(inverted, assignments, n_treated: int, n_units: int, alpha: float) -> str | None:
    """Why a randomization interval has no end, in plain words (None when it has both).

    ``inverted`` has ``reason``, ``low`` and ``high`` (:class:`InvertedInterval` or a
    method's own); ``assignments`` has ``n_assignments`` and ``smallest_p`` (the test).
    did and staggered_did both word their notes here, so a report reads the same for both.
    """
    level = f"{1 - alpha:.0%}"
    if inverted.reason == "too_few_assignments":
        areas = "one adopting area" if n_treated == 1 else f"{n_treated} adopting areas"
        return (f"with {areas} among {n_units} no interval at {level} is possible: the adoption dates can be "
                f"re-assigned in only {assignments.n_assignments} ways, so the smallest p-value is "
                f"{assignments.smallest_p:.3g}, not below {alpha:g}")
    if inverted.reason == "unbounded":
        if inverted.low is None and inverted.high is None:
            return (f"the randomization test rejects no effect on either side of the estimate at {level}, so the "
                    "interval is unbounded")
        return (f"the randomization test rejects no effect {'below' if inverted.low is None else 'above'} the "
                f"estimate at {level}, so the interval is unbounded on that side")
    return None


def _bisect_linear(accepted: Callable[[float], bool], estimate: float, se: float, side: float) -> float | None:
    inside, step, outside = estimate, 2.0 * se, None
    for _ in range(40):
        candidate = estimate + side * step
        if not accepted(candidate):
            outside = candidate
            break
        inside, step = candidate, step * 2.0
    if outside is None:
        return None
    while abs(outside - inside) > 1e-7 * se:
        middle = (inside + outside) / 2.0
        if accepted(middle):
            inside = middle
        else:
            outside = middle
    return (inside + outside) / 2.0


def _nonlinear_end(exact, model, estimate: float, se: float, alpha: float, side: float, refine: int):
    """One end of the interval for a statistic close to linear in the null (module docstring)."""
    def accepted(theta: float) -> bool:
        return p_value_of(exact(theta)) >= alpha

    inside, outside = estimate, None
    guess = _bisect_linear(lambda t: p_value_of(model(t)) >= alpha, estimate, se, side)
    if guess is not None and side * (guess - estimate) <= 50.0 * se:
        if refine == 0:
            # one refit at the linear model's end: the end on the line through it and the estimate
            start, at_guess = exact(estimate), exact(guess)
            line = lambda t: start + (t - estimate) / (guess - estimate) * (at_guess - start)  # noqa: E731
            far = estimate + 3.0 * (guess - estimate)
            if p_value_of(line(far)) < alpha:
                lo, hi = estimate, far
                for _ in range(60):
                    middle = (lo + hi) / 2.0
                    if p_value_of(line(middle)) >= alpha:
                        lo = middle
                    else:
                        hi = middle
                return (lo + hi) / 2.0
        if accepted(guess):
            inside = guess
        else:
            outside = guess
    if outside is None:
        reach = abs(inside - estimate) / se
        for k in INVERSION_STEPS:
            if k <= reach:
                continue
            theta = estimate + side * max(k, 1.25 * reach) * se
            if accepted(theta):
                inside, reach = theta, abs(theta - estimate) / se
            else:
                outside = theta
                break
    if outside is None:
        return None

    def interpolated_root(a: float, b: float) -> float:
        sa, sb = exact(a), exact(b)
        lo, hi = a, b                       # lo accepted, hi rejected (by the interpolation)
        for _ in range(50):
            middle = (lo + hi) / 2.0
            weight = (middle - a) / (b - a)
            if p_value_of(sa + weight * (sb - sa)) >= alpha:
                lo = middle
            else:
                hi = middle
        return (lo + hi) / 2.0

    for _ in range(refine):
        root = interpolated_root(inside, outside)
        if abs(root - inside) < 1e-4 * se or abs(outside - root) < 1e-4 * se:
            break
        if accepted(root):
            inside = root
        else:
            outside = root
    return interpolated_root(inside, outside)


def _mapping(units: list, dates) -> dict:
    return {u: d for u, d in zip(units, dates) if d is not None}


def _share_extreme(stats: np.ndarray, observed: float, denominator: int) -> float:
    """Share of |stats| >= |observed| (ties within a relative tolerance count), observed included;
    a statistic that could not be computed (NaN) counts as extreme."""
    threshold = abs(observed) * (1.0 - TIE_TOLERANCE) if np.isfinite(observed) else np.inf
    with np.errstate(invalid="ignore"):
        extreme = (np.abs(stats) >= threshold) | np.isnan(stats)
    return float(np.sum(extreme) / denominator)


__all__ = ["RandomizationResult", "randomization_test", "randomization_interval_note", "count_assignments", "distinct_assignments",
           "InvertedInterval", "invert_randomization_test", "p_value_of"]
