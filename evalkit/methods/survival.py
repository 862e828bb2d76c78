"""``survival_did``: are missing children found sooner? Difference-in-differences on
censored time to found.

From the episodes (hours to found; episodes open at extraction are right-censored, never
dropped and never treated as found) this method gives

- ``hazard_ratio_did``: a Cox model stratified by area with ``post`` and
  ``treated x post``, Efron ties, standard errors clustered by area (R's
  ``coxph(Surv(hours, found) ~ post + treated:post + strata(area), cluster = area)``);
  the exponentiated ``treated x post`` coefficient is the ratio of the treated areas'
  before/after hazard ratio to the comparison areas' (above 1 = found sooner);
- ``rmst_difference_did``: the change in restricted mean hours to found up to the
  horizon in treated areas minus that in comparison areas (negative = found sooner),
  each area's change from its own Kaplan-Meier curves, averaged with weights equal to
  the area's post-period episodes; interval from an area-cluster bootstrap;
- Kaplan-Meier descriptives by group (treated / comparison) and period (pre / post):
  medians, restricted means and shares found within 24 and 48 hours with intervals,
  and the curves with numbers at risk for a KMunicate-style figure (``series``).

``post`` for a treated area starts at its own adoption period (``data.adoption``); for a
comparison area at the first adoption of any area. The periods of a treated area's
phase-in (``intervention.transition``) are left out by default. Formulas, conventions
and validation: docs/methods/survival_did.md.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..design import Design
from ..errors import EvalkitError
from ..results import Analysis, Check, Estimate
from . import MethodResult
from .cox import CoxError, fit_cox
from .kaplan_meier import at_times, curve, kaplan_meier, medians, restricted_means

DEFAULT_HORIZON_HOURS = 72.0
#: below this many treated areas (or areas in all) cluster-robust intervals are approximate
FEW_TREATED_AREAS, FEW_AREAS = 10, 20
#: share of episodes censored before the horizon above which the RMST leans on few episodes
HEAVY_CENSORING = 0.05

CELLS = (("treated", "pre"), ("treated", "post"), ("comparison", "pre"), ("comparison", "post"))
CELL_LABELS = {
    ("treated", "pre"): "Adopting areas, before",
    ("treated", "post"): "Adopting areas, after",
    ("comparison", "pre"): "Comparison areas, before",
    ("comparison", "post"): "Comparison areas, after",
}


def fit(design: Design, data, spec, index: int = 0) -> MethodResult:
    key = f"analysis[{index}]"
    outcome = design.outcome(spec.outcome)
    if data.episodes is None:
        raise EvalkitError(design.where, "survival_did needs episode records with report and found times",
                           "use data.layout: episodes", key=key + ".method")
    if outcome.measure != "duration_hours":
        raise EvalkitError(design.where, f"outcome '{outcome.name}' is {outcome.measure}, but survival_did models time to found",
                           "declare the outcome with measure: duration_hours", key=key + ".outcome")
    horizon = float(spec.horizon or outcome.horizon or DEFAULT_HORIZON_HOURS)
    frame, dropped = survival_frame(design, data, spec, key)
    cell_code = _cell_codes(frame)
    _check_cells(design, frame, cell_code, spec, key)

    units = sorted(frame["unit"].unique().tolist(), key=str)
    unit_code = pd.Index(units).get_indexer(frame["unit"])
    hours = frame["hours"].to_numpy(dtype=float)
    found = frame["found"].to_numpy(dtype=bool)
    post = frame["post"].to_numpy(dtype=float)
    treated = frame["treated"].to_numpy(dtype=float)
    try:
        cox = fit_cox(hours, found, np.column_stack([post, treated * post]), strata=unit_code, cluster=unit_code,
                      ties=spec.ties, names=["post", "treated_post"])
    except CoxError as exc:
        raise EvalkitError(design.where, f"the Cox model cannot be fitted: {exc}",
                           "check that adopting and comparison areas have episodes before and after adoption",
                           key=key) from None
    zph = cox.zph()

    z = stats.norm.ppf(1 - design.alpha / 2)
    common = {"outcome": outcome.name, "method": spec.method}
    treated_units = sorted(pd.unique(frame.loc[frame["treated"], "unit"]).tolist(), key=str)
    comparison_units = sorted(pd.unique(frame.loc[~frame["treated"], "unit"]).tolist(), key=str)
    first_adoption = min(data.adoption.values())
    info = {"n_episodes": int(len(frame)), "found": int(found.sum()), "censored": int((~found).sum()),
            "areas": len(units), "treated_areas": len(treated_units), "comparison_areas": len(comparison_units),
            "ties": spec.ties, "horizon_hours": horizon, "comparison_post_from": str(first_adoption),
            "transition": spec.transition, "transition_periods": design.intervention.transition,
            "dropped_episodes": dropped}
    result = MethodResult()
    result.estimates.append(_hazard_estimate(cox, spec.se, z, common, info))
    area_rmst, rmst_estimate, rmst_checks = _rmst_difference(design, frame, units, horizon, spec, common, info, key)
    result.estimates.append(rmst_estimate)
    descriptives = _descriptives(frame, cell_code, horizon, spec, design.alpha, common)
    result.estimates += descriptives["estimates"]

    result.checks.append(_ph_check(zph, design.alpha, common))
    result.checks.append(_cluster_check(len(treated_units), len(units), spec.se, common))
    result.checks.append(_censoring_check(frame, cell_code, horizon, common))
    result.checks += rmst_checks

    result.analysis = Analysis(
        method=spec.method, outcome=outcome.name,
        label=f"Time to found: stratified Cox and restricted-mean difference-in-differences "
              f"({len(treated_units)} adopting, {len(comparison_units)} comparison areas)",
        settings={**info, "alpha": design.alpha, "reps": spec.reps, "min_episodes": spec.min_episodes,
                  "within_hours": list(spec.within_hours), "seed": design.seed,
                  "exclude_periods": [f"{w.start}..{w.end}" for w in spec.exclude_periods],
                  "adoption": {str(u): str(data.adoption[u]) for u in treated_units},
                  "cox": {"loglik": cox.loglik, "loglik_null": cox.loglik_null, "iterations": cox.iterations,
                          "coefficients": dict(zip(cox.names, cox.params.tolist())),
                          "robust_se": dict(zip(cox.names, cox.se(True).tolist())),
                          "model_se": dict(zip(cox.names, cox.se(False).tolist()))},
                  "proportional_hazards": zph},
        series={"horizon_hours": horizon, "display_hours": horizon, "at_hours": descriptives["at_hours"],
                "curves": descriptives["curves"], "area_rmst": area_rmst},
    )
    return result


# ----------------------------------------------------------------------------- data
def survival_frame(design: Design, data, spec, key: str = "analysis") -> tuple[pd.DataFrame, dict]:
    """The episodes of the analysis with ``unit, period, hours, found, treated, post``.

    Treated areas are those with an adoption period; comparison areas are
    ``data.comparison_units``; episodes of other areas are left out. ``post`` starts at a
    treated area's own adoption and, for comparison areas, at the first adoption of any
    area. With ``transition: exclude`` a treated area's phase-in periods (its adoption
    period and the next ``intervention.transition - 1``) are left out; so are episodes
    reported in ``exclude_periods``.

    Returns
    -------
    frame : DataFrame
    dropped : dict
        How many episodes were left out and why.
    """
    episodes = data.episodes
    periods = data.periods
    if not data.adoption:
        raise EvalkitError(design.where, "no area adopts the intervention", "list units under units.treated or units.adoption",
                           key="units")
    position = periods.get_indexer(episodes["period"])
    adoption_position = {u: int(periods.get_loc(p)) for u, p in data.adoption.items()}
    first_position = min(adoption_position.values())
    unit = episodes["unit"]
    codes, uniques = pd.factorize(unit)  # per-area lookups on codes: fast on long extracts
    uniques = list(uniques)
    comparison_set = set(data.comparison_units)
    treated = np.array([u in data.adoption for u in uniques], dtype=bool)[codes]
    comparison = np.array([u in comparison_set for u in uniques], dtype=bool)[codes] & ~treated
    own = np.array([adoption_position.get(u, np.nan) for u in uniques], dtype=float)[codes]
    start = np.where(treated, own, first_position)
    post = position >= start
    keep = treated | comparison
    dropped = {"other_areas": int((~keep).sum())}
    transition = design.intervention.transition
    if spec.transition == "exclude" and transition > 0:
        phase_in = treated & (position >= own) & (position < own + transition)
        dropped["phase_in"] = int((phase_in & keep).sum())
        keep &= ~phase_in
    excluded = np.zeros(len(episodes), dtype=bool)
    for j, window in enumerate(spec.exclude_periods):
        first = design.period(window.start, f"{key}.exclude_periods[{j}].start")
        last = design.period(window.end, f"{key}.exclude_periods[{j}].end")
        excluded |= ((episodes["period"] >= first) & (episodes["period"] <= last)).to_numpy()
    if spec.exclude_periods:
        dropped["exclude_periods"] = int((excluded & keep).sum())
        keep &= ~excluded
    frame = pd.DataFrame({
        "unit": unit.to_numpy()[keep],
        "period": episodes["period"].array[keep],  # stays a PeriodArray (no Period objects)
        "hours": episodes["hours_to_found"].to_numpy(dtype=float)[keep],
        "found": ~episodes["censored"].to_numpy(dtype=bool)[keep],
        "treated": treated[keep],
        "post": post[keep],
    })
    return frame, dropped


def _cell_codes(frame: pd.DataFrame) -> np.ndarray:
    """0..3 in the order of CELLS: treated pre, treated post, comparison pre, comparison post."""
    return np.where(frame["treated"], 0, 2) + frame["post"].to_numpy().astype(int)


def _check_cells(design: Design, frame: pd.DataFrame, cell_code: np.ndarray, spec, key: str) -> None:
    counts = np.bincount(cell_code, minlength=4)
    found = np.bincount(cell_code, weights=frame["found"].to_numpy(dtype=float), minlength=4)
    for code, (group, period) in enumerate(CELLS):
        if counts[code] < spec.min_episodes or found[code] == 0:
            what = "before adoption" if period == "pre" else "after adoption"
            raise EvalkitError(design.where, f"the {group} areas have {int(counts[code])} episodes {what} "
                               f"({int(found[code])} found); survival_did needs at least {spec.min_episodes}",
                               "widen data.window, add areas, or lower min_episodes", key=key)


# ----------------------------------------------------------------------------- estimates
def _hazard_estimate(cox, se_rule: str, z: float, common: dict, info: dict) -> Estimate:
    """The treated x post hazard ratio; ``se_rule`` conservative = max(clustered, model-based)."""
    robust, model = cox.se(True), cox.se(False)
    chosen = np.maximum(robust, model) if se_rule == "conservative" else robust
    coef, se = float(cox.params[1]), float(chosen[1])
    post_coef, post_se = float(cox.params[0]), float(chosen[0])
    used = "cluster_robust" if se_rule == "cluster_robust" or robust[1] >= model[1] else "model"
    return Estimate(
        **common, estimand="hazard_ratio_did", scale="ratio", estimate=float(np.exp(coef)), se=se,
        ci_low=float(np.exp(coef - z * se)), ci_high=float(np.exp(coef + z * se)),
        p_value=float(2 * stats.norm.sf(abs(coef / se))),
        details={"coefficient": coef, "se_scale": "log", "se_rule": se_rule, "se_used": used,
                 "robust_se": float(robust[1]), "model_se": float(model[1]),
                 "comparison_hazard_ratio": float(np.exp(post_coef)),
                 "comparison_hazard_ratio_ci": [float(np.exp(post_coef - z * post_se)), float(np.exp(post_coef + z * post_se))],
                 "meaning": "ratio of hazards of being found; above 1 = found sooner", **info},
    )


def _rmst_difference(design: Design, frame: pd.DataFrame, units: list, horizon: float, spec,
                     common: dict, info: dict, key: str):
    """Area-weighted DiD of restricted mean hours to found, with an area-cluster bootstrap."""
    unit_index = pd.Index(units).get_indexer(frame["unit"])
    codes = unit_index * 2 + frame["post"].to_numpy().astype(int)
    table = kaplan_meier(codes, frame["hours"].to_numpy(dtype=float), frame["found"].to_numpy(dtype=bool),
                         n_groups=2 * len(units))
    rmst = restricted_means(table, horizon)["rmst"]
    is_treated = frame.groupby("unit", sort=False)["treated"].first().reindex(units).to_numpy(dtype=bool)
    n_pre, n_post = table.n[0::2], table.n[1::2]
    usable = (n_pre >= spec.min_episodes) & (n_post >= spec.min_episodes)
    change = rmst[1::2] - rmst[0::2]
    rows = [{"unit": str(u), "group": "treated" if is_treated[i] else "comparison", "n_pre": int(n_pre[i]),
             "n_post": int(n_post[i]), "rmst_pre": _float(rmst[2 * i]), "rmst_post": _float(rmst[2 * i + 1]),
             "change": _float(change[i]), "used": bool(usable[i])} for i, u in enumerate(units)]
    checks = []
    t_idx = np.flatnonzero(usable & is_treated)
    c_idx = np.flatnonzero(usable & ~is_treated)
    if t_idx.size == 0 or c_idx.size == 0:
        group = "adopting" if t_idx.size == 0 else "comparison"
        raise EvalkitError(design.where, f"no {group} area has {spec.min_episodes} episodes both before and after adoption",
                           "lower min_episodes or widen data.window", key=key)
    weights = n_post.astype(float)

    def mean_change(selected: np.ndarray) -> np.ndarray:
        return (change[selected] * weights[selected]).sum(axis=-1) / weights[selected].sum(axis=-1)

    treated_change, comparison_change = float(mean_change(t_idx)), float(mean_change(c_idx))
    estimate = treated_change - comparison_change
    # Resample areas within each group, after inflating each area's deviation from its
    # group's mean change by sqrt(m / (m - 1)) (m areas): the bootstrap variance of a mean
    # of m clusters is otherwise (m - 1) / m of the unbiased one, which matters with few areas.
    resampled = change.copy()
    for selected, group_mean in ((t_idx, treated_change), (c_idx, comparison_change)):
        m = selected.size
        if m > 1:
            resampled[selected] = group_mean + np.sqrt(m / (m - 1)) * (change[selected] - group_mean)
    rng = np.random.default_rng(design.seed)
    draws_t = t_idx[rng.integers(0, t_idx.size, size=(spec.reps, t_idx.size))]
    draws_c = c_idx[rng.integers(0, c_idx.size, size=(spec.reps, c_idx.size))]

    def resampled_mean(selected: np.ndarray) -> np.ndarray:
        return (resampled[selected] * weights[selected]).sum(axis=-1) / weights[selected].sum(axis=-1)

    replicates = resampled_mean(draws_t) - resampled_mean(draws_c)
    alpha = design.alpha
    se = float(np.std(replicates, ddof=1))
    low, high = (float(q) for q in np.quantile(replicates, [alpha / 2, 1 - alpha / 2]))
    p_value = float(2 * stats.norm.sf(abs(estimate / se))) if se > 0 else None
    if min(t_idx.size, c_idx.size) < 2:
        group = "adopting" if t_idx.size < 2 else "comparison"
        checks.append(Check("rmst_bootstrap", "warn",
                            f"only one {group} area enters the restricted-mean comparison, so the area bootstrap "
                            "cannot reflect that group's variation: the interval is too narrow.",
                            method=common["method"], outcome=common["outcome"],
                            values={"treated_areas": int(t_idx.size), "comparison_areas": int(c_idx.size)}))
    estimate_record = Estimate(
        **common, estimand="rmst_difference_did", scale="difference", estimate=estimate, se=se,
        ci_low=low, ci_high=high, p_value=p_value,
        details={"horizon_hours": horizon, "units": "hours", "meaning": "negative = found sooner",
                 "treated_change": treated_change, "comparison_change": comparison_change,
                 "treated_areas_used": int(t_idx.size), "comparison_areas_used": int(c_idx.size),
                 "weights": "episodes after adoption in each area",
                 "interval": "area-cluster bootstrap percentile (deviations inflated by sqrt(m / (m - 1)))",
                 "reps": spec.reps, "seed": design.seed, "se_type": "bootstrap standard deviation",
                 **{k: v for k, v in info.items() if k in ("n_episodes", "found", "censored")}},
    )
    return rows, estimate_record, checks


def _descriptives(frame: pd.DataFrame, cell_code: np.ndarray, horizon: float, spec, alpha: float, common: dict) -> dict:
    table = kaplan_meier(cell_code, frame["hours"].to_numpy(dtype=float), frame["found"].to_numpy(dtype=bool), n_groups=4)
    med = medians(table, alpha)
    means = restricted_means(table, horizon)
    z = stats.norm.ppf(1 - alpha / 2)
    within = sorted(set(float(h) for h in spec.within_hours))
    shares = at_times(table, within, alpha)
    at_hours = [float(h) for h in np.linspace(0.0, horizon, 7)]
    risk = at_times(table, at_hours, alpha)
    estimates, curves = [], []
    for code, (group, period) in enumerate(CELLS):
        name = f"{group}_{period}"
        details = {"n": int(table.n[code]), "found": int(table.n_event[table.rows(code)].sum()),
                   "label": CELL_LABELS[(group, period)]}
        estimates.append(Estimate(**common, estimand="median_hours", scale="hours", estimate=_float(med["median"][code]),
                                  ci_low=_float(med["low"][code]), ci_high=_float(med["high"][code]), group=name,
                                  details={**details, "interval": "R survfit, conf.type log"}))
        rm, rm_se = _float(means["rmst"][code]), _float(means["se"][code])
        estimates.append(Estimate(**common, estimand="rmst_hours", scale="hours", estimate=rm, se=rm_se,
                                  ci_low=None if rm is None else rm - z * rm_se,
                                  ci_high=None if rm is None else rm + z * rm_se, group=name,
                                  details={**details, "horizon_hours": horizon}))
        for i, h in enumerate(within):
            s, lo, hi = shares["survival"][code, i], shares["lower"][code, i], shares["upper"][code, i]
            estimates.append(Estimate(**common, estimand=f"share_found_within_{h:g}h", scale="share",
                                      estimate=_float(1 - s), ci_low=_float(1 - hi), ci_high=_float(1 - lo), group=name,
                                      details={**details, "hours": h, "at_risk": int(shares["at_risk"][code, i])}))
        curves.append({
            "group": group, "period": period, "label": CELL_LABELS[(group, period)], "n": int(table.n[code]),
            "found": details["found"], "censored": int(table.n_censor[table.rows(code)].sum()),
            **curve(table, code, alpha, horizon),
            "at_risk": risk["at_risk"][code].tolist(), "found_by": risk["found"][code].tolist(),
            "censored_by": risk["censored"][code].tolist(),
            "median": _float(med["median"][code]), "median_low": _float(med["low"][code]),
            "median_high": _float(med["high"][code]), "rmst": rm,
        })
    return {"estimates": estimates, "curves": curves, "at_hours": at_hours}


# ----------------------------------------------------------------------------- checks
def _ph_check(zph: dict, alpha: float, common: dict) -> Check:
    term = zph["terms"]["treated_post"]
    values = {"treated_post_chisq": term["chisq"], "treated_post_p": term["p"],
              "post_p": zph["terms"]["post"]["p"], "global_chisq": zph["global"]["chisq"], "global_p": zph["global"]["p"],
              "transform": zph["transform"]}
    if term["p"] < alpha:
        return Check("proportional_hazards", "warn",
                     f"the effect on the hazard of being found changes with time since the report (Schoenfeld "
                     f"residual test, p = {term['p']:.3g}); the hazard ratio is an average over time, and the "
                     f"restricted-mean difference does not rely on proportional hazards.", values=values, **common)
    return Check("proportional_hazards", "pass",
                 f"no clear change of the effect with time since the report (Schoenfeld residual test, "
                 f"p = {term['p']:.3g}; global p = {zph['global']['p']:.3g}).", values=values, **common)


def _cluster_check(n_treated: int, n_areas: int, se_rule: str, common: dict) -> Check:
    values = {"treated_areas": n_treated, "areas": n_areas, "se": se_rule}
    if n_treated < FEW_TREATED_AREAS or n_areas < FEW_AREAS:
        guard = ("the hazard-ratio interval uses the larger of the clustered and the model-based standard error, "
                 "but may still be too narrow" if se_rule == "conservative" else "the intervals are likely too narrow")
        return Check("few_clusters", "warn",
                     f"{n_treated} adopting of {n_areas} areas: standard errors clustered by area are too small "
                     f"with few areas; {guard}.", values=values, **common)
    return Check("few_clusters", "pass", f"{n_treated} adopting of {n_areas} areas: enough for clustered standard errors.",
                 values=values, **common)


def _censoring_check(frame: pd.DataFrame, cell_code: np.ndarray, horizon: float, common: dict) -> Check:
    early = (~frame["found"].to_numpy(dtype=bool)) & (frame["hours"].to_numpy(dtype=float) < horizon)
    shares = np.bincount(cell_code, weights=early.astype(float), minlength=4) / np.maximum(np.bincount(cell_code, minlength=4), 1)
    censored = int((~frame["found"]).sum())
    values = {"censored": censored, **{f"{g}_{p}_censored_before_horizon": float(shares[i]) for i, (g, p) in enumerate(CELLS)}}
    if shares.max() > HEAVY_CENSORING:
        return Check("censoring", "warn",
                     f"up to {shares.max():.0%} of a group's episodes were still open at extraction within "
                     f"{horizon:g} hours of the report; the estimates there rest on the episodes followed that long.",
                     values=values, **common)
    return Check("censoring", "pass",
                 f"{censored} episodes open at extraction are kept as censored (not dropped, not counted as found).",
                 values=values, **common)


def _float(x) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


__all__ = ["fit", "survival_frame"]
