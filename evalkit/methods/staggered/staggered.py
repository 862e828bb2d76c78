"""``staggered_did``: Callaway & Sant'Anna (2021) difference-in-differences for staggered adoption.

Group-time effects ATT(g,t) (:mod:`.att_gt`), aggregated as R did's ``aggte`` does
(:mod:`.aggte`): ``att_simple``, ``att_dynamic`` (event study averaged over e >= 0),
``att_group``, ``att_calendar`` and ``event_<e>``. Continuous outcomes are reported as
differences. Count outcomes are analysed as rates (count / exposure * per, or the count
per unit-period without exposure) and reported as ratios: the ATT on the rate divided by
the treated units' counterfactual rate (their observed rate minus the ATT) in the same
cells, ``ratio = Y1 / (Y1 - ATT)``, with the ATT on the rate kept in ``details``. See
docs/methods/staggered_did.md.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from ...design import Design
from ...errors import EvalkitError
from ...inference.multiplier import multiplier_draws, multiplier_weights, summarize, sup_t_critical
from ...inference.randomization import randomization_interval_note
from ...periods import PERIODS_PER_YEAR
from ...results import Analysis, Check, Estimate
from .. import MethodResult
from ..estimates import finite_or_none, wald
from .aggte import Aggregation, aggregate_all, make_plan, share_weighted
from .att_gt import NEVER, GroupTime, GroupTimeError, control_membership, group_time_att, standard_errors
from .honest_inputs import bin_width, binned_event_study
from .permutation import PermutationTest, draw_assignments
from .pretrend import pooled_pre_trend_test

#: fewer treated units than this and the check warns (cluster-robust inference over-rejects)
FEW_TREATED = 6
#: R did's threshold for a zero standard error, sqrt(eps) * 10, for outcomes of order 1
DEGENERATE = np.sqrt(np.finfo(float).eps) * 10
MEASURES = ("count", "continuous", "share_found_within", "median_hours_to_found")
#: inference: auto uses randomization inference below this many adopting units and the analytic
#: (influence-function) errors from it. With 9 adopting areas in 3 cohorts the analytic intervals
#: covered 88% (att_simple) and 84% (calendar); randomization by test inversion covered within
#: 93-97% (benchmarks/staggered_coverage.py; docs/methods/staggered_did.md, "Inference"). The
#: threshold is did's (evalkit/methods/did/checks.py), where 7 of 13 still covered 90%.
AUTO_ANALYTIC_FROM = 20
#: randomization: every assignment of the adoption dates when there are at most this many
MAX_ENUMERATE = 5000


# ----------------------------------------------------------------------------- the method
def fit(design: Design, data, spec, index: int = 0) -> MethodResult:
    key = f"analysis[{index}]"
    outcome = design.outcome(spec.outcome)
    if outcome.measure not in MEASURES:
        raise EvalkitError(design.where, f"outcome '{outcome.name}' ({outcome.measure}) is not a unit-period outcome",
                           "use a count or continuous outcome, or survival_did for times to found", key=key + ".outcome")
    if list(data.units) == ["series"]:
        raise EvalkitError(design.where, "staggered_did compares areas, and the data are one series",
                           "map data.columns.unit, or use method: its", key=key)
    panel = _PanelArrays.build(design, data, spec, outcome, key)
    transition = design.intervention.transition if spec.transition == "exclude" else 0
    try:
        gt = group_time_att(panel.outcome, panel.cohort, control_group=spec.control_group,
                            anticipation=spec.anticipation, base_period=spec.base_period,
                            covariates=panel.covariates, estimation=spec.estimation)
    except GroupTimeError as exc:
        fix = ("remove a covariate that is constant or collinear among the comparison units"
               if spec.estimation == "regression" else
               "use estimation: regression, or fewer covariates (too few units to model who adopts)")
        raise EvalkitError(design.where, f"ATT(g,t) for cohort {panel.label(exc.cohort)} in {panel.label(exc.period)} "
                           f"cannot be estimated ({exc})", fix, key=key + ".covariates") from None
    plan = make_plan(gt, transition)
    if not plan.post.any():
        raise EvalkitError(design.where, f"no post-adoption period is left after the {transition}-period transition",
                           "extend data.window or use transition: include", key=key + ".transition")
    att = aggregate_all(plan, gt.att, gt.influence, transition)
    ratio = outcome.measure == "count"
    treated_mean = aggregate_all(plan, *_treated_means(gt, panel.outcome), transition) if ratio else None
    n_treated = int(gt.cohort_size.sum())
    declared = spec.inference
    spec = spec.model_copy(update={"inference": _choose_inference(design, spec, n_treated, key)})
    inference = _Inference(design, spec, gt.n, _reference(panel.outcome))
    test = _permutation_test(design, spec, gt, plan, panel, transition) if spec.inference == "randomization" else None
    common = {"outcome": outcome.name, "method": spec.method}
    info = {"analysis": index, "control_group": spec.control_group, "estimation": spec.estimation if spec.covariates else "none",
            "covariates": list(spec.covariates), "base_period": spec.base_period, "anticipation": spec.anticipation,
            "transition_excluded": transition, "inference": spec.inference,
            "inference_reason": _inference_reason(spec, declared, n_treated, gt.n, test), "units": gt.n,
            "treated_units": n_treated}
    reporter = _Reporter(inference, ratio, panel, common, info)
    result = MethodResult()
    names = {"simple": "att_simple", "dynamic": "att_dynamic", "group": "att_group", "calendar": "att_calendar"}
    for kind, estimand in names.items():
        tm = treated_mean[kind] if treated_mean is not None else None  # None exactly when not ratio
        estimate = reporter.estimate(estimand, att[kind].overall, att[kind].overall_influence,
                                     None if tm is None else (tm.overall, tm.overall_influence))
        if kind in ("group", "calendar"):
            estimate.details["components"] = reporter.components(att[kind], tm, kind)
            if test is not None:
                _randomization_components(estimate.details["components"], att[kind], test, kind, ratio, design.alpha)
        _one_inference(estimate, test, kind, ratio, design.alpha, spec)
        result.estimates.append(estimate)
    simple_estimate = result.estimates[0]
    simple_estimate.details["att_gt"] = reporter.att_gt_table(gt, plan)
    if ratio:
        simple_estimate.details.update(_per_year(design, plan, gt, panel, inference))
        if test is not None:
            _per_year_from_ratio(simple_estimate.details, simple_estimate.estimate, simple_estimate.ci_low,
                                 simple_estimate.ci_high)
    event = att["dynamic"]
    event_tm = treated_mean["dynamic"] if treated_mean is not None else None
    cohorts_at = _cohorts_at(gt, plan, event.labels)
    for j, e in enumerate(event.labels):
        tm = None if event_tm is None else (event_tm.values[j], event_tm.influence[:, j])
        result.estimates.append(reporter.estimate(f"event_{int(e)}", event.values[j], event.influence[:, j], tm,
                                                  extra={"event_time": int(e), "cohorts": cohorts_at[j]}))
        _one_inference(result.estimates[-1], test, f"event_{int(e)}", ratio, design.alpha, spec)
    sparse = _sparse_base_check(gt, plan, panel, common) if ratio else None
    if sparse is not None and sparse.status == "fail":
        if simple_estimate.estimate is not None:
            _refuse_empty_headline(design, simple_estimate, ratio, key)   # a degenerate spread stops as before
        _withhold_ratios(result.estimates, sparse.detail)
    _refuse_empty_headline(design, simple_estimate, ratio and simple_estimate.scale == "ratio", key)
    result.checks += _checks(design, spec, gt, plan, att["dynamic"], panel, outcome, transition)
    if sparse is not None:
        result.checks.append(sparse)
    result.analysis = Analysis(
        method=spec.method, outcome=outcome.name,
        label=f"Staggered difference-in-differences (Callaway & Sant'Anna), {spec.control_group.replace('_', '-')} comparison",
        settings={**info, "reps": spec.reps, "bootstrap_weights": spec.bootstrap_weights,
                  "cohorts": [{"cohort": panel.label(g), "units": int(s)} for g, s in zip(gt.cohorts, gt.cohort_size)],
                  "never_treated_units": int(np.sum(gt.unit_cohort == NEVER)), "frequency": design.data.frequency,
                  "periods": [panel.label(0), panel.label(panel.outcome.shape[1] - 1)],
                  "scale": "ratio" if ratio else "difference", "rate_per": outcome.per if ratio else None,
                  "exposure": panel.has_exposure, "dropped_units": panel.dropped},
        series=reporter.event_series(gt, plan, event, event_tm, transition, spec),
        notes=panel.notes,
    )
    if test is not None:
        _randomization_series(result.analysis.series, result.estimates, ratio, test)
    honest = _honest_inputs(design, spec, gt, panel, transition, ratio)
    if honest is not None:
        result.analysis.series["honest_inputs"] = honest
    if sparse is not None and sparse.status == "fail":
        series = result.analysis.series
        for name in ("ratio", "ratio_ci_low", "ratio_ci_high"):
            series[name] = [None] * len(series.get(name, []))
        series["ratio_withheld"] = True
        result.analysis.settings["scale"] = "difference (ratio withheld: sparse base counts)"
    return result


def _honest_inputs(design: Design, spec, gt: GroupTime, panel, transition: int, ratio: bool) -> dict | None:
    """The binned universal-base event study for the parallel-trends sensitivity (:mod:`.honest_inputs`).

    Always from the influence functions (analytic), whatever the analysis's inference: the
    relative-magnitudes test needs a normal event study with its joint covariance.
    """
    if spec.base_period != "universal":
        try:
            gt = group_time_att(panel.outcome, panel.cohort, control_group=spec.control_group,
                                anticipation=spec.anticipation, base_period="universal",
                                covariates=panel.covariates, estimation=spec.estimation)
        except (GroupTimeError, np.linalg.LinAlgError):
            return None
    plan = make_plan(gt, transition)
    width = bin_width(gt.unit_cohort, NEVER, PERIODS_PER_YEAR[design.data.frequency], spec.anticipation)
    try:
        found = binned_event_study(gt, plan, width, spec.anticipation)
    except (ValueError, np.linalg.LinAlgError):
        return None   # the sensitivity falls back to the pre-trend check's bins; the run goes on
    if found is None or not np.all(np.isfinite(found["betahat"])):
        return None
    sigma = np.array(found["sigma"])
    if not np.all(np.sqrt(np.diag(sigma)) > DEGENERATE * _reference(panel.outcome)):
        return None   # a bin without spread (e.g. a sparse panel's zero counts): no normal event study to bound
    try:
        np.linalg.cholesky(sigma)
    except np.linalg.LinAlgError:
        return None
    unit = "year" if width == PERIODS_PER_YEAR[design.data.frequency] else f"{width}-period bin"
    pre, post = found["num_pre"], found["num_post"]
    left = (f"; {found['cells_beyond_bins']} post-adoption cell(s) more than {post} {unit}s after adoption are left "
            f"out, so the target is the average over the first {post}" if found["cells_beyond_bins"] else "")
    if found["cohorts_without_reference"]:
        left += (f"; {found['cohorts_without_reference']} cohort(s) adopting within a {unit} of the data's start have no "
                 f"reference {unit} and are left out, so the target averages the other cohorts only")
    source = (f"staggered_did's event study with a universal base: {pre} pre-adoption and {post} post-adoption "
              f"{unit}s of event time against the {unit} before adoption, their joint covariance from the influence "
              f"functions (analytic); target: att_simple measured from that reference {unit} (the post-adoption "
              f"{unit}s weighted by their share of the headline's cells){left}")
    return {"betahat": found["betahat"], "sigma": found["sigma"], "num_pre": pre, "num_post": post,
            "l_vec": found["l_vec"], "target": "att_simple", "event_bins": found["bins"], "bin_width": int(width),
            "scale": "rate difference" if ratio else "difference", "base_period": "universal",
            "cells_left_out": found["cells_left_out"], "source": source}


# ----------------------------------------------------------------------------- data
class _PanelArrays:
    """The panel as arrays: outcome (n, T), cohort positions, covariates, period labels."""

    def __init__(self, outcome, cohort, covariates, periods, units, has_exposure, exposure, dropped, notes, per=1.0):
        self.outcome = outcome
        self.per = per
        self._labels = None
        self.cohort = cohort
        self.covariates = covariates
        self.periods = periods
        self.units = units
        self.has_exposure = has_exposure
        self.exposure = exposure
        self.dropped = dropped
        self.notes = notes

    def label(self, position) -> str:
        if self._labels is None:
            self._labels = [str(p) for p in self.periods]
        return self._labels[int(position)]

    @classmethod
    def build(cls, design: Design, data, spec, outcome, key: str) -> _PanelArrays:
        periods = data.periods
        comparison = set(map(_unit_key, data.comparison_units))
        units = [u for u in data.units if u in data.adoption or _unit_key(u) in comparison]
        panel = data.panel
        column = outcome.name
        # positions of each row in the units x periods grid (rows of other units: -1)
        row_unit = pd.Index(units).get_indexer(panel["unit"])
        row_period = periods.get_indexer(panel["period"])
        inside = (row_unit >= 0) & (row_period >= 0)
        row_unit, row_period = row_unit[inside], row_period[inside]

        def wide(name):
            table = np.full((len(units), len(periods)), np.nan)
            table[row_unit, row_period] = panel[name].to_numpy(dtype=float)[inside]
            return table

        values = wide(column)
        has_exposure = outcome.measure == "count" and data.has_exposure
        exposure = wide("exposure") if has_exposure else None
        if outcome.measure == "count" and has_exposure:
            values = values / exposure * (outcome.per or 1.0)
        covariates = None
        if spec.covariates:
            missing = [c for c in spec.covariates if c not in panel.columns]
            if missing:
                raise EvalkitError(design.where, f"covariate '{missing[0]}' is not a column of the panel",
                                   "covariates need layout: panel with that column in data.source", key=key + ".covariates")
            covariates = np.stack([wide(c) for c in spec.covariates], axis=2)       # (n, T, p)
        keep = np.isfinite(values).all(axis=1)
        if covariates is not None:
            keep &= np.isfinite(covariates).all(axis=(1, 2))
        dropped = [str(u) for u, k in zip(units, keep) if not k]
        notes = []
        if dropped:
            notes.append(f"{len(dropped)} unit(s) with a missing outcome or covariate value left out: "
                         + ", ".join(dropped[:10]) + ("..." if len(dropped) > 10 else ""))
        if not any(k and u in data.adoption for u, k in zip(units, keep)) and any(u in data.adoption for u in units):
            outcome_missing = ~np.isfinite(values).all(axis=1)
            treated_rows = np.array([u in data.adoption for u in units])
            if np.all(outcome_missing[treated_rows]) and outcome.measure in ("share_found_within", "median_hours_to_found"):
                position = next(i for i, o in enumerate(design.outcomes) if o.name == outcome.name)
                raise EvalkitError(design.where, f"outcome '{outcome.name}' is missing in some period for every adopting "
                                   f"unit (fewer than {outcome.min_episodes} episodes in an area-period)",
                                   "lower min_episodes, use a coarser data.frequency, or use method: survival_did",
                                   key=f"outcomes[{position}].min_episodes")
            what = "outcome" if np.all(outcome_missing[treated_rows]) or covariates is None else "outcome or covariate"
            raise EvalkitError(design.data.source, f"every adopting unit has a missing {what} value "
                               f"(left out: {', '.join(d for d in dropped[:5])})",
                               "fill in the values" + (", or remove the covariate from analysis covariates"
                                                       if what != "outcome" else ", or narrow data.window"))
        units = [u for u, k in zip(units, keep) if k]
        values = values[keep]
        exposure = exposure[keep] if exposure is not None else None
        if values.size and np.nanmin(values) == np.nanmax(values):
            raise EvalkitError(design.data.source, f"outcome '{outcome.name}' is {values.flat[0]:g} in every unit and "
                               "period, so there is no difference to estimate", "check the outcome column and data.window")
        spread = np.ptp(values, axis=1) if values.size else np.zeros(0)
        if values.size and not np.any(spread > 1e-12 * np.max(np.abs(values))):
            raise EvalkitError(design.data.source, f"outcome '{outcome.name}' never changes over time within a unit"
                               + (" (per unit of exposure)" if has_exposure else "") + ", so there is no change to compare",
                               "check the outcome column and data.window")
        if covariates is not None:
            covariates = covariates[keep]
            _check_covariates(design, spec, covariates, key)
            if np.all(covariates == covariates[:, :1, :]):
                covariates = covariates[:, 0, :]                                   # time-invariant
        treated = [u in data.adoption for u in units]
        positions = periods.get_indexer([data.adoption[u] for u, d in zip(units, treated) if d])
        cohort = np.full(len(units), NEVER, dtype=np.int64)
        cohort[np.flatnonzero(treated)] = positions
        arrays = cls(values, cohort, covariates, periods, units, has_exposure, exposure, dropped, notes,
                     per=(outcome.per or 1.0) if has_exposure else 1.0)
        arrays._check_timing(design, spec, key)
        return arrays

    def _check_timing(self, design: Design, spec, key: str) -> None:
        cohort = self.cohort
        treated = cohort != NEVER
        if not treated.any():
            raise EvalkitError(design.where, "no treated unit is left in the panel", "check units and missing values", key=key)
        first = int(cohort[treated].min())
        if first - spec.anticipation - 1 < 0:
            raise EvalkitError(design.where, f"cohort {self.label(first)} has no period before its anticipation window",
                               "lower anticipation or extend data.window back", key=key + ".anticipation")
        if treated.all():
            if spec.control_group == "never_treated":
                raise EvalkitError(design.where, "every unit adopts, so there are no never-treated comparison units",
                                   "use control_group: not_yet_treated, or add comparison units", key=key + ".control_group")
            # as R did: the last cohort becomes the comparison group and periods from its
            # (anticipated) adoption on are dropped
            last = int(cohort.max())
            end = last - spec.anticipation
            if np.sum(np.unique(cohort) < end) == 0 or end <= first:
                if np.unique(cohort).size == 1:
                    raise EvalkitError(design.where, "only one adoption date and no never-treated units: nothing to "
                                       "compare with", "add comparison units", key=key + ".control_group")
                raise EvalkitError(design.where, f"no never-treated units, and with anticipation: {spec.anticipation} "
                                   f"the last cohort ({self.label(last)}) compares only until {self.label(max(end - 1, 0))}, "
                                   f"before the first adoption ({self.label(first)})",
                                   "lower anticipation or add never-treated units", key=key + ".anticipation")
            if np.any((cohort < last) & (cohort >= end)):
                raise EvalkitError(design.where, "a cohort adopts inside the last cohort's anticipation window",
                                   "lower anticipation or add never-treated units", key=key + ".anticipation")
            self.notes.append(f"no never-treated units: the last cohort ({self.label(last)}) is the comparison group and "
                              f"periods from {self.label(end)} on are left out, as R did does")
            self.cohort = np.where(cohort == last, NEVER, cohort)
            self.outcome = self.outcome[:, :end]
            if self.exposure is not None:
                self.exposure = self.exposure[:, :end]
            if self.covariates is not None and self.covariates.ndim == 3:
                self.covariates = self.covariates[:, :end, :]


def _unit_key(unit):
    return str(unit)


def _check_covariates(design: Design, spec, covariates: np.ndarray, key: str) -> None:
    """A covariate constant across units, or a linear combination of the others, cannot be adjusted for."""
    stacked = covariates.reshape(-1, covariates.shape[2])              # every unit-period
    columns = [np.ones(stacked.shape[0])]
    for j, name in enumerate(spec.covariates):
        if np.all(covariates[:, :, j] == covariates[:1, :, j]):
            raise EvalkitError(design.where, f"covariate '{name}' takes the same value for every unit",
                               "remove it: it cannot adjust the comparison", key=f"{key}.covariates[{j}]")
        candidate = np.column_stack(columns + [stacked[:, j]])
        if np.linalg.matrix_rank(candidate) < candidate.shape[1]:
            others = ", ".join(f"'{c}'" for c in spec.covariates[:j])
            raise EvalkitError(design.where, f"covariate '{name}' is a linear combination of {others} (collinear)",
                               "remove it: it adds nothing the others do not", key=f"{key}.covariates[{j}]")
        columns.append(stacked[:, j])


def _refuse_empty_headline(design: Design, estimate: Estimate, ratio: bool, key: str) -> None:
    """att_simple is the headline: without a value or an interval the run cannot say anything."""
    if estimate.estimate is None:
        raise EvalkitError(design.where, "the adopting units' rate without the intervention (their rate minus the ATT) "
                           "is not above 0, so att_simple cannot be given as a ratio",
                           "check the outcome column: the adopting units need counts after adoption", key=key)
    if estimate.se is None:
        what = "the ATT" + (" ratio" if ratio else "")
        raise EvalkitError(design.where, f"{what} has no standard error: the outcome barely varies across units "
                           "(e.g. one unit per cohort and a constant comparison outcome)",
                           "check the outcome column, or add comparison units whose outcome varies", key=key)


def _reference(outcome: np.ndarray) -> float:
    """The outcome's scale for telling a zero standard error from a small one: its spread,
    plus a millionth of its size (rounding error in the changes of a large, flat outcome)."""
    values = outcome[np.isfinite(outcome)]
    return float(np.std(values) + 1e-6 * np.max(np.abs(values))) if values.size else 1.0


def _treated_means(gt: GroupTime, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each cell's treated-cohort mean outcome in period t, with its influence function."""
    n = gt.n
    idx = gt.cohort_index
    members = gt.unit_cohort[:, None] == gt.cohort[None, :]                       # (n, K)
    sizes = gt.cohort_size[idx].astype(float)
    Yt = Y[:, gt.period]                                                           # (n, K)
    means = (members * Yt).sum(axis=0) / sizes
    influence = (n / sizes) * members * (Yt - means)
    return means, influence


