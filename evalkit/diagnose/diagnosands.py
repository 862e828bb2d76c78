"""Diagnosands: what the simulations say about each estimator, each with its Monte Carlo SE.

Pure functions of the simulation rows (one row per simulation x estimate). A rate is a
share of simulations, its Monte Carlo SE ``sqrt(p (1 - p) / n)``; a mean's is the
standard deviation over ``sqrt(n)``; the RMSE's comes from the delta method,
``SE(MSE) / (2 RMSE)``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

TARGET_POWER = 0.8
KEYS = ["outcome", "method", "analysis", "estimand"]

#: what a calibrated 95% interval does (issue 12): covers the truth 93-97% of the time and
#: rejects a true null 3-7% of the time
COVERAGE_TARGET = (0.93, 0.97)
REJECTION_TARGET = (0.03, 0.07)
#: a rate fails its target only when the whole band estimate +/- MC_SE_MULTIPLIER Monte Carlo SEs misses it
MC_SE_MULTIPLIER = 2.0
#: fewer successful fits than this in a cell: its rates are too rough to judge (a 95% coverage has
#: a Monte Carlo SE of 2.2 points at 100 simulations, so +/- 2 SE spans 91-99%)
MIN_CALIBRATION_FITS = 100
CALIBRATION_RULE = (f"pass when, at every planted effect, the 95% interval's coverage is within "
                    f"{100 * COVERAGE_TARGET[0]:.0f}-{100 * COVERAGE_TARGET[1]:.0f}% and, with no change planted, "
                    f"its rejection rate within {100 * REJECTION_TARGET[0]:.0f}-{100 * REJECTION_TARGET[1]:.0f}%, "
                    f"allowing for Monte Carlo error: a rate fails only when the target band lies wholly outside "
                    f"the rate +/- {MC_SE_MULTIPLIER:g} Monte Carlo SEs (a Wilson score interval, which keeps its "
                    f"spread at 0% and 100%); not assessed with fewer than "
                    f"{MIN_CALIBRATION_FITS} successful fits per planted effect or no interval")


def _rate(hits: np.ndarray) -> tuple[float | None, float | None]:
    n = len(hits)
    if n == 0:
        return None, None
    p = float(np.mean(hits))
    return p, math.sqrt(p * (1 - p) / n)


def _mean(values: np.ndarray) -> tuple[float | None, float | None]:
    n = len(values)
    if n == 0:
        return None, None
    mean = float(np.mean(values))
    return mean, (float(np.std(values, ddof=1)) / math.sqrt(n) if n > 1 else None)


def rejects(frame: pd.DataFrame, alpha: float = 0.05) -> np.ndarray:
    """The interval excludes no change (1 for ratios, 0 for differences); an estimate with
    no interval at all (synthetic control's placebo test) rejects when its p-value is below alpha."""
    null = np.where(frame["scale"].to_numpy() == "ratio", 1.0, 0.0)
    low, high = frame["ci_low"].to_numpy(dtype=float), frame["ci_high"].to_numpy(dtype=float)
    by_interval = (low > null) | (high < null)
    p = frame["p_value"].to_numpy(dtype=float) if "p_value" in frame else np.full(len(frame), np.nan)
    no_interval = ~np.isfinite(low) & ~np.isfinite(high) & ~np.isnan(p)
    return np.where(no_interval, p < alpha, by_interval)


def cell_diagnosands(frame: pd.DataFrame, alpha: float = 0.05) -> dict:
    """Diagnosands of one outcome x method x estimand x planted effect.

    ``frame`` holds its simulation rows: ``estimate, ci_low, ci_high, truth, scale, error``.
    A failed fit (``error`` set, or no estimate) counts in ``failed`` and is left out of
    the rest; a missing interval end counts as unbounded.
    """
    ok = frame["error"].isna() & frame["estimate"].notna() & np.isfinite(frame["estimate"].to_numpy(dtype=float))
    fits = frame[ok]
    out: dict = {"simulations": int(len(frame)), "failed": int((~ok).sum())}
    if fits.empty:
        return out
    significant = rejects(fits, alpha)
    fits = fits.assign(ci_low=fits["ci_low"].astype(float).fillna(-np.inf),
                       ci_high=fits["ci_high"].astype(float).fillna(np.inf))
    est = fits["estimate"].to_numpy(dtype=float)
    scale = fits["scale"].iloc[0]
    null = 1.0 if scale == "ratio" else 0.0
    out["mean_estimate"], out["mean_estimate_se"] = _mean(est)
    out["power"], out["power_se"] = _rate(significant)
    width = (fits["ci_high"] - fits["ci_low"]).to_numpy(dtype=float)
    finite = np.isfinite(width)
    out["mean_width"], out["mean_width_se"] = _mean(width[finite])
    out["unbounded_intervals"] = int((~finite).sum())
    truth = fits["truth"].iloc[0]
    out["truth"] = None if truth is None or pd.isna(truth) else float(truth)
    if out["truth"] is not None:
        t = out["truth"]
        error = est - t
        out["bias"], out["bias_se"] = _mean(error)
        mse, mse_se = _mean(error ** 2)
        assert mse is not None  # fits is not empty, so there is an error to average
        out["rmse"] = math.sqrt(mse)
        out["rmse_se"] = mse_se / (2 * out["rmse"]) if mse_se is not None and out["rmse"] > 0 else None
        covered = (fits["ci_low"].to_numpy() <= t) & (t <= fits["ci_high"].to_numpy())
        out["coverage"], out["coverage_se"] = _rate(covered)
        if t == null:
            out["false_positive_rate"], out["false_positive_rate_se"] = out["power"], out["power_se"]
        else:
            wrong = np.sign(est[significant] - null) != np.sign(t - null)
            out["type_s"], out["type_s_se"] = _rate(wrong)
    return out


def rate_band(rate: float, n: int, z: float = MC_SE_MULTIPLIER) -> tuple[float, float]:
    """The rate +/- z Monte Carlo SEs, as a Wilson score interval.

    Away from 0 and 1 it is the rate +/- z sqrt(p (1 - p) / n) to within a fraction of a
    point; at 0% or 100% (where that SE is 0) it keeps the spread that n simulations leave,
    so 120 simulations that all covered the truth do not prove a coverage above 97%.
    """
    centre = (rate + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def _outside(rate: float, n: int, band: tuple[float, float]) -> str | None:
    """'low' or 'high' when the band lies wholly outside the rate's +/- 2 SE band, else None."""
    low, high = rate_band(rate, n)
    if high < band[0]:
        return "low"
    if low > band[1]:
        return "high"
    return None


def calibration(cells: list[dict]) -> dict:
    """Is one estimand's 95% interval calibrated? Its cells (one per planted effect) in, a verdict out.

    ``verdict``: ``pass`` when every assessable cell's coverage (and, with no change planted,
    its rejection rate) is inside the target allowing for Monte Carlo error (CALIBRATION_RULE);
    ``fail`` when any is outside; ``not assessed`` when no cell has at least
    MIN_CALIBRATION_FITS successful fits with an interval. ``reasons`` lists each failing rate
    with its effect, value, Monte Carlo SE, target and ``direction``: ``too narrow`` (coverage
    too low or true nulls rejected too often: the interval overstates certainty) or ``too
    wide`` (coverage too high, or true nulls almost never rejected: conservative).
    """
    reasons, assessed, why_not = [], 0, []
    for c in sorted(cells, key=lambda c: -c["effect"]):
        fits = c.get("simulations", 0) - c.get("failed", 0)
        if c.get("coverage") is None:
            continue  # an estimand the simulations do not score (no truth)
        if fits < MIN_CALIBRATION_FITS:
            why_not.append(f"{fits} successful fits at effect {c['effect']:g} (at least {MIN_CALIBRATION_FITS} needed)")
            continue
        if c.get("unbounded_intervals", 0) >= fits:
            why_not.append(f"no interval at effect {c['effect']:g}")
            continue
        assessed += 1
        side = _outside(c["coverage"], fits, COVERAGE_TARGET)
        if side:
            reasons.append({"rate": "coverage", "effect": c["effect"], "value": c["coverage"],
                            "se": c.get("coverage_se"), "target": list(COVERAGE_TARGET),
                            "direction": "too narrow" if side == "low" else "too wide"})
        if c.get("false_positive_rate") is not None:
            side = _outside(c["false_positive_rate"], fits, REJECTION_TARGET)
            if side:
                reasons.append({"rate": "false_positive_rate", "effect": c["effect"], "value": c["false_positive_rate"],
                                "se": c.get("false_positive_rate_se"), "target": list(REJECTION_TARGET),
                                "direction": "too narrow" if side == "high" else "too wide"})
    if not assessed:
        return {"verdict": "not assessed", "reasons": [], "why_not": why_not or ["no interval was scored"]}
    return {"verdict": "fail" if reasons else "pass", "reasons": reasons}


def calibration_by_estimand(cells: list[dict], analysis: int) -> dict:
    """{estimand: calibration record} for one analysis of the plan (failed-fit rows left out)."""
    by: dict = {}
    for c in cells:
        if c["analysis"] == analysis and c["estimand"] != "(fit)":
            by.setdefault(c["estimand"], []).append(c)
    return {estimand: calibration(group) for estimand, group in sorted(by.items())
            if any(c.get("coverage") is not None for c in group)}


def diagnose_rows(rows: pd.DataFrame, alpha: float = 0.05) -> list[dict]:
    """Diagnosands for every outcome x method x analysis x estimand x planted effect."""
    cells: list[dict] = []
    if rows.empty:
        return cells
    for key, frame in rows.groupby(KEYS + ["effect"], sort=True, dropna=False):
        record = dict(zip(KEYS + ["effect"], key))
        record["analysis"] = int(record["analysis"])
        record["effect"] = float(record["effect"])
        record["scale"] = str(frame["scale"].dropna().iloc[0]) if frame["scale"].notna().any() else None
        record.update(cell_diagnosands(frame, alpha))
        cells.append(record)
    return cells


def power_curve(cells: list[dict], key: tuple) -> list[tuple[float, float]]:
    """(effect, power) of one estimand, strongest effect first."""
    points = [(c["effect"], c["power"]) for c in cells
              if tuple(c[k] for k in KEYS) == key and c.get("power") is not None]
    return sorted(points)


def minimum_detectable_effect(points: list[tuple[float, float]], target: float = TARGET_POWER) -> dict:
    """The weakest planted effect with power at least ``target``, by interpolation.

    ``points`` are (effect, power) with effects below 1 (a fall); with common random numbers
    power rises as the effect moves away from 1, so the crossing is bracketed by the last
    effect below target and the first at or above it (linear in the effect between them).
    """
    below = [(e, p) for e, p in points if e < 1.0]
    if not below:
        return {"mde": None, "status": "no planted effect"}
    below.sort(reverse=True)  # weakest first (closest to 1)
    previous = None
    for e, p in below:
        if p >= target:
            if previous is None:
                return {"mde": e, "status": "the weakest effect tried is detected: the true MDE is weaker (closer to 1)",
                        "power": p}
            e0, p0 = previous
            mde = e0 + (target - p0) * (e - e0) / (p - p0) if p != p0 else e
            return {"mde": float(mde), "status": "interpolated", "bracket": [e0, e]}
        previous = (e, p)
    return {"mde": None, "status": "power stays below 80% for every effect tried",
            "strongest_tried": below[-1][0], "power_at_strongest": below[-1][1]}


__all__ = ["calibration", "calibration_by_estimand", "CALIBRATION_RULE", "COVERAGE_TARGET", "REJECTION_TARGET",
           "MIN_CALIBRATION_FITS", "rate_band", "cell_diagnosands", "diagnose_rows", "power_curve", "minimum_detectable_effect", "rejects", "TARGET_POWER"]
