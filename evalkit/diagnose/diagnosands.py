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


def diagnose_rows(rows: pd.DataFrame, alpha: float = 0.05) -> list[dict]:
    """Diagnosands for every outcome x method x analysis x estimand x planted effect."""
    cells = []
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


__all__ = ["cell_diagnosands", "diagnose_rows", "power_curve", "minimum_detectable_effect", "rejects", "TARGET_POWER"]
