"""The estimation core of ``did``: the analysis panel as arrays, and one fit for one
assignment of adoption dates (the unit randomization inference repeats).

Cells (``evalkit.methods.twfe``): ``twfe`` has one cell, ``D_it = 1`` from the end of each
adopting area's phase-in; ``extended_twfe`` (Wooldridge 2023) one per adoption cohort and
post-adoption period (and, with ``control_group: never_treated``, per cohort and
pre-adoption period but the last). The Poisson statistic is the log of the aggregated
ratio ``sum(mu) / sum(mu0)`` over the treated post-adoption rows; the linear one is ``b``.
docs/methods/did.md has the formulas.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .bacon import NEVER
from .twfe import FixedEffectsDesign, cluster_covariance, compact, fit_ols, fit_poisson, separated


@dataclass
class DiDSample:
    """The analysis panel as arrays: one row per area and period with an outcome value."""

    units: list
    periods: pd.PeriodIndex
    unit: np.ndarray
    time: np.ndarray
    y: np.ndarray                 # the response: counts (poisson), or the outcome / rate (linear)
    counts: np.ndarray | None     # count outcomes: the counts themselves
    exposure: np.ndarray | None
    transition: int               # phase-in periods left out after each adoption
    family: str
    control_group: str
    per: float | None
    balanced: bool

    @property
    def n_units(self) -> int:
        return len(self.units)

    @property
    def n_times(self) -> int:
        return len(self.periods)

    def positions(self, adoption: dict) -> np.ndarray:
        """Adoption position (index into periods) of each unit, NEVER for never-treated."""
        out = np.full(self.n_units, NEVER)
        for i, unit in enumerate(self.units):
            if unit in adoption:
                out[i] = int(self.periods.get_loc(adoption[unit]))
        return out


@dataclass
class DiDFit:
    """One fit of the model for one assignment of adoption dates."""

    statistic: float                       # log ratio (poisson) or difference (linear)
    estimator: str = "twfe"
    se: float | None = None
    design: FixedEffectsDesign | None = None
    fit: object | None = None
    keep: np.ndarray | None = None         # rows of the sample in the fit
    cov: np.ndarray | None = None
    cells: list = field(default_factory=list)       # cohort, period, post of each cell
    details: dict = field(default_factory=dict)
    counterfactual: np.ndarray | None = None        # every row of the sample: the fit without effects
    dropped: int = 0                                # rows separated (Poisson: no counts in their group)
    params: np.ndarray | None = None
    #: why the statistic is NaN: "no_post" (no treated row after the phase-in), "treated_zero"
    #: (Poisson: the treated post rows have no counts), "comparison_zero" (Poisson: no
    #: never-treated row has counts) or "singular" (the effects are not identified)
    reason: str | None = None


def cells(sample: DiDSample, positions: np.ndarray, estimator: str):
    """Rows kept, cell code of each row and the cells' (cohort, period, post) labels."""
    adopt = positions[sample.unit]
    treated = adopt != NEVER
    start = adopt + sample.transition                       # first fully-treated period
    phase_in = treated & (sample.time >= adopt) & (sample.time < start)
    keep = ~phase_in
    post = treated & (sample.time >= start)
    cell = np.full(len(sample.y), -1)
    if estimator == "twfe":
        cell[post] = 0
        labels: list[dict[str, int | bool | None]] = [{"cohort": None, "period": None, "post": True}]
        return keep, cell, labels
    use = post.copy()
    if sample.control_group == "never_treated":
        # every cohort-period but the last pre-adoption one (the reference) gets its own effect
        use |= treated & (sample.time < adopt - 1)
    keys = adopt[use] * sample.n_times + sample.time[use]
    distinct, code = np.unique(keys, return_inverse=True)
    cell[use] = code
    labels = [{"cohort": int(k // sample.n_times), "period": int(k % sample.n_times),
               "post": bool(k % sample.n_times >= k // sample.n_times + sample.transition)} for k in distinct]
    return keep, cell, labels


def post_rows(sample: DiDSample, positions: np.ndarray) -> np.ndarray:
    """Rows of treated areas from the end of their phase-in on."""
    adopt = positions[sample.unit]
    return (adopt != NEVER) & (sample.time >= adopt + sample.transition)


def estimate(sample: DiDSample, positions: np.ndarray, estimator: str, covariance: bool,
              start: np.ndarray | None = None) -> DiDFit:
    keep, cell, labels = cells(sample, positions, estimator)
    full = FixedEffectsDesign(sample.unit, sample.time, cell, sample.n_units, sample.n_times, len(labels))
    in_fit = keep.copy()
    if sample.family == "poisson":
        in_fit[np.flatnonzero(keep)[separated(full.subset(keep), sample.y[keep])]] = False
    post = post_rows(sample, positions) & keep
    if not (post & in_fit).any():
        return DiDFit(statistic=np.nan, estimator=estimator, reason="treated_zero" if post.any() else "no_post")
    if not (in_fit & (positions[sample.unit] == NEVER)).any():
        # every never-treated area was separated (no counts): nothing to compare with, and
        # the effects would be collinear with the period effects
        return DiDFit(statistic=np.nan, estimator=estimator, reason="comparison_zero")
    design, codes = compact(full, in_fit)
    y = sample.y[in_fit]
    cell_labels = [labels[c] for c in codes["cell"]]
    try:
        if sample.family == "poisson":
            offset = np.log(sample.exposure[in_fit]) if sample.exposure is not None else None
            warm = None
            if start is not None and design.n_units == sample.n_units and design.n_times == sample.n_times:
                warm = np.concatenate([start[: sample.n_units + sample.n_times - 1], np.zeros(design.n_cells)])
            fitted = fit_poisson(design, y, offset, start=warm)
        else:
            fitted = fit_ols(design, y)
    except np.linalg.LinAlgError:
        return DiDFit(statistic=np.nan, estimator=estimator, reason="singular")
    params = fitted.params
    out = DiDFit(statistic=np.nan, estimator=estimator, design=design, fit=fitted, keep=in_fit, cells=cell_labels,
                 dropped=int(keep.sum() - in_fit.sum()), params=params)
    counterfactual = _counterfactual(sample, design, codes, params)
    out.counterfactual = counterfactual
    if sample.family == "poisson":
        ratio = _RatioPieces(sample, design, codes, fitted, in_fit, counterfactual)
        out.statistic, grad = ratio.log_ratio(post)
    else:
        # linear: the single D coefficient
        grad = np.zeros(design.n_params)
        grad[design.cell_slice] = 1.0
        out.statistic = float(params[design.cell_slice][0])
    if not covariance:
        return out
    n_clusters = design.n_units
    if sample.family == "poisson":
        correction = n_clusters / (n_clusters - 1)
    else:
        n_obs, counted = len(y), design.n_params - design.n_nested + 1
        correction = n_clusters / (n_clusters - 1) * (n_obs - 1) / (n_obs - counted)
    try:
        out.cov = cluster_covariance(design, fitted, design.unit, n_clusters, correction)
    except np.linalg.LinAlgError:
        out.reason = "singular"
        return out
    out.se = float(np.sqrt(max(float(grad @ out.cov @ grad), 0.0)))
    out.details.update({"post_area_periods": int(post.sum()),
                        "post_areas": int(len(np.unique(sample.unit[post]))),
                        "cluster_correction_factor": correction})
    if sample.family == "poisson":
        total1, total0, absolute_grad = ratio.totals(post)
        out.details.update({
            "expected_with": total1, "expected_without": total0, "absolute": total1 - total0,
            "absolute_se": float(np.sqrt(absolute_grad @ out.cov @ absolute_grad)),
            "exposure_post": float(sample.exposure[post].sum()) if sample.exposure is not None else None,
            "iterations": fitted.iterations, "converged": bool(fitted.converged),
        })
        if estimator == "extended_twfe":
            adopt = positions[sample.unit]
            cohorts = []
            for cohort in sorted(set(adopt[post].tolist())):
                rows = post & (adopt == cohort)
                log_ratio, g = ratio.log_ratio(rows)
                total1, total0, _ = ratio.totals(rows)
                cohorts.append({"adoption": str(sample.periods[cohort]), "ratio": float(np.exp(log_ratio)),
                                "log_ratio": log_ratio, "se_log": float(np.sqrt(g @ out.cov @ g)),
                                "areas": int(len(np.unique(sample.unit[rows]))), "area_periods": int(rows.sum()),
                                "absolute": total1 - total0})
            out.details["cohorts"] = cohorts
            out.details["cells"] = _cell_effects(sample, design, out.cov, params[design.cell_slice], cell_labels)
    return out


class _RatioPieces:
    """Expected counts with and without the effects over a set of rows, and their gradients.

    Rows left out as separated (no counts in their cell) have mean 0 with the effects and
    the unit and period effects' mean without them.
    """

    def __init__(self, sample, design, codes, fitted, in_fit, counterfactual):
        self.n_units = design.n_units
        self.with_effects = np.zeros(len(sample.y))
        self.with_effects[in_fit] = fitted.fitted
        self.without = np.nan_to_num(counterfactual, nan=0.0)
        # design rows of every sample row (unit and period dummies in the fit's coding)
        unit_new = np.full(sample.n_units, -1)
        unit_new[codes["unit"]] = np.arange(design.n_units)
        time_new = np.full(sample.n_times, -1)
        time_new[codes["time"]] = np.arange(design.n_times)
        self.unit, self.time = unit_new[sample.unit], time_new[sample.time]
        self.fit_rows = np.flatnonzero(in_fit)
        self.X = design.X
        self.n_params = design.n_params

    def _fe_gradient(self, rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
        grad = np.zeros(self.n_params)
        ok = rows & (self.unit >= 0) & (self.time >= 0)
        np.add.at(grad, self.unit[ok], weights[ok])
        later = ok & (self.time > 0)
        np.add.at(grad, self.n_units + self.time[later] - 1, weights[later])
        return grad

    def totals(self, rows: np.ndarray):
        total1 = float(self.with_effects[rows].sum())
        total0 = float(self.without[rows].sum())
        mine = rows[self.fit_rows]
        grad1 = np.asarray(self.X[mine].T @ self.with_effects[self.fit_rows][mine]).ravel()
        grad0 = self._fe_gradient(rows, self.without)
        return total1, total0, grad1 - grad0

    def log_ratio(self, rows: np.ndarray):
        total1 = float(self.with_effects[rows].sum())
        total0 = float(self.without[rows].sum())
        mine = rows[self.fit_rows]
        grad1 = np.asarray(self.X[mine].T @ self.with_effects[self.fit_rows][mine]).ravel() / total1
        grad0 = self._fe_gradient(rows, self.without) / total0
        with np.errstate(divide="ignore"):
            return float(np.log(total1 / total0)), grad1 - grad0


def _counterfactual(sample: DiDSample, design: FixedEffectsDesign, codes: dict, params: np.ndarray) -> np.ndarray:
    """Every row's fitted value without any effect (unit + period effects, and the offset)."""
    unit_effect = np.full(sample.n_units, np.nan)
    unit_effect[codes["unit"]] = params[: design.n_units]
    time_effect = np.full(sample.n_times, np.nan)
    time_effect[codes["time"]] = np.concatenate([[0.0], params[design.n_units: design.n_units + design.n_times - 1]])
    eta = unit_effect[sample.unit] + time_effect[sample.time]
    if sample.family == "poisson":
        offset = np.log(sample.exposure) if sample.exposure is not None else 0.0
        return np.exp(eta + offset)
    return eta


def _cell_effects(sample, design, cov, tau, cell_labels) -> list[dict]:
    start = design.cell_slice.start
    out = []
    for k, lab in enumerate(cell_labels):
        se = float(np.sqrt(cov[start + k, start + k]))
        out.append({"cohort": str(sample.periods[lab["cohort"]]), "period": str(sample.periods[lab["period"]]),
                    "event_time": lab["period"] - lab["cohort"], "post": lab["post"],
                    "log_ratio": float(tau[k]), "ratio": float(np.exp(tau[k])), "se_log": se})
    return out


__all__ = ["DiDSample", "DiDFit", "estimate", "cells", "post_rows"]