# ----------------------------------------------------------------------------- choosing and naming the inference
def _choose_inference(design: Design, spec, n_treated: int, key: str) -> str:
    """The inference in use: ``auto`` follows the number of adopting units (:data:`AUTO_ANALYTIC_FROM`)."""
    if spec.inference == "randomization" and spec.covariates:
        raise EvalkitError(design.where, "inference: randomization for staggered_did is implemented without covariates",
                           "remove covariates, or use inference: analytic (and read the few_treated check)",
                           key=key + ".inference")
    if spec.inference != "auto":
        return spec.inference
    if n_treated < AUTO_ANALYTIC_FROM and not spec.covariates:
        return "randomization"
    return "analytic"


def _inference_reason(spec, declared: str, n_treated: int, n_units: int, test) -> str:
    """Why this inference, in one sentence (the evidence box quotes it)."""
    areas = f"{n_treated} unit{'s' if n_treated != 1 else ''} adopted"
    if spec.inference == "randomization":
        why = (f"chosen by default because {areas} (fewer than {AUTO_ANALYTIC_FROM}), where influence-function "
               "intervals cover too little" if declared == "auto" else "as declared in the design")
        how = (f"every one of the {test.assignments.n_assignments} ways" if test.assignments.exhaustive
               else f"{test.assignments.reps} random re-assignments")
        return (f"randomization inference: {why}; the p-value compares each estimate with {how} of the adoption dates "
                f"across the {n_units} units, and the interval holds the effects that test does not reject "
                "(test inversion)")
    if declared == "auto" and n_treated < AUTO_ANALYTIC_FROM:
        return ("influence-function (analytic) standard errors: randomization inference is implemented without "
                f"covariates, so the analytic errors are used although only {areas}; see the few_treated check")
    if declared == "auto":
        return (f"influence-function (analytic) standard errors, chosen by default: {areas}, at least "
                f"{AUTO_ANALYTIC_FROM}")
    what = "multiplier bootstrap" if spec.inference == "multiplier_bootstrap" else "influence-function (analytic)"
    few = (f"; only {areas}, so they may be too narrow: see the few_treated check"
           if n_treated < AUTO_ANALYTIC_FROM else "")
    return f"{what} standard errors, as declared in the design{few}"


