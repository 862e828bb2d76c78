"""Simulated datasets for a diagnosis: placebo adoption and planted effects in the user's
own data, or draws from a model.

Planted into the data (the default when the design has data)
----------------------------------------------------------------
The data are loaded and validated once. The real adopters' post-periods are dropped: the
base data end the period before the first real adoption, so in what is left every area is
untreated and the real (unknown) effect is nowhere in it. Leaving the real adopters out
instead would keep the whole window but shrinks the pool: the shipped example has seven
adopters and six comparison areas, so no placebo with the real number of adopters could
be drawn. Truncation keeps the number of areas, the number of adopting areas, the cohort
sizes and the spacing of the cohorts; it shortens the series.

Each simulation draws, from its own random stream,

- a placebo first adoption date inside the base window (at least half of it before, and
  enough periods after the last cohort for a post-period), the later cohorts at the real
  design's offsets from the first (compressed if the window is too short);
- which areas adopt in each cohort (a random permutation of the areas);
- one uniform number per episode (or per area-period of a panel) for thinning and one for
  censored episodes, used for every planted effect: the simulations of different effects
  share their random numbers (common random numbers), so power rises smoothly with the
  effect and the minimum detectable effect can be found by search.

A planted effect ``E`` (0 < E <= 1) acts on the placebo adopters from their placebo
adoption on:

- counts: each episode is kept with probability ``E`` (binomial thinning), so the rate
  ratio is exactly ``E``; persons and repeat reports are recounted from the kept episodes
  (a child whose first episode was thinned away is not a repeat at their next one unless
  they were already a repeat before the window); panel counts are thinned binomially;
- hours to found: every post-adoption episode's time is multiplied by ``E``; an episode
  open at extraction (censored at ``c``) gets a time drawn from the data's own pre-period
  survival beyond ``c``, and is found at ``E`` times it when that is before ``c``, else
  stays censored at ``c``. The hazard ratio and restricted-mean difference this plants
  are computed numerically from the base data's survival (:func:`duration_truth`);
- continuous outcomes: ``(E - 1)`` times the outcome's base mean is added.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from ..data import AnalysisData
from ..data.durations import DURATION_MEASURES, derive_duration_outcome
from ..data.episodes import mark_repeats, person_codes
from ..design import Design, Units
from ..errors import EvalkitError
from ..periods import PERIODS_PER_YEAR

T = TypeVar("T")

#: estimands never diagnosed: descriptive or pre-period quantities with no planted truth
SKIP_PREFIXES = ("event_", "pre_", "placebo")
EFFECT_SCALES = ("ratio", "difference")


@dataclass
class Draw:
    """One simulated dataset: the design and data an analysis is fitted to, and the truth."""

    design: Design
    data: AnalysisData
    effect: float
    truth: dict = field(default_factory=dict)  # (outcome, estimand) -> value; None: unknown


# ----------------------------------------------------------------------------- helpers
def simulation_streams(seed: int, sim: int) -> tuple[np.random.Generator, int]:
    """The random stream of simulation ``sim`` and the seed its methods' own draws use.

    ``SeedSequence(seed).spawn(n)[sim]`` is ``SeedSequence(seed, spawn_key=(sim,))``: built
    directly, simulation ``sim`` gets the same stream whichever worker runs it and
    whatever the number of simulations.
    """
    sequence = np.random.SeedSequence(seed, spawn_key=(sim,))
    data_stream, method_stream = sequence.spawn(2)
    return np.random.default_rng(data_stream), int(method_stream.generate_state(1, dtype=np.uint32)[0])


def null_value(scale: str) -> float:
    return 1.0 if scale == "ratio" else 0.0


def diagnosed(estimate) -> bool:
    """Whether an estimate is an effect estimate a diagnosis scores."""
    return (estimate.scale in EFFECT_SCALES and estimate.group in (None, "treated")
            and not estimate.estimand.startswith(SKIP_PREFIXES))


def truth_for(outcome, estimand: str, scale: str, effect: float, duration_truths: dict, shift: float):
    """The planted value of an estimand (None when the plant does not define it)."""
    if estimand == "slope_change" or estimand.endswith("slope_change_difference"):
        return null_value(scale)  # a step change plants no change of trend
    if effect == 1.0:
        return null_value(scale)
    measure = outcome.measure
    if measure == "count":
        return effect if scale == "ratio" else None
    if measure == "continuous":
        return shift if scale == "difference" else None
    if measure == "duration_hours":
        return duration_truths.get(estimand)
    return None


# ----------------------------------------------------------------------------- base data
@dataclass
class PlaceboBase:
    """The data every planted simulation starts from, with precomputed positions."""

    data: AnalysisData
    units: list
    cohort_sizes: list
    offsets: list
    first_positions: np.ndarray
    single_series: bool
    treated_first: bool  # the real design lists its first cohort under units.treated
    ep_unit: np.ndarray | None = None
    ep_period: np.ndarray | None = None
    ep_history: np.ndarray | None = None
    ep_found_hours: np.ndarray | None = None
    ep_censored: np.ndarray | None = None
    survival_times: np.ndarray | None = None
    survival_curve: np.ndarray | None = None
    continuous_means: dict = field(default_factory=dict)
    ep_cell: np.ndarray | None = None
    ep_person: np.ndarray | None = None
    ep_repeat: np.ndarray | None = None
    cut: str = ""
    mode: str = "post-periods dropped"


def _episode_array(value: T | None, name: str) -> T:
    """One of the base's per-episode arrays (set together by _finish_base when there are episodes)."""
    if value is None:
        raise ValueError(f"the placebo base has no {name}: it was prepared without episodes")
    return value


