"""``controlled_its``: the treated series against a comparison series (Linden 2015, multiple groups).

The two series are stacked and every segmented term is interacted with a treated
indicator Z (Linden's itsa parameterisation)::

    g(E[y]) = offset + b0 + b1 T + b2 X + b3 XT + b4 Z + b5 ZT + b6 ZX + b7 ZXT + seasonal

with T time centred at the interruption, X the step (or ramp), XT the centred slope change.
b6 (level_change_difference) and b7 (slope_change_difference) are the differences between
the treated and comparison series in level change and slope change; each group's own
estimands are linear combinations (treated level change = b2 + b6). Seasonal terms are
shared. The treated counterfactual sets b6 and b7 to 0: the treated series' own pre-trend
plus the change the comparison series shows.

Comparison units enter as separate panels by default (``comparison_fit: panels``), as in
Stata's ``itsa``: every comparison unit is its own series (Z = 0) in the one regression,
the segmented coefficients b0..b3 are shared by the comparison panels, and Newey-West
autocovariances are taken within each panel only. ``comparison_fit: pooled`` first sums
(counts) or averages (continuous outcomes) the comparison units into one series. With the
same periods in every unit the two give the same gaussian and Poisson point estimates
(the pooled series is a sufficient summary for shared coefficients); their standard
errors differ because the panel sandwich sees each unit's own residuals.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ...data.durations import DURATION_MEASURES
from ...design import Design
from ...errors import EvalkitError
from ...periods import PERIODS_PER_YEAR
from ...results import Analysis, Check, Estimate
from .. import MethodResult
from ..estimates import wald_estimate
from .its import check_informative, check_values, add_per_year, effect_estimate, predict_series, pooled_series, setup_series
from .segmented import COUNT_FAMILIES, NegbinNotConverged, SegmentedDesign, breusch_godfrey, fit_segmented

GROUP_TERMS = ("intercept", "pre_slope", "level_change", "slope_change")
DIFFERENCE_NAMES = {"intercept": "treated", "pre_slope": "pre_slope_difference",
                    "level_change": "level_change_difference", "slope_change": "slope_change_difference"}


def _comparison_units(design: Design, data, spec, key: str) -> list:
    if spec.comparison:
        from ...data.prepare import match_unit

        units = [match_unit(u, data.units, design.where, key + ".comparison") for u in spec.comparison]
    else:
        units = list(data.comparison_units)
    if not units:
        raise EvalkitError(design.where, "controlled ITS needs comparison units and there are none",
                           "list units under units.comparison or leave some units untreated", key=key)
    return units


def stacked_design(seg: SegmentedDesign, slope_change: bool) -> SegmentedDesign:
    """Stack treated (Z = 1) above comparison (Z = 0) rows and add the Z interactions."""
    terms = [t for t in GROUP_TERMS if t in seg.names]
    z_cols = np.column_stack([seg.X[:, seg.names.index(t)] for t in terms])
    z_cols_cf = z_cols.copy()
    for j, t in enumerate(terms):
        if t in ("level_change", "slope_change"):
            z_cols_cf[:, j] = 0.0
    X = np.vstack([np.hstack([seg.X, z_cols]), np.hstack([seg.X, np.zeros_like(z_cols)])])
    X_cf = np.vstack([np.hstack([seg.X, z_cols_cf]), np.hstack([seg.X, np.zeros_like(z_cols)])])
    names = seg.names + [DIFFERENCE_NAMES[t] for t in terms]
    return SegmentedDesign(X, X_cf, names, np.concatenate([seg.fitted_mask] * 2),
                           np.concatenate([seg.post_mask] * 2), seg.interruption)


def panel_design(seg: SegmentedDesign, n_panels: int) -> SegmentedDesign:
    """Treated rows (Z = 1) above ``n_panels`` comparison panels (Z = 0), each a full copy of the periods."""
    stacked = stacked_design(seg, True)
    n = seg.X.shape[0]
    reps = [slice(0, n)] + [slice(n, 2 * n)] * n_panels
    return SegmentedDesign(np.vstack([stacked.X[r] for r in reps]),
                           np.vstack([stacked.X_counterfactual[r] for r in reps]),
                           stacked.names, np.concatenate([seg.fitted_mask] * (n_panels + 1)),
                           np.concatenate([seg.post_mask] * (n_panels + 1)), seg.interruption)


def _comparison_panels(design: Design, data, units: list, treated, key: str):
    """Each comparison unit's own series: response, offset (counts with exposure) and fitting mask."""
    ratio = treated.family in COUNT_FAMILIES
    responses, offsets, masks = [], [], []
    for unit in units:
        series = pooled_series(data, [unit], treated.outcome, treated.family)
        y = series["y"].to_numpy(dtype=float)
        if treated.outcome.measure not in DURATION_MEASURES and np.isnan(y).any():
            period = series.index[np.isnan(y)][0]
            raise EvalkitError(design.data.source, f"outcome '{treated.outcome.name}' is missing for comparison unit "
                               f"'{unit}' in {period}", "fill in the value, narrow data.window, or use "
                               "comparison_fit: pooled", key=None)
        exposure = series["exposure"].to_numpy(dtype=float) if "exposure" in series else None
        usable = treated.mask & ~np.isnan(y)
        if exposure is not None:
            # a unit with no exposure in a period (not yet open, closed) has no rate there: its
            # row is left out; counts there are a data error
            empty = ~(exposure > 0)
            if np.any(empty & (np.nan_to_num(y) > 0)):
                period = series.index[empty & (np.nan_to_num(y) > 0)][0]
                raise EvalkitError(design.data.source, f"comparison unit '{unit}' has counts but no exposure in {period}",
                                   "fix the exposure column", key=None)
            usable &= ~empty
        if ratio:
            responses.append(y)
            # no exposure: offset -inf, so the figure's summed comparison fit gets nothing there
            offsets.append(np.log(np.where(empty, 0.0, exposure), where=~empty, out=np.full(len(y), -np.inf))
                           if exposure is not None else np.zeros(len(y)))
        else:
            responses.append(y / np.where(empty, 1.0, exposure) * treated.per if exposure is not None else y)
            offsets.append(np.zeros(len(y)))
        masks.append(usable)
    return responses, offsets, masks