def _permutation_test(design: Design, spec, gt: GroupTime, plan, panel: _PanelArrays, transition: int) -> PermutationTest:
    """Randomization tests of every aggregated parameter, sharing one set of assignments (seeded by the design)."""
    groups = np.append(gt.cohorts, NEVER)
    controls = control_membership(gt.cohort, gt.period, gt.base, groups, spec.control_group, spec.anticipation)
    rng = np.random.default_rng(design.seed)
    assignments = draw_assignments(np.searchsorted(groups, gt.unit_cohort), rng, spec.reps,
                                   max(MAX_ENUMERATE, spec.reps + 1))
    return PermutationTest(gt, plan, panel.outcome, controls, assignments, transition)


def _one_inference(estimate: Estimate, test, name: str, ratio: bool, alpha: float, spec) -> None:
    """Name the procedure behind the estimate's interval, p-value and verdict; with randomization,
    replace the analytic ones (kept as ``*_analytic``) by the test and its inversion."""
    d = estimate.details
    if test is None:
        if spec.inference == "multiplier_bootstrap":
            d["p_value_method"] = "two-sided normal test on the multiplier-bootstrap standard error"
            d["ci_method"] = "estimate -/+ z se, the multiplier bootstrap's standard error" + (
                " on the log scale" if estimate.scale == "ratio" else "")
        else:
            d["p_value_method"] = "two-sided normal test on the influence-function (analytic) standard error"
            d["ci_method"] = "estimate -/+ z se, influence-function (analytic) standard error" + (
                " on the log scale" if estimate.scale == "ratio" else "")
        d["interval_method"] = "Wald (influence function)"
        d["alpha"] = alpha
        d["test_rejects"] = None if estimate.p_value is None else bool(estimate.p_value < alpha)
        return
    d["p_value_analytic"], d["ci_low_analytic"], d["ci_high_analytic"] = estimate.p_value, estimate.ci_low, estimate.ci_high
    nan = float("nan")
    difference = d["difference"] if ratio else estimate.estimate
    difference_se = (d.get("difference_se") if ratio else estimate.se) or nan
    p_difference = test.p_value(name, False)
    inverted_difference = test.interval(name, False, difference, difference_se, alpha)
    a = test.assignments
    n_treated, n_units = int(d.get("treated_units", 0)), int(d.get("units", 0))
    if ratio:
        d["difference_p_value_analytic"] = d["difference_p_value"]
        d["difference_ci_low_analytic"], d["difference_ci_high_analytic"] = d["difference_ci_low"], d["difference_ci_high"]
        d["difference_p_value_method"] = _randomization_words(a, name, False, alpha)[0]
        d["difference_ci_method"] = _randomization_words(a, name, False, alpha)[1]
        d["difference_interval_note"] = randomization_interval_note(inverted_difference, a, n_treated, n_units, alpha)
        d["difference_p_value"] = p_difference
        d["difference_ci_low"], d["difference_ci_high"] = inverted_difference.low, inverted_difference.high
        log_value = float(np.log(estimate.estimate)) if estimate.estimate is not None and estimate.estimate > 0 else nan
        inverted = test.interval(name, True, log_value, estimate.se or nan, alpha)
        estimate.p_value = test.p_value(name, True) if np.isfinite(log_value) else None
        estimate.ci_low = None if inverted.low is None else float(np.exp(inverted.low))
        estimate.ci_high = None if inverted.high is None else float(np.exp(inverted.high))
    else:
        inverted = inverted_difference
        estimate.p_value = p_difference
        estimate.ci_low, estimate.ci_high = inverted.low, inverted.high
    d["p_value_method"], d["ci_method"] = _randomization_words(a, name, ratio, alpha)
    d["interval_method"] = "randomization test inversion"
    d["interval_note"] = randomization_interval_note(inverted, a, n_treated, n_units, alpha)
    d["alpha"] = alpha
    d["test_rejects"] = None if estimate.p_value is None else bool(estimate.p_value < alpha)
    d["randomization"] = {"n_assignments": a.n_assignments, "exhaustive": a.exhaustive, "reps": a.reps,
                          "smallest_p": a.smallest_p, "interval": {"reason": inverted.reason}}


