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
  the area's post-period episodes; interval and p-value from one area-level procedure
  (default: re-assigning which areas adopted, interval by test inversion; or a t reference
  on the area changes, or an area-cluster bootstrap);
- Kaplan-Meier descriptives by group (treated / comparison) and period (pre / post):
  medians, restricted means and shares found within 24 and 48 hours with intervals,
  and the curves with numbers at risk for a KMunicate-style figure (``series``).

``post`` for a treated area starts at its own adoption period (``data.adoption``); for a
comparison area at the first adoption of any area. The periods of a treated area's
phase-in (``intervention.transition``) are left out by default. Formulas, conventions
and validation: docs/methods/survival_did.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ...data.sources import release_unused_memory
from ...design import Design
from ...errors import EvalkitError
from ...results import Analysis, Check, Estimate
from .. import MethodResult
from ..estimates import wald_estimate
from .area_inference import area_bootstrap, area_randomization, area_t
from .cox import CoxError, fit_cox
from .kaplan_meier import at_times, curve, kaplan_meier, medians, restricted_means

DEFAULT_HORIZON_HOURS = 72.0
#: below this many treated areas (or areas in all) cluster-robust intervals are approximate
FEW_TREATED_AREAS, FEW_AREAS = 10, 20
#: ``inference: auto`` for the RMST difference: the area randomization test below this many
#: adopting areas, the area-level t reference from it (docs/methods/survival_did.md: with 2
#: and 4 adopting areas of 12 the bootstrap covered 81-92%, the randomization test 95-96%)
AUTO_T_FROM = 20
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
    _check_comparison(design, data)
    per_episode = _episode_index(data)  # shared with the placebo check's selection
    episodes, dropped = _distinct_episodes(design, data, spec, key, per_episode)
    _check_cells(design, episodes, spec, key)
    _check_times_vary(design, episodes)
    common = {"outcome": outcome.name, "method": spec.method}
    # the placebo check (reported last) is computed first, while the per-episode lookups it
    # shares are at hand; freed after it, they are not held through the main Cox fit, the
    # run's largest working set (its values do not depend on the order: fresh seeded draws)
    placebo = _placebo_check(design, data, spec, key, horizon, common, per_episode)
    del per_episode
    release_unused_memory()  # the selections' freed scratch, else still resident through the Cox fit

    units = episodes.units
    post = episodes.post.astype(float)
    try:
        cox = fit_cox(episodes.hours, episodes.found, np.column_stack([post, episodes.treated * post]),
                      strata=episodes.unit, cluster=episodes.unit, ties=spec.ties, names=["post", "treated_post"],
                      weights=episodes.count, zph="km")  # the test made inside the fit: its risk sets are not kept
    except CoxError as exc:
        raise EvalkitError(design.where, f"the Cox model cannot be fitted: {exc}",
                           "check that adopting and comparison areas have episodes before and after adoption",
                           key=key) from None
    zph = cox.zph()

    z = stats.norm.ppf(1 - design.alpha / 2)
    treated_units = [u for u, t in zip(units, episodes.unit_treated) if t]
    comparison_units = [u for u, t in zip(units, episodes.unit_treated) if not t]
    first_adoption = min(data.adoption.values())
    n_found = int(episodes.count[episodes.found].sum())
    info = {"analysis": index, "n_episodes": episodes.n, "found": n_found, "censored": episodes.n - n_found,
            "areas": len(units), "treated_areas": len(treated_units), "comparison_areas": len(comparison_units),
            "ties": spec.ties, "horizon_hours": horizon, "comparison_post_from": str(first_adoption),
            "transition": spec.transition, "transition_periods": design.intervention.transition,
            "dropped_episodes": dropped}
    result = MethodResult()
    result.estimates.append(_hazard_estimate(cox, spec.se, z, common, info))
    area_rmst, rmst_estimate, rmst_checks = _rmst_difference(design, episodes, horizon, spec, common, info, key)
    result.estimates.append(rmst_estimate)
    descriptives = _descriptives(episodes, horizon, spec, design.alpha, common)
    result.estimates += descriptives["estimates"]

    result.checks.append(_ph_check(zph, design.alpha, common))
    result.checks.append(_cluster_check(len(treated_units), len(units), spec.se, common,
                                        rmst_estimate.details["treated_areas_used"],
                                        rmst_estimate.details["comparison_areas_used"], rmst_estimate))
    result.checks.append(_censoring_check(episodes, horizon, common))
    result.checks += rmst_checks
    result.checks.append(placebo)

    result.analysis = Analysis(
        method=spec.method, outcome=outcome.name,
        label=f"Time to found: stratified Cox and restricted-mean difference-in-differences "
              f"({len(treated_units)} adopting, {len(comparison_units)} comparison areas)",
        settings={**info, "alpha": design.alpha, "rmst_inference": rmst_estimate.details["inference"],
                  "rmst_inference_reason": rmst_estimate.details["inference_reason"],
                  "reps": spec.reps, "min_episodes": spec.min_episodes,
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
    reported in ``exclude_periods``. ``unit`` is a Categorical of the areas (sorted).
    (The method itself works on the distinct episodes, :func:`_distinct_episodes`.)

    Returns
    -------
    frame : DataFrame
    dropped : dict
        How many episodes were left out and why.
    """
    selected = _select(design, data, spec, key)
    keep = selected.keep
    episodes = data.episodes
    frame = pd.DataFrame({
        "unit": pd.Categorical.from_codes(selected.unit[keep], categories=selected.units),
        "period": episodes["period"].array[keep],  # stays a PeriodArray (no Period objects)
        "hours": episodes["hours_to_found"].to_numpy(dtype=float)[keep],
        "found": ~episodes["censored"].to_numpy(dtype=bool)[keep],
        "treated": selected.unit_treated[selected.unit[keep]],
        "post": selected.post[keep],
    })
    return frame, selected.dropped


@dataclass
class _Selection:
    """Which episodes enter, per episode of ``data.episodes`` (``unit`` is -1 for areas
    that do not enter, else a position in ``units``)."""

    units: list
    unit_treated: np.ndarray
    unit: np.ndarray
    post: np.ndarray
    keep: np.ndarray
    dropped: dict


@dataclass
class _Episodes:
    """The analysis episodes as their distinct (area, post, hours, found) rows, with the
    number of episodes each stands for (``count``). Kaplan-Meier tables and the Cox fit
    (frequency weights) are exactly those of the episodes themselves: every quantity is
    a count at a distinct time, and the national extract's 3.5 million episodes collapse
    to about half a million rows."""

    units: list
    unit_treated: np.ndarray
    unit: np.ndarray
    post: np.ndarray
    hours: np.ndarray
    found: np.ndarray
    count: np.ndarray

    @property
    def n(self) -> int:
        return int(self.count.sum())

    @property
    def treated(self) -> np.ndarray:
        return self.unit_treated[self.unit]

    @property
    def cell(self) -> np.ndarray:
        """0..3 in the order of CELLS: treated pre, treated post, comparison pre, comparison post."""
        return np.where(self.treated, 0, 2) + self.post.astype(np.int64)


def _period_positions(period: pd.Series, periods: pd.PeriodIndex) -> np.ndarray:
    """Position of each episode's period in ``periods`` (-1 outside): from the period
    ordinals when ``periods`` is a contiguous run of the same frequency (no hashing of
    millions of Periods), else ``get_indexer``."""
    array = period.array
    ordinals = getattr(array, "asi8", None)
    span = periods.asi8 if len(periods) else None
    if (ordinals is not None and span is not None and array.dtype == periods.dtype
            and bool((np.diff(span) == 1).all())):
        position = ordinals - span[0]
        position[(position < 0) | (position >= len(periods)) | (ordinals == np.iinfo(np.int64).min)] = -1
        return position
    return periods.get_indexer(period)


@dataclass
class _EpisodeIndex:
    """What every selection of one fit reads of each episode (the analysis and its placebo
    select from the same episodes): the position of its period in ``data.periods`` (-1
    outside), its area code (``pd.factorize`` order, -1 none) and those areas, its hours
    and whether it was found. Each is a pass over every episode (3.5 million nationally),
    so they are made once per fit, not once per selection."""

    position: np.ndarray
    codes: np.ndarray
    uniques: list
    hours: np.ndarray
    found: np.ndarray


def _episode_index(data) -> _EpisodeIndex:
    episodes = data.episodes
    # int32 positions and codes: half the memory of int64 on millions of episodes
    position = _period_positions(episodes["period"], data.periods).astype(np.int32)
    codes, uniques = pd.factorize(episodes["unit"])  # per-area lookups on codes: fast on long extracts
    return _EpisodeIndex(position=position, codes=codes.astype(np.int32), uniques=list(uniques),
                         hours=episodes["hours_to_found"].to_numpy(dtype=float),
                         found=~episodes["censored"].to_numpy(dtype=bool))


def _select(design: Design, data, spec, key: str, per_episode: _EpisodeIndex | None = None,
            rows: np.ndarray | None = None) -> _Selection:
    """Which episodes enter. ``rows`` (a mask of ``data.episodes``) restricts the choice to
    those rows: the same selection as from ``data.episodes[rows]``, without the copy."""
    episodes = data.episodes
    periods = data.periods
    if not data.adoption:
        raise EvalkitError(design.where, "no area adopts the intervention", "list units under units.treated or units.adoption",
                           key="units")
    per_episode = per_episode if per_episode is not None else _episode_index(data)
    position, codes, uniques = per_episode.position, per_episode.codes, per_episode.uniques
    adoption_position = {u: int(periods.get_loc(p)) for u, p in data.adoption.items()}
    first_position = min(adoption_position.values())
    comparison_set = set(data.comparison_units)
    area_treated = np.array([u in data.adoption for u in uniques], dtype=bool)
    area_comparison = np.array([u in comparison_set for u in uniques], dtype=bool) & ~area_treated
    area_own = np.array([adoption_position.get(u, 0) for u in uniques], dtype=np.int32)
    area_start = np.where(area_treated, area_own, first_position)
    treated = area_treated[codes]
    post = position >= area_start[codes]
    exact = getattr(data, "adoption_dates", None) or {}
    if exact:
        # an adoption date inside a period: that period's episodes are split at the date itself
        reported = episodes["reported_at"].to_numpy()
        # comparison areas switch at the first adoption, whether that is an exact date or a period's start
        comparison_from = min(exact.get(u, p.start_time) for u, p in data.adoption.items())
        for i, unit in enumerate(uniques):
            if unit in exact or area_comparison[i]:
                in_area = codes == i
                post[in_area] = reported[in_area] >= np.datetime64(exact.get(unit, comparison_from))
    keep = (area_treated | area_comparison)[codes] & (codes >= 0)  # -1: no area (never after validation)
    if rows is not None:
        dropped = {"other_areas": int((rows & ~keep).sum())}
        keep &= rows
    else:
        dropped = {"other_areas": int((~keep).sum())}
    transition = design.intervention.transition
    if spec.transition == "exclude" and transition > 0:
        own = area_own[codes]
        phase_in = treated & post & (position >= own) & (position < own + transition)
        del own
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
    # the areas with episodes left, sorted; each episode's position among them
    present = np.bincount(codes[keep], minlength=len(uniques)) > 0
    entering = sorted((i for i in range(len(uniques)) if present[i]), key=lambda i: str(uniques[i]))
    lookup = np.full(len(uniques) + 1, -1, dtype=np.int32)  # factorize codes missing values as -1
    lookup[entering] = np.arange(len(entering))
    return _Selection(units=[uniques[i] for i in entering], unit_treated=area_treated[entering],
                      unit=lookup[codes], post=post, keep=keep, dropped=dropped)


def _distinct_episodes(design: Design, data, spec, key: str, per_episode: _EpisodeIndex | None = None,
                       rows: np.ndarray | None = None) -> tuple[_Episodes, dict]:
    """The analysis episodes (:func:`survival_frame`'s; with ``rows``, of those rows only)
    collapsed to distinct rows: per distinct (area, post, hours), in that order, one row for
    the found and one for the censored episodes, each with its count."""
    per_episode = per_episode if per_episode is not None else _episode_index(data)
    selected = _select(design, data, spec, key, per_episode, rows)
    group, hours, found, count = _collapse(selected, per_episode)
    episodes = _Episodes(units=selected.units, unit_treated=selected.unit_treated, unit=group // 2,
                         post=(group % 2).astype(bool), hours=hours, found=found, count=count)
    return episodes, selected.dropped


def _collapse(selected: _Selection, per_episode: _EpisodeIndex):
    """The selected episodes' distinct (group, hours, found) rows (group: area * 2 + post)
    and how many episodes each stands for, ordered by group, then hours, a found row
    before the censored row of the same (group, hours).

    The row order is part of the result (the Cox cluster sums add the rows' score
    residuals in this order), so it is exactly that order, reached cheaply: episodes are
    bucketed by (group, censored) with a stable radix sort of small integers, each
    bucket's hours sorted in place (numpy's vectorised sort of values, not a permutation:
    an ``argsort`` of 3.5 million hours cost ten times as much), runs of equal hours
    counted, and the distinct rows (a sixth as many nationally) put in order with two
    stable sorts, which keep a found row (bucketed first) ahead of its censored twin.
    """
    keep = selected.keep
    # each kept episode's (area, post, censored) code, made in place in 32 bits
    code = selected.unit[keep]
    code *= 2
    code += selected.post[keep]
    code *= 2
    code += ~per_episode.found[keep]  # censored second: a found row comes first
    hours = per_episode.hours[keep]
    del keep
    n = code.size
    n_codes = 4 * len(selected.units)
    narrow = np.int16 if n_codes < 2**15 else np.int32 if n_codes < 2**31 else np.int64
    bounds = np.zeros(n_codes + 1, dtype=np.int64)
    np.cumsum(np.bincount(code, minlength=n_codes), out=bounds[1:])
    sorted_hours = hours[np.argsort(code.astype(narrow, copy=False), kind="stable")]
    del code, hours
    starts = bounds[:-1][np.diff(bounds) > 0]
    for start, end in zip(starts.tolist(), bounds[1:][np.diff(bounds) > 0].tolist()):
        sorted_hours[start:end].sort()
    new = np.ones(n, dtype=bool)
    new[1:] = sorted_hours[1:] != sorted_hours[:-1]
    new[starts] = True
    first = np.flatnonzero(new)
    del new
    count = np.diff(np.append(first, n))
    row_code = np.searchsorted(bounds, first, side="right") - 1
    row_hours = sorted_hours[first]
    del sorted_hours, first
    order = np.argsort(row_hours, kind="stable")
    order = order[np.argsort((row_code // 2).astype(narrow)[order], kind="stable")]
    row_code = row_code[order]
    return row_code // 2, row_hours[order], row_code % 2 == 0, count[order]


def _check_comparison(design: Design, data) -> None:
    """A difference in differences needs at least one area that does not adopt."""
    if not any(u not in data.adoption for u in data.comparison_units):
        n = len(data.adoption)
        raise EvalkitError(design.where, f"every area in the analysis adopts the intervention ({n} area{'s' * (n != 1)}), "
                           "so survival_did has no comparison area to separate the intervention from other changes "
                           "over time", "add areas that did not adopt to the data and list them under units.comparison",
                           key="units")


def _check_times_vary(design: Design, episodes: _Episodes) -> None:
    """The Cox model compares who is found first: with one time to found for every found
    episode there is no order to compare (and the proportional-hazards test is undefined)."""
    times = np.unique(episodes.hours[episodes.found & (episodes.count > 0)])
    if times.size == 1:
        raise EvalkitError(design.where, f"every found episode has the same time to found ({times[0]:g} hour{'' if times[0] == 1 else 's'}), "
                           "so the hazards of being found cannot be compared",
                           "check that data.columns.found_at holds the time each child was found, "
                           "not a fixed offset from the report", key="data.columns.found_at")


def _check_cells(design: Design, episodes: _Episodes, spec, key: str) -> None:
    cell = episodes.cell
    counts = np.bincount(cell, weights=episodes.count, minlength=4).astype(np.int64)
    found = np.bincount(cell, weights=np.where(episodes.found, episodes.count, 0), minlength=4).astype(np.int64)
    if counts.sum() > 0 and found.sum() == 0:
        raise EvalkitError(design.where, f"none of the {int(counts.sum())} episodes has a found time (every one is "
                           "still open at extraction), so there is no time to found to compare",
                           "check that data.columns.found_at names the column with the time each child was found",
                           key="data.columns.found_at")
    for code, (group, period) in enumerate(CELLS):
        what = "before adoption" if period == "pre" else "after adoption"
        if counts[code] >= spec.min_episodes and found[code] == 0:
            raise EvalkitError(design.where, f"none of the {int(counts[code])} episodes of the {group} areas {what} "
                               "was found (every one is still open at extraction)",
                               "check data.columns.found_at and data.extracted_at, or leave those periods out "
                               "with data.window", key=key)
        if counts[code] < spec.min_episodes or found[code] == 0:
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
    return wald_estimate(
        common, "hazard_ratio_did", coef, se, z, True, float(2 * stats.norm.sf(abs(coef / se))),
        details={"coefficient": coef, "se_scale": "log", "se_rule": se_rule, "se_used": used,
                 "robust_se": float(robust[1]), "model_se": float(model[1]),
                 "comparison_hazard_ratio": float(np.exp(post_coef)),
                 "comparison_hazard_ratio_ci": [float(np.exp(post_coef - z * post_se)), float(np.exp(post_coef + z * post_se))],
                 "meaning": "ratio of hazards of being found; above 1 = found sooner", **info},
    )


def _rmst_difference(design: Design, episodes: _Episodes, horizon: float, spec,
                     common: dict, info: dict, key: str):
    """Area-weighted DiD of restricted mean hours to found; its interval and p-value from one
    area-level procedure (``inference``: randomization by default, area_inference.py)."""
    units = episodes.units
    codes = episodes.unit * 2 + episodes.post.astype(np.int64)
    table = kaplan_meier(codes, episodes.hours, episodes.found, n_groups=2 * len(units), weights=episodes.count)
    rmst = restricted_means(table, horizon)["rmst"]
    is_treated = episodes.unit_treated
    n_pre, n_post = table.n[0::2], table.n[1::2]
    usable = (n_pre >= spec.min_episodes) & (n_post >= spec.min_episodes)
    change = rmst[1::2] - rmst[0::2]
    rows = [{"unit": str(u), "group": "treated" if is_treated[i] else "comparison", "n_pre": int(n_pre[i]),
             "n_post": int(n_post[i]), "rmst_pre": _float(rmst[2 * i]), "rmst_post": _float(rmst[2 * i + 1]),
             "change": _float(change[i]), "used": bool(usable[i])} for i, u in enumerate(units)]
    checks: list[Check] = []
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
    inference, chosen = spec.inference, spec.inference == "auto"
    if chosen:  # the default follows the design's own number of adopting areas (docs/methods/survival_did.md)
        inference = "randomization" if t_idx.size < AUTO_T_FROM else "t"
    used = np.concatenate([t_idx, c_idx])
    area_change, area_weights = change[used], weights[used]
    area_treated = np.arange(used.size) < t_idx.size
    area_details: dict = {}
    note = None
    if inference == "bootstrap":
        if min(t_idx.size, c_idx.size) < 2:
            # Resampling one area always returns that area: the replicates would ignore that
            # side's area-to-area variation (a zero-width interval when both sides have one).
            # A cluster bootstrap needs at least 2 clusters a side, so no interval is given;
            # the few_clusters check fails and says why.
            se = low = high = p_value = None
            interval = "none: fewer than 2 areas on a side (an area bootstrap cannot vary that side)"
            note = "with fewer than 2 areas on a side an area bootstrap cannot vary that side, so no interval is given"
        else:
            se, low, high, p_value = area_bootstrap(area_change, area_weights, area_treated, design.alpha,
                                                    spec.reps, np.random.default_rng(design.seed))
            interval = "area-cluster bootstrap percentile (deviations inflated by sqrt(m / (m - 1)))"
        p_method, se_type = "Wald with the bootstrap standard deviation", "bootstrap standard deviation"
    else:
        if inference == "randomization":
            result = area_randomization(area_change, area_weights, area_treated, design.alpha, spec.reps,
                                        np.random.default_rng(design.seed))
            p_method = result.method
        else:
            result = area_t(area_change, area_weights, area_treated, design.alpha)
            p_method = result.method
        se, low, high, p_value, note = result.se, result.low, result.high, result.p_value, result.note
        interval, area_details = result.method, result.details
        se_type = "area-level standard error of the weighted difference" + (
            " (for information: the interval and p-value come from the randomization test)"
            if inference == "randomization" else "")
    test_p = p_value if p_value is not None else area_details.get("randomization", {}).get("p_value")
    estimate_record = Estimate(
        **common, estimand="rmst_difference_did", scale="difference", estimate=estimate, se=se,
        ci_low=low, ci_high=high, p_value=p_value,
        details={"horizon_hours": horizon, "units": "hours", "meaning": "negative = found sooner",
                 "treated_change": treated_change, "comparison_change": comparison_change,
                 "treated_areas_used": int(t_idx.size), "comparison_areas_used": int(c_idx.size),
                 "weights": "episodes after adoption in each area",
                 "inference": inference, "inference_declared": spec.inference,
                 "inference_reason": _rmst_inference_reason(inference, chosen, int(t_idx.size)),
                 "interval": interval, "ci_method": interval, "p_value_method": p_method,
                 "interval_note": note, "alpha": design.alpha,
                 "test_rejects": None if test_p is None else bool(test_p < design.alpha),
                 "reps": spec.reps, "seed": design.seed, "se_type": se_type, **area_details,
                 **{k: v for k, v in info.items() if k in ("n_episodes", "found", "censored")}},
    )
    return rows, estimate_record, checks


def _rmst_inference_reason(inference: str, chosen: bool, n_treated: int) -> str:
    """Why this inference, in plain words (the evidence box and the technical annex show it)."""
    if not chosen:
        return f"declared (inference: {inference})"
    if inference == "randomization":
        return (f"chosen by default: with {n_treated} adopting area{'s' * (n_treated != 1)} (fewer than {AUTO_T_FROM}) "
                "an area bootstrap's interval is too narrow, so which areas adopted is re-assigned instead")
    return f"chosen by default: {n_treated} adopting areas ({AUTO_T_FROM} or more) support a t reference on the areas"


def _descriptives(episodes: _Episodes, horizon: float, spec, alpha: float, common: dict) -> dict:
    table = kaplan_meier(episodes.cell, episodes.hours, episodes.found, n_groups=4, weights=episodes.count)
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
    if term["p"] is None or zph["global"]["p"] is None:
        return Check("proportional_hazards", "warn",
                     "the proportional-hazards test cannot be computed: the times to found hardly vary.",
                     values=values, **common)
    if term["p"] < alpha:
        return Check("proportional_hazards", "warn",
                     f"the effect on the hazard of being found changes with time since the report (Schoenfeld "
                     f"residual test, p = {term['p']:.3g}); the hazard ratio is an average over time, and the "
                     f"restricted-mean difference does not rely on proportional hazards.", values=values, **common)
    return Check("proportional_hazards", "pass",
                 f"no clear change of the effect with time since the report (Schoenfeld residual test, "
                 f"p = {term['p']:.3g}; global p = {zph['global']['p']:.3g}).", values=values, **common)


def _cluster_check(n_treated: int, n_areas: int, se_rule: str, common: dict,
                   rmst_treated: int | None = None, rmst_comparison: int | None = None,
                   rmst: Estimate | None = None) -> Check:
    details = rmst.details if rmst is not None else {}
    inference = details.get("inference")
    values = {"treated_areas": n_treated, "areas": n_areas, "se": se_rule,
              "rmst_treated_areas": rmst_treated, "rmst_comparison_areas": rmst_comparison,
              "rmst_inference": inference}
    hazard = (f"the hazard-ratio interval ({n_treated} adopting of {n_areas} areas) is also likely too narrow"
              if se_rule != "conservative" else
              f"the hazard-ratio interval ({n_treated} adopting of {n_areas} areas) uses the larger of the clustered "
              "and the model-based standard error")
    no_interval = rmst is not None and rmst.ci_low is None and rmst.ci_high is None
    if rmst_treated is not None and rmst_comparison is not None and min(rmst_treated, rmst_comparison) < 2 \
            and (no_interval or rmst is None):
        sides = [f"{n} {name} area{'s' * (n != 1)}" for n, name in
                 ((rmst_treated, "adopting"), (rmst_comparison, "comparison")) if n < 2]
        why = details.get("interval_note") or "an area bootstrap cannot show how much one area varies from another"
        return Check("few_clusters", "fail",
                     f"the difference in hours rests on only {' and '.join(sides)}: {why}, so it has no interval or "
                     f"p-value; {hazard}.", values=values, **common)
    if no_interval and details.get("interval_note"):
        return Check("few_clusters", "fail", f"the difference in hours has no interval: {details['interval_note']}; "
                     f"{hazard}.", values=values, **common)
    if n_treated < FEW_TREATED_AREAS or n_areas < FEW_AREAS:
        guard = ("the hazard-ratio interval uses the larger of the clustered and the model-based standard error, "
                 "but may still be too narrow" if se_rule == "conservative" else "the hazard-ratio interval is likely too narrow")
        hours = ("the difference in hours is tested by re-assigning which areas adopted, which holds with few areas"
                 if inference == "randomization" else
                 "the difference in hours' area bootstrap interval is likely too narrow" if inference == "bootstrap"
                 else "the difference in hours uses a t reference on the areas")
        return Check("few_clusters", "warn",
                     f"{n_treated} adopting of {n_areas} areas: standard errors clustered by area are too small "
                     f"with few areas; {guard}; {hours}.", values=values, **common)
    return Check("few_clusters", "pass", f"{n_treated} adopting of {n_areas} areas: enough for clustered standard errors.",
                 values=values, **common)


def _censoring_check(episodes: _Episodes, horizon: float, common: dict) -> Check:
    cell, count = episodes.cell, episodes.count
    early = (~episodes.found) & (episodes.hours < horizon)
    shares = np.bincount(cell, weights=np.where(early, count, 0), minlength=4) \
        / np.maximum(np.bincount(cell, weights=count, minlength=4), 1)
    censored = int(count[~episodes.found].sum())
    values = {"censored": censored, **{f"{g}_{p}_censored_before_horizon": float(shares[i]) for i, (g, p) in enumerate(CELLS)}}
    if shares.max() > HEAVY_CENSORING:
        return Check("censoring", "warn",
                     f"up to {shares.max():.0%} of a group's episodes were still open at extraction within "
                     f"{horizon:g} hours of the report; the estimates there rest on the episodes followed that long.",
                     values=values, **common)
    return Check("censoring", "pass",
                 f"{censored} episodes open at extraction are kept as censored (not dropped, not counted as found).",
                 values=values, **common)


#: fewest periods on each side of the pretend adoption in the placebo check
PLACEBO_MIN_PERIODS = 3
#: fewest adopting areas for which the placebo test's size was measured near 5% (below: it only warns)
PLACEBO_CALIBRATED_AREAS = 4


def _placebo_check(design: Design, data, spec, key: str, horizon: float, common: dict,
                   per_episode: _EpisodeIndex | None = None) -> Check:
    """Were time-to-found trends parallel before adoption? A pretend adoption inside the pre-period.

    Only episodes reported before adoption are used (an adopting area's before its own
    adoption; a comparison area's before the first adoption). Each adopting area pretends
    to adopt halfway through its own pre-period; the same Cox DiD and restricted-mean DiD
    are fitted. The test uses the analysis' standard-error rule with the clustered variance
    scaled by G / (G - 1) and a t reference with G - 1 degrees of freedom (G areas): so
    it failed 3.0% of 200 parallel-trend datasets with 4 + 4 areas (MC SE 1.2 points;
    8.0% with the normal reference), and is treated as calibrated. A hazard ratio whose
    interval excludes 1 fails the check, which lowers the design level like the other
    pre-trend checks (docs/methods/survival_did.md).
    """
    from dataclasses import replace

    periods = data.periods
    position = {u: int(periods.get_loc(p)) for u, p in data.adoption.items()}
    placebo = {u: periods[p // 2] for u, p in position.items()
               if p // 2 >= PLACEBO_MIN_PERIODS and p - p // 2 >= PLACEBO_MIN_PERIODS}
    if not placebo:
        return Check("placebo", "warn", f"no placebo test: fewer than {2 * PLACEBO_MIN_PERIODS} periods before adoption "
                     "in every adopting area.", values={"test": None}, **common)
    per_episode = per_episode if per_episode is not None else _episode_index(data)
    first = min(position.values())
    limit = np.array([position.get(u, first) for u in per_episode.uniques], dtype=np.int64)
    before = (per_episode.codes >= 0) & (per_episode.position >= 0) & (per_episode.position < limit[per_episode.codes])
    # the episodes before adoption are selected by a mask, not copied: a copy of their
    # columns was the national run's memory peak
    placebo_data = replace(data, adoption=placebo, adoption_dates={})
    placebo_spec = spec.model_copy(update={"transition": "include", "reps": 99})
    try:
        episodes, _ = _distinct_episodes(design, placebo_data, placebo_spec, key, per_episode, rows=before)
        del before
        release_unused_memory()  # the selection's freed scratch, else still resident through the Cox fit
        _check_cells(design, episodes, placebo_spec, key)
        cox = fit_cox(episodes.hours, episodes.found,
                      np.column_stack([episodes.post.astype(float), episodes.treated * episodes.post.astype(float)]),
                      strata=episodes.unit, cluster=episodes.unit, ties=spec.ties, names=["post", "treated_post"],
                      weights=episodes.count)
    except (EvalkitError, CoxError) as exc:
        reason = exc.what if isinstance(exc, EvalkitError) else str(exc)
        return Check("placebo", "warn", f"no placebo test before adoption: {reason}.", values={"test": None}, **common)
    # small-sample inference for the test: the clustered variance scaled by G / (G - 1) and a
    # t reference with G - 1 degrees of freedom (G areas); with the normal one the placebo
    # failed 8.0% of parallel-trend datasets (MC SE 1.9 points) with 4 + 4 areas
    clusters = len(episodes.units)
    robust = float(cox.se(True)[1]) * np.sqrt(clusters / max(clusters - 1, 1))
    model = float(cox.se(False)[1])
    se = max(robust, model) if spec.se == "conservative" else robust
    coef = float(cox.params[1])
    critical = float(stats.t.ppf(1 - design.alpha / 2, max(clusters - 1, 1)))
    p_value = float(2 * stats.t.sf(abs(coef / se), max(clusters - 1, 1)))
    hazard = wald_estimate(common, "placebo_hazard_ratio", coef, se, critical, True, p_value)
    n_found = int(episodes.count[episodes.found].sum())
    try:
        _, rmst, _ = _rmst_difference(design, episodes, horizon, placebo_spec, common,
                                      {"n_episodes": episodes.n, "found": n_found, "censored": episodes.n - n_found}, key)
        rmst_value = rmst.estimate
    except EvalkitError:
        rmst_value = None
    # size measured (independent simulations): 3.0% with 4 + 4 areas; 11% with 1 adopting of 8 when
    # area-months vary, so below PLACEBO_CALIBRATED_AREAS adopting areas a failure only warns
    adopting = int(np.sum(episodes.unit_treated))
    calibrated = adopting >= PLACEBO_CALIBRATED_AREAS
    values = {"test": "cox_did_pretend_adoption", "calibrated": calibrated, "reference": f"t with {clusters - 1} df",
              "adopting_areas": adopting,
              "hazard_ratio": hazard.estimate,
              "ci_low": hazard.ci_low, "ci_high": hazard.ci_high, "p_value": hazard.p_value,
              "rmst_difference_hours": rmst_value,
              "pretend_adoption": {str(u): str(p) for u, p in sorted(placebo.items(), key=lambda kv: str(kv[0]))}}
    hours = "" if rmst_value is None else f"; restricted-mean difference {rmst_value:+.2f} hours within {horizon:g} hours"
    text = (f"a pretend adoption halfway through each area's pre-period gives a hazard ratio of {hazard.estimate:.3f} "
            f"({1 - design.alpha:.0%} interval {hazard.ci_low:.3f} to {hazard.ci_high:.3f}, p = {hazard.p_value:.3f})"
            f"{hours}")
    if hazard.p_value is not None and hazard.p_value < design.alpha and not calibrated:
        return Check("placebo", "warn", text + f"; with only {adopting} adopting area(s) this test can fail by chance "
                     "more often than it should, so it does not lower the design level.", values=values, **common)
    if hazard.p_value is not None and hazard.p_value < design.alpha:
        return Check("placebo", "fail", text + "; time to found was already changing differently in the adopting areas "
                     "before adoption, so the comparison may not show what would have happened.", values=values, **common)
    return Check("placebo", "pass", text + "; no clear difference before adoption.", values=values, **common)


def _float(x) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


__all__ = ["fit", "survival_frame"]