def _combination(fitted, weights: dict, ratio: bool, alpha: float, common: dict, estimand: str, group, info) -> Estimate:
    c = np.zeros(len(fitted.names))
    for name, w in weights.items():
        c[fitted.names.index(name)] = w
    coef = float(c @ fitted.params)
    se = float(np.sqrt(c @ fitted.cov @ c))
    return wald_estimate(common, estimand, coef, se, fitted.critical(alpha, c), ratio,
                         fitted.p_value(coef / se, c) if se > 0 else None, group=group,
                         details={"coefficient": coef, "se_scale": "log" if ratio else "identity", **info,
                                  **fitted.procedure(c)})


def fit(design: Design, data, spec, index: int = 0) -> MethodResult:
    treated = setup_series(design, data, spec, index)
    key = treated.key
    if spec.errors == "prais_winsten":
        raise EvalkitError(design.where, "errors: prais_winsten is not available for controlled_its",
                           "use errors: newey_west or none", key=key + ".errors")
    comparison_units = _comparison_units(design, data, spec, key)
    overlap = set(map(str, comparison_units)) & set(map(str, treated.units))
    if overlap:
        raise EvalkitError(design.where, f"unit '{sorted(overlap)[0]}' is in both the treated and the comparison series",
                           "remove it from comparison", key=key + ".comparison")
    comparison = pooled_series(data, comparison_units, treated.outcome, treated.family)
    check_values(design, comparison, treated.outcome, treated.family, key)
    comparison_fit = treated.mask & comparison["y"].notna().to_numpy()
    check_informative(design, comparison["y"].to_numpy(dtype=float)[comparison_fit],
                       treated.seg.post_mask[comparison_fit], treated.outcome, treated.family, key,
                       comparison_units, which="the comparison series")
    family, per, n = treated.family, treated.per, len(treated.periods)
    ratio = family in COUNT_FAMILIES
    y_c = comparison["y"].to_numpy(dtype=float)
    exposure_c = comparison["exposure"].to_numpy(dtype=float) if "exposure" in comparison else None
    panels = spec.comparison_fit == "panels"
    if panels:
        responses, offsets, masks = _comparison_panels(design, data, comparison_units, treated, key)
        treated_response = treated.y if ratio else treated.response
        response = np.concatenate([treated_response] + responses)
        offset = None
        if ratio and treated.exposure is not None:
            offset = np.concatenate([np.log(treated.exposure)] + offsets)
        seg = panel_design(treated.seg, len(comparison_units))
        mask = np.concatenate([treated.mask] + masks)
        groups = np.repeat(np.arange(len(comparison_units) + 1), n)
    else:
        if ratio:
            response = np.concatenate([treated.y, y_c])
            offset = None if treated.exposure is None else np.log(np.concatenate([treated.exposure, exposure_c]))
        else:
            response_c = y_c / exposure_c * per if exposure_c is not None else y_c
            response = np.concatenate([treated.response, response_c])
            offset = None
        seg = stacked_design(treated.seg, spec.slope_change)
        mask = np.concatenate([treated.mask, comparison_fit])
        groups = np.repeat([1, 0], n)
    if int(mask.sum()) <= seg.X.shape[1]:
        raise EvalkitError(design.where, f"{int(mask.sum())} rows cannot fit {seg.X.shape[1]} coefficients",
                           "use fewer seasonal harmonics or a longer window", key=key)
    try:
        fitted = fit_segmented(response[mask], seg.X[mask], seg.names, family,
                               None if offset is None else offset[mask], spec.errors, treated.lags, groups=groups[mask],
                               small_sample=spec.small_sample, alpha=design.alpha)
    except NegbinNotConverged:
        raise EvalkitError(design.where, "the negative binomial fit did not converge", "use family: quasipoisson",
                           key=key + ".family") from None
    common = {"outcome": treated.outcome.name, "method": spec.method}
    info = {"analysis": index, "family": family, "errors": spec.errors, "lags": fitted.lags, "dispersion": fitted.dispersion,
            "n_periods": int(treated.mask.sum()), "n_pre": treated.n_pre, "n_post": treated.n_post,
            "interruption": str(treated.periods[seg.interruption]), "comparison_fit": spec.comparison_fit,
            "n_comparison_series": len(comparison_units) if panels else 1, "se_type": fitted.se_type,
            "reference": fitted.reference}
    result = MethodResult()
    for term in ("level_change", "slope_change"):
        if term in seg.names:
            result.estimates.append(_combination(fitted, {DIFFERENCE_NAMES[term]: 1.0}, ratio, design.alpha, common,
                                                 DIFFERENCE_NAMES[term], None, info))
    for term in ("level_change", "slope_change", "pre_slope"):
        if term in seg.names:
            result.estimates.append(_combination(fitted, {term: 1.0, DIFFERENCE_NAMES[term]: 1.0}, ratio, design.alpha,
                                                 common, term, "treated", info))
            result.estimates.append(_combination(fitted, {term: 1.0}, ratio, design.alpha, common, term,
                                                 "comparison", info))
    offset_full = offset if offset is not None else np.zeros(len(response))
    treated_rows = np.arange(n)
    for horizon in spec.horizons:
        position = treated.start + horizon
        if position >= n or horizon < 0:
            raise EvalkitError(design.where, f"horizon {horizon} is outside the data", "use horizons inside the post-period",
                               key=key + ".horizons")
        estimate = effect_estimate(fitted, seg, offset_full, ratio, design.alpha, [position], f"effect_at_{horizon}",
                                    common, str(treated.periods[position]))
        result.estimates.append(replace(estimate, group="treated"))
    post = np.flatnonzero(treated.seg.post_mask & treated.mask)
    cumulative = effect_estimate(fitted, seg, offset_full, ratio, design.alpha, post, "cumulative_effect", common,
                                  f"{treated.periods[post[0]]}..{treated.periods[post[-1]]}")
    add_per_year(cumulative, len(post) / PERIODS_PER_YEAR[design.data.frequency])
    cumulative.details["units"] = [str(u) for u in treated.units]  # the areas the yearly effect covers
    result.estimates.append(replace(cumulative, group="treated"))
    result.checks += _checks(fitted, seg, mask, treated, spec, design.alpha, common, int(treated.mask.sum()))
    predictions = predict_series(fitted, seg, offset_full, ratio, design.alpha)
    scale_t = per / treated.exposure if (ratio and treated.exposure is not None) else np.ones(n)
    scale_c = per / exposure_c if (ratio and exposure_c is not None) else np.ones(n)
    observed_t = treated.y * scale_t if ratio else treated.response
    if ratio:
        observed_c = y_c * scale_c
    else:
        observed_c = y_c / exposure_c * per if exposure_c is not None else y_c
    # the figure shows one comparison line: panel fits summed (counts) or averaged, as itsa's figure
    fitted_c = predictions["fitted"][n:].reshape(-1, n)
    fitted_c = fitted_c.sum(axis=0) if ratio else fitted_c.mean(axis=0)
    result.analysis = Analysis(
        method=spec.method, outcome=treated.outcome.name,
        label=f"Controlled interrupted time series ({family}): {len(treated.units)} treated vs "
              f"{len(comparison_units)} comparison unit(s)",
        settings={**info, "treated_units": [str(u) for u in treated.units],
                  "comparison_units": [str(u) for u in comparison_units],
                  "seasonality_harmonics": spec.seasonality.harmonics if spec.seasonality else 0,
                  "slope_change": spec.slope_change, "slope_origin": spec.slope_origin,
                  "transition": design.intervention.transition, "transition_mode": spec.transition,
                  "start": str(treated.start_period), "per": treated.outcome.per,
                  "exposure": treated.exposure is not None},
        series={
            "periods": [str(p) for p in treated.periods],
            "observed": observed_t.tolist(),
            "fitted": (predictions["fitted"][treated_rows] * scale_t).tolist(),
            "counterfactual": (predictions["counterfactual"][treated_rows] * scale_t).tolist(),
            "counterfactual_low": (predictions["cf_low"][treated_rows] * scale_t).tolist(),
            "counterfactual_high": (predictions["cf_high"][treated_rows] * scale_t).tolist(),
            "comparison_observed": observed_c.tolist(),
            "comparison_fitted": (fitted_c * scale_c).tolist(),
            "in_fit": treated.mask.tolist(),
            "start_index": treated.start,
            "interruption_index": seg.interruption,
            "observed_counts": treated.y.tolist() if ratio else None,
            "comparison_counts": y_c.tolist() if ratio else None,
        },
    )
    return result