def _randomization_words(assignments, name: str, ratio: bool, alpha: float) -> tuple[str, str]:
    """(p_value_method, ci_method) in words."""
    a = assignments
    how = (f"all {a.n_assignments} assignments" if a.exhaustive else f"{a.reps} random permutations")
    statistic = "the log rate ratio" if ratio else "the estimate"
    shift = ("the adopting units' post-adoption rates divided by the hypothesised ratio" if ratio else
             "the hypothesised effect subtracted from the adopting units' post-adoption outcomes")
    if name.startswith("event_") and int(name.split("_", 1)[1]) < 0:
        shift = shift.replace("post-adoption", "event-time " + name.split("_", 1)[1])
    return (f"randomization inference, {how} of the adoption dates across units ({statistic}, two-sided)",
            f"test inversion: the effects the randomization test does not reject at alpha = {alpha:g} "
            f"({shift}), the same assignments for every effect")


def _randomization_components(rows: list[dict], agg: Aggregation, test, kind: str, ratio: bool, alpha: float) -> None:
    """Per-cohort and per-period rows from the same randomization test and inversion as the estimates."""
    for row, label in zip(rows, agg.labels):
        name = f"{kind}_{int(label)}"
        se = row["se"] if row["se"] is not None else float("nan")
        inverted = test.interval(name, False, row["estimate"], se, alpha)
        row.update({"ci_low": inverted.low, "ci_high": inverted.high, "p_value": test.p_value(name, False),
                    "interval_method": "randomization test inversion"})
        if ratio and row.get("ratio") is not None:
            log_se = (np.log(row["ratio_ci_high"]) - np.log(row["ratio_ci_low"])) / 2 / stats.norm.ppf(1 - alpha / 2) \
                if row.get("ratio_ci_low") and row.get("ratio_ci_high") else float("nan")
            inverted = test.interval(name, True, float(np.log(row["ratio"])), log_se, alpha)
            row.update({"ratio_ci_low": None if inverted.low is None else float(np.exp(inverted.low)),
                        "ratio_ci_high": None if inverted.high is None else float(np.exp(inverted.high)),
                        "ratio_p_value": test.p_value(name, True)})