def _km(hours: np.ndarray, found: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan-Meier curve (distinct event times, survival just after each)."""
    order = np.argsort(hours, kind="stable")
    h, f = hours[order], found[order]
    times, first = np.unique(h, return_index=True)
    n = len(h)
    at_risk = n - first
    events = np.add.reduceat(f.astype(float), first) if n else np.array([])
    surv = np.cumprod(1.0 - events / at_risk)
    keep = events > 0
    return times[keep], surv[keep]


def _survival_at(times, curve, t) -> np.ndarray:
    idx = np.searchsorted(times, t, side="right") - 1
    return np.where(idx >= 0, curve[np.clip(idx, 0, None)], 1.0)


def prepare_base(design: Design, data: AnalysisData) -> PlaceboBase:
    """Cut the data before the first real adoption and precompute what a plant needs."""
    if not data.adoption:
        raise EvalkitError(design.where, "no area adopts, so there is no design to diagnose", "list units under units.treated "
                           "or units.adoption", key="units")
    periods = data.periods
    first_real = min(data.adoption.values())
    cut = int(periods.get_loc(first_real))
    base_periods = periods[:cut]
    n = len(base_periods)
    single = "series" in data.adoption and len(data.units) == 1
    dates = sorted(set(data.adoption.values()))
    sizes = [sum(1 for p in data.adoption.values() if p == d) for d in dates]
    offsets = [int(periods.get_loc(d)) - cut for d in dates]
    per_year = PERIODS_PER_YEAR[design.data.frequency]
    post_min = design.intervention.transition + max(3, per_year // 4)
    pre_min = max(4, math.ceil(0.4 * n))
    # an ITS horizon (effect_at_k) must lie inside the first cohort's post-period
    horizon = max([max(getattr(s, "horizons", None) or [0]) for s in design.analysis] + [0])
    first_post = design.intervention.transition + horizon + 1
    span = offsets[-1]
    if pre_min + span + post_min > n:
        # compress the cohorts' spacing to fit the shorter window, keeping their order
        room = max(0, n - pre_min - post_min)
        offsets = [int(round(o * room / span)) if span else 0 for o in offsets]
        span = offsets[-1]
    last_first = min(n - post_min - span, n - first_post)
    comparison = [u for u in data.comparison_units if u not in data.adoption]
    if last_first < pre_min or not single and len(data.units) < sum(sizes) + 1:
        if single or len(comparison) < sum(sizes) + 1:
            raise EvalkitError(design.where, f"the data have {n} periods before the first adoption ({first_real}), too few "
                               f"for a placebo adoption with {pre_min} periods before and {post_min} after, and too few "
                               "comparison areas to leave the adopting areas out",
                               "diagnose from a model instead (--model synthetic, with a diagnose: block)", key="units")
        return _leave_out_base(design, data, comparison, sizes, dates)
    panel = data.panel[data.panel["period"] < first_real].reset_index(drop=True)
    units = list(data.units)
    base = PlaceboBase(
        data=replace(data, panel=panel, periods=base_periods, adoption={}, comparison_units=units),
        units=units, cohort_sizes=sizes, offsets=offsets, first_positions=np.arange(pre_min, last_first + 1),
        single_series=single, treated_first=bool(design.units.treated), cut=str(base_periods[-1]),
    )
    return _finish_base(design, base, data.episodes[data.episodes["period"] < first_real]
                        if data.episodes is not None else None)


def _leave_out_base(design: Design, data: AnalysisData, comparison: list, sizes: list, dates: list) -> PlaceboBase:
    """The fallback when the pre-period is too short to cut at: the real adopters are left out,
    the whole window kept, and placebo adopters drawn from the comparison areas at the real
    adoption dates (their numbers and cohorts as declared)."""
    periods = data.periods
    panel = data.panel[data.panel["unit"].isin(comparison)].reset_index(drop=True)
    positions = [int(periods.get_loc(d)) for d in dates]
    base = PlaceboBase(
        data=replace(data, panel=panel, units=list(comparison), adoption={}, comparison_units=list(comparison)),
        units=list(comparison), cohort_sizes=sizes, offsets=[p - positions[0] for p in positions],
        first_positions=np.array([positions[0]]), single_series=False, treated_first=bool(design.units.treated),
        cut=str(periods[-1]), mode="adopters left out",
    )
    episodes = data.episodes[data.episodes["unit"].isin(comparison)] if data.episodes is not None else None
    return _finish_base(design, base, episodes)


def _finish_base(design: Design, base: PlaceboBase, episodes) -> PlaceboBase:
    panel = base.data.panel
    units = base.units
    for outcome in design.outcomes:
        if outcome.measure == "continuous":
            base.continuous_means[outcome.name] = float(np.nanmean(panel[outcome.name].to_numpy(dtype=float)))
    if episodes is not None:
        # the columns the methods and the recount read (moderators' columns are not simulated)
        keep = [c for c in ("unit", "period", "reported_at", "found_at", "hours_to_found", "censored", "person", "repeat")
                if c in episodes.columns]
        episodes = episodes[keep].reset_index(drop=True)
        base.data = replace(base.data, episodes=episodes)
        base.ep_unit = pd.Index(units).get_indexer(episodes["unit"])
        base.ep_period = base.data.periods.get_indexer(episodes["period"])
        base.ep_cell = base.ep_unit.astype(np.int64) * len(base.data.periods) + base.ep_period
        base.ep_person = person_codes(episodes)
        base.ep_repeat = episodes["repeat"].to_numpy(dtype=bool) if "repeat" in episodes else None
        base.ep_found_hours = episodes["hours_to_found"].to_numpy(dtype=float)
        base.ep_censored = episodes["censored"].to_numpy(dtype=bool)
        base.ep_history = _history(episodes)
        base.survival_times, base.survival_curve = _km(base.ep_found_hours, ~base.ep_censored)
    return base


def _history(episodes: pd.DataFrame) -> np.ndarray:
    """Per episode: its person was already a repeat at their first episode in the window."""
    codes = person_codes(episodes)
    if codes is None:
        return np.zeros(len(episodes), dtype=bool)
    repeat = episodes["repeat"].to_numpy(dtype=bool)
    known = codes >= 0
    order = np.lexsort((np.arange(len(episodes)), episodes["reported_at"].to_numpy()))
    first_seen = np.zeros(int(codes.max()) + 1 if known.any() else 0, dtype=bool)
    seen = np.zeros_like(first_seen)
    for row in order[known[order]]:  # a loop, but once per diagnosis
        c = codes[row]
        if not seen[c]:
            seen[c] = True
            first_seen[c] = repeat[row]
    history = np.zeros(len(episodes), dtype=bool)
    history[known] = first_seen[codes[known]]
    return history


# ----------------------------------------------------------------------------- truths
def duration_truth(base: PlaceboBase, effect: float, horizon: float) -> dict:
    """The hazard ratio and restricted-mean difference that shortening times by ``effect`` plants.

    The base data's own survival (all areas, before the first real adoption) is the
    reference: the restricted mean to ``horizon`` of times multiplied by ``effect`` is
    ``effect`` times the restricted mean to ``horizon / effect``; the hazard ratio is the
    Cox estimate comparing the base episodes with the same episodes shortened (censored
    ones kept at their censoring time), the average hazard ratio a Cox model targets.
    """
    from ..methods.survival.cox import fit_cox

    times = _episode_array(base.survival_times, "survival_times")
    curve = _episode_array(base.survival_curve, "survival_curve")

    def rmst(tau):
        grid = np.concatenate([[0.0], times[times < tau], [tau]])
        surv = np.concatenate([[1.0], curve[times < tau]])
        return float(np.sum(np.diff(grid) * surv))

    if effect == 1.0:
        return {"hazard_ratio_did": 1.0, "rmst_difference_did": 0.0}
    rmst_difference = effect * rmst(horizon / effect) - rmst(horizon)
    hours = _episode_array(base.ep_found_hours, "ep_found_hours")
    censored = _episode_array(base.ep_censored, "ep_censored")
    scaled = np.where(censored, hours, hours * effect)
    time = np.concatenate([hours, scaled])
    event = np.concatenate([~censored, ~censored])
    x = np.concatenate([np.zeros(len(hours)), np.ones(len(hours))])[:, None]
    # distinct (time, event, x) rows with counts: the same partial likelihood, far faster
    frame = pd.DataFrame({"t": time, "e": event, "x": x[:, 0]}).value_counts().reset_index()
    cox = fit_cox(frame["t"].to_numpy(), frame["e"].to_numpy(), frame[["x"]].to_numpy(),
                  weights=frame["count"].to_numpy(dtype=float), ties="efron")
    return {"hazard_ratio_did": float(np.exp(cox.params[0])), "rmst_difference_did": float(rmst_difference)}


# ----------------------------------------------------------------------------- the planted simulator
class PlantedSimulator:
    """Placebo adoption and planted effects in the user's own (already loaded) data."""

    kind = "data"

    def __init__(self, design: Design, data: AnalysisData):
        self.design = design
        self.base = prepare_base(design, data)
        self._duration_truths: dict = {}
        self.horizon = {}
        for spec in design.analysis:
            if spec.method == "survival_did":
                outcome = design.outcome(spec.outcome)
                self.horizon[spec.outcome] = float(getattr(spec, "horizon", None) or outcome.horizon or 72.0)

    def describe(self) -> dict:
        b = self.base
        return {"model": "data", "base_window": [str(b.data.periods[0]), b.cut], "units": len(b.units),
                "cohort_sizes": b.cohort_sizes, "cohort_offsets": b.offsets,
                "placebo_first_adoption": [str(b.data.periods[int(b.first_positions[0])]),
                                           str(b.data.periods[int(b.first_positions[-1])])],
                "real_adopters": ("post-periods dropped: the data end before the first real adoption"
                                  if b.mode == "post-periods dropped" else
                                  "left out: the pre-period is too short to cut at, so placebo adopters come from the "
                                  "comparison areas at the real adoption dates")}

    def truths(self, effect: float) -> dict:
        """Planted truth per (outcome, estimand) for the duration outcomes (cached)."""
        if effect not in self._duration_truths:
            out = {}
            if self.base.ep_found_hours is not None:
                for name, horizon in self.horizon.items():
                    out[name] = duration_truth(self.base, effect, horizon)
            out["__shift__"] = {name: (effect - 1.0) * mean for name, mean in self.base.continuous_means.items()}
            self._duration_truths[effect] = out
        return self._duration_truths[effect]

    def draws(self, sim: int, effects: list[float]):
        """Yield one :class:`Draw` per planted effect of simulation ``sim``."""
        rng, method_seed = simulation_streams(self.design.seed, sim)
        b = self.base
        first = int(rng.choice(b.first_positions))
        order = rng.permutation(len(b.units))
        adoption_position = np.full(len(b.units), -1, dtype=np.int64)
        cohorts, taken = [], 0
        for size, offset in zip(b.cohort_sizes, b.offsets):
            members = [b.units[i] for i in sorted(order[taken:taken + size])]
            adoption_position[order[taken:taken + size]] = first + offset
            cohorts.append((members, b.data.periods[first + offset]))
            taken += size
        n_rows = len(b.data.episodes) if b.data.episodes is not None else len(b.data.panel)
        thin_u = rng.random(n_rows)
        censor_u = rng.random(n_rows)
        design = self._placebo_design(cohorts, method_seed)
        adoption = {u: p for members, p in cohorts for u in members}
        for effect in effects:
            data = self._plant(adoption_position, adoption, effect, thin_u, censor_u)
            yield Draw(design=design, data=data, effect=effect, truth=self.truths(effect))

    # -- the design a placebo simulation is analysed with
    def _placebo_design(self, cohorts, seed: int) -> Design:
        design = self.design
        first_members, first_period = cohorts[0]
        intervention = design.intervention.model_copy(update={"start": str(first_period)})
        if self.base.single_series:
            units = design.units
        elif self.base.treated_first:
            units = Units(treated=list(first_members),
                          adoption={u: str(p) for members, p in cohorts[1:] for u in members})
        else:
            units = Units(adoption={u: str(p) for members, p in cohorts for u in members})
        analysis = [self._placebo_spec(spec, cohorts) for spec in design.analysis]
        copy = design.model_copy(update={"intervention": intervention, "units": units, "seed": seed,
                                         "analysis": analysis})
        copy._path, copy._sha256 = design._path, design._sha256
        return copy

    def _placebo_spec(self, spec, cohorts):
        update: dict[str, Any] = {}
        real = self.design
        real_cohorts = sorted(set(map(str, real.units.adoption.values()))) if real.units.adoption else []

        def cohort_of(unit):
            if str(unit) in set(map(str, real.units.treated)) or not real_cohorts:
                return 0
            dates = {str(k): str(v) for k, v in real.units.adoption.items()}
            shift = 1 if real.units.treated else 0
            return shift + real_cohorts.index(dates[str(unit)]) if str(unit) in dates else 0

        if getattr(spec, "units", None):
            update["units"] = list(cohorts[min(cohort_of(spec.units[0]), len(cohorts) - 1)][0])
        if getattr(spec, "start", None) is not None:
            update["start"] = None
        if getattr(spec, "unit", None) is not None:
            update["unit"] = cohorts[min(cohort_of(spec.unit), len(cohorts) - 1)][0][0]
        for name in ("donors", "comparison", "fit_window", "predictors_window"):
            if getattr(spec, name, None) is not None:
                update[name] = None  # windows and pools named for the real date do not fit a placebo date
        if getattr(spec, "predictors", None):
            update["predictors"] = self._placebo_predictors(spec.predictors, cohorts[0][1])
        return spec.model_copy(update=update) if update else spec

    def _placebo_predictors(self, predictors, start):
        """Synthetic-control predictors cut to before the placebo date: a window ending later
        ends the period before it; listed periods after it are dropped, and so is a predictor
        left with none."""
        design, kept = self.design, []
        for p in predictors:
            if p.periods is not None:
                periods = [v for v in p.periods if design.period(v, "predictors.periods") < start]
                if periods:
                    kept.append(p.model_copy(update={"periods": periods}))
            elif p.window is not None:
                first = design.period(p.window.start, "predictors.window.start")
                if first < start:
                    last = min(design.period(p.window.end, "predictors.window.end"), start - 1)
                    kept.append(p.model_copy(update={"window": p.window.model_copy(update={"start": str(first),
                                                                                         "end": str(last)})}))
            else:
                kept.append(p)
        return kept

    # -- planting
    def _plant(self, adoption_position, adoption, effect, thin_u, censor_u) -> AnalysisData:
        b = self.base
        comparison = [u for u in b.units if u not in adoption]
        if b.data.episodes is not None:
            data = self._plant_episodes(adoption_position, effect, thin_u, censor_u)
        else:
            data = self._plant_panel(adoption_position, effect, thin_u)
        return replace(data, adoption=dict(adoption), comparison_units=comparison)

    def _plant_episodes(self, adoption_position, effect, thin_u, censor_u) -> AnalysisData:
        b = self.base
        episodes = _episode_array(b.data.episodes, "episodes")
        start = adoption_position[_episode_array(b.ep_unit, "ep_unit")]
        after = (start >= 0) & (_episode_array(b.ep_period, "ep_period") >= start)
        if effect == 1.0:
            return b.data
        keep = ~after | (thin_u < effect)
        hours = _episode_array(b.ep_found_hours, "ep_found_hours").copy()
        censored = _episode_array(b.ep_censored, "ep_censored").copy()
        found_after = after & ~censored
        hours[found_after] *= effect
        open_after = np.flatnonzero(after & censored)
        survival_times = _episode_array(b.survival_times, "survival_times")
        survival_curve = _episode_array(b.survival_curve, "survival_curve")
        if len(open_after) and len(survival_times):
            c = hours[open_after]
            s_c = _survival_at(survival_times, survival_curve, c)
            target = s_c * censor_u[open_after]  # S(T) for T drawn beyond c
            # first event time whose survival falls to the target (inf when beyond the curve)
            idx = np.searchsorted(-survival_curve, -target, side="left")
            beyond = idx >= len(survival_times)
            t = np.where(beyond, np.inf, survival_times[np.clip(idx, 0, len(survival_times) - 1)])
            now_found = effect * t <= c
            hours[open_after[now_found]] = effect * t[now_found]
            censored[open_after[now_found]] = False
        new = episodes.loc[keep].reset_index(drop=True)
        new["hours_to_found"] = hours[keep]
        new["censored"] = censored[keep]
        repeat = None
        if b.ep_person is not None:
            repeat = mark_repeats(new).to_numpy() | _episode_array(b.ep_history, "ep_history")[keep]
            new["repeat"] = repeat
        return replace(b.data, episodes=new, panel=self._recount(new, keep, repeat), censored=int(new["censored"].sum()))

    def _recount(self, episodes: pd.DataFrame, keep: np.ndarray, repeat) -> pd.DataFrame:
        """Reports, repeat reports and distinct persons per area-period of the kept episodes
        (what :func:`evalkit.data.episodes.derive_counts` gives, from precomputed cells)."""
        b = self.base
        panel = b.data.panel.copy()
        n_cells = len(b.units) * len(b.data.periods)
        cell = _episode_array(b.ep_cell, "ep_cell")[keep]
        counts = {"reports": np.bincount(cell, minlength=n_cells)}
        wanted = {o.derive or o.name for o in self.design.outcomes if o.measure == "count"}
        if "repeat_reports" in wanted:
            counts["repeat_reports"] = np.bincount(cell, weights=repeat, minlength=n_cells).round().astype(np.int64) \
                if repeat is not None else np.zeros(n_cells, dtype=np.int64)
        if "persons" in wanted:
            if b.ep_person is None:
                counts["persons"] = counts["reports"]
            else:
                person = b.ep_person[keep]
                known = person >= 0
                width = int(b.ep_person.max()) + 1 if len(b.ep_person) else 1
                pairs = np.sort(cell[known] * width + person[known])
                distinct = pairs[np.r_[True, pairs[1:] != pairs[:-1]]] if len(pairs) else pairs
                counts["persons"] = np.bincount(distinct // width, minlength=n_cells)
        for outcome in self.design.outcomes:
            if outcome.measure == "count":
                panel[outcome.name] = counts[outcome.derive or outcome.name]
            elif outcome.measure in DURATION_MEASURES:
                panel[outcome.name] = derive_duration_outcome(episodes, b.units, b.data.periods, outcome)
        return panel

    def _plant_panel(self, adoption_position, effect, thin_u) -> AnalysisData:
        from scipy import stats

        b = self.base
        panel = b.data.panel
        if effect == 1.0:
            return b.data
        unit_pos = pd.Index(b.units).get_indexer(panel["unit"])
        period_pos = b.data.periods.get_indexer(panel["period"])
        start = adoption_position[unit_pos]
        after = (start >= 0) & (period_pos >= start)
        panel = panel.copy()
        for outcome in self.design.outcomes:
            values = panel[outcome.name].to_numpy(dtype=float).copy()
            if outcome.measure == "count":
                counts = values[after]
                # inverse-CDF draw from one uniform per cell: common random numbers across effects
                values[after] = np.where(np.isnan(counts), counts,
                                         stats.binom.ppf(thin_u[after], np.nan_to_num(counts).astype(np.int64), effect))
            elif outcome.measure == "continuous":
                values[after] += (effect - 1.0) * b.continuous_means[outcome.name]
            panel[outcome.name] = values
        return replace(b.data, panel=panel)

    def shift(self, outcome_name: str, effect: float) -> float:
        return (effect - 1.0) * self.base.continuous_means.get(outcome_name, 0.0)


def check_effects(effects, where: str) -> list[float]:
    out = []
    for e in effects:
        e = float(e)
        if not (0 < e <= 1):
            raise EvalkitError(where, f"planted effect {e:g} is not between 0 and 1",
                               "give a rate ratio such as 0.85 (15% fewer); planting thins episodes, so only falls "
                               "can be planted, and 1 is no change")
        out.append(e)
    return sorted(set(out), reverse=True)


__all__ = ["Draw", "PlantedSimulator", "PlaceboBase", "prepare_base", "duration_truth", "simulation_streams",
           "truth_for", "diagnosed", "null_value", "check_effects"]