def _checks(fitted, seg, mask, treated, spec, alpha, common, n_treated: int) -> list[Check]:
    checks = [Check("minimum_data", "pass" if min(treated.n_pre, treated.n_post) >= 12 else "warn",
                    f"{treated.n_pre} periods before and {treated.n_post} after the interruption in each series.",
                    values={"n_pre": treated.n_pre, "n_post": treated.n_post}, **common)]
    i = fitted.names.index("pre_slope_difference")
    coef, se = float(fitted.params[i]), fitted.se("pre_slope_difference")
    p = fitted.p_value(coef / se, fitted.contrast("pre_slope_difference")) if se > 0 else 1.0
    values = {"pre_slope_difference": coef, "se": se, "p_value": p}
    if p < alpha:
        checks.append(Check("pre_trends", "fail",
                            f"before the intervention the treated and comparison trends differ (p = {p:.3f}); the "
                            "comparison series may not show what would have happened.", values=values, **common))
    else:
        checks.append(Check("pre_trends", "pass", f"no clear difference in pre-intervention trends (p = {p:.3f}).",
                            values=values, **common))
    if treated.family in COUNT_FAMILIES:
        d = fitted.pearson_dispersion
        status = "warn" if treated.family == "poisson" and d > 1.5 else "pass"
        checks.append(Check("overdispersion", status, f"Pearson dispersion {d:.2f} under Poisson.",
                            values={"dispersion": d}, **common))
    resid = fitted.pearson_residuals[:n_treated]
    X = seg.X[mask][:n_treated]
    X = X[:, np.ptp(X, axis=0) > 0]
    order = max(1, min(12, len(resid) // 5))
    statistic, p_bg = breusch_godfrey(resid, np.column_stack([np.ones(len(resid)), X]), order)
    status = "warn" if (p_bg < 0.05 and spec.errors == "none") else "pass"
    checks.append(Check("autocorrelation", status,
                        f"Breusch-Godfrey test of order {order} on the treated series: p = {p_bg:.3f}.",
                        values={"breusch_godfrey": statistic, "p_value": p_bg, "order": order}, **common))
    return checks