def _per_year_from_ratio(details: dict, ratio: float | None, low: float | None, high: float | None) -> None:
    """Counts a year at the ratio's interval ends (expected with / expected without = ratio), as did does."""
    per_year = details["per_year"]
    with_effect = per_year / (1.0 - 1.0 / ratio) if ratio is not None and ratio != 1.0 else None

    def at(end):
        if end is None or with_effect is None or not np.isfinite(with_effect):
            return None
        return float(with_effect * (1.0 - 1.0 / end))

    details["per_year_ci_low"], details["per_year_ci_high"] = at(low), at(high)
    details["per_year_se"] = None
    details["per_year_interval_method"] = "the ratio's interval ends applied to the expected count with the effect"


def _randomization_series(series: dict, estimates: list[Estimate], ratio: bool, test) -> None:
    """The event study's pointwise intervals from the same randomization test inversion as its estimates."""
    by_name = {e.estimand: e for e in estimates}
    lows, highs, r_lows, r_highs = [], [], [], []
    for e in series["event_time"]:
        est = by_name.get(f"event_{int(e)}")
        d = est.details if est is not None else {}
        if ratio:
            assert est is not None  # fit() adds an event_<e> estimate for every event time of the series
            lows.append(d.get("difference_ci_low"))
            highs.append(d.get("difference_ci_high"))
            r_lows.append(d.get("ratio_withheld", {}).get("ci_low") if "ratio_withheld" in d else est.ci_low)
            r_highs.append(d.get("ratio_withheld", {}).get("ci_high") if "ratio_withheld" in d else est.ci_high)
        else:
            lows.append(est.ci_low if est is not None else None)
            highs.append(est.ci_high if est is not None else None)
    series["ci_low"], series["ci_high"] = lows, highs
    if ratio and "ratio" in series:
        series["ratio_ci_low"], series["ratio_ci_high"] = r_lows, r_highs
    series["interval_method"] = ("randomization test inversion (pointwise); the uniform band is the multiplier "
                                 "bootstrap's, for the figure")


# ----------------------------------------------------------------------------- inference
class _Inference:
    """Standard errors and critical values: analytic, or the multiplier bootstrap."""

    def __init__(self, design: Design, spec, n: int, reference: float = 1.0):
        self.alpha = design.alpha
        self.n = n
        #: the outcome's scale: a standard error below sqrt(eps) * 10 of it is rounding error
        #: (R did's threshold, for outcomes of order 1); log ratios use 1
        self.reference = reference
        self.bootstrap = spec.inference == "multiplier_bootstrap"
        self.z = float(stats.norm.ppf(1 - design.alpha / 2))
        rng = np.random.default_rng(design.seed)
        self.weights = multiplier_weights(rng, spec.reps, n, spec.bootstrap_weights)

    def family(self, influence: np.ndarray, uniform: bool = False, reference: float | None = None):
        """(se, pointwise critical value, uniform critical value) for a family of parameters.

        The uniform (sup-t) critical value always comes from the multiplier bootstrap; it
        is computed only when asked for (``uniform``) or when the bootstrap gives the errors.
        """
        reference = self.reference if reference is None else reference
        influence = influence.reshape(influence.shape[0], -1)
        if self.bootstrap:
            boot = summarize(multiplier_draws(influence, self.weights), self.n, self.alpha, reference)
            se, critical = boot.se, boot.critical
        else:
            se = standard_errors(influence)
            critical = self.z
            if uniform:   # sup-t over the draws standardised by the analytic errors
                critical = sup_t_critical(multiplier_draws(influence, self.weights), se * np.sqrt(self.n), self.alpha,
                                          reference)
        se = np.where(se > DEGENERATE * reference, se, np.nan)
        critical = critical if np.isfinite(critical) else self.z
        return se, self.z, max(critical, self.z)

    def scalar_se(self, influence: np.ndarray, reference: float | None = None) -> float:
        reference = self.reference if reference is None else reference
        if self.bootstrap:
            se = summarize(multiplier_draws(influence, self.weights), self.n, self.alpha, reference).se[0]
        else:
            se = standard_errors(influence.reshape(-1, 1))[0]
        return float(se) if np.isfinite(se) and se > DEGENERATE * reference else float("nan")


def _log_ratio(att: float, att_inf: np.ndarray, treated: float, treated_inf: np.ndarray):
    """log(Y1 / (Y1 - ATT)) and its influence function; NaN when a rate is not positive."""
    counterfactual = treated - att
    if not (treated > 0 and counterfactual > 0):
        return float("nan"), np.zeros_like(att_inf), counterfactual
    value = np.log(treated) - np.log(counterfactual)
    influence = treated_inf / treated - (treated_inf - att_inf) / counterfactual
    return float(value), influence, counterfactual


