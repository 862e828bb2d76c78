"""Simulation from a model (``--model synthetic``): a study not yet run, described by the
design's ``diagnose:`` block.

Each simulation draws a fresh dataset of episodes: area mean rates log-normal around
``baseline_rate`` (SD ``area_spread``), a shock with mean 1 and variance ``overdispersion``
on each area-period (independent gamma shocks, or with ``autocorrelation`` rho > 0
log-normal shocks whose logs follow an AR(1) within each area), Poisson episode counts,
report times uniform in the period; each episode is by a child already reported in the
area with probability ``repeat_persistence`` (one of them at random) and by a new child
otherwise; hours to found Weibull with the given median and shape, none censored. The
planted effect acts exactly as when planting into data: post-adoption episodes kept with
probability ``E`` (rate ratio ``E``) and their hours multiplied by ``E``, which for Weibull
times is a hazard ratio of ``E ** -shape`` exactly (proportional hazards); the
restricted-mean difference is computed from the Weibull curve.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import integrate

from ..data import AnalysisData
from ..data.durations import DURATION_MEASURES, derive_duration_outcome
from ..data.episodes import derive_counts, mark_repeats
from ..design import Design, Units
from ..errors import EvalkitError
from ..periods import FREQUENCIES
from .simulate import Draw, simulation_streams


class ModelSimulator:
    """Datasets drawn from the design's ``diagnose:`` model."""

    kind = "synthetic"

    def __init__(self, design: Design):
        model = design.diagnose
        if model is None:
            raise EvalkitError(design.where, "--model synthetic needs a diagnose: block in the design",
                               "add diagnose: {areas: 12, start: 2019-01, periods: 60, adoption: {2021-01: 3}, "
                               "baseline_rate: 40} (docs/diagnosis.md)", key="diagnose")
        if design.data.layout != "episodes":
            raise EvalkitError(design.where, "--model synthetic simulates episodes, but data.layout is panel",
                               "use layout: episodes or diagnose from the data (--model data)", key="diagnose")
        self.design = design
        self.model = model
        freq = FREQUENCIES[design.data.frequency]
        self.periods = pd.period_range(design.period(model.start, "diagnose.start"), periods=model.periods, freq=freq)
        dates = sorted((design.period(k, f"diagnose.adoption.{k}"), n) for k, n in model.adoption.items())
        if sum(n for _, n in dates) >= model.areas:
            raise EvalkitError(design.where, f"{sum(n for _, n in dates)} of {model.areas} areas adopt, leaving no comparison area",
                               "adopt fewer areas or add areas", key="diagnose.adoption")
        for date, _ in dates:
            if not (self.periods[0] < date <= self.periods[-1]):
                raise EvalkitError(design.where, f"adoption {date} is not inside the simulated periods "
                                   f"({self.periods[0]}..{self.periods[-1]})", "move it or change start/periods",
                                   key="diagnose.adoption")
        self.units = [f"area{i + 1:02d}" for i in range(model.areas)]
        self.cohorts = []
        taken = 0
        for date, n in dates:
            self.cohorts.append((self.units[taken:taken + n], date))
            taken += n
        self.adoption = {u: p for members, p in self.cohorts for u in members}
        self.scale = model.median_hours / math.log(2) ** (1 / model.weibull_shape)
        self.horizon = {s.outcome: float(getattr(s, "horizon", None) or design.outcome(s.outcome).horizon or 72.0)
                        for s in design.analysis if s.method == "survival_did"}
        units = Units(treated=list(self.cohorts[0][0]),
                      adoption={u: str(p) for members, p in self.cohorts[1:] for u in members})
        intervention = design.intervention.model_copy(update={"start": str(self.cohorts[0][1])})
        analysis = [s.model_copy(update={k: None for k in ("units", "start", "unit", "donors", "comparison")
                                         if getattr(s, k, None) is not None}) for s in design.analysis]
        self._template = design.model_copy(update={"units": units, "intervention": intervention, "analysis": analysis})
        self._template._path, self._template._sha256 = design._path, design._sha256

    def describe(self) -> dict:
        return {"model": "synthetic", **self.model.model_dump(mode="json")}

    def survival(self, t):
        return np.exp(-(np.asarray(t, dtype=float) / self.scale) ** self.model.weibull_shape)

    def truths(self, effect: float) -> dict:
        out = {}
        for name, horizon in self.horizon.items():
            rmst = integrate.quad(lambda t: float(self.survival(t / effect) - self.survival(t)), 0, horizon, limit=200)[0]
            out[name] = {"hazard_ratio_did": effect ** -self.model.weibull_shape, "rmst_difference_did": rmst}
        return out

    def draws(self, sim: int, effects: list[float]):
        rng, method_seed = simulation_streams(self.design.seed, sim)
        m = self.model
        n_units, n_periods = len(self.units), len(self.periods)
        level = m.baseline_rate * np.exp(m.area_spread * rng.standard_normal(n_units) - m.area_spread ** 2 / 2)
        shock = self._shocks(rng, n_units, n_periods)
        counts = rng.poisson(level[:, None] * shock)
        unit = np.repeat(np.repeat(np.arange(n_units), n_periods), counts.ravel())
        period = np.repeat(np.tile(np.arange(n_periods), n_units), counts.ravel())
        starts = self.periods.start_time.to_numpy()
        lengths = (self.periods.end_time.to_numpy() - starts).astype("timedelta64[s]").astype(np.int64)
        offset = (rng.random(len(unit)) * lengths[period]).astype("timedelta64[s]")
        reported = starts[period] + offset
        order = np.lexsort((reported, unit))
        unit, period, reported = unit[order], period[order], reported[order]
        person = self._children(rng, unit)
        hours = self.scale * rng.weibull(m.weibull_shape, len(unit))
        thin_u = rng.random(len(unit))
        adoption_position = np.array([self.periods.get_loc(self.adoption[u]) if u in self.adoption else -1
                                      for u in self.units])
        after = (adoption_position[unit] >= 0) & (period >= adoption_position[unit])
        design = self._template.model_copy(update={"seed": method_seed})
        design._path, design._sha256 = self._template._path, self._template._sha256
        for effect in effects:
            keep = ~after | (thin_u < effect)
            h = np.where(after, hours * effect, hours)[keep]
            episodes = pd.DataFrame({
                "unit": pd.array(np.array(self.units, dtype=object)[unit[keep]], dtype="str"),
                "reported_at": reported[keep],
                "found_at": reported[keep] + (h * 3600).astype("timedelta64[s]"),
                "person": pd.Categorical(person[keep]),
                "hours_to_found": h, "censored": np.zeros(int(keep.sum()), dtype=bool),
                "period": self.periods[period[keep]],
            })
            episodes["repeat"] = mark_repeats(episodes).to_numpy()
            yield Draw(design=design, data=self._data(episodes), effect=effect, truth=self.truths(effect))

    def _shocks(self, rng, n_units: int, n_periods: int) -> np.ndarray:
        """Each area-period's multiplicative shock on the rate (mean 1, variance ``overdispersion``).

        Without autocorrelation: independent gamma shocks. With ``autocorrelation`` rho > 0:
        ``exp(e - s^2 / 2)`` with ``e`` an AR(1) series per area (coefficient rho, stationary
        from the first period, variance ``s^2 = log(1 + overdispersion)``), so the shocks keep
        the same mean and variance but persist from month to month, as real series do.
        """
        m = self.model
        if m.overdispersion <= 0:
            return np.ones((n_units, n_periods))
        rho = m.autocorrelation
        if rho == 0:
            shape = 1.0 / m.overdispersion
            return rng.gamma(shape, 1.0 / shape, (n_units, n_periods))
        variance = math.log1p(m.overdispersion)
        innovations = rng.standard_normal((n_units, n_periods))
        series = np.empty((n_units, n_periods))
        series[:, 0] = innovations[:, 0]
        scale = math.sqrt(1.0 - rho ** 2)
        for t in range(1, n_periods):
            series[:, t] = rho * series[:, t - 1] + scale * innovations[:, t]
        return np.exp(math.sqrt(variance) * series - variance / 2)

    def _children(self, rng, unit: np.ndarray) -> np.ndarray:
        """A child per episode: a new one, or (with probability repeat_persistence) one already seen in the area."""
        repeat = rng.random(len(unit)) < self.model.repeat_persistence
        pick = rng.random(len(unit))
        person = np.empty(len(unit), dtype=np.int64)
        next_id, seen_start = 0, 0
        for i in range(len(unit)):  # episodes are sorted by area, then time
            if i and unit[i] != unit[i - 1]:
                seen_start = next_id
            if repeat[i] and next_id > seen_start:
                person[i] = seen_start + int(pick[i] * (next_id - seen_start))
            else:
                person[i] = next_id
                next_id += 1
        return person

    def _data(self, episodes: pd.DataFrame) -> AnalysisData:
        counts = derive_counts(episodes, self.units, self.periods)
        panel = counts[["unit", "period"]].copy()
        for outcome in self.design.outcomes:
            if outcome.measure == "count":
                panel[outcome.name] = counts[outcome.derive or outcome.name].to_numpy()
            elif outcome.measure in DURATION_MEASURES:
                panel[outcome.name] = derive_duration_outcome(episodes, self.units, self.periods, outcome)
        comparison = [u for u in self.units if u not in self.adoption]
        return AnalysisData(panel=panel, periods=self.periods, units=list(self.units), adoption=dict(self.adoption),
                            comparison_units=comparison, episodes=episodes, rows=len(episodes))


__all__ = ["ModelSimulator"]
