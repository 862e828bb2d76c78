"""``did``: two-way fixed-effects difference-in-differences, linear or Poisson (PPML).

* ``family: linear``: ``y_it = a_i + l_t + b D_it + e_it`` (linearmodels PanelOLS with
  unit and period effects), errors clustered by area; ``att`` is the difference ``b``. With
  staggered adoption the Goodman-Bacon decomposition is reported as a check.
* ``family: poisson`` (default for counts): ``log E[y_it] = log(exposure_it) + a_i + l_t +
  effects``, fitted by Poisson pseudo-maximum likelihood, so counts with zeros are never
  logged and rates are never treated as Gaussian. Common timing: one ``D`` term, ``att`` is
  the rate ratio exp(b). Staggered adoption: Wooldridge's (2023) extended TWFE, one effect
  per adoption cohort and post-adoption period, aggregated to one ratio: expected reports in
  the treated areas after adoption over the expected reports without the intervention.
* Inference: ``analytic`` (cluster-robust by area), ``randomization`` (adoption dates
  permuted across areas) or ``wild_cluster`` (restricted wild cluster bootstrap with Webb
  weights, linear family). Formulas, conventions and validation: docs/methods/did.md.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ...design import Design
from ...errors import EvalkitError
from ...inference.randomization import (invert_randomization_test, p_value_of, randomization_interval_note,
                                         randomization_test)
from ...inference.wild_cluster import wild_cluster_bootstrap
from ...periods import PERIODS_PER_YEAR
from ...results import Analysis, Check, Estimate
from .. import MethodResult
from ..estimates import wald
from .bacon import NEVER
from .checks import AUTO_ANALYTIC_FROM, FEW_TREATED, MAX_ENUMERATE, bacon_check, few_treated_check, pre_trend_check
from .estimate import DiDFit, DiDSample, estimate, post_rows
from .fast_ppml import PermutationStatistics
from .twfe import FixedEffectsDesign, TwoWayProjection


# ----------------------------------------------------------------------------- fit
def fit(design: Design, data, spec, index: int = 0) -> MethodResult:
    key = f"analysis[{index}]"
    outcome = design.outcome(spec.outcome)
    family = _family(design, outcome, spec, key)
    sample = _sample(design, data, outcome, family, spec, key)
    adoption = {u: data.adoption[u] for u in sample.units if u in data.adoption}
    positions = sample.positions(adoption)
    staggered = len(set(positions[positions != NEVER].tolist())) > 1
    if family == "linear" and staggered and "control_group" in spec.model_fields_set \
            and spec.control_group == "never_treated":
        raise EvalkitError(design.where, "the linear TWFE compares with never- and not-yet-treated areas alike, "
                           "so control_group: never_treated cannot be honoured", "remove control_group, use "
                           "family: poisson, or use method: staggered_did", key=key + ".control_group")
    estimator = "extended_twfe" if (family == "poisson" and staggered) else "twfe"
    observed = estimate(sample, positions, estimator, covariance=True)
    _check_observed(design, observed, key, sample)
    if family == "linear":
        _panelols(sample, observed)
    se, fe_design, keep = _fitted(observed)
    alpha = design.alpha
    n_treated = int(np.sum(positions != NEVER))
    chosen = spec.inference == "auto"
    if chosen:  # the default follows the design's own number of adopting areas (docs/methods/did.md)
        spec = spec.model_copy(update={"inference": "randomization" if n_treated < AUTO_ANALYTIC_FROM else "analytic"})
    n_clusters = int(len(np.unique(fe_design.unit)))
    result = MethodResult()
    common = {"outcome": outcome.name, "method": spec.method}

    # analytic inference
    if family == "poisson":
        crit = stats.norm.ppf(1 - alpha / 2)
        p_analytic = float(2 * stats.norm.sf(abs(observed.statistic / se)))
    else:
        crit = stats.t.ppf(1 - alpha / 2, n_clusters - 1)
        p_analytic = float(2 * stats.t.sf(abs(observed.statistic / se), n_clusters - 1))
    low, high = observed.statistic - crit * se, observed.statistic + crit * se
    p_value, ci_method, p_method = p_analytic, _analytic_words(family, n_clusters), "cluster-robust Wald"
    interval_note = None
    inference_record: dict = {}
    series_extra: dict = {}
    rng = np.random.default_rng(design.seed)
    if spec.inference == "randomization":
        test, inverted = _randomization(sample, positions, estimator, observed, adoption, rng, spec, alpha)
        p_value = test.p_value
        low = -np.inf if inverted.low is None else inverted.low
        high = np.inf if inverted.high is None else inverted.high
        ci_method = inverted.method
        interval_note = randomization_interval_note(inverted, test, n_treated, sample.n_units, alpha)
        p_method = ("randomization inference, all " if test.exhaustive else "randomization inference, ") + \
            (f"{test.n_assignments} assignments" if test.exhaustive else f"{test.reps} random permutations") + \
            " of the adoption dates across areas"
        inference_record = test.to_dict()
        series_extra["randomization"] = {**test.histogram(), "p_value": test.p_value,
                                         "scale": "log ratio" if family == "poisson" else "difference"}
    elif spec.inference == "wild_cluster":
        boot = _wild_cluster(sample, observed, rng, spec, alpha)
        p_value, low, high = boot.p_value, boot.ci_low, boot.ci_high
        p_method = (f"restricted wild cluster bootstrap, {boot.reps} {spec.weights} draws"
                    + (" (every sign pattern)" if boot.enumerated else ""))
        ci_method = "inverting the wild cluster bootstrap test"
        if not (np.isfinite(low) and np.isfinite(high)):
            side = "below" if not np.isfinite(low) else "above"
            areas = f"{n_treated} adopting area{'s' if n_treated != 1 else ''}"
            interval_note = (f"the wild cluster bootstrap test does not reject any effect {side} the estimate at "
                             f"{1 - alpha:.0%} (with {areas} the bootstrap has too few distinct draws), so the "
                             "interval is unbounded")
        inference_record = boot.to_dict()
        series_extra["bootstrap"] = {**boot.histogram(), "p_value": boot.p_value}
    reason = _inference_reason(spec, n_treated, sample.n_units, inference_record, chosen)

    ratio = family == "poisson"
    value = float(np.exp(observed.statistic)) if ratio else float(observed.statistic)
    ci_low: float | None
    ci_high: float | None
    ci_low, ci_high = (float(np.exp(low)), float(np.exp(high))) if ratio else (float(low), float(high))
    # an end the declared test cannot bound is None (never the analytic one in its place)
    ci_low = ci_low if np.isfinite(low) else None
    ci_high = ci_high if np.isfinite(high) else None
    per_year = PERIODS_PER_YEAR[design.data.frequency]
    analytic = wald(observed.statistic, se, crit, ratio)
    details = {
        "analysis": index, "coefficient": observed.statistic, "se_scale": "log" if ratio else "identity", "family": family,
        "estimator": observed.estimator, "inference": spec.inference, "p_value_method": p_method,
        "ci_method": ci_method, "interval_method": _interval_method(spec.inference), "interval_note": interval_note,
        "alpha": alpha, "test_rejects": bool(p_value < alpha), "p_value_analytic": p_analytic,
        "ci_low_analytic": analytic[1], "ci_high_analytic": analytic[2],
        "treated_units": n_treated, "comparison_units": int(np.sum(positions == NEVER)), "clusters": n_clusters,
        "observations": int(keep.sum()), **observed.details,
    }
    if inference_record:
        details[spec.inference] = inference_record
    if spec.inference == "randomization":
        details["randomization"]["interval"] = inverted.to_dict()
    if ratio:
        _absolute_details(details, observed, sample, per_year, crit)
        if spec.inference != "analytic":
            _absolute_bounds_from_ratio(details, value, ci_low, ci_high)
        if estimator == "extended_twfe":
            simple = estimate(sample, positions, "twfe", covariance=True)
            details["twfe_ratio"] = float(np.exp(simple.statistic))
            details["twfe_ratio_se_log"] = simple.se
    result.estimates.append(Estimate(**common, estimand="att", scale="ratio" if ratio else "difference",
                                     estimate=value, se=observed.se, ci_low=ci_low, ci_high=ci_high,
                                     p_value=p_value, details=details))
    result.checks.append(few_treated_check(spec, n_treated, inference_record, alpha, common))
    bacon = None
    if family == "linear" and staggered:
        check, bacon = bacon_check(sample, positions, observed, common)
        result.checks.append(check)
    result.checks.append(pre_trend_check(design, sample, positions, spec, rng, common))
    if observed.dropped:
        result.checks.append(Check("zero_counts", "pass",
                                   f"{observed.dropped} area-periods belong to an area, period or cohort cell with no "
                                   "counts at all; they carry no information for the Poisson model and were left out "
                                   "(their fitted mean is 0).", values={"dropped": observed.dropped}, **common))
    cohorts = _cohorts(sample, positions)
    result.analysis = Analysis(
        method=spec.method, outcome=outcome.name,
        label=_label(family, estimator, n_treated, sample.n_units - n_treated),
        settings={
            "analysis": index, "family": family, "estimator": estimator, "inference": spec.inference,
            "inference_reason": reason,
            "p_value_method": p_method, "ci_method": ci_method, "reps": spec.reps,
            "weights": spec.weights if spec.inference == "wild_cluster" else None,
            "control_group": _control_words(family, estimator, spec.control_group),
            "transition": sample.transition, "transition_mode": spec.transition,
            "treated_units": n_treated, "comparison_units": sample.n_units - n_treated,
            "cohorts": {c["adoption"]: c["units"] for c in cohorts}, "per": outcome.per,
            "exposure": sample.exposure is not None, "alpha": alpha, "seed": design.seed,
            "cluster_correction": _correction_words(family),
        },
        series=_series(sample, positions, observed, cohorts, family, outcome, series_extra, bacon),
    )
    from .event_study import honest_inputs  # the parallel-trends sensitivity's event study (event_study.py)
    honest = honest_inputs(sample, positions, PERIODS_PER_YEAR[design.data.frequency])
    if honest is not None:
        result.analysis.series["honest_inputs"] = honest
    return result


# ----------------------------------------------------------------------------- options and data
def _family(design: Design, outcome, spec, key: str) -> str:
    if outcome.measure in ("duration_hours", "share_found_within", "median_hours_to_found"):
        raise EvalkitError(design.where, f"outcome '{outcome.name}' ({outcome.measure}) cannot be fitted by did",
                           "use method: survival_did for time to found, or a count or continuous outcome",
                           key=key + ".outcome")
    family = spec.family or ("poisson" if outcome.measure == "count" else "linear")
    if family == "poisson" and outcome.measure != "count":
        raise EvalkitError(design.where, f"family: poisson needs a count outcome, and '{outcome.name}' is {outcome.measure}",
                           "use family: linear, or declare the outcome as measure: count", key=key + ".family")
    if family == "poisson" and spec.inference == "wild_cluster":
        raise EvalkitError(design.where, "inference: wild_cluster is for the linear TWFE",
                           "use inference: randomization for the Poisson DiD, or family: linear", key=key + ".inference")
    return family


def _sample(design: Design, data, outcome, family: str, spec, key: str) -> DiDSample:
    if list(data.units) == ["series"]:
        raise EvalkitError(design.where, "did compares areas, and the data are one series",
                           "map data.columns.unit, or use method: its", key=key)
    treated = [u for u in data.units if u in data.adoption]
    comparison = [u for u in data.comparison_units if u not in data.adoption]
    if not treated:
        raise EvalkitError(design.where, "no area adopts inside the data", "list units under units.treated or units.adoption",
                           key="units")
    if not comparison:
        staggered = len({data.adoption[u] for u in treated}) > 1
        raise EvalkitError(design.where, "did needs at least one comparison area that never adopts",
                           "add never-treated areas to the data (units.comparison)"
                           + (", or use method: staggered_did with control_group: not_yet_treated" if staggered
                              else ": every area adopts at the same date, so no method can tell the effect from "
                                   "the calendar"), key="units.comparison")
    units = [u for u in data.units if u in set(treated) | set(comparison)]
    panel = data.panel[data.panel["unit"].isin(units)]
    values = panel[outcome.name].to_numpy(dtype=float)
    present = ~np.isnan(values)
    if not present.any():
        raise EvalkitError(design.data.source, f"outcome '{outcome.name}' has no values", "check the outcome column")
    panel = panel.loc[present]
    if values[present].min() == values[present].max():
        raise EvalkitError(design.data.source, f"outcome '{outcome.name}' is {values[present][0]:g} in every area and "
                           "period, so there is no difference to estimate",
                           "check the outcome column and data.window")
    unit_code = {u: i for i, u in enumerate(units)}
    unit = panel["unit"].map(unit_code).to_numpy(dtype=int)
    time = data.periods.get_indexer(pd.PeriodIndex(panel["period"]))
    values = panel[outcome.name].to_numpy(dtype=float)
    exposure = panel["exposure"].to_numpy(dtype=float) if data.has_exposure else None
    counts = values if outcome.measure == "count" else None
    if family == "linear" and outcome.measure == "count" and exposure is not None:
        y = values / exposure * (outcome.per or 1.0)
    else:
        y = values
    # the effect is a change over time: an outcome (a rate, for Poisson) flat within every area has none
    rate = outcome.measure == "count" and exposure is not None
    if not _changes_within_units(values / exposure if rate else values, unit):
        raise EvalkitError(design.data.source, f"outcome '{outcome.name}' never changes over time within an area"
                           + (" (per unit of exposure)" if rate else "") + ", so there is no change to compare",
                           "check the outcome column and data.window")
    transition = design.intervention.transition if spec.transition == "exclude" else 0
    return DiDSample(units=units, periods=data.periods, unit=unit, time=time, y=y, counts=counts, exposure=exposure,
                     transition=transition, family=family, control_group=spec.control_group, per=outcome.per,
                     balanced=bool(present.all()) and len(panel) == len(units) * len(data.periods))


def _changes_within_units(level: np.ndarray, unit: np.ndarray) -> bool:
    """Whether the outcome takes two values (beyond rounding) within at least one unit."""
    size = np.max(np.abs(level)) if level.size else 0.0
    low = np.full(unit.max() + 1, np.inf)
    high = np.full(unit.max() + 1, -np.inf)
    np.minimum.at(low, unit, level)
    np.maximum.at(high, unit, level)
    return bool(np.any(high - low > 1e-12 * size))


def _panelols(sample: DiDSample, observed: DiDFit) -> None:
    """The linear TWFE by linearmodels PanelOLS (unit and period effects, clustered by unit).

    PanelOLS gives the plain cluster sandwich here (no degrees-of-freedom scaling:
    ``debiased=False``, effects not counted); evalkit applies its stated correction. The
    reported coefficient and standard error are PanelOLS's; the structured solver that
    randomization inference and the bootstrap reuse must agree with it.
    """
    from linearmodels.panel import PanelOLS

    solver_se, design, keep = _fitted(observed)
    frame = pd.DataFrame({"unit": design.unit, "time": design.time, "y": sample.y[keep],
                          "D": (design.cell >= 0).astype(float)}).set_index(["unit", "time"])
    model = PanelOLS(frame["y"], frame[["D"]], entity_effects=True, time_effects=True)
    res = model.fit(cov_type="clustered", cluster_entity=True, debiased=False, auto_df=False, count_effects=False)
    coefficient = float(res.params["D"])
    correction = observed.details["cluster_correction_factor"]
    se = float(np.sqrt(res.cov.loc["D", "D"] * correction))
    scale = max(1.0, abs(coefficient))
    if abs(coefficient - observed.statistic) > 1e-8 * scale or abs(se - solver_se) > 1e-6 * se:
        raise RuntimeError(f"PanelOLS ({coefficient}, {se}) and the TWFE solver ({observed.statistic}, {solver_se}) "
                           "disagree")
    observed.statistic, observed.se = coefficient, se
    observed.details["fitted_by"] = "linearmodels PanelOLS"


#: a standard error below this share of the outcome's scale is rounding error: the model fits exactly
ZERO_SE = 1e-9

_NOT_ESTIMABLE = {
    "no_post": ("no treated area has a period after adoption (and its phase-in) with data",
                "extend data.window or check the adoption dates and intervention.transition"),
    "treated_zero": (("the adopting areas have no counts at all after adoption, so the Poisson rate ratio is 0 and "
                      "has no interval"), "check the outcome column, or use family: linear for a difference in counts"),
    "comparison_zero": ("the comparison areas have no counts at all, so the Poisson DiD has nothing to compare with",
                        "check the outcome column and units.comparison, or add comparison areas with counts"),
    "singular": ("the DiD effect is not identified: the area and period effects explain the treated periods exactly",
                 "check that comparison areas have data in the periods after adoption"),
}


def _fitted(observed: DiDFit) -> tuple[float, FixedEffectsDesign, np.ndarray]:
    """The standard error, fixed-effects design and rows of a fit :func:`_check_observed` passed."""
    if observed.se is None or observed.design is None or observed.keep is None:
        raise ValueError(f"the DiD fit has no standard error ({observed.reason or 'not checked'}): "
                         "check it with _check_observed first")
    return observed.se, observed.design, observed.keep


def _check_observed(design: Design, observed: DiDFit, key: str, sample: DiDSample | None = None) -> None:
    if observed.reason == "singular" or not np.isfinite(observed.statistic):
        what, fix = _NOT_ESTIMABLE[observed.reason or "no_post"]
        raise EvalkitError(design.where, what, fix, key=key)
    if observed.fit is not None and not getattr(observed.fit, "converged", True):
        raise EvalkitError(design.where, "the Poisson DiD did not converge", "check the outcome for areas or periods "
                           "with almost no counts, or use a coarser data.frequency", key=key)
    if observed.se is None or not np.isfinite(observed.se) or observed.se <= 0:
        raise EvalkitError(design.where, "the DiD standard error cannot be computed (too few areas?)",
                           "add comparison areas", key=key)
    if sample is not None:
        # an exact fit leaves a standard error of rounding error only: compare it with the outcome's
        # spread (linear) or with 1 (Poisson: the log ratio)
        scale = 1.0
        if sample.family == "linear":
            scale = float(np.std(sample.y[observed.keep])) + abs(float(observed.statistic))
        if observed.se <= ZERO_SE * scale:
            raise EvalkitError(design.where, "the DiD model fits the data exactly, so its standard error is 0 "
                               "(are the comparison areas' outcomes constant?)",
                               "check the outcome column; the comparison areas' outcome must vary", key=key)


def _wild_cluster(sample: DiDSample, observed: DiDFit, rng, spec, alpha: float):
    _, design, keep = _fitted(observed)
    y = sample.y[keep]
    d = (design.cell >= 0).astype(float)[:, None]
    project = TwoWayProjection(design.unit, design.time, design.n_units, design.n_times)
    n = len(y)
    G = design.n_units
    counted = design.n_params - design.n_nested + 1
    correction = G / (G - 1) * (n - 1) / (n - counted)
    return wild_cluster_bootstrap(y, d, design.unit, 0, rng, reps=spec.reps, weights=spec.weights, project=project,
                                  null=0.0, correction=correction, ci_level=1 - alpha)


# ----------------------------------------------------------------------------- randomization interval
#: compute the permutations as arrays (fast_ppml.PermutationStatistics); False: one
#: ``estimate`` call per assignment and null, as before (benchmarks/did_randomization_speed.py)
FAST_PERMUTATIONS = True


def _randomization(sample: DiDSample, positions, estimator: str, observed: DiDFit, adoption: dict, rng, spec,
                   alpha: float):
    """The randomization test and its inversion (docs/methods/did.md, "Randomization inference").

    The assignments are drawn (or enumerated) by ``randomization_test`` exactly as before; the
    statistics of all of them, at 0 and at each null of the inversion, come from
    :class:`PermutationStatistics`: array solvers for every assignment, ``estimate`` itself for
    the entries a decision or a reported number rests on, repeated until no further entry is
    decisive. The result is the one-at-a-time path's to the last bit, in seconds instead of
    minutes.
    """
    reps, most = spec.reps, max(MAX_ENUMERATE, spec.reps + 1)
    if not FAST_PERMUTATIONS:
        def statistic(assignment: dict) -> float:
            return estimate(sample, sample.positions(assignment), estimator, covariance=False,
                            start=observed.params).statistic

        test = randomization_test(statistic, sample.units, adoption, rng, reps=reps, max_enumerate=most)
        return test, _randomization_interval(sample, positions, estimator, observed, test, alpha)
    shell = randomization_test(lambda assignment: 0.0, sample.units, adoption, rng, reps=reps, max_enumerate=most)
    assignments = np.array([sample.positions(a) for a in shell.assignments or []])
    se = _fitted(observed)[0]
    permutations = PermutationStatistics(sample, estimator, assignments, post_rows(sample, positions), observed.params, se)
    for round_ in range(21):
        if round_ == 20:   # never seen: the decisive entries did not settle, so every entry is estimate's
            permutations.everywhere = True
        stats = permutations.vector(0.0)
        test = replace(shell, observed=float(stats[0]), p_value=p_value_of(stats), statistics=stats)
        inverted = invert_randomization_test(permutations.vector, observed.statistic, se, alpha, test.smallest_p,
                                             p_at_zero=test.p_value, linear=sample.family == "linear",
                                             statistics_at_zero=stats)
        if permutations.everywhere or not permutations.refresh(observed.statistic, (inverted.low, inverted.high)):
            break
    return test, inverted


def _randomization_interval(sample: DiDSample, positions, estimator: str, observed: DiDFit, test, alpha: float):
    """Invert the randomization test: the null effects it does not reject, the same assignments for each.

    A null effect ``theta`` (log ratio, or difference) is imposed on the observed treated
    post-adoption rows: Poisson, an offset ``theta`` on them (their expected counts divided
    by exp(theta)); linear, ``theta`` subtracted from their outcomes. Every assignment of the
    randomization test is refitted on those data, and the null is rejected when the observed
    assignment's statistic is among the most extreme (docs/methods/did.md, "Randomization
    inference").
    """
    treated_post = post_rows(sample, positions).astype(float)
    assignments = test.assignments

    def statistics_at(theta: float) -> np.ndarray:
        if sample.family == "poisson":
            base = sample.exposure if sample.exposure is not None else np.ones(len(sample.y))
            shifted = replace(sample, exposure=base * np.exp(theta * treated_post))
        else:
            shifted = replace(sample, y=sample.y - theta * treated_post)
        return np.array([estimate(shifted, sample.positions(a), estimator, covariance=False,
                                  start=observed.params).statistic for a in assignments])

    return invert_randomization_test(statistics_at, observed.statistic, _fitted(observed)[0], alpha, test.smallest_p,
                                     p_at_zero=test.p_value, linear=sample.family == "linear",
                                     statistics_at_zero=test.statistics)


def _interval_method(inference: str) -> str:
    return {"analytic": "Wald (cluster-robust by area)",
            "randomization": "randomization test inversion",
            "wild_cluster": "wild cluster bootstrap test inversion"}[inference]


def _absolute_bounds_from_ratio(details: dict, ratio: float, low: float | None, high: float | None) -> None:
    """Counts a year at the ratio's interval ends (expected with / expected without = ratio)."""
    per_year = details["per_year"]
    with_effect = per_year / (1.0 - 1.0 / ratio) if ratio != 1.0 else None

    def at(end):
        if end is None or with_effect is None or not np.isfinite(with_effect):
            return None
        return float(with_effect * (1.0 - 1.0 / end))

    details["per_year_ci_low"], details["per_year_ci_high"] = at(low), at(high)
    details["per_year_se"] = None
    details["per_year_interval_method"] = "the ratio's interval ends applied to the expected count with the effect"