def _p_value(estimate: float, se: float) -> float | None:
    if not (np.isfinite(se) and se > 0 and np.isfinite(estimate)):
        return None
    return math.erfc(abs(estimate / se) / math.sqrt(2.0))   # two-sided normal p-value


def _plain(values: np.ndarray) -> list:
    """Floats as a list, NaN as None."""
    values = np.asarray(values, dtype=float)
    return [v if f else None for v, f in zip(values.tolist(), np.isfinite(values).tolist())]


class _Reporter:
    """Turns aggregated parameters and influence functions into Estimate records and series."""

    def __init__(self, inference: _Inference, ratio: bool, panel: _PanelArrays, common: dict, info: dict):
        self.inference = inference
        self.ratio = ratio
        self.panel = panel
        self.common = common
        self.info = info

    def _difference(self, value, influence):
        se = self.inference.scalar_se(influence)
        z = self.inference.z
        _, low, high = wald(value, se, z, False) if np.isfinite(se) else (value, float("nan"), float("nan"))
        return {"estimate": float(value), "se": se, "ci_low": low, "ci_high": high, "p_value": _p_value(value, se)}

    def _ratio(self, value, influence, treated):
        log_ratio, log_inf, counterfactual = _log_ratio(value, influence, treated[0], treated[1])
        se = self.inference.scalar_se(log_inf, reference=1.0) if np.isfinite(log_ratio) else float("nan")
        z = self.inference.z
        nan = float("nan")
        ratio, low, high = wald(log_ratio, se, z, True) if np.isfinite(log_ratio) else (nan, nan, nan)
        if not np.isfinite(se):
            low = high = nan
        return {"estimate": ratio, "se": se, "ci_low": low, "ci_high": high,
                "p_value": _p_value(log_ratio, se), "treated_rate": float(treated[0]),
                "counterfactual_rate": float(counterfactual)}

    def estimate(self, estimand: str, value: float, influence: np.ndarray, treated=None, extra=None) -> Estimate:
        diff = self._difference(value, influence)
        details = {**self.info, **(extra or {})}
        if not self.ratio:
            return Estimate(**self.common, estimand=estimand, scale="difference", estimate=diff["estimate"],
                            se=finite_or_none(diff["se"]), ci_low=finite_or_none(diff["ci_low"]),
                            ci_high=finite_or_none(diff["ci_high"]), p_value=diff["p_value"], details=details)
        rat = self._ratio(value, influence, treated)
        details.update({
            "se_scale": "log", "difference": diff["estimate"], "difference_se": finite_or_none(diff["se"]),
            "difference_ci_low": finite_or_none(diff["ci_low"]), "difference_ci_high": finite_or_none(diff["ci_high"]),
            "difference_p_value": diff["p_value"], "difference_unit": self._rate_unit(),
            "treated_rate": rat["treated_rate"], "counterfactual_rate": rat["counterfactual_rate"],
        })
        return Estimate(**self.common, estimand=estimand, scale="ratio", estimate=finite_or_none(rat["estimate"]),
                        se=finite_or_none(rat["se"]), ci_low=finite_or_none(rat["ci_low"]),
                        ci_high=finite_or_none(rat["ci_high"]), p_value=rat["p_value"], details=details)

    def _rate_unit(self) -> str:
        if self.panel.has_exposure:
            return f"rate per {self.panel.per:g} of exposure per period"
        return "count per unit per period"

    def components(self, agg: Aggregation, treated: Aggregation | None, kind: str) -> list[dict]:
        se, z, _ = self.inference.family(agg.influence)
        rows = []
        for j, label in enumerate(agg.labels):
            row = {"cohort" if kind == "group" else "period": self.panel.label(label),
                   "estimate": float(agg.values[j]), "se": finite_or_none(se[j]),
                   "ci_low": finite_or_none(agg.values[j] - z * se[j]), "ci_high": finite_or_none(agg.values[j] + z * se[j])}
            if treated is not None:
                rat = self._ratio(agg.values[j], agg.influence[:, j], (treated.values[j], treated.influence[:, j]))
                row.update({"ratio": finite_or_none(rat["estimate"]), "ratio_ci_low": finite_or_none(rat["ci_low"]),
                            "ratio_ci_high": finite_or_none(rat["ci_high"])})
            rows.append(row)
        return rows

    def att_gt_table(self, gt: GroupTime, plan) -> list[dict]:
        """One row per cell; the uniform band (R's cband) only under the multiplier bootstrap."""
        bootstrap = self.inference.bootstrap
        se, z, uniform = self.inference.family(gt.influence, uniform=bootstrap)
        columns = {
            "cohort": [self.panel.label(g) for g in gt.cohort], "period": [self.panel.label(t) for t in gt.period],
            "base": [self.panel.label(b) for b in gt.base], "event_time": (gt.period - gt.cohort).tolist(),
            "post": (gt.period >= gt.cohort).tolist(), "in_aggregates": plan.post.tolist(),
            "estimate": _plain(gt.att), "se": _plain(se),
            "ci_low": _plain(gt.att - z * se), "ci_high": _plain(gt.att + z * se),
            "band_low": _plain(gt.att - uniform * se) if bootstrap else [None] * gt.att.size,
            "band_high": _plain(gt.att + uniform * se) if bootstrap else [None] * gt.att.size,
            "n_treated": gt.n_treated.astype(int).tolist(), "n_control": gt.n_control.astype(int).tolist(),
        }
        names = list(columns)
        return [dict(zip(names, row)) for row in zip(*columns.values())]

    def event_series(self, gt: GroupTime, plan, event: Aggregation, treated: Aggregation | None, transition: int,
                     spec) -> dict:
        se, z, uniform = self.inference.family(event.influence, uniform=True)
        values = event.values
        series = {
            "kind": "event_study",
            "scale": "rate_difference" if self.ratio else "difference",
            "event_time": [int(e) for e in event.labels],
            "estimate": _plain(values),
            "se": _plain(se),
            "ci_low": _plain(values - z * se),
            "ci_high": _plain(values + z * se),
            "band_low": _plain(values - uniform * se),
            "band_high": _plain(values + uniform * se),
            "band_critical": float(uniform),
            "cohorts": _cohorts_at(gt, plan, event.labels),
            "transition": int(transition),
            "reference_event_time": -1 - spec.anticipation if spec.base_period == "universal" else None,
            "anticipation": spec.anticipation,
            "base_period": spec.base_period,
            "overall": {"estimand": "att_dynamic", "estimate": float(event.overall)},
        }
        if treated is not None:
            ratios, lows, highs = [], [], []
            for j in range(values.size):
                rat = self._ratio(values[j], event.influence[:, j], (treated.values[j], treated.influence[:, j]))
                ratios.append(finite_or_none(rat["estimate"]))
                lows.append(finite_or_none(rat["ci_low"]))
                highs.append(finite_or_none(rat["ci_high"]))
            series.update({"ratio": ratios, "ratio_ci_low": lows, "ratio_ci_high": highs,
                           "treated_rate": [float(v) for v in treated.values]})
        return series


