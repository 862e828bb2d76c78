"""``its``: interrupted time series for one series, or the pooled series of the treated units.

Estimands (SPEC.md): level_change, slope_change, pre_slope, effect_at_<k>,
cumulative_effect. Count families report ratios (0.88 = 12% fewer); gaussian reports
differences. Effects at horizons and over the post-period compare the fitted series with
the counterfactual (the pre-intervention model projected forward), with delta-method
intervals (docs/methods/its.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ...data.durations import DURATION_MEASURES, derive_duration_outcome
from ...design import Design, Outcome
from ...errors import EvalkitError
from ...periods import PERIODS_PER_YEAR
from ...results import Analysis, Check, Estimate
from .. import MethodResult
from ..estimates import wald, wald_estimate
from .segmented import (
    COUNT_FAMILIES,
    FIXED_B,
    NegbinNotConverged,
    SegmentedDesign,
    acf,
    breusch_godfrey,
    fit_segmented,
    fixed_b_auto_lags,
    newey_west_auto_lags,
    season_position,
    segmented_design,
)

MIN_POINTS = 3           # Cochrane EPOC: fewer either side and ITS is not run
RECOMMENDED_POINTS = 12  # Wagner et al. (2002): warn below this either side


@dataclass
class SeriesSetup:
    """One series made ready for a segmented regression."""

    key: str
    outcome: Outcome
    family: str
    units: list
    start_period: pd.Period
    start: int
    periods: pd.PeriodIndex
    seg: SegmentedDesign
    mask: np.ndarray
    n_pre: int
    n_post: int
    y: np.ndarray
    exposure: np.ndarray | None
    per: float
    offset: np.ndarray | None
    response: np.ndarray
    lags: int | None


def setup_series(design: Design, data, spec, index: int, units=None, start_period=None) -> SeriesSetup:
    """Choose, pool and check a series; build its segmented design matrix and fitting mask."""
    key = f"analysis[{index}]"
    outcome = design.outcome(spec.outcome)
    family = _family(design, outcome, spec, key)
    if units is None:
        units, start_period = _treated_series_units(design, data, spec, key)
    series = pooled_series(data, units, outcome, family)
    check_values(design, series, outcome, family, key)
    periods = data.periods
    start = int(periods.get_loc(start_period))
    transition = design.intervention.transition
    harmonics = spec.seasonality.harmonics if spec.seasonality else 0
    season_length = spec.seasonality.period if spec.seasonality else None
    seg = segmented_design(periods, start, transition, spec.transition, harmonics, season_length,
                           spec.slope_change, spec.slope_origin)
    mask = seg.fitted_mask.copy() & series["y"].notna().to_numpy()
    for j, window in enumerate(spec.exclude_periods):
        first = design.period(window.start, f"{key}.exclude_periods[{j}].start")
        last = design.period(window.end, f"{key}.exclude_periods[{j}].end")
        mask &= ~((periods >= first) & (periods <= last))
    n_pre = int(np.sum(mask & ~seg.post_mask))
    n_post = int(np.sum(mask & seg.post_mask))
    if min(n_pre, n_post) < MIN_POINTS:
        side = "before" if n_pre < MIN_POINTS else "after"
        raise EvalkitError(design.where, f"only {min(n_pre, n_post)} periods {side} the interruption ({start_period}); "
                           f"interrupted time series needs at least {MIN_POINTS} either side",
                           "widen data.window or move the interruption", key=key)
    y = series["y"].to_numpy(dtype=float)
    exposure = series["exposure"].to_numpy(dtype=float) if "exposure" in series else None
    per = outcome.per or 1.0
    if family in COUNT_FAMILIES:
        offset = np.log(exposure) if exposure is not None else None
        response = y
    else:
        offset = None
        response = y / exposure * per if exposure is not None else y
    check_informative(design, response[mask], seg.post_mask[mask], outcome, family, key, units)
    lags = None
    if spec.errors == "newey_west":
        lags = auto_lags(int(mask.sum()), spec.small_sample) if spec.lags == "auto" else int(spec.lags)
    if spec.errors == "prais_winsten" and family in COUNT_FAMILIES:
        raise EvalkitError(design.where, "errors: prais_winsten applies to the gaussian family only",
                           "use errors: newey_west for counts, or family: gaussian", key=key + ".errors")
    return SeriesSetup(key, outcome, family, units, start_period, start, periods, seg, mask, n_pre, n_post,
                       y, exposure, per, offset, response, lags)


def fit(design: Design, data, spec, index: int = 0) -> MethodResult:
    s = setup_series(design, data, spec, index)
    key, outcome, family, units, start_period, start, periods = (s.key, s.outcome, s.family, s.units,
                                                                  s.start_period, s.start, s.periods)
    seg, mask, n_pre, n_post, y, exposure, per = s.seg, s.mask, s.n_pre, s.n_post, s.y, s.exposure, s.per
    offset, response, lags = s.offset, s.response, s.lags
    transition = design.intervention.transition
    harmonics = spec.seasonality.harmonics if spec.seasonality else 0
    n_fit = int(mask.sum())
    if n_fit <= seg.X.shape[1]:
        raise EvalkitError(design.where, f"{n_fit} periods cannot fit {seg.X.shape[1]} coefficients",
                           "use fewer seasonal harmonics or a longer window", key=key)
    try:
        fitted = fit_segmented(response[mask], seg.X[mask], seg.names, family,
                               None if offset is None else offset[mask], spec.errors, lags,
                               small_sample=spec.small_sample, alpha=design.alpha)
    except NegbinNotConverged:
        raise EvalkitError(design.where, "the negative binomial fit did not converge (often: no overdispersion to estimate)",
                           "use family: quasipoisson", key=key + ".family") from None
    result = MethodResult()
    ratio = family in COUNT_FAMILIES
    common = {"outcome": outcome.name, "method": spec.method}
    info = {"analysis": index, "family": family, "errors": spec.errors, "lags": fitted.lags,
            "dispersion": fitted.dispersion, "n_periods": n_fit, "n_pre": n_pre, "n_post": n_post,
            "interruption": str(periods[seg.interruption]), "units": [str(u) for u in units],
            "se_type": fitted.se_type, "reference": fitted.reference}
    if fitted.rho is not None:
        info["rho"] = fitted.rho
    for name in ("level_change", "slope_change", "pre_slope"):
        if name in seg.names:
            result.estimates.append(_coefficient_estimate(fitted, name, ratio, design.alpha, common, info))
    offset_full = offset if offset is not None else np.zeros(len(y))
    scale_to_rate = (per / exposure) if exposure is not None else np.ones(len(y))
    predictions = predict_series(fitted, seg, offset_full, ratio, design.alpha)
    for horizon in spec.horizons:
        position = start + horizon
        if position >= len(periods) or horizon < 0:
            raise EvalkitError(design.where, f"horizon {horizon} is outside the data (the post-period has "
                               f"{len(periods) - start} periods)", "use horizons inside the post-period", key=key + ".horizons")
        result.estimates.append(effect_estimate(fitted, seg, offset_full, ratio, design.alpha, [position],
                                                 f"effect_at_{horizon}", common, str(periods[position])))
    post_positions = np.flatnonzero(seg.post_mask & mask)
    cumulative = effect_estimate(fitted, seg, offset_full, ratio, design.alpha, post_positions,
                                  "cumulative_effect", common, f"{periods[post_positions[0]]}..{periods[post_positions[-1]]}")
    add_per_year(cumulative, len(post_positions) / PERIODS_PER_YEAR[design.data.frequency])
    cumulative.details["units"] = info["units"]  # the areas the yearly effect covers
    result.estimates.append(cumulative)
    result.checks += _checks(design, fitted, seg, mask, spec, n_pre, n_post, outcome, family, response, offset, periods)
    result.analysis = Analysis(
        method=spec.method, outcome=outcome.name,
        label=f"Interrupted time series ({family}), {', '.join(map(str, units)) if len(units) <= 4 else f'{len(units)} units pooled'}",
        settings={**info, "seasonality_harmonics": harmonics, "slope_change": spec.slope_change,
                  "slope_origin": spec.slope_origin, "transition": transition, "transition_mode": spec.transition,
                  "start": str(start_period), "per": outcome.per, "exposure": exposure is not None,
                  "excluded_periods": [f"{w.start}..{w.end}" for w in spec.exclude_periods]},
        series={
            "periods": [str(p) for p in periods],
            "observed": (response if not ratio else y * scale_to_rate).tolist(),
            "fitted": (predictions["fitted"] * (scale_to_rate if ratio else 1.0)).tolist(),
            "counterfactual": (predictions["counterfactual"] * (scale_to_rate if ratio else 1.0)).tolist(),
            "counterfactual_low": (predictions["cf_low"] * (scale_to_rate if ratio else 1.0)).tolist(),
            "counterfactual_high": (predictions["cf_high"] * (scale_to_rate if ratio else 1.0)).tolist(),
            "in_fit": mask.tolist(),
            "start_index": start,
            "interruption_index": seg.interruption,
            "observed_counts": y.tolist() if ratio else None,
        },
    )
    return result


def auto_lags(n: int, small_sample: str) -> int:
    """``lags: auto``: the bandwidth the declared reference distribution was built for.

    ``fixed_b_ar1`` and ``fixed_b`` use Lazarus, Lewis, Stock & Watson's (2018) wider window with fixed-b
    critical values; ``none`` keeps Newey & West's (1994) rule of published tutorials.
    """
    if small_sample in FIXED_B:
        return fixed_b_auto_lags(n)
    return newey_west_auto_lags(n)


def add_per_year(estimate: Estimate, years: float) -> None:
    """The cumulative absolute effect (and its interval) as a yearly figure."""
    d = estimate.details
    d["per_year"] = d["absolute"] / years
    d["per_year_ci_low"] = d["absolute_ci_low"] / years
    d["per_year_ci_high"] = d["absolute_ci_high"] / years


def _family(design: Design, outcome, spec, key: str) -> str:
    if outcome.measure == "duration_hours":
        raise EvalkitError(design.where, f"outcome '{outcome.name}' is a censored duration, which its cannot fit",
                           "use survival_did, or a monthly outcome: measure median_hours_to_found or "
                           "share_found_within", key=key + ".outcome")
    family = spec.family or ("quasipoisson" if outcome.measure == "count" else "gaussian")
    if family in COUNT_FAMILIES and outcome.measure != "count":
        raise EvalkitError(design.where, f"family {family} needs a count outcome, and '{outcome.name}' is {outcome.measure}",
                           "use family: gaussian, or declare the outcome as measure: count", key=key + ".family")
    return family


def _treated_series_units(design: Design, data, spec, key: str):
    """The units pooled into the treated series, and the interruption period."""
    if spec.units:
        from ...data.prepare import match_unit

        units = [match_unit(u, data.units, design.where, key + ".units") for u in spec.units]
    elif design.units.treated:
        units = [u for u in data.adoption if str(u) in set(map(str, design.units.treated))]
    elif "series" in data.adoption:
        units = ["series"]
    else:
        units = list(data.adoption)
    if spec.start is not None:
        start = design.period(spec.start, key + ".start")
    else:
        dates = {data.adoption[u] for u in units if u in data.adoption}
        if not dates:
            raise EvalkitError(design.where, "the units of this series have no adoption date", "add start: <period>", key=key)
        if len(dates) > 1:
            raise EvalkitError(design.where, "the pooled units adopt at different dates "
                               f"({', '.join(sorted(str(d) for d in dates))})",
                               "name one cohort with units: [...] or give start:", key=key)
        start = dates.pop()
    if start <= data.periods[0] or start > data.periods[-1]:
        raise EvalkitError(design.where, f"the interruption {start} is not inside the data ({data.periods[0]}..{data.periods[-1]})",
                           "check the start date and data.window", key=key)
    return units, start


def pooled_series(data, units: list, outcome, family: str) -> pd.DataFrame:
    """One series: counts and exposure summed over units, a continuous outcome averaged.

    A monthly duration outcome (median hours to found, share found within h hours) is
    recomputed from the pooled units' episodes (Kaplan-Meier, censoring respected); a
    period with fewer than ``min_episodes`` episodes is missing and left out of the fit.
    """
    rows = data.panel[data.panel["unit"].isin(units)]
    grouped = rows.groupby("period", sort=True)
    if outcome.measure in DURATION_MEASURES and data.episodes is not None:
        episodes = data.episodes[data.episodes["unit"].isin(units)].assign(unit="pooled")
        values = derive_duration_outcome(episodes, ["pooled"], data.periods, outcome)
        return pd.DataFrame({"y": values}, index=data.periods)
    if outcome.measure == "count":
        y = grouped[outcome.name].sum(min_count=1)
    else:
        y = grouped[outcome.name].mean()
    series = pd.DataFrame({"y": y}).reindex(data.periods)
    if data.has_exposure:
        series["exposure"] = grouped["exposure"].sum().reindex(data.periods)
    return series


def check_informative(design: Design, values: np.ndarray, post: np.ndarray, outcome, family: str, key: str,
                       units, which: str = "the series") -> None:
    """Refuse a series that cannot inform a segmented regression (it would fit exactly)."""
    where = design.data.source
    # a constant series fits exactly: only Poisson, whose variance is not estimated from the
    # residuals, still has meaningful standard errors
    if np.ptp(values) == 0 and family != "poisson":
        raise EvalkitError(where, f"outcome '{outcome.name}' is {values[0]:g} in every fitted period of {which}, so "
                           "there is no change to estimate", "check the outcome column, the units and the window")
    if family in COUNT_FAMILIES:
        for side, part in (("after", values[post]), ("before", values[~post])):
            if part.sum() == 0:
                raise EvalkitError(where, f"count '{outcome.name}' is 0 in every period {side} the interruption in {which}, "
                                   "so a ratio cannot be estimated", "check the data (a recording gap?) or use family: "
                                   "gaussian", key=None)


def check_values(design: Design, series: pd.DataFrame, outcome, family: str, key: str) -> None:
    y = series["y"]
    if outcome.measure in DURATION_MEASURES:
        return  # missing periods (too few episodes) are left out of the fit
    if y.isna().any():
        period = y.index[y.isna().to_numpy()][0]
        raise EvalkitError(design.data.source, f"outcome '{outcome.name}' is missing for {period}",
                           "fill in the value or narrow data.window")
    if family in COUNT_FAMILIES:
        if (y < 0).any():
            period = y.index[(y < 0).to_numpy()][0]
            raise EvalkitError(design.data.source, f"count '{outcome.name}' is negative in {period}",
                               "counts must be 0 or more")
        if (y.to_numpy() != np.floor(y.to_numpy())).any():
            period = y.index[(y.to_numpy() != np.floor(y.to_numpy()))][0]
            raise EvalkitError(design.data.source, f"count '{outcome.name}' is not a whole number in {period}",
                               "use family: gaussian for a non-count outcome", key=None)
        if y.sum() == 0:
            raise EvalkitError(design.data.source, f"count '{outcome.name}' is zero in every period",
                               "check the outcome column and the window")


def _coefficient_estimate(fitted, name: str, ratio: bool, alpha: float, common: dict, info: dict) -> Estimate:
    i = fitted.names.index(name)
    coef = float(fitted.params[i])
    se = fitted.se(name)
    c = fitted.contrast(name)
    return wald_estimate(common, name, coef, se, fitted.critical(alpha, c), ratio, fitted.p_value(coef / se, c),
                         details={"coefficient": coef, "se_scale": "log" if ratio else "identity", **info,
                                  **fitted.procedure(c)})


def predict_series(fitted, seg, offset: np.ndarray, ratio: bool, alpha: float) -> dict:
    crit = fitted.critical(alpha)
    eta_fit = seg.X @ fitted.params + offset
    eta_cf = seg.X_counterfactual @ fitted.params + offset
    se_cf = np.sqrt(np.einsum("ij,jk,ik->i", seg.X_counterfactual, fitted.cov, seg.X_counterfactual))
    if ratio:
        return {"fitted": np.exp(eta_fit), "counterfactual": np.exp(eta_cf),
                "cf_low": np.exp(eta_cf - crit * se_cf), "cf_high": np.exp(eta_cf + crit * se_cf)}
    return {"fitted": eta_fit, "counterfactual": eta_cf, "cf_low": eta_cf - crit * se_cf, "cf_high": eta_cf + crit * se_cf}


def effect_estimate(fitted, seg, offset, ratio: bool, alpha: float, positions, estimand: str,
                     common: dict, label: str) -> Estimate:
    """Fitted vs counterfactual summed over ``positions``, with delta-method intervals."""
    Xf, Xc, off = seg.X[positions], seg.X_counterfactual[positions], offset[positions]
    b, V = fitted.params, fitted.cov
    if ratio:
        mu_f, mu_c = np.exp(Xf @ b + off), np.exp(Xc @ b + off)
        total_f, total_c = mu_f.sum(), mu_c.sum()
        grad_log_ratio = (mu_f @ Xf) / total_f - (mu_c @ Xc) / total_c
        se_log = float(np.sqrt(grad_log_ratio @ V @ grad_log_ratio))
        log_ratio = float(np.log(total_f / total_c))
        grad_abs = mu_f @ Xf - mu_c @ Xc
        se_abs = float(np.sqrt(grad_abs @ V @ grad_abs))
        absolute = float(total_f - total_c)
        contrast = grad_log_ratio
        crit = fitted.critical(alpha, contrast)
        crit_abs = fitted.critical(alpha, grad_abs)
        estimate, low, high = wald(log_ratio, se_log, crit, True)
        se, z = se_log, log_ratio / se_log if se_log > 0 else np.nan
        details = {"counterfactual": float(total_c), "fitted": float(total_f), "absolute": absolute,
                   "absolute_se": se_abs, "absolute_ci_low": absolute - crit_abs * se_abs,
                   "absolute_ci_high": absolute + crit_abs * se_abs, "periods": label, "n_periods": len(positions)}
    else:
        grad = (Xf - Xc).sum(axis=0)
        diff = float(grad @ b)
        se = float(np.sqrt(grad @ V @ grad))
        contrast = grad
        crit = fitted.critical(alpha, contrast)
        estimate, low, high = wald(diff, se, crit, False)
        z = diff / se if se > 0 else np.nan
        details = {"counterfactual": float((Xc @ b).sum()), "fitted": float((Xf @ b).sum()), "absolute": diff,
                   "absolute_se": se, "absolute_ci_low": low, "absolute_ci_high": high, "periods": label,
                   "n_periods": len(positions)}
    details.update(fitted.procedure(contrast))  # the interval's and p-value's procedure, as the coefficients'
    return Estimate(**common, estimand=estimand, scale="ratio" if ratio else "difference", estimate=estimate,
                    se=se, ci_low=low, ci_high=high, p_value=fitted.p_value(z, contrast) if np.isfinite(z) else None,
                    details=details)


def _checks(design, fitted, seg, mask, spec, n_pre, n_post, outcome, family, response, offset, periods) -> list[Check]:
    common = {"method": spec.method, "outcome": outcome.name}
    checks = []
    fewest = min(n_pre, n_post)
    status = "pass" if fewest >= RECOMMENDED_POINTS else "warn"
    checks.append(Check("minimum_data", status,
                        f"{n_pre} periods before and {n_post} after the interruption "
                        f"({'at least' if status == 'pass' else 'fewer than'} {RECOMMENDED_POINTS} either side).",
                        values={"n_pre": n_pre, "n_post": n_post}, **common))
    if family in COUNT_FAMILIES:
        d = fitted.pearson_dispersion
        if family == "poisson" and d > 1.5:
            checks.append(Check("overdispersion", "warn",
                                f"Pearson dispersion {d:.2f}: the counts vary more than Poisson allows, so intervals "
                                "are too narrow; use quasipoisson or negbin.", values={"dispersion": d}, **common))
        else:
            checks.append(Check("overdispersion", "pass",
                                f"Pearson dispersion {d:.2f} under Poisson; the {family} model "
                                f"{'allows for it' if family != 'poisson' else 'is adequate'}.",
                                values={"dispersion": d}, **common))
    X = seg.X[mask]
    resid = fitted.pearson_residuals
    per_year = PERIODS_PER_YEAR[design.data.frequency]
    order = max(1, min(per_year, len(resid) // 5))
    statistic, p = breusch_godfrey(resid, X, order)
    lags_shown = min(per_year * 2, len(resid) // 3) or 1
    values = {"breusch_godfrey": statistic, "p_value": p, "order": order, "acf": acf(resid, lags_shown)}
    if p < 0.05 and spec.errors == "none":
        checks.append(Check("autocorrelation", "warn",
                            f"Breusch-Godfrey test of order {order}: p = {p:.3f}; residuals are autocorrelated and the "
                            "declared errors (none) ignore it, so intervals may be too narrow.", values=values, **common))
    else:
        fixed_b = ""
        if fitted.fixed_b is not None:
            fixed_b = (f", fixed-b reference with AR(1) errors at rho {fitted.fixed_b.rho:.2f}"
                       if fitted.small_sample == "fixed_b_ar1" else ", fixed-b reference")
        how = {"none": "model-based errors", "newey_west": f"Newey-West errors with {fitted.lags} lags{fixed_b}",
               "prais_winsten": "Prais-Winsten AR(1) errors"}[spec.errors]
        verdict = "autocorrelation detected and allowed for" if p < 0.05 else "no clear autocorrelation"
        checks.append(Check("autocorrelation", "pass",
                            f"Breusch-Godfrey test of order {order}: p = {p:.3f}; {verdict} ({how}).", values=values, **common))
    if per_year > 1:
        checks.append(_seasonality_check(spec, fitted, seg, mask, response, offset, family, per_year, common, periods))
    return checks


def _seasonality_check(spec, fitted, seg, mask, response, offset, family, per_year, common, periods) -> Check:
    if spec.seasonality:
        return Check("seasonality", "pass", f"seasonality modelled with {spec.seasonality.harmonics} harmonic(s).", **common)
    # would seasonal terms matter? a Wald test of up to two harmonics added to the declared model
    X = seg.X[mask]
    harmonics = min(2, per_year // 2)
    position = season_position(periods, per_year)[mask]
    extra = []
    for h in range(1, harmonics + 1):
        angle = 2 * np.pi * h * position / per_year
        # sin(pi * t) is 0 at every quarter when h = per_year / 2: leave such columns out
        extra += [c for c in (np.sin(angle), np.cos(angle)) if np.max(np.abs(c)) > 1e-9]
    Z = np.column_stack([X] + extra)
    if X.shape[0] <= Z.shape[1] + 2:
        return Check("seasonality", "warn", "too few periods to test for seasonality.", **common)
    test = fit_segmented(response[mask], Z, [f"z{i}" for i in range(Z.shape[1])], family,
                         None if offset is None else offset[mask], "none", None)
    b = test.params[X.shape[1]:]
    V = test.cov[X.shape[1]:, X.shape[1]:]
    wald = float(b @ np.linalg.solve(V, b))
    p = float(stats.chi2.sf(wald, len(b)))
    values = {"wald": wald, "p_value": p, "harmonics_tested": harmonics}
    if p < 0.05:
        return Check("seasonality", "warn", f"seasonal pattern detected (Wald test of {harmonics} harmonic(s), p = {p:.3f}) "
                     "but not modelled; add seasonality: {harmonics: 2}.", values=values, **common)
    return Check("seasonality", "pass", f"no clear seasonal pattern (Wald test of {harmonics} harmonic(s), p = {p:.3f}).",
                 values=values, **common)