# ----------------------------------------------------------------------------- details and checks
def _absolute_details(details: dict, observed: DiDFit, sample: DiDSample, per_year: int, crit: float) -> None:
    """Translate the ratio into reports: in all treated post area-periods, per area-period, a year."""
    info = observed.details
    n_post = info["post_area_periods"]
    treated_areas = info["post_areas"]
    absolute, absolute_se = info["absolute"], info["absolute_se"]
    details["absolute_per_area_period"] = absolute / n_post
    details["per_year"] = absolute / n_post * per_year * treated_areas
    details["per_year_se"] = absolute_se / n_post * per_year * treated_areas
    details["per_year_ci_low"] = float(details["per_year"] - crit * details["per_year_se"])
    details["per_year_ci_high"] = float(details["per_year"] + crit * details["per_year_se"])
    details["per_year_meaning"] = (f"change in the count a year across the {treated_areas} treated areas together, "
                                   "at their average after adoption")
    if info.get("exposure_post") and sample.per:
        details["rate_difference"] = absolute / info["exposure_post"] * sample.per
        details["rate_difference_meaning"] = f"change per {sample.per:g} of the exposure, per period"


# ----------------------------------------------------------------------------- words and series
def _inference_reason(spec, n_treated: int, n_units: int, record: dict, chosen: bool = False) -> str:
    few = n_treated < FEW_TREATED
    if chosen:
        why = (f"chosen by default because {n_treated} area{'s' if n_treated != 1 else ''} adopted (fewer than "
               f"{AUTO_ANALYTIC_FROM}), where cluster-robust intervals cover too little"
               if spec.inference == "randomization" else
               f"chosen by default: {n_treated} areas adopted, enough for cluster-robust errors")
    else:
        why = (f"only {n_treated} area{'s' if n_treated != 1 else ''} adopted, so cluster-robust standard errors "
               "over-reject" if few else "as declared in the design")
    if spec.inference == "randomization":
        how = (f"every one of the {record['n_assignments']} ways" if record.get("exhaustive")
               else f"{record['reps']} random re-assignments")
        return (f"randomization inference: {why}; the p-value compares the estimate with {how} of the adoption dates "
                f"across the {n_units} areas, and the interval holds the effects that test does not reject "
                "(test inversion)")
    if spec.inference == "wild_cluster":
        return (f"restricted wild cluster bootstrap with {spec.weights.capitalize()} weights: {why}; no effect is imposed "
                f"and area-level residuals are re-signed {record['reps']} times; the interval holds the effects that "
                "test does not reject (test inversion)")
    if few:
        return (f"cluster-robust standard errors by area (as declared), although only {n_treated} area"
                f"{'s' if n_treated != 1 else ''} adopted, so they may over-reject: see the few_treated check")
    return f"cluster-robust standard errors by area ({why}): {n_treated} of {n_units} areas adopted"


