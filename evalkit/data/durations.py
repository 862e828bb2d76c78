"""Kaplan-Meier estimates for many groups at once, and the per-period duration outcomes.

Time to found is censored: an episode still open at extraction has a lower bound on its
duration, not a value. A naive median or share of the observed hours would treat open
episodes as found at extraction (or drop them) and so understate how long children stay
missing. Everything here is Kaplan-Meier based, with R's ``survival`` conventions:

- the estimate is a right-continuous step function, ``S(t) = prod_{t_j <= t} (1 - d_j / n_j)``
  over the distinct times ``t_j`` of a group, with ``n_j`` the episodes still open just
  before ``t_j`` (an episode censored at ``t_j`` is at risk at ``t_j``);
- the median is R's ``print.survfit`` rule: the first time at which ``S(t) < 0.5``
  (within sqrt(machine epsilon)), and when ``S`` equals 0.5 exactly on an interval, the
  midpoint of that interval; not reached -> missing;
- the share found within ``h`` hours is ``1 - S(h)``; beyond a group's last observed time
  (and ``S`` still above 0) it is not estimable -> missing.

The per-period outcomes ``median_hours_to_found`` and ``share_found_within`` (with
``hours``) are computed per unit and period (the period of ``reported_at``); cells with
fewer than the outcome's ``min_episodes`` episodes are missing (NaN), not zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

#: tolerance R's survmean uses when looking for S(t) = 0.5
MEDIAN_TOLERANCE = float(np.finfo(float).eps) ** 0.5

DURATION_MEASURES = ("median_hours_to_found", "share_found_within")


@dataclass
class KaplanMeierTable:
    """Kaplan-Meier step tables of several groups, stacked.

    Rows are the distinct times of each group in increasing order (event or censoring
    times, as R's ``survfit`` lists them); ``bounds[g]:bounds[g + 1]`` are group g's rows.

    Attributes
    ----------
    time, n_risk, n_event, n_censor : ndarray
        Distinct time, episodes at risk just before it, found at it, censored at it.
    survival : ndarray
        ``S(t)`` just after ``time``.
    greenwood : ndarray
        ``sum_{t_j <= t} d_j / (n_j (n_j - d_j))``: the variance of ``log S`` (R's
        ``std.err`` squared); infinite once every episode at risk is found.
    bounds : ndarray
        Row offsets of each group (length ``n_groups + 1``).
    n : ndarray
        Episodes per group.
    """

    time: np.ndarray
    n_risk: np.ndarray
    n_event: np.ndarray
    n_censor: np.ndarray
    survival: np.ndarray
    greenwood: np.ndarray
    bounds: np.ndarray
    n: np.ndarray

    @property
    def n_groups(self) -> int:
        return len(self.bounds) - 1

    @property
    def group(self) -> np.ndarray:
        """Group code of each row."""
        return np.repeat(np.arange(self.n_groups), np.diff(self.bounds))

    def rows(self, g: int) -> slice:
        return slice(int(self.bounds[g]), int(self.bounds[g + 1]))


def group_time_order(codes, hours) -> np.ndarray:
    """The permutation sorting episodes by group code, then by time (increasing).

    Equivalent to ``np.lexsort((hours, codes))`` up to the order within exact ties of
    (code, time), which no caller depends on (every table sums over the tie): one
    unstable sort of the times (numpy's vectorised sort) and one stable sort of the codes
    narrowed to the smallest integer type that holds them (a radix sort for up to 16
    bits), about 5 times faster than ``lexsort`` on millions of episodes. Deterministic.
    """
    codes = np.asarray(codes)
    order = np.argsort(hours)
    if codes.size == 0:
        return order
    low, high = int(codes.min()), int(codes.max())
    narrow = np.int16 if (low >= -2**15 and high < 2**15) else np.int32 if (low >= -2**31 and high < 2**31) else np.int64
    return order[np.argsort(codes.astype(narrow, copy=False)[order], kind="stable")]


def kaplan_meier(codes, hours, found, n_groups: int | None = None, weights=None) -> KaplanMeierTable:
    """Kaplan-Meier tables for every group in one vectorised pass.

    Parameters
    ----------
    codes : array_like of int
        Group code of each episode, 0..n_groups-1.
    hours : array_like of float
        Hours to found, or to extraction when censored.
    found : array_like of bool
        True when found (an event), False when censored.
    n_groups : int, optional
        Number of groups (default: ``max(codes) + 1``); groups without episodes get no rows.
    weights : array_like of int, optional
        Frequency weights: how many identical episodes each row stands for (a table of
        distinct episodes with their counts gives exactly the table of the episodes
        themselves). Rows with weight 0 are left out.
    """
    codes = np.asarray(codes, dtype=np.int64)
    hours = np.asarray(hours, dtype=float)
    found = np.asarray(found, dtype=bool)
    if weights is not None:
        weights = frequency_weights(weights, codes.size)
        if (weights == 0).any():
            nonzero = weights > 0
            codes, hours, found, weights = codes[nonzero], hours[nonzero], found[nonzero], weights[nonzero]
    if n_groups is None:
        n_groups = int(codes.max()) + 1 if codes.size else 0
    order = group_time_order(codes, hours)
    codes_s, hours_s, found_s = codes[order], hours[order], found[order]
    # one row per distinct (group, time)
    new = np.ones(codes_s.size, dtype=bool)
    if codes_s.size:
        new[1:] = (codes_s[1:] != codes_s[:-1]) | (hours_s[1:] != hours_s[:-1])
    first = np.flatnonzero(new)
    row_group = codes_s[first]
    time = hours_s[first]
    if weights is None:
        n_event = np.add.reduceat(found_s.astype(np.int64), first) if first.size else np.zeros(0, np.int64)
        n_total = np.diff(np.append(first, codes_s.size))
        n_per_group = np.bincount(codes, minlength=n_groups).astype(np.int64)
    else:
        weights_s = weights[order]
        n_event = np.add.reduceat(np.where(found_s, weights_s, 0), first) if first.size else np.zeros(0, np.int64)
        n_total = np.add.reduceat(weights_s, first) if first.size else np.zeros(0, np.int64)
        n_per_group = np.bincount(codes, weights=weights, minlength=n_groups).astype(np.int64)
    n_censor = n_total - n_event
    rows_per_group = np.bincount(row_group, minlength=n_groups)
    bounds = np.concatenate([[0], np.cumsum(rows_per_group)]).astype(np.int64)
    # at risk = episodes of the group with time >= t = group size - those before this row
    before = np.cumsum(n_total) - n_total
    group_start = np.concatenate([[0], np.cumsum(n_per_group)])[row_group]
    n_risk = n_per_group[row_group] - (before - group_start)
    term = 1.0 - n_event / n_risk
    survival = _grouped(np.cumprod, term, bounds)
    with np.errstate(divide="ignore", invalid="ignore"):
        increment = np.where(n_event > 0, n_event / (n_risk * (n_risk - n_event).astype(float)), 0.0)
    greenwood = _grouped(np.cumsum, increment, bounds)
    return KaplanMeierTable(time=time, n_risk=n_risk.astype(np.int64), n_event=n_event.astype(np.int64),
                            n_censor=n_censor.astype(np.int64), survival=survival, greenwood=greenwood,
                            bounds=bounds, n=n_per_group)


def frequency_weights(weights, n: int) -> np.ndarray:
    """Frequency weights as int64, refusing anything but non-negative whole numbers."""
    weights = np.asarray(weights)
    if weights.shape != (n,):
        raise ValueError(f"weights must have one value per row ({n}), not shape {weights.shape}")
    if weights.dtype.kind == "f":
        if not (np.isfinite(weights).all() and (weights == np.round(weights)).all()):
            raise ValueError("weights must be whole numbers (counts of identical episodes)")
    elif weights.dtype.kind not in "iub":
        raise ValueError("weights must be whole numbers (counts of identical episodes)")
    weights = weights.astype(np.int64)
    if (weights < 0).any():
        raise ValueError("weights must not be negative")
    return weights


def _grouped(accumulate, values: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """``accumulate`` (np.cumsum, np.cumprod) restarted at every group boundary."""
    out = np.empty_like(values, dtype=float)
    for g in range(len(bounds) - 1):
        a, b = bounds[g], bounds[g + 1]
        if b > a:
            out[a:b] = accumulate(values[a:b])
    return out


def first_crossing_time(curve: np.ndarray, time: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """R's median rule (``survmean``'s ``minmin``) applied to each group's ``curve``.

    The first time with ``curve < 0.5 + tol``; when that value is 0.5 (within tol) and the
    curve falls lower later, the midpoint between that time and the first time it is
    lower. NaN values of the curve (undefined confidence limits) are skipped; NaN when
    never reached.
    """
    n_groups = len(bounds) - 1
    result = np.full(n_groups, np.nan)
    keep = ~np.isnan(curve) & (curve < 0.5 + MEDIAN_TOLERANCE)
    for g in range(n_groups):
        a, b = bounds[g], bounds[g + 1]
        hits = np.flatnonzero(keep[a:b])
        if hits.size == 0:
            continue
        i = a + hits[0]
        result[g] = time[i]
        if abs(curve[i] - 0.5) < MEDIAN_TOLERANCE:
            kept = a + hits
            lower = kept[curve[kept] < curve[i]]
            if lower.size:
                result[g] = (time[i] + time[lower[0]]) / 2.0
    return result


def survival_at(table: KaplanMeierTable, hours: float) -> np.ndarray:
    """``S(hours)`` for each group; NaN beyond a group's last time while ``S`` > 0.

    A group without episodes gives NaN.
    """
    result = np.full(table.n_groups, np.nan)
    upto = table.time <= hours
    for g in range(table.n_groups):
        a, b = table.bounds[g], table.bounds[g + 1]
        if b == a:
            continue
        k = int(np.count_nonzero(upto[a:b]))
        if k == 0:
            result[g] = 1.0
            continue
        s = table.survival[a + k - 1]
        if k == b - a and hours > table.time[b - 1] and s > 0:
            continue  # followed up to the last time only: S(hours) is not estimable
        result[g] = s
    return result


def derive_duration_outcome(episodes: pd.DataFrame, units: list, periods: pd.PeriodIndex, outcome) -> np.ndarray:
    """A per-unit-period duration outcome, in the order of the ``(unit, period)`` grid.

    Parameters
    ----------
    episodes : DataFrame
        Episodes inside the window with ``unit``, ``period``, ``hours_to_found`` and
        ``censored``.
    units, periods
        The panel's grid (``MultiIndex.from_product([units, periods])`` order).
    outcome : Outcome
        ``measure`` ``median_hours_to_found`` or ``share_found_within`` (with ``hours``);
        ``min_episodes`` cells with fewer episodes are NaN.
    """
    grid = pd.MultiIndex.from_product([units, periods], names=["unit", "period"])
    cell = grid.get_indexer(pd.MultiIndex.from_arrays([episodes["unit"], episodes["period"]]))
    inside = cell >= 0
    table = kaplan_meier(cell[inside], episodes["hours_to_found"].to_numpy(dtype=float)[inside],
                         ~episodes["censored"].to_numpy(dtype=bool)[inside], n_groups=len(grid))
    if outcome.measure == "median_hours_to_found":
        values = first_crossing_time(table.survival, table.time, table.bounds)
    elif outcome.measure == "share_found_within":
        values = 1.0 - survival_at(table, float(outcome.hours))
    else:
        raise ValueError(f"not a duration measure: {outcome.measure}")
    values[table.n < outcome.min_episodes] = np.nan
    return values


__all__ = ["DURATION_MEASURES", "KaplanMeierTable", "kaplan_meier", "group_time_order", "first_crossing_time", "survival_at",
           "derive_duration_outcome"]
