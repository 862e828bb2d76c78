"""The Goodman-Bacon (2021) decomposition of a two-way fixed-effects DiD coefficient.

With a balanced panel and an absorbing binary treatment that starts at different dates,
the TWFE coefficient on ``D`` is a weighted average of every 2x2 DiD between timing groups:

* ``treated_vs_never``: timing group k against the never-treated units U, whole window;
* ``earlier_vs_later``: an earlier group k against a later group l, before l adopts
  (l is a not-yet-treated control);
* ``later_vs_earlier``: the later group l against the earlier group k, after k adopted
  (k, already treated, is the control: the "forbidden" comparison, which subtracts k's
  effect changes and biases TWFE when effects grow or vary over time).

With n_k the share of units in group k and Dbar_k its share of treated periods (Goodman-Bacon
2021, equations 10a-10c; V the variance of two-way-demeaned D)::

    s_kU  = (n_k + n_U)^2 n_kU (1 - n_kU) Dbar_k (1 - Dbar_k) / V
    s^k_kl = ((n_k + n_l)(1 - Dbar_l))^2 n_kl (1 - n_kl) (Dbar_k - Dbar_l)/(1 - Dbar_l) (1 - Dbar_k)/(1 - Dbar_l) / V
    s^l_kl = ((n_k + n_l) Dbar_k)^2 n_kl (1 - n_kl) (Dbar_l / Dbar_k) (Dbar_k - Dbar_l)/Dbar_k / V

with n_kU = n_k / (n_k + n_U) and n_kl = n_k / (n_k + n_l). The weights sum to 1 and the
weighted sum of the 2x2 estimates is the TWFE coefficient exactly (tested to 1e-10).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NEVER = -1


@dataclass
class BaconDecomposition:
    comparisons: list[dict]   # type, treated, control, estimate, weight
    twfe: float               # the coefficient the comparisons decompose

    def weight_of(self, kind: str) -> float:
        return float(sum(c["weight"] for c in self.comparisons if c["type"] == kind))

    def average_of(self, kind: str) -> float | None:
        rows = [c for c in self.comparisons if c["type"] == kind]
        weight = sum(c["weight"] for c in rows)
        return float(sum(c["weight"] * c["estimate"] for c in rows) / weight) if weight > 0 else None

    def summary(self) -> dict:
        out = {}
        for kind in ("treated_vs_never", "earlier_vs_later", "later_vs_earlier"):
            out[kind] = {"weight": self.weight_of(kind), "estimate": self.average_of(kind)}
        return out


def twfe_balanced(y: np.ndarray, d: np.ndarray) -> float:
    """The TWFE coefficient of a balanced (units x periods) panel: sum(D~ y) / sum(D~^2)."""
    d_tilde = d - d.mean(axis=1, keepdims=True) - d.mean(axis=0, keepdims=True) + d.mean()
    return float(np.sum(d_tilde * y) / np.sum(d_tilde ** 2))


def bacon_decomposition(y: np.ndarray, adoption: np.ndarray) -> BaconDecomposition:
    """Decompose the TWFE coefficient.

    Parameters
    ----------
    y : (units, periods) array
        A balanced panel of the outcome, no missing values.
    adoption : (units,) int array
        Position of each unit's first treated period (1..periods-1), or ``NEVER`` (-1).
    """
    y = np.asarray(y, dtype=float)
    adoption = np.asarray(adoption)
    n_units, n_periods = y.shape
    if np.isnan(y).any():
        raise ValueError("the panel has missing values")
    treated = adoption != NEVER
    if np.any(treated & ((adoption < 1) | (adoption >= n_periods))):
        raise ValueError("adoption must fall inside the panel, after its first period")
    t = np.arange(n_periods)
    d = (treated[:, None] & (t[None, :] >= adoption[:, None])).astype(float)
    twfe = twfe_balanced(y, d)
    d_tilde = d - d.mean(axis=1, keepdims=True) - d.mean(axis=0, keepdims=True) + d.mean()
    variance = float(np.mean(d_tilde ** 2))
    groups = sorted(set(adoption[treated].tolist()))
    share = {g: float(np.mean(adoption == g)) for g in groups}
    treated_share = {g: (n_periods - g) / n_periods for g in groups}
    never = adoption == NEVER
    n_never = float(np.mean(never))
    comparisons = []

    def mean(rows, columns) -> float:
        return float(y[np.ix_(rows, columns)].mean())

    for k in groups:
        rows_k = adoption == k
        if n_never > 0:
            n_ku = share[k] / (share[k] + n_never)
            weight = (share[k] + n_never) ** 2 * n_ku * (1 - n_ku) * treated_share[k] * (1 - treated_share[k]) / variance
            pre, post = t < k, t >= k
            estimate = (mean(rows_k, post) - mean(rows_k, pre)) - (mean(never, post) - mean(never, pre))
            comparisons.append({"type": "treated_vs_never", "treated": int(k), "control": NEVER,
                                "estimate": estimate, "weight": weight})
    for i, k in enumerate(groups):
        for l in groups[i + 1:]:
            rows_k, rows_l = adoption == k, adoption == l
            dk, dl = treated_share[k], treated_share[l]
            n_kl = share[k] / (share[k] + share[l])
            pre, mid, post = t < k, (t >= k) & (t < l), t >= l
            early = ((share[k] + share[l]) * (1 - dl)) ** 2 * n_kl * (1 - n_kl) \
                * ((dk - dl) / (1 - dl)) * ((1 - dk) / (1 - dl)) / variance
            estimate = (mean(rows_k, mid) - mean(rows_k, pre)) - (mean(rows_l, mid) - mean(rows_l, pre))
            comparisons.append({"type": "earlier_vs_later", "treated": int(k), "control": int(l),
                                "estimate": estimate, "weight": early})
            late = ((share[k] + share[l]) * dk) ** 2 * n_kl * (1 - n_kl) * (dl / dk) * ((dk - dl) / dk) / variance
            estimate = (mean(rows_l, post) - mean(rows_l, mid)) - (mean(rows_k, post) - mean(rows_k, mid))
            comparisons.append({"type": "later_vs_earlier", "treated": int(l), "control": int(k),
                                "estimate": estimate, "weight": late})
    return BaconDecomposition(comparisons, twfe)


__all__ = ["BaconDecomposition", "bacon_decomposition", "twfe_balanced", "NEVER"]