def _analytic_words(family: str, n_clusters: int) -> str:
    if family == "poisson":
        return "cluster-robust (by area) Wald interval on the log scale, normal critical value"
    return f"cluster-robust (by area) Wald interval, t with {n_clusters - 1} degrees of freedom"


def _correction_words(family: str) -> str:
    if family == "poisson":
        return "G/(G-1) (Stata's poisson, vce(cluster))"
    return "G/(G-1) * (N-1)/(N-K), K = period effects + effects + 1; unit effects nested in clusters not counted (Stata's xtreg, fe)"


def _control_words(family: str, estimator: str, control_group: str) -> str:
    if estimator == "extended_twfe":
        return control_group
    if family == "linear":
        return "never- and not-yet-treated areas (TWFE)"
    return "never_treated"


def _label(family: str, estimator: str, n_treated: int, n_comparison: int) -> str:
    model = {"twfe": "two-way fixed effects", "extended_twfe": "extended two-way fixed effects (Wooldridge)"}[estimator]
    kind = "Poisson" if family == "poisson" else "linear"
    return f"Difference-in-differences, {kind} {model}: {n_treated} treated vs {n_comparison} comparison areas"


def _cohorts(sample: DiDSample, positions: np.ndarray) -> list[dict]:
    out = []
    for position in sorted(set(positions[positions != NEVER].tolist())):
        units = [str(u) for u, p in zip(sample.units, positions) if p == position]
        out.append({"adoption": str(sample.periods[position]), "index": int(position), "units": units})
    return out


