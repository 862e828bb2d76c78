"""Kaplan-Meier descriptives of time to found: curves with confidence bands and numbers at
risk, medians with intervals, shares found within h hours, restricted means.

Every quantity follows R's ``survival`` (``survfit``, ``print.survfit``, ``summary.survfit``)
so that the stored R fixtures are matched to 1e-6:

- confidence band ``conf.type = "log"`` (R's default): ``S exp(+/- z se)``, se from
  Greenwood's formula on the log scale, the upper limit capped at 1, undefined where S = 0;
- median and its interval: the first time each of ``S``, the lower and the upper band
  falls below 0.5 (R's ``minmin``, with the midpoint rule at an exact 0.5);
- restricted mean up to ``horizon``: the area under S from 0 to the horizon, with R's
  ``print(fit, rmean = horizon)`` standard error;
- the share found within h hours, ``1 - S(h)``, with the band ``[1 - upper, 1 - lower]``;
- numbers at risk at t: episodes still open just before t (time >= t).

The estimator is in :mod:`evalkit.data.durations` (shared with the per-period outcomes).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from ...data.durations import KaplanMeierTable, first_crossing_time, kaplan_meier

#: at most this many step points per curve in ``series``; longer curves are sampled on a grid
MAX_CURVE_POINTS = 300


def confidence_band(table: KaplanMeierTable, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Log-transformed pointwise band (R ``conf.type = "log"``)."""
    z = stats.norm.ppf(1 - alpha / 2)
    se = np.sqrt(table.greenwood)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(table.survival == 0, np.nan, table.survival)
        lower = np.exp(np.log(s) - z * se)
        upper = np.minimum(np.exp(np.log(s) + z * se), 1.0)
    return lower, upper


def medians(table: KaplanMeierTable, alpha: float) -> dict:
    """Median hours to found per group, with R's interval (NaN where not reached)."""
    lower, upper = confidence_band(table, alpha)
    return {
        "median": first_crossing_time(table.survival, table.time, table.bounds),
        "low": first_crossing_time(lower, table.time, table.bounds),
        "high": first_crossing_time(upper, table.time, table.bounds),
    }


def restricted_means(table: KaplanMeierTable, horizon: float) -> dict:
    """Restricted mean hours to found up to ``horizon`` per group, and its standard error.

    R ``survmean`` with ``rmean = horizon``: the rectangles under the step function from 0
    to the horizon (flat after the group's last time), and
    ``var = sum_j A_j^2 d_j / (n_j (n_j - d_j))`` with ``A_j`` the area from ``t_j`` to the
    horizon.
    """
    rmst = np.full(table.n_groups, np.nan)
    se = np.full(table.n_groups, np.nan)
    for g in range(table.n_groups):
        rows = table.rows(g)
        time, surv = table.time[rows], table.survival[rows]
        if time.size == 0:
            continue
        n_risk, n_event = table.n_risk[rows], table.n_event[rows]
        with np.errstate(divide="ignore", invalid="ignore"):
            hh = np.where(n_risk - n_event == 0, 0.0, n_event / (n_risk * (n_risk - n_event).astype(float)))
        keep = time <= horizon
        k = int(np.count_nonzero(keep))
        if k == 0:
            rmst[g], se[g] = horizon, 0.0
            continue
        temptime = np.append(time[:k], horizon)
        tempsurv = np.append(surv[:k], surv[k - 1])
        hh = np.append(hh[:k], 0.0)
        delta = np.diff(np.concatenate([[0.0], temptime]))
        rectangles = delta * np.concatenate([[1.0], tempsurv[:-1]])
        rmst[g] = rectangles.sum()
        tail = np.cumsum(rectangles[1:][::-1])
        se[g] = np.sqrt(np.sum(tail ** 2 * hh[::-1][1:]))
    return {"rmst": rmst, "se": se}


def at_times(table: KaplanMeierTable, hours, alpha: float) -> dict:
    """Survival with its band, numbers at risk and cumulative counts at given hours.

    ``survival[g, i]`` is S(hours[i]) (NaN beyond the group's last time while S > 0, as
    R's ``summary(fit, times = )`` leaves such times out); ``at_risk`` counts episodes
    with time >= hours[i]; ``found`` and ``censored`` count those found / censored at or
    before hours[i].
    """
    hours = np.asarray(hours, dtype=float)
    lower_band, upper_band = confidence_band(table, alpha)
    shape = (table.n_groups, hours.size)
    out = {key: np.full(shape, np.nan) for key in ("survival", "lower", "upper")}
    at_risk = np.zeros(shape, dtype=np.int64)
    found = np.zeros(shape, dtype=np.int64)
    censored = np.zeros(shape, dtype=np.int64)
    for g in range(table.n_groups):
        rows = table.rows(g)
        time = table.time[rows]
        if time.size == 0:
            continue
        k = np.searchsorted(time, hours, side="right")  # rows with time <= h
        cum_event = np.concatenate([[0], np.cumsum(table.n_event[rows])])
        cum_censor = np.concatenate([[0], np.cumsum(table.n_censor[rows])])
        found[g] = cum_event[k]
        censored[g] = cum_censor[k]
        at_risk[g] = table.n[g] - cum_event[np.searchsorted(time, hours, side="left")] \
            - cum_censor[np.searchsorted(time, hours, side="left")]
        surv = np.concatenate([[1.0], table.survival[rows]])[k]
        low = np.concatenate([[1.0], lower_band[rows]])[k]
        high = np.concatenate([[1.0], upper_band[rows]])[k]
        beyond = (hours > time[-1]) & (surv > 0)
        out["survival"][g] = np.where(beyond, np.nan, surv)
        out["lower"][g] = np.where(beyond, np.nan, low)
        out["upper"][g] = np.where(beyond, np.nan, high)
    out.update(at_risk=at_risk, found=found, censored=censored)
    return out


def curve(table: KaplanMeierTable, g: int, alpha: float, display_hours: float) -> dict:
    """One group's step function from 0 to ``display_hours`` for the figure.

    The exact steps (S just after each distinct time, starting at (0, 1)) when there are
    at most ``MAX_CURVE_POINTS`` of them; otherwise S on an even grid of that many
    points (still a right-continuous step function, drawn with steps-post).
    """
    lower_band, upper_band = confidence_band(table, alpha)
    rows = table.rows(g)
    time = table.time[rows]
    inside = time <= display_hours
    if int(np.count_nonzero(inside)) + 1 <= MAX_CURVE_POINTS:
        times = np.concatenate([[0.0], time[inside]])
        surv = np.concatenate([[1.0], table.survival[rows][inside]])
        low = np.concatenate([[1.0], lower_band[rows][inside]])
        high = np.concatenate([[1.0], upper_band[rows][inside]])
        sampled = False
    else:
        times = np.linspace(0.0, display_hours, MAX_CURVE_POINTS)
        k = np.searchsorted(time, times, side="right")
        surv = np.concatenate([[1.0], table.survival[rows]])[k]
        low = np.concatenate([[1.0], lower_band[rows]])[k]
        high = np.concatenate([[1.0], upper_band[rows]])[k]
        sampled = True
    return {"times": times.tolist(), "survival": surv.tolist(), "lower": low.tolist(), "upper": high.tolist(),
            "sampled": sampled}


__all__ = ["kaplan_meier", "confidence_band", "medians", "restricted_means", "at_times", "curve",
           "MAX_CURVE_POINTS"]
