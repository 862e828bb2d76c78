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
        observed_tuple = tuple(dates)
        for assignment in distinct_assignments(dates):
            if assignment == observed_tuple:
                continue
            values.append(statistic(_mapping(units, assignment)))
        stats = np.array([observed] + values, dtype=float)
        p = _share_extreme(stats, observed, len(stats))
        return RandomizationResult(observed, p, stats, n_assignments, True, len(values))
    values = np.empty(reps)
    positions = np.arange(len(units))
    for b in range(reps):
        order = rng.permutation(positions)
        values[b] = statistic(_mapping(units, [dates[i] for i in order]))
    stats = np.concatenate([[observed], values])
    p = _share_extreme(stats, observed, reps + 1)
    return RandomizationResult(observed, p, stats, n_assignments, False, reps)


def _mapping(units: list, dates) -> dict:
    return {u: d for u, d in zip(units, dates) if d is not None}


def _share_extreme(stats: np.ndarray, observed: float, denominator: int) -> float:
    """Share of |stats| >= |observed| (ties within a relative tolerance count), observed included;
    a statistic that could not be computed (NaN) counts as extreme."""
    threshold = abs(observed) * (1.0 - TIE_TOLERANCE) if np.isfinite(observed) else np.inf
    with np.errstate(invalid="ignore"):
        extreme = (np.abs(stats) >= threshold) | np.isnan(stats)
    return float(np.sum(extreme) / denominator)


__all__ = ["RandomizationResult", "randomization_test", "count_assignments", "distinct_assignments"]