def _series(sample: DiDSample, positions, observed: DiDFit, cohorts, family, outcome, extra: dict, bacon) -> dict:
    """Treated and comparison areas pooled per period, with the treated areas' counterfactual."""
    adopt = positions[sample.unit]
    treated = adopt != NEVER
    rate = family == "poisson" and sample.exposure is not None and outcome.per
    frame = pd.DataFrame({"time": sample.time, "treated": treated, "y": sample.counts if family == "poisson" else sample.y,
                          "cf": observed.counterfactual,
                          "exposure": sample.exposure if sample.exposure is not None else 1.0})
    series: dict[str, Any] = {"periods": [str(p) for p in sample.periods]}
    for name, mask in (("treated", treated), ("comparison", ~treated)):
        part = frame[mask].groupby("time")
        if family == "poisson":
            denominator = part["exposure"].sum() / (outcome.per if rate else 1.0) if rate else part.size()
            observed_values = part["y"].sum() / denominator
            counterfactual = part["cf"].sum() / denominator
        else:
            observed_values = part["y"].mean()
            counterfactual = part["cf"].mean()
        index = range(sample.n_times)
        series[name] = {"observed": _plain_list(observed_values.reindex(index)),
                        "counterfactual": _plain_list(counterfactual.reindex(index)) if name == "treated" else None}
    series["scale"] = (f"per {outcome.per:g} of the exposure" if rate else
                       ("count per area" if family == "poisson" else "mean per area"))
    series["cohorts"] = cohorts
    series["first_adoption_index"] = int(positions[positions != NEVER].min())
    series["transition"] = sample.transition
    if observed.estimator == "extended_twfe":
        series["event_study"] = observed.details.get("cells", [])
    if bacon is not None:
        series["bacon"] = bacon
    series.update(extra)
    return series


def _plain_list(values: pd.Series) -> list:
    return [None if pd.isna(v) else float(v) for v in values.to_numpy()]
