"""Multiplier bootstrap of influence functions, with sup-t (uniform) critical values.

As R did's ``mboot``: each draw perturbs the units' influence functions by i.i.d. weights
V_i with mean 0 and variance 1, ``b = sqrt(n) * mean_i(V_i * IF_i)``; the standard
error of a parameter is the draws' interquartile range over that of the standard normal,
divided by sqrt(n); the uniform critical value is the 1 - alpha quantile (R type 1) of
``max_j |b_j| / sigma_j`` over the parameters of a family. Rademacher weights (+1/-1) are
what R did 2.x uses (through BMisc); Mammen's two-point weights are the original choice
of Callaway & Sant'Anna (2021) and are offered too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

WEIGHTS = ("rademacher", "mammen")
_DEGENERATE = np.sqrt(np.finfo(float).eps) * 10
_IQR_NORMAL = stats.norm.ppf(0.75) - stats.norm.ppf(0.25)


def multiplier_weights(rng: np.random.Generator, reps: int, n: int, kind: str = "rademacher") -> np.ndarray:
    """A (reps, n) array of bootstrap multipliers with mean 0 and variance 1."""
    if kind == "rademacher":
        return rng.integers(0, 2, size=(reps, n)).astype(float) * 2.0 - 1.0
    if kind == "mammen":
        root5 = np.sqrt(5.0)
        low, high = -(root5 - 1) / 2, (root5 + 1) / 2
        p_low = (root5 + 1) / (2 * root5)
        return np.where(rng.random((reps, n)) < p_low, low, high)
    raise ValueError(f"kind must be one of {WEIGHTS}")


def multiplier_draws(influence: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Bootstrap draws ``sqrt(n) * mean_i(V_i * IF_i)``, shape (reps, J)."""
    influence = influence.reshape(influence.shape[0], -1)
    n = influence.shape[0]
    return (weights @ influence) / np.sqrt(n)


@dataclass
class BootstrapSummary:
    se: np.ndarray        # (J,), NaN for degenerate parameters
    critical: float       # sup-t critical value for the family (NaN if none is usable)


def summarize(draws: np.ndarray, n: int, alpha: float, reference: float = 1.0) -> BootstrapSummary:
    """Standard errors and the uniform critical value of a family of parameters.

    ``reference`` is the parameters' scale (e.g. the outcome's spread): R's degeneracy
    thresholds (``sqrt(eps) * 10``) are for outcomes of order 1 and are scaled by it, so
    that an outcome measured in tiny units (rates per child) keeps its standard errors.
    """
    draws = draws.reshape(draws.shape[0], -1)
    ok = np.isfinite(draws).all(axis=0) & ((draws**2).sum(axis=0) > _DEGENERATE * reference**2)
    se = np.full(draws.shape[1], np.nan)
    if not ok.any():
        return BootstrapSummary(se=se, critical=float("nan"))
    usable = draws[:, ok]
    q25, q75 = np.quantile(usable, [0.25, 0.75], axis=0, method="inverted_cdf")
    sigma = (q75 - q25) / _IQR_NORMAL
    sigma = np.where(sigma > _DEGENERATE * reference, sigma, np.nan)
    se[ok] = sigma / np.sqrt(n)
    return BootstrapSummary(se=se, critical=sup_t_critical(usable, sigma, alpha, reference))


def sup_t_critical(draws: np.ndarray, scale: np.ndarray, alpha: float, reference: float = 1.0) -> float:
    """The 1 - alpha quantile (R type 1) of ``max_j |draws_j| / scale_j`` over the draws.

    Parameters with a missing or zero scale (below ``sqrt(eps) * 10 * reference``) are
    ignored; NaN when none is usable.
    """
    draws = draws.reshape(draws.shape[0], -1)
    usable = np.isfinite(scale) & (scale > _DEGENERATE * reference)
    if not usable.any():
        return float("nan")
    t_max = np.max(np.abs(draws[:, usable]) / scale[usable], axis=1)
    t_max = t_max[np.isfinite(t_max)]
    return float(np.quantile(t_max, 1 - alpha, method="inverted_cdf")) if t_max.size else float("nan")


__all__ = ["WEIGHTS", "BootstrapSummary", "multiplier_weights", "multiplier_draws", "summarize", "sup_t_critical"]
