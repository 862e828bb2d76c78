"""``synthetic_control``: one treated unit against a weighted blend of donor units.

Donor weights on the simplex fitted to the pre-intervention outcome, or to predictors
with the nested predictor weights V of Abadie, Diamond & Hainmueller (2010); the gap
series; ``att``, the mean post-intervention gap; placebo-in-space inference (every donor
in turn treated as if it had adopted): ``placebo_p`` ranks the treated unit's post/pre
RMSPE ratio among all units, and the interval for ``att`` inverts the same placebo test
for a constant effect. Count outcomes are fitted as rates per exposure and the gap is also
given as reports per month and per cent (docs/methods/synthetic_control.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ...design import Design
from ...errors import EvalkitError
from ...periods import PERIODS_PER_YEAR
from ...results import Analysis, Check, Estimate
from .. import MethodResult
from .core import WeightFit, fit_weights, standardise_predictors

MIN_PRE_PERIODS = 2
MIN_DONORS = 2
#: pre-period fit: warn when the RMSPE exceeds this share of the treated unit's mean level
LOOSE_FIT = 0.10
#: convex hull: warn when the outcome is outside the donors' range in this share of fitted periods
OUTSIDE_SHARE = 0.25


@dataclass
class Predictors:
    """Raw predictor values, one row per predictor and one column per unit."""

    values: np.ndarray
    labels: list[str]


@dataclass
class UnitFit:
    """One synthetic control: the treated unit's (or a placebo's) fit."""

    weights: WeightFit
    observed: np.ndarray
    synthetic: np.ndarray
    gap: np.ndarray
    pre_rmspe: float
    post_rmspe: float
    att: float

    @property
    def ratio(self) -> float:
        return self.post_rmspe / self.pre_rmspe


def fit(design: Design, data, spec, index: int = 0) -> MethodResult:
    key = f"analysis[{index}]"
    outcome = design.outcome(spec.outcome)
    if outcome.measure not in ("count", "continuous"):
        raise EvalkitError(design.where, f"outcome '{outcome.name}' ({outcome.measure}) cannot be fitted by "
                           "synthetic_control in this version", "use a count or continuous outcome", key=key + ".outcome")
    treated, start = _treated_unit(design, data, spec, key)
    donors = _donor_pool(design, data, spec, treated, key)
    units = [treated] + donors
    periods = data.periods
    rates, counts, exposure = _outcome_matrix(design, data, outcome, units)
    if np.ptp(rates) == 0:
        raise EvalkitError(design.data.source, f"outcome '{outcome.name}' is {rates.flat[0]:g} for the treated unit and "
                           "every donor in every period, so there is nothing to fit", "check the outcome column")
    pre = np.asarray(periods < start)
    post_start = start + design.intervention.transition
    post = np.asarray(periods >= post_start)
    n_pre, n_post = int(pre.sum()), int(post.sum())
    if n_pre < MIN_PRE_PERIODS:
        raise EvalkitError(design.where, f"only {n_pre} period before {treated}'s start ({start}); synthetic control "
                           f"needs at least {MIN_PRE_PERIODS}", "extend data.window back or check the start", key=key)
    if n_post == 0:
        raise EvalkitError(design.where, f"no period after the transition (from {post_start}) is in the data",
                           "extend data.window or shorten intervention.transition", key=key)
    in_fit = _window_mask(design, spec.fit_window, periods, pre, key + ".fit_window", "fit_window")
    predictors = _predictor_matrix(design, data, spec, outcome, rates, units, periods, pre, key)

    def synth(treated_col: int, donor_cols: list[int]) -> UnitFit:
        return _fit_unit(rates, predictors, treated_col, donor_cols, in_fit, pre, post, spec.optimise_v)

    main = synth(0, list(range(1, len(units))))
    placebos = {donor: synth(j, [i for i in range(1, len(units)) if i != j]) for j, donor in enumerate(donors, start=1)}
    labels = {u: str(u) for u in units}
    inference = _placebo_inference(main, placebos, design.alpha)
    common = {"outcome": outcome.name, "method": spec.method}
    weights = {labels[d]: float(w) for d, w in zip(donors, main.weights.weights)}
    effect = _effect_in_counts(design, outcome, main, counts, exposure, post)
    info = {
        "analysis": index, "treated_unit": labels[treated], "start": str(start), "post_start": str(post_start),
        "post_periods": f"{periods[post][0]}..{periods[post][-1]}", "n_pre": n_pre, "n_post": n_post,
        "n_donors": len(donors), "pre_rmspe": main.pre_rmspe, "post_rmspe": main.post_rmspe,
        "rmspe_ratio": main.ratio, "fitted_as": "rate" if exposure is not None else ("count" if counts is not None else "value"),
    }
    result = MethodResult()
    result.estimates.append(Estimate(
        **common, estimand="att", scale="difference", estimate=main.att, se=None,
        ci_low=inference["ci_low"], ci_high=inference["ci_high"], p_value=inference["att_p"],
        details={**info, **effect, "weights": weights,
                 "v": None if main.weights.v is None else dict(zip(predictors.labels, main.weights.v.tolist())),
                 "ci_method": "placebo test inversion (constant effect; statistic |mean post gap| / pre RMSPE)",
                 "ci_bounded": bool(np.isfinite(inference["ci_low"]))},
    ))
    result.estimates.append(Estimate(
        **common, estimand="placebo_p", scale="probability", estimate=inference["placebo_p"], p_value=inference["placebo_p"],
        details={"rank": inference["rank"], "n_units": len(units), "smallest_possible": 1 / len(units),
                 "exact_placebos": inference["exact_placebos"],
                 "rmspe_ratio": {labels[treated]: main.ratio, **{labels[d]: f.ratio for d, f in placebos.items()}}},
    ))
    result.checks += _checks(design, spec, outcome, main, placebos, rates, predictors, in_fit, pre, labels, donors,
                             treated)
    if inference["exact_placebos"]:
        exact = [labels[d] for d, f in placebos.items() if not np.any(f.gap)]
        result.checks.append(Check(
            "placebo_duplicates", "warn",
            f"{len(exact)} donor(s) ({', '.join(exact[:5])}) are matched exactly by the other donors before and after "
            "the start (duplicated series): as placebos they cannot show how unusual the treated gap is, so they "
            "count as at least as extreme and the placebo p-value is conservative.",
            values={"units": exact}, **common))
    result.analysis = Analysis(
        method=spec.method, outcome=outcome.name,
        label=f"Synthetic control: {labels[treated]} against a weighted blend of {len(donors)} donor units",
        settings={
            **info, "donors": [labels[d] for d in donors], "optimise_v": spec.optimise_v if predictors.labels else None,
            "v_start": main.weights.start, "loss_v": main.weights.loss_v, "loss_w": main.weights.loss_w,
            "predictors": predictors.labels, "fit_periods": f"{periods[in_fit][0]}..{periods[in_fit][-1]}",
            "transition": design.intervention.transition, "per": outcome.per, "exposure": exposure is not None,
        },
        series=_series(periods, start, post_start, in_fit, main, placebos, labels, treated, donors, predictors, counts,
                       exposure, outcome),
    )
    return result


# ----------------------------------------------------------------------------- inputs
def _treated_unit(design: Design, data, spec, key: str):
    from ...data.prepare import match_unit

    if spec.unit is not None:
        unit = match_unit(spec.unit, data.units, design.where, key + ".unit")
    else:
        treated = [u for u in data.treated_units if u != "series"]
        if not treated:
            raise EvalkitError(design.where, "synthetic control needs a treated unit and none is treated",
                               "list it under units.treated or give unit: in this analysis", key=key)
        if len(treated) > 1:
            raise EvalkitError(design.where, f"synthetic control fits one treated unit, and {len(treated)} are treated",
                               "name the one to fit with unit: <id> in this analysis", key=key)
        unit = treated[0]
    if unit in data.adoption:
        return unit, data.adoption[unit]
    if design.intervention.start is None:
        raise EvalkitError(design.where, f"unit '{unit}' has no adoption date", "add intervention.start", key=key + ".unit")
    return unit, design.period(design.intervention.start, "intervention.start")


def _donor_pool(design: Design, data, spec, treated, key: str) -> list:
    from ...data.prepare import match_unit

    if spec.donors is not None:
        donors = [match_unit(d, data.units, design.where, key + ".donors") for d in spec.donors]
        adopted = [d for d in donors if d == treated or d in data.adoption]
        if adopted:
            raise EvalkitError(design.where, f"donor '{adopted[0]}' is itself treated",
                               "remove it from donors: a donor must not adopt the intervention", key=key + ".donors")
    else:
        donors = [d for d in data.comparison_units if d != treated and d not in data.adoption]
    donors = list(dict.fromkeys(donors))
    if len(donors) < MIN_DONORS:
        raise EvalkitError(design.where, f"synthetic control needs at least {MIN_DONORS} donor units and has {len(donors)}",
                           "list untreated units under units.comparison (or donors: in this analysis)", key=key)
    return donors


def _outcome_matrix(design: Design, data, outcome, units: list):
    """Periods x units: the outcome as fitted (a rate per exposure for counts with exposure)."""
    panel = data.panel[data.panel["unit"].isin(units)]
    wide = panel.pivot(index="period", columns="unit", values=outcome.name).reindex(index=data.periods, columns=units)
    values = wide.to_numpy(dtype=float)
    missing = np.argwhere(np.isnan(values))
    if len(missing):
        t, u = missing[np.lexsort((missing[:, 0], missing[:, 1]))][0]
        raise EvalkitError(design.data.source, f"outcome '{outcome.name}' is missing for unit '{units[u]}' in {data.periods[t]}",
                           "fill it in, narrow data.window, or leave the unit out of the donors")
    if outcome.measure != "count":
        return values, None, None
    if not data.has_exposure:
        return values, values, None
    exposure = panel.pivot(index="period", columns="unit", values="exposure").reindex(
        index=data.periods, columns=units).to_numpy(dtype=float)
    return values / exposure * (outcome.per or 1.0), values, exposure


def _window_mask(design: Design, window, periods: pd.PeriodIndex, pre: np.ndarray, key: str, what: str) -> np.ndarray:
    if window is None:
        return pre.copy()
    first = design.period(window.start, key + ".start")
    last = design.period(window.end, key + ".end")
    if last < first:
        raise EvalkitError(design.where, f"{what} ends ({last}) before it starts ({first})", "swap start and end", key=key)
    mask = np.asarray((periods >= first) & (periods <= last))
    if (mask & ~pre).any():
        raise EvalkitError(design.where, f"{what} {first}..{last} reaches into the intervention period",
                           f"end it before {periods[~pre][0]}", key=key)
    if mask.sum() < MIN_PRE_PERIODS:
        raise EvalkitError(design.where, f"{what} {first}..{last} holds {int(mask.sum())} period(s) of the data",
                           f"give at least {MIN_PRE_PERIODS} pre-intervention periods", key=key)
    return mask


def _predictor_periods(design: Design, spec, predictor, periods, pre, key: str) -> tuple[np.ndarray, str]:
    if predictor.periods is not None:
        wanted = [design.period(p, f"{key}.periods") for p in predictor.periods]
        outside = [p for p in wanted if p not in periods]
        if outside:
            raise EvalkitError(design.where, f"predictor period {outside[0]} is not in the data ({periods[0]}..{periods[-1]})",
                               "name periods inside data.window", key=key + ".periods")
        mask = np.asarray(periods.isin(wanted))
        if (mask & ~pre).any():
            raise EvalkitError(design.where, f"predictor period {periods[mask & ~pre][0]} is not before the intervention",
                               "average predictors over pre-intervention periods only", key=key + ".periods")
        chosen = periods[mask]
        label = ", ".join(str(p) for p in chosen) if len(chosen) <= 2 else \
            f"{chosen[0]}..{chosen[-1]}, {len(chosen)} periods"
        return mask, label
    if predictor.window is not None:
        mask = _window_mask(design, predictor.window, periods, pre, key + ".window", "the predictor window")
    elif spec.predictors_window is not None:
        mask = _window_mask(design, spec.predictors_window, periods, pre, f"{key.rsplit('.', 1)[0]}.predictors_window",
                            "predictors_window")
    else:
        mask = pre.copy()
    chosen = periods[mask]
    return mask, f"{chosen[0]}..{chosen[-1]}" if len(chosen) > 1 else str(chosen[0])


def _predictor_matrix(design: Design, data, spec, outcome, rates, units, periods, pre, key: str) -> Predictors:
    if not spec.predictors:
        return Predictors(values=np.empty((0, len(units))), labels=[])
    rows, labels = [], []
    for j, predictor in enumerate(spec.predictors):
        pkey = f"{key}.predictors[{j}]"
        mask, window_label = _predictor_periods(design, spec, predictor, periods, pre, pkey)
        values = _predictor_values(design, data, outcome, predictor.column, rates, units, pkey)[mask]
        observed = ~np.isnan(values)
        # the mean of the periods with a value (R's Synth: mean(na.rm = TRUE)); NaN when there is none
        means = np.where(observed.any(axis=0), np.nansum(values, axis=0) / np.maximum(observed.sum(axis=0), 1), np.nan)
        for position in np.flatnonzero(np.isnan(means)):
            who = "the treated unit" if position == 0 else "donor"
            fix = ("choose a window where the data have it, or remove the predictor" if position == 0 else
                   "fill it in, choose another window, or leave the unit out of the donors")
            raise EvalkitError(design.where, f"predictor '{predictor.column}' has no value for {who} '{units[position]}' "
                               f"in {window_label}", fix, key=pkey)
        if np.std(means) == 0:
            raise EvalkitError(design.where, f"predictor '{predictor.column}' takes the same value for every unit "
                               f"in {window_label}", "remove it: it cannot tell the units apart", key=pkey)
        rows.append(means)
        labels.append(f"{predictor.column} ({window_label})")
    return Predictors(values=np.vstack(rows), labels=labels)


def _predictor_values(design: Design, data, outcome, column: str, rates, units, key: str) -> np.ndarray:
    """Periods x units values of a predictor column (the analysed outcome as fitted)."""
    if column == outcome.name or column == outcome.column:
        return rates
    name = next((o.name for o in design.outcomes if column in (o.name, o.column)), column)
    if name not in data.panel.columns or name in ("unit", "period"):
        hint = "name a declared outcome" if design.data.layout == "episodes" else "name a column of the data file"
        raise EvalkitError(design.where, f"predictor '{column}' is not in the data", hint, key=key)
    panel = data.panel[data.panel["unit"].isin(units)]
    wide = panel.pivot(index="period", columns="unit", values=name).reindex(index=data.periods, columns=units)
    return wide.to_numpy(dtype=float)


# ----------------------------------------------------------------------------- fitting
def _fit_unit(rates, predictors: Predictors, treated: int, donors: list[int], in_fit, pre, post, optimise_v) -> UnitFit:
    Z1, Z0 = rates[in_fit, treated], rates[in_fit][:, donors]
    if predictors.labels:
        X, _ = standardise_predictors(predictors.values[:, [treated] + donors])
        X = np.nan_to_num(X, nan=0.0, posinf=0.0, neginf=0.0)  # a predictor constant among a placebo's units
        weights = fit_weights(Z1, Z0, X[:, 0], X[:, 1:], optimise_v)
    else:
        weights = fit_weights(Z1, Z0)
    synthetic = rates[:, donors] @ weights.weights
    gap = rates[:, treated] - synthetic
    # a gap of rounding error is no gap: otherwise a unit matched exactly by a blend would
    # rank above placebos matched exactly by one donor (gap 0) in the placebo test
    size = float(np.max(np.abs(rates[:, [treated] + donors])))
    gap[np.abs(gap) <= 1e-12 * size] = 0.0
    # a perfect pre-period fit would divide by zero: floor the RMSPE far below any real error
    floor = 1e-12 * float(np.sqrt(np.mean(rates[pre] ** 2))) or 1e-300
    pre_rmspe = max(float(np.sqrt(np.mean(gap[pre] ** 2))), floor)
    post_rmspe = float(np.sqrt(np.mean(gap[post] ** 2)))
    return UnitFit(weights=weights, observed=rates[:, treated], synthetic=synthetic, gap=gap, pre_rmspe=pre_rmspe, post_rmspe=post_rmspe,
                   att=float(np.mean(gap[post])))


def _placebo_inference(main: UnitFit, placebos: dict, alpha: float) -> dict:
    """placebo_p from the RMSPE ratios; the att interval by inverting a placebo test.

    Under a constant effect tau the treated gap minus tau is a draw from the same
    distribution as the placebos' gaps (the weights use pre-intervention data only, and
    the treated unit is in no placebo's donor pool). The statistic |mean post gap| / pre
    RMSPE is compared with the placebos'; the interval holds every tau not rejected.
    """
    n_units = len(placebos) + 1
    # a placebo matched exactly before and after (a donor duplicated by other donors) has a
    # 0/0 ratio: it cannot show how unusual the treated gap is, so it counts against it
    exact = np.array([not np.any(f.gap) for f in placebos.values()], dtype=bool)
    ratios = np.where(exact, np.inf, [f.ratio for f in placebos.values()])
    rank = 1 + int(np.sum(ratios >= main.ratio))
    placebo_p = rank / n_units
    stats = np.sort(np.where(exact, np.inf, [abs(f.att) / f.pre_rmspe for f in placebos.values()]))[::-1]
    att_p = (1 + int(np.sum(stats >= abs(main.att) / main.pre_rmspe))) / n_units
    # the fewest placebos at least as extreme for p > alpha
    needed = next((c for c in range(n_units) if (1 + c) / n_units > alpha), None)
    if not needed:
        low, high = -np.inf, np.inf
    else:
        half_width = main.pre_rmspe * stats[needed - 1]
        low, high = main.att - half_width, main.att + half_width
    return {"placebo_p": placebo_p, "rank": rank, "att_p": att_p, "ci_low": float(low), "ci_high": float(high),
            "exact_placebos": int(exact.sum())}


def _effect_in_counts(design: Design, outcome, main: UnitFit, counts, exposure, post) -> dict:
    """The gap as reports per period, month and year and in per cent (counts), or per cent (continuous)."""
    per_year_periods = PERIODS_PER_YEAR[design.data.frequency]
    synthetic_mean = float(np.mean(main.synthetic[post]))
    if counts is None:
        percent = 100 * main.att / synthetic_mean if synthetic_mean != 0 else None
        return {"percent": percent}
    if exposure is not None:
        to_counts = exposure[:, 0] / (outcome.per or 1.0)
    else:
        to_counts = np.ones(len(main.gap))
    gap_counts = main.gap * to_counts
    synthetic_counts = main.synthetic * to_counts
    per_period = float(np.mean(gap_counts[post]))
    expected = float(np.sum(synthetic_counts[post]))
    percent = 100 * float(np.sum(gap_counts[post])) / expected if expected > 0 else None
    return {
        "per_period": per_period,
        "per_month": per_period * per_year_periods / 12,
        "per_year": per_period * per_year_periods,
        "percent": percent,
        "ratio": None if percent is None else 1 + percent / 100,
        "observed_post": float(np.sum(counts[post, 0])),
        "synthetic_post": expected,
        "rate_per": outcome.per if exposure is not None else None,
    }


# ----------------------------------------------------------------------------- checks and series
def _checks(design, spec, outcome, main: UnitFit, placebos, rates, predictors, in_fit, pre, labels, donors,
            treated) -> list[Check]:
    common = {"method": spec.method, "outcome": outcome.name}
    checks = []
    level = float(np.mean(np.abs(rates[pre, 0])))
    relative = main.pre_rmspe / level if level > 0 else np.inf
    placebo_pre = np.array([f.pre_rmspe for f in placebos.values()])
    status = "pass" if relative <= LOOSE_FIT else "warn"
    checks.append(Check(
        "pre_period_fit", status,
        f"pre-intervention RMSPE {main.pre_rmspe:.4g}, {relative:.1%} of {labels[treated]}'s mean level "
        f"({'within' if status == 'pass' else 'above'} {LOOSE_FIT:.0%}); the median placebo's is {np.median(placebo_pre):.4g}.",
        values={"pre_rmspe": main.pre_rmspe, "relative": relative, "placebo_pre_rmspe_median": float(np.median(placebo_pre))},
        **common))
    donors_fit = rates[in_fit][:, 1:]
    above = rates[in_fit, 0] > donors_fit.max(axis=1)
    below = rates[in_fit, 0] < donors_fit.min(axis=1)
    share = float(np.mean(above | below))
    outside = []
    if predictors.labels:
        X1, X0 = predictors.values[:, 0], predictors.values[:, 1:]
        outside = [name for name, x, lo, hi in zip(predictors.labels, X1, X0.min(axis=1), X0.max(axis=1)) if x < lo or x > hi]
    status = "warn" if share >= OUTSIDE_SHARE or outside else "pass"
    if status == "pass":
        detail = (f"{labels[treated]} lies within the donors' range in {1 - share:.0%} of the fitted periods"
                  + (" and on every predictor." if predictors.labels else "."))
    else:
        parts = []
        if share >= OUTSIDE_SHARE:
            side = "above every donor" if above.sum() >= below.sum() else "below every donor"
            parts.append(f"the outcome is {side} in {share:.0%} of the fitted periods")
        if outside:
            parts.append("outside the donors' range on " + ", ".join(outside))
        detail = (f"{labels[treated]} lies outside the donors' convex hull ({'; '.join(parts)}): no weighted average "
                  "of donors can match it, so the synthetic control is biased there.")
    checks.append(Check("convex_hull", status, detail,
                        values={"share_outside": share, "periods_above": int(above.sum()), "periods_below": int(below.sum()),
                                "predictors_outside": outside}, **common))
    n_units = len(donors) + 1
    smallest = 1 / n_units
    status = "pass" if smallest <= design.alpha else "warn"
    checks.append(Check(
        "placebo_resolution", status,
        f"{n_units} units, so the smallest possible placebo p-value is {smallest:.3f}"
        + ("." if status == "pass" else f", above alpha = {design.alpha:g}: the placebo test cannot reject at that level "
           "and the interval for att is unbounded."),
        values={"n_units": n_units, "smallest_p": smallest, "alpha": design.alpha}, **common))
    return checks


def _series(periods, start, post_start, in_fit, main: UnitFit, placebos, labels, treated, donors, predictors, counts,
            exposure, outcome) -> dict:
    order = sorted(range(len(donors)), key=lambda i: (-main.weights.weights[i], labels[donors[i]]))
    synthetic_x = predictors.values[:, 1:] @ main.weights.weights if predictors.labels else []
    series = {
        "periods": [str(p) for p in periods],
        "treated": main.observed.tolist(),
        "synthetic": main.synthetic.tolist(),
        "gap": main.gap.tolist(),
        "start_index": int(periods.get_loc(start)),
        "post_index": int(np.searchsorted(np.asarray(periods >= post_start), True)),
        "in_fit": in_fit.tolist(),
        "placebo_gaps": {labels[d]: f.gap.tolist() for d, f in placebos.items()},
        "rmspe_ratio": {"treated": main.ratio,
                        **{labels[d]: f.ratio for d, f in placebos.items()}},
        "pre_rmspe": {"treated": main.pre_rmspe, **{labels[d]: f.pre_rmspe for d, f in placebos.items()}},
        "weights": [{"unit": labels[donors[i]], "weight": float(main.weights.weights[i])} for i in order],
        "predictors": [
            {"name": name, "treated": float(predictors.values[k, 0]), "synthetic": float(synthetic_x[k]),
             "donor_mean": float(np.mean(predictors.values[k, 1:])),
             "v": None if main.weights.v is None else float(main.weights.v[k])}
            for k, name in enumerate(predictors.labels)
        ],
        "treated_unit": labels[treated],
        "y_unit": (f"per {outcome.per:g} exposure" if outcome.per else "per unit of exposure") if exposure is not None
        else ("count" if counts is not None else None),
        "observed_counts": None, "synthetic_counts": None, "gap_counts": None,
    }
    if counts is not None:
        to_counts = exposure[:, 0] / (outcome.per or 1.0) if exposure is not None else np.ones(len(periods))
        series["observed_counts"] = counts[:, 0].tolist()
        series["synthetic_counts"] = (main.synthetic * to_counts).tolist()
        series["gap_counts"] = (main.gap * to_counts).tolist()
    return series