def _cohorts_at(gt: GroupTime, plan, events: np.ndarray) -> list[int]:
    """How many cohorts have an estimate at each event time."""
    e = gt.event_time[plan.valid]
    return np.bincount(np.searchsorted(events, e), minlength=events.size).astype(int).tolist()


def _per_year(design: Design, plan, gt: GroupTime, panel: _PanelArrays, inference: _Inference) -> dict:
    """The simple ATT in counts a year across the treated units (for the headline's absolute number)."""
    if panel.has_exposure:
        sizes = gt.cohort_size[gt.cohort_index]
        members = gt.unit_cohort[:, None] == gt.cohort[None, :]
        exposure = (members * panel.exposure[:, gt.period]).sum(axis=0) / sizes
        to_count = exposure / panel.per
    else:
        to_count = np.ones(gt.att.size)
    value, influence = share_weighted(plan, plan.post, gt.att * to_count, gt.influence * to_count[None, :])
    scale = PERIODS_PER_YEAR[design.data.frequency] * float(gt.cohort_size.sum())
    se = inference.scalar_se(influence, reference=inference.reference * float(np.max(to_count, initial=1.0)))
    per_year = value * scale
    return {"per_year": per_year, "per_year_se": finite_or_none(se * scale),
            "per_year_ci_low": finite_or_none(per_year - inference.z * se * scale),
            "per_year_ci_high": finite_or_none(per_year + inference.z * se * scale),
            "per_year_meaning": f"change in the count a year across the {int(gt.cohort_size.sum())} treated units once adopted"}


# ----------------------------------------------------------------------------- sparse ratios
#: below this effective number of counts in the adopting cohorts' base periods the ratio's
#: counterfactual (treated rate minus the ATT) is too noisy to divide by: the ratio is
#: withheld and the rate difference reported (Poisson relative SE 1/sqrt(25) = 20%)
MIN_BASE_COUNTS = 25
#: below this the check warns (relative SE above 10%: the ratio's interval is skewed)
WARN_BASE_COUNTS = 100


def _sparse_base_check(gt: GroupTime, plan, panel: _PanelArrays, common: dict) -> Check:
    """Whether the ratio's counterfactual rests on enough counts in the base periods.

    Every post-adoption ATT(g,t) compares with cohort g's base period (g - 1 - anticipation),
    so the counterfactual rate of a cohort rests on its units' counts in that one period.
    With B_g counts there and cohort g's share s_g of the simple aggregate, the base counts'
    Poisson noise alone gives the counterfactual a relative standard error of about
    sqrt(sum_g s_g^2 / B_g) = 1 / sqrt(B_eff). When B_eff < MIN_BASE_COUNTS the ratio
    Y1 / (Y1 - ATT) divides by a near-arbitrary number (a sparse panel gave 9.55 with an
    interval of 0.037 to 2480 where PPML gave 0.70), so it is withheld.
    """
    counts = panel.outcome * panel.exposure / panel.per if panel.has_exposure else panel.outcome
    post = np.flatnonzero(plan.post)
    weight = np.bincount(gt.cohort_index[post], weights=plan.share[post], minlength=gt.cohorts.size)
    weight = weight / weight.sum() if weight.sum() > 0 else weight
    rows: list[dict] = []
    inverse = 0.0
    for j, g in enumerate(gt.cohorts):
        cells = post[gt.cohort_index[post] == j]
        if cells.size == 0:
            continue
        base = int(gt.base[cells[0]])
        members = gt.unit_cohort == g
        total = float(np.nansum(counts[members, base]))
        rows.append({"cohort": panel.label(g), "base_period": panel.label(base), "base_counts": total,
                     "weight": float(weight[j])})
        inverse += weight[j] ** 2 / total if total > 0 else np.inf
    effective = float(1.0 / inverse) if inverse > 0 else 0.0
    values = {"effective_base_counts": effective, "threshold_withhold": MIN_BASE_COUNTS,
              "threshold_warn": WARN_BASE_COUNTS, "cohorts": rows,
              "relative_se_of_base": float(np.sqrt(inverse)) if np.isfinite(inverse) else None}
    smallest = min(rows, key=lambda r: r["base_counts"]) if rows else None
    where = (f" (fewest: cohort {smallest['cohort']}, {smallest['base_counts']:.0f} counts in "
             f"{smallest['base_period']})") if smallest else ""
    if effective < MIN_BASE_COUNTS:
        return Check("sparse_ratio", "fail",
                     f"the adopting units' counts in their base periods amount to about {effective:.0f} "
                     f"(fewer than {MIN_BASE_COUNTS}){where}: the rate they would have had without the intervention "
                     "is too uncertain to divide by, so the ratio is withheld and the change is reported as a "
                     "difference in rates; consider method: did (Poisson), a coarser data.frequency, or more areas",
                     values={**values, "ratio_withheld": True}, **common)
    if effective < WARN_BASE_COUNTS:
        return Check("sparse_ratio", "warn",
                     f"the adopting units' counts in their base periods amount to about {effective:.0f} "
                     f"(fewer than {WARN_BASE_COUNTS}){where}: the ratio's interval leans on a noisy base; read the "
                     "difference in rates beside it", values={**values, "ratio_withheld": False}, **common)
    return Check("sparse_ratio", "pass", f"the ratio's base periods hold about {effective:.0f} counts.",
                 values={**values, "ratio_withheld": False}, **common)


def _withhold_ratios(estimates: list[Estimate], why: str) -> None:
    """Report the difference in rates instead of the ratio; the ratio is kept in details."""
    for e in estimates:
        if e.scale != "ratio":
            continue
        d = e.details
        d["ratio_withheld"] = {"estimate": e.estimate, "se_log": e.se, "ci_low": e.ci_low, "ci_high": e.ci_high,
                               "p_value": e.p_value, "why": why}
        e.scale, e.estimate, e.se = "difference", d["difference"], d["difference_se"]
        e.ci_low, e.ci_high, e.p_value = d["difference_ci_low"], d["difference_ci_high"], d["difference_p_value"]
        d["se_scale"] = "identity"
        if "difference_p_value_method" in d:   # randomization: the difference's own test and inversion
            d["p_value_method"], d["ci_method"] = d["difference_p_value_method"], d["difference_ci_method"]
            d["interval_note"] = d["difference_interval_note"]
            d["p_value_analytic"] = d["difference_p_value_analytic"]
            d["ci_low_analytic"], d["ci_high_analytic"] = d["difference_ci_low_analytic"], d["difference_ci_high_analytic"]
        elif "ci_method" in d:
            d["ci_method"] = d["ci_method"].replace(" on the log scale", "")
        if "test_rejects" in d:
            d["test_rejects"] = None if e.p_value is None else bool(e.p_value < d["alpha"])


# ----------------------------------------------------------------------------- checks
def _checks(design: Design, spec, gt: GroupTime, plan, event: Aggregation, panel: _PanelArrays, outcome,
            transition: int) -> list[Check]:
    common = {"method": spec.method, "outcome": outcome.name}
    checks = [pre_trend_check(design, gt, event, common, reference=_reference(panel.outcome), outcome=panel.outcome,
                              spec=spec)]
    treated = int(gt.cohort_size.sum())
    never = int(np.sum(gt.unit_cohort == NEVER))
    few = {"treated_units": treated, "comparison_units": never, "threshold": FEW_TREATED, "inference": spec.inference}
    if treated < FEW_TREATED and spec.inference == "randomization":
        checks.append(Check("few_treated", "warn",
                            f"only {treated} treated unit(s): influence-function (cluster-robust) intervals would be too "
                            "narrow, so the interval and p-value come from randomization inference (the adoption dates "
                            "permuted across units), which holds with few units but is wide.", values=few, **common))
    elif treated < FEW_TREATED:
        checks.append(Check("few_treated", "warn",
                            f"only {treated} treated unit(s): with so few, influence-function (cluster-robust) intervals "
                            "are too narrow and tests over-reject; read the interval as optimistic (inference: auto or "
                            "randomization holds with few units).", values=few, **common))
    else:
        checks.append(Check("few_treated", "pass", f"{treated} treated units in {gt.cohorts.size} cohort(s), "
                            f"{never} never-treated.", values={"treated_units": treated, "comparison_units": never,
                                                               "threshold": FEW_TREATED}, **common))
    if gt.overlap_trimmed:
        checks.append(Check("overlap", "warn", f"{gt.overlap_trimmed} comparison unit(s) have a propensity score above "
                            "0.995 in some cell and get no weight there: treated and comparison units differ a lot "
                            "in the covariates.", values={"trimmed": gt.overlap_trimmed}, **common))
    if panel.dropped:
        checks.append(Check("missing_values", "warn", panel.notes[0], values={"dropped_units": panel.dropped}, **common))
    return checks


def pre_trend_check(design: Design, gt: GroupTime, event: Aggregation, common: dict, reference: float = 1.0,
                    outcome: np.ndarray | None = None, spec=None) -> Check:
    """Parallel pre-trends: a pooled-bin test that holds its size decides; R did's Wald pre-test is kept.

    The deciding test (:func:`evalkit.methods.pretrend.pooled_pre_trend_test`): unit-level
    changes from the year before adoption to one or two earlier yearly bins, compared
    between each cohort and its comparison units, with a Welch / Hotelling-type
    small-sample reference; ``values["calibrated"]`` says whether its degrees of freedom
    allow it to hold its size (only then does a failure lower the design level:
    evidence.py). Under parallel trends it rejects near alpha on monthly and yearly panels
    (tests/test_calibration_did.py; docs/methods/staggered_did.md).

    R did's statistic is kept in ``values["r_did"]``: W = theta' V^-1 theta over the
    pre-period ATT(g,t) (t < g) with a non-zero standard error, V their analytic
    covariance, chi2 with as many degrees of freedom as cells, None when V is singular
    (R's rcond rule). With many pre-period cells for few units it over-rejects badly, so it
    never decides. Without the panel (``outcome`` None) nothing decides and the check warns.
    """
    n = gt.n
    se = gt.se
    pre = np.flatnonzero((gt.period < gt.cohort) & np.isfinite(gt.att) & (se > DEGENERATE * reference))
    r_test = _wald(gt.att[pre], gt.influence[:, pre], n) if pre.size else None
    r_did = None
    if r_test is not None:
        r_did = {"test": "att_gt_wald", "W": r_test[0], "df": r_test[1], "p_value": float(stats.chi2.sf(*r_test)),
                 "calibrated": None, "calibration": "not assessed for this design: R did's chi2 pre-test held its "
                 "size with many units per pre-period cell (an mpdta-like yearly panel: 5.2% at alpha 0.05) and "
                 "over-rejected badly with many cells for few units (91% with 25 cells and 48 units); reported for "
                 "comparison with R did, it never decides"}
    per_year = PERIODS_PER_YEAR[design.data.frequency]
    pooled = None
    if outcome is not None:
        pooled = pooled_pre_trend_test(outcome, gt.unit_cohort, per_year, anticipation=spec.anticipation if spec else 0,
                                       control_group=spec.control_group if spec else "never_treated", never=NEVER)
    if pooled is None and pre.size == 0:
        return Check("pre_trends", "warn", "no pre-adoption cells to test parallel trends on.",
                     values={"test": None, "calibrated": False, "r_did": r_did}, **common)
    if pooled is None:
        return Check("pre_trends", "warn", "too few periods before adoption (a year before the year before adoption) "
                     "or too few units for the pooled pre-trend test; no calibrated test of parallel trends could be "
                     "computed" + (f" (R did's pre-test, for comparison: W = {r_did['W']:.2f}, chi2 "
                                   f"p = {r_did['p_value']:.3f})" if r_did else "") + ".",
                     values={"test": None, "calibrated": False, "r_did": r_did, "pre_cells": int(pre.size),
                             **({"W": r_did["W"], "df": r_did["df"]} if r_did else {})}, **common)
    p = pooled["p_value"]
    rejected = p < design.alpha
    calibrated = pooled["calibrated"]
    status = "pass" if not rejected else ("fail" if calibrated else "warn")
    verdict = ("the comparison units' trends differed before adoption, so parallel trends is doubtful"
               if rejected else "no clear difference in trends before adoption")
    if rejected and not calibrated:
        verdict += " (but the test has too few units to be trusted, so the design level is not lowered)"
    bins = "; ".join(f"{b['bin']}: {b['estimate']:+.3g} (se {b['se']:.2g})" for b in pooled["bins"])
    detail = (f"change from the year before adoption to {pooled['df']} earlier yearly bin(s), adopting vs comparison "
              f"units ({bins}), jointly zero: F = {pooled['F']:.2f} on {pooled['df']} and "
              f"{pooled['df_effective'] - pooled['df'] + 1:.1f} degrees of freedom, p = {p:.3f}; {verdict}.")
    if r_did is not None:
        detail += (f" R did's pre-test, for comparison: W = {r_did['W']:.2f} on {r_did['df']} cells, "
                   f"p = {r_did['p_value']:.3f}.")
    values = {"test": "pooled_bins_welch_hotelling", "p_value": p, "calibrated": calibrated,
              "calibration": pooled["calibration"], "F": pooled["F"], "T2": pooled["T2"], "df": pooled["df"],
              "df_effective": pooled["df_effective"], "bins": pooled["bins"], "cohorts": pooled["cohorts"],
              "pre_cells": int(pre.size), "r_did": r_did, "alpha": design.alpha}
    if r_did is not None:
        values["W"] = r_did["W"]
    return Check("pre_trends", status, detail, values=values, **common)


def _wald(theta: np.ndarray, influence: np.ndarray, n: int):
    """(W, df) with V = IF'IF / n**2, or None when V is singular (R's rcond rule)."""
    if theta.size >= n:
        return None
    V = influence.T @ influence / n**2
    if 1.0 / np.linalg.cond(V, 1) <= np.finfo(float).eps:
        return None
    return float(theta @ np.linalg.solve(V, theta)), int(theta.size)


__all__ = ["fit", "pre_trend_check"]
