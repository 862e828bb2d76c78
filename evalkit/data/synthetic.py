"""Synthetic missing-child episodes with a planted single-point-of-contact (SPOC) effect.

Shapes follow DOMAIN.md ("What the data look like"); the data feed the shipped SPOC
example, design diagnosis and estimator tests. Vectorised numpy; all randomness from one
``numpy.random.default_rng(seed)``, so a seed always gives the same records.

How the records are made
------------------------
* Children, not incidents. Each force has a Poisson stream of children starting a
  "missing career" (from five years before the window: a steady state). A child has a
  sex, a looked-after flag (looked-after children, 1% of all children, are a fifth of those
  who go missing and make about half of the incidents), an age at first report (8-17) and
  a gamma frailty (5% of children make about 30% of incidents). Candidate episodes per
  child: ``1 + Poisson(m * frailty)``, ``m`` higher when looked after; gaps between them
  are a burst (1 + exponential, mean 8 days: raised repeat risk for about four weeks) or
  a long gap (1 + exponential, mean 55 days); none after the 18th birthday. Calibrated to
  about 2.9 reports per child a year and 65-75% repeats.
* Time effects by independent thinning. Candidate episodes come at a constant rate; each
  is kept with probability proportional to season x trend x COVID x a gamma force-month
  shock x the planted report multiplier, which multiplies the expected force-month count
  by exactly that product whatever the repeat dynamics: the planted rate ratio (0.88,
  phased in 1/4, 1/2, 3/4, full from the fourth month) is exact in expectation. Shocks and
  bursts make months overdispersed (variance about twice the mean).
* Time to found under proportional hazards. Baseline survival S0: the DOMAIN.md lognormal
  (mu = 1.96, sigma = 1.72 log-hours) mixed with a long-term-missing part (3% of the
  mass, median 9 months). The mixture is what leaves episodes open at extraction (about
  0.5%: some 0.1% of 2014-2016 reports, 1-1.5% of 2023 ones; the lognormal alone leaves
  almost none). An episode's survival is ``S0(t) ** h``, h from risk grade, looked-after
  status, a force frailty and the planted hazard ratio 1.25 (ramped on the log scale like
  the report effect): ``T = S0^-1(U ** (1 / h))``. Episodes found after the extraction
  instant (the end of 2024-03-31) have no ``found_at``.

Scales
------
``national``: 43 forces, 2014-01..2023-12, about 3.5 million episodes.
``regional``: 13 small forces, 2016-01..2023-12, about 50,000 episodes: all seven
adopters (cohort 2021-04: Northshire, Ashcombe, Brackenmoor; 2022-01: Eastmoor,
Fellside; 2022-10: Harrowdale, Lowmarsh; 30-70 reports a month each) and six
never-treated comparison forces (Westdale, Southmere, Greyhaven, Oakvale, Coldwater,
Elmshire).
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import integrate, special

__all__ = ["SyntheticData", "baseline_survival", "simulate_spoc_rollout", "write_spoc_rollout"]

EXTRACTED_AT = "2024-03-31"
RATE_RATIO = 0.88
HAZARD_RATIO = 1.25
PHASE_IN_MONTHS = 3
RMST_HORIZON_HOURS = 72
WINDOWS = {"national": ("2014-01", "2023-12"), "regional": ("2016-01", "2023-12")}

# Time to found (hours): DOMAIN.md lognormal plus a long-term-missing component.
FOUND_MU, FOUND_SIGMA = 1.96, 1.72
LONG_TERM_SHARE, LONG_TERM_MU, LONG_TERM_SIGMA = 0.03, np.log(24 * 274.0), 1.5
RISK_GRADES = ("high", "medium", "low")
# Hazard multipliers on S0: high risk 1.6x and low risk 0.85x the medium grade, looked-after
# 0.9x. Medium is 1.07x S0 so that the episode mix matches the DOMAIN.md shares found
# within 8/24/48 hours despite the long-term-missing part of S0.
LOG_HAZARD_RISK = {"high": np.log(1.07 * 1.6), "medium": np.log(1.07), "low": np.log(1.07 * 0.85)}
LOG_HAZARD_LOOKED_AFTER = np.log(0.9)
FORCE_LOG_HAZARD_SD = 0.10

# Report counts.
SEASONAL_INDEX = np.array([0.80, 0.80, 0.95, 1.00, 1.05, 1.20, 1.20, 1.05, 1.00, 1.05, 0.98, 0.92])
COVID_MONTHS, COVID_MULTIPLIER = ("2020-04", "2021-03"), 0.82
TREND_PER_YEAR, TREND_SD = 0.01, 0.003
SHOCK_EXTRA_DISPERSION = 0.4  # gamma shock variance = this / mean monthly reports

# Children and their careers (calibrated against DOMAIN.md; see tests/test_synthetic.py).
BURN_IN_DAYS = 5 * 365
LOOKED_AFTER_SHARE = 0.22
FEMALE_SHARE = 0.54
FRAILTY_SHAPE = 0.3
EXTRA_EPISODES = {False: 1.8, True: 12.0}  # mean of the Poisson part, by looked-after
BURST_SHARE, BURST_MEAN_DAYS, LONG_GAP_MEAN_DAYS = 0.65, 8.0, 55.0
CANDIDATES_PER_CHILD = 4.25  # in-window candidate episodes a child yields (steady state)
FIRST_AGE = np.arange(8, 18)
FIRST_AGE_P = np.array([0.005, 0.015, 0.03, 0.05, 0.09, 0.15, 0.19, 0.19, 0.16, 0.12])
HIGH_RISK_P, LOW_RISK_P, HIGH_RISK_P_UNDER_12 = 0.135, 0.075, 0.22
HOUR_WEIGHTS = np.array([4, 3, 2, 1.5, 1, 1, 1.2, 1.5, 2, 2.5, 3, 3.5,
                         4, 4.5, 5, 5.5, 6, 6.5, 7, 7.5, 8, 8, 7, 5.5])
CHILDREN_PER_MONTHLY_REPORT = 430.0  # children aged 0-17 per expected report a month

REGIONS = {"LDN": "London", "NW": "North West", "NE": "North East", "WM": "West Midlands",
           "EM": "East Midlands", "YH": "Yorkshire and the Humber", "EE": "East of England",
           "SE": "South East", "SW": "South West", "WAL": "Wales"}
# force, region code, expected child reports a month (season index 1, 2019), adoption cohort
FORCE_TABLE = (
    ("Thamesbury", "LDN", 3300, None), ("Calderbury", "NW", 2800, None),
    ("Ironvale", "WM", 2300, None), ("Stourmouth", "YH", 1950, None),
    ("Kingsmarch", "SE", 1750, None), ("Avonford", "SW", 1600, None),
    ("Medbury", "EM", 1250, None), ("Trentvale", "EM", 1150, None),
    ("Severnside", "WM", 1050, None), ("Wealdshire", "SE", 1000, None),
    ("Fenmarsh", "EE", 950, None), ("Cheswick", "NW", 900, None), ("Tynemoor", "NE", 850, None),
    ("Downshire", "SE", 800, None), ("Glamorvale", "WAL", 760, None),
    ("Saxonbury", "EE", 720, None), ("Mercford", "WM", 620, None), ("Wyrebridge", "NW", 580, None),
    ("Penhallow", "SW", 540, None), ("Marshfield", "EE", 500, None), ("Dunmoor", "YH", 470, None),
    ("Chalkdown", "SE", 440, None), ("Redwater", "EM", 420, None), ("Highcombe", "SW", 400, None),
    ("Ravenmoor", "NE", 380, None), ("Cambrook", "EE", 360, None), ("Gwentmere", "WAL", 340, None),
    ("Heronsgate", "SE", 320, None), ("Tarnside", "NW", 300, None), ("Moorhaven", "SW", 280, None),
    ("Northshire", "NE", 70, "2021-04"), ("Ashcombe", "NW", 45, "2021-04"),
    ("Brackenmoor", "YH", 35, "2021-04"), ("Eastmoor", "YH", 55, "2022-01"),
    ("Fellside", "NW", 40, "2022-01"), ("Harrowdale", "NE", 50, "2022-10"),
    ("Lowmarsh", "YH", 30, "2022-10"), ("Westdale", "NW", 55, None), ("Southmere", "NE", 45, None),
    ("Greyhaven", "YH", 40, None), ("Oakvale", "NW", 35, None), ("Coldwater", "NE", 30, None),
    ("Elmshire", "YH", 25, None),
)
REGIONAL_FORCES = tuple(row[0] for row in FORCE_TABLE[30:])


@dataclass(frozen=True)
class SyntheticData:
    """A simulated SPOC rollout: episodes, exposure, the planted truth and the forces.

    Attributes
    ----------
    episodes : pandas.DataFrame
        One row per episode, sorted by force, reported_at, episode_id.
    population : pandas.DataFrame
        Columns force, year, children (children aged 0-17 in the force area).
    truth : dict
        Planted truth, JSON-serialisable.
    forces : pandas.DataFrame
        Columns force, size_index, cohort ('YYYY-MM' or None for never), region.
    """

    episodes: pd.DataFrame
    population: pd.DataFrame
    truth: dict
    forces: pd.DataFrame


def _forces_frame(scale: str) -> pd.DataFrame:
    rows = [row for row in FORCE_TABLE if scale == "national" or row[0] in REGIONAL_FORCES]
    monthly = np.array([row[2] for row in FORCE_TABLE], dtype=float)
    return pd.DataFrame({
        "force": pd.Series([r[0] for r in rows]),
        "size_index": np.array([r[2] for r in rows], dtype=float) / monthly.mean(),
        "cohort": pd.Series([r[3] for r in rows], dtype=object),  # None = never adopts
        "region": pd.Series([REGIONS[r[1]] for r in rows]),
    })


def baseline_survival(hours) -> np.ndarray:
    """Baseline probability of still being missing after ``hours`` (S0).

    Parameters
    ----------
    hours : array_like
        Hours since the report (non-negative).

    Returns
    -------
    numpy.ndarray
        ``(1 - p) * S_LN(t; 1.96, 1.72) + p * S_LN(t; log(24 * 274), 1.5)`` with
        ``p = LONG_TERM_SHARE`` (0.03) and S_LN the lognormal survival; 1 at t = 0.
    """
    log_t = np.log(np.maximum(np.asarray(hours, dtype=float), 1e-300))
    return ((1 - LONG_TERM_SHARE) * special.ndtr((FOUND_MU - log_t) / FOUND_SIGMA)
            + LONG_TERM_SHARE * special.ndtr((LONG_TERM_MU - log_t) / LONG_TERM_SIGMA))


def _baseline_log_cumulative_hazard_grid() -> tuple[np.ndarray, np.ndarray]:
    """Grid of (log cumulative hazard, log hours) of S0 for inverse sampling."""
    log_t = np.linspace(-14.0, 28.0, 60001)
    distribution = ((1 - LONG_TERM_SHARE) * special.ndtr((log_t - FOUND_MU) / FOUND_SIGMA)
                    + LONG_TERM_SHARE * special.ndtr((log_t - LONG_TERM_MU) / LONG_TERM_SIGMA))
    survival = baseline_survival(np.exp(log_t))
    # -log S0, accurate at both ends (log1p for tiny F, log for tiny S).
    with np.errstate(divide="ignore"):
        cumulative_hazard = np.where(distribution < 0.5, -np.log1p(-distribution),
                                     -np.log(survival))
        log_cumulative_hazard = np.log(cumulative_hazard)
    usable = np.isfinite(log_cumulative_hazard)
    usable &= np.r_[True, np.diff(log_cumulative_hazard) > 0]
    return log_cumulative_hazard[usable], log_t[usable]


def _draw_hours_to_found(rng: np.random.Generator, log_hazard_multiplier: np.ndarray
                         ) -> np.ndarray:
    """Draw T with survival S0(t) ** h: T = S0^-1(U ** (1/h)), via -log U ~ Exp(1)."""
    grid_x, grid_log_t = _baseline_log_cumulative_hazard_grid()
    x = np.log(rng.standard_exponential(log_hazard_multiplier.size)) - log_hazard_multiplier
    return np.exp(np.interp(x, grid_x, grid_log_t))


def _rmst_difference(log_hazard_multiplier: np.ndarray, horizon: float,
                     hazard_ratio: float) -> float:
    """Mean over episodes of integral_0^horizon [S_i(t)^HR - S_i(t)] dt (trapezoid, 1/400 h)."""
    if log_hazard_multiplier.size == 0:
        return float("nan")
    values, counts = np.unique(log_hazard_multiplier, return_counts=True)
    hours = np.linspace(0.0, horizon, int(horizon * 400) + 1)
    log_s0 = np.log(baseline_survival(hours))[None, :]
    h = np.exp(values)[:, None]
    integrand = np.exp(hazard_ratio * h * log_s0) - np.exp(h * log_s0)
    per_value = integrate.trapezoid(integrand, hours, axis=1)
    return float(np.sum(per_value * counts) / counts.sum())


def _ramp(months_since_adoption: np.ndarray) -> np.ndarray:
    """Share of the full effect: 0 before adoption, (k+1)/(phase+1) during phase-in, then 1."""
    k = months_since_adoption
    return np.where(k >= 0, np.minimum((k + 1) / (PHASE_IN_MONTHS + 1), 1.0), 0.0)


def _ids(prefix: str, numbers: np.ndarray) -> pd.Series:
    """Identifiers like E0000001 (pandas string ops: much faster than numpy.char here)."""
    return prefix + pd.Series(numbers).astype(str).str.zfill(7)


def _labels(categories, codes: np.ndarray) -> pd.Series:
    """A string column from a few categories, in the pandas version's default string dtype."""
    return pd.Series(pd.Index(list(categories)).take(codes))


def simulate_spoc_rollout(seed: int = 20240510, scale: str = "regional", rate_ratio: float = RATE_RATIO,
                          hazard_ratio: float = HAZARD_RATIO) -> SyntheticData:
    """Simulate a staggered SPOC rollout with planted effects on reports and time to found.

    Parameters
    ----------
    seed : int
        Seed of the single ``numpy.random.Generator``; same seed, same data.
    scale : {"regional", "national"}
        ``regional``: 13 small forces, 2016-01..2023-12 (about 50,000 episodes);
        ``national``: 43 forces, 2014-01..2023-12 (about 3.5 million episodes).
    rate_ratio, hazard_ratio : float
        Planted effects on reports and on the hazard of being found (defaults 0.88 and
        1.25; other values let several evaluations plant different effects).

    Returns
    -------
    SyntheticData
        Episodes, population, planted truth and the force table.
    """
    if scale not in WINDOWS:
        raise ValueError(f"scale must be one of {sorted(WINDOWS)}, not {scale!r}")
    rng = np.random.default_rng(seed)
    forces = _forces_frame(scale)
    names = forces["force"].to_numpy()
    n_forces = len(forces)
    monthly_reports = np.array([r[2] for r in FORCE_TABLE if r[0] in set(names)], dtype=float)

    first, last = WINDOWS[scale]
    months = np.arange(np.datetime64(first, "M"), np.datetime64(last, "M") + 1)
    window_start = months[0].astype("datetime64[D]")
    month_start_day = (months.astype("datetime64[D]") - window_start).astype(np.int64)
    window_days = int(((months[-1] + 1).astype("datetime64[D]") - window_start).astype(np.int64))
    years_from_2019 = (months - np.datetime64("2019-01", "M")).astype(np.int64) / 12.0
    in_covid = ((months >= np.datetime64(COVID_MONTHS[0]))
                & (months <= np.datetime64(COVID_MONTHS[1])))
    covid = np.where(in_covid, COVID_MULTIPLIER, 1.0)
    cohort = forces["cohort"].to_numpy()
    adopting = np.array([c is not None for c in cohort])
    adoption_index = np.array([(np.datetime64(c, "M") - months[0]).astype(np.int64) if c else 10**6
                               for c in cohort])
    months_since_adoption = np.arange(months.size)[None, :] - adoption_index[:, None]
    ramp = np.where(adopting[:, None], _ramp(months_since_adoption), 0.0)

    # Force-month intensity relative to the baseline (the thinning probabilities).
    trend_slope = TREND_PER_YEAR + TREND_SD * rng.standard_normal(n_forces)
    shock_shape = monthly_reports[:, None] / SHOCK_EXTRA_DISPERSION
    shock = rng.gamma(shock_shape, 1.0 / shock_shape, size=(n_forces, months.size))
    force_log_hazard = FORCE_LOG_HAZARD_SD * rng.standard_normal(n_forces)
    force_log_hazard -= np.average(force_log_hazard, weights=monthly_reports)  # centred on reports
    intensity = (SEASONAL_INDEX[months.astype(np.int64) % 12] * covid
                 * np.exp(trend_slope[:, None] * years_from_2019) * shock)
    report_multiplier = 1.0 - (1.0 - rate_ratio) * ramp
    peak_intensity = intensity.max(axis=1)
    keep_probability = intensity * report_multiplier / peak_intensity[:, None]

    # Children and their candidate episodes (days since the window start).
    candidate_rate = monthly_reports / (365.25 / 12) * peak_intensity
    n_children = rng.poisson(candidate_rate * (window_days + BURN_IN_DAYS) / CANDIDATES_PER_CHILD)
    child_force = np.repeat(np.arange(n_forces), n_children)
    first_day = rng.uniform(-BURN_IN_DAYS, window_days, child_force.size)
    child_looked_after = rng.random(child_force.size) < LOOKED_AFTER_SHARE
    child_female = rng.random(child_force.size) < FEMALE_SHARE
    frailty = rng.gamma(FRAILTY_SHAPE, 1.0 / FRAILTY_SHAPE, child_force.size)
    first_age = rng.choice(FIRST_AGE, size=child_force.size, p=FIRST_AGE_P)
    birth_day = first_day - (first_age + rng.random(child_force.size)) * 365.25
    extra = np.where(child_looked_after, EXTRA_EPISODES[True], EXTRA_EPISODES[False])
    n_candidates = 1 + rng.poisson(extra * frailty)

    child = np.repeat(np.arange(child_force.size), n_candidates)
    child_first_row = np.cumsum(n_candidates) - n_candidates
    gap = np.where(rng.random(child.size) < BURST_SHARE,
                   1.0 + rng.exponential(BURST_MEAN_DAYS, child.size),
                   1.0 + rng.exponential(LONG_GAP_MEAN_DAYS, child.size))
    gap[child_first_row] = 0.0
    elapsed = np.cumsum(gap)
    day = first_day[child] + elapsed - elapsed[child_first_row][child]
    age = np.floor((day - birth_day[child]) / 365.25).astype(np.int64)
    in_scope = (day >= 0) & (day < window_days) & (age <= 17)
    child, day, age = child[in_scope], np.floor(day[in_scope]).astype(np.int64), age[in_scope]
    force = child_force[child]
    month = np.searchsorted(month_start_day, day, side="right") - 1
    kept = rng.random(child.size) < keep_probability[force, month]
    child, day, age, force, month = child[kept], day[kept], age[kept], force[kept], month[kept]
    n = child.size

    # Episode details.
    risk_draw = rng.random(n)
    high_p = np.where(age < 12, HIGH_RISK_P_UNDER_12, HIGH_RISK_P)
    risk = np.where(risk_draw < high_p, 0, np.where(risk_draw > 1 - LOW_RISK_P, 2, 1))
    hour = rng.choice(24, size=n, p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum())
    minute = rng.integers(0, 60, size=n)
    reported = window_start.astype("datetime64[m]") + (day * 1440 + hour * 60 + minute)
    looked_after = child_looked_after[child]
    baseline_log_hazard = (np.array([LOG_HAZARD_RISK[g] for g in RISK_GRADES])[risk]
                           + LOG_HAZARD_LOOKED_AFTER * looked_after + force_log_hazard[force])
    episode_ramp = ramp[force, month]
    hours = _draw_hours_to_found(rng, baseline_log_hazard + np.log(hazard_ratio) * episode_ramp)
    found = reported + np.ceil(np.minimum(hours, 1e9) * 60).astype(np.int64)
    extraction = np.datetime64(EXTRACTED_AT, "D") + np.timedelta64(1, "D")
    open_at_extraction = found >= extraction
    found = np.where(open_at_extraction, np.datetime64("NaT"), found).astype("datetime64[m]")

    # Order, identifiers and the frame.
    force_rank = np.argsort(np.argsort(names))
    order = np.lexsort((child, reported.astype(np.int64), force_rank[force]))
    child_sorted = child[order]
    _, first_seen = np.unique(child_sorted, return_index=True)
    child_number = np.empty(child_force.size, dtype=np.int64)
    child_number[child_sorted[np.sort(first_seen)]] = np.arange(1, first_seen.size + 1)
    episodes = pd.DataFrame({
        "episode_id": _ids("E", np.arange(1, n + 1)),
        "force": _labels(names, force[order]),
        "child_id": _ids("C", child_number[child_sorted]),
        "reported_at": reported[order].astype("datetime64[ns]"),
        "found_at": found[order].astype("datetime64[ns]"),
        "age": age[order],
        "sex": _labels("MF", child_female[child_sorted].astype(np.int64)),
        "looked_after": looked_after[order],
        "risk": _labels(RISK_GRADES, risk[order]),
    })

    years = np.arange(int(first[:4]), int(last[:4]) + 1)
    base_children = (monthly_reports * CHILDREN_PER_MONTHLY_REPORT
                     * np.exp(0.15 * rng.standard_normal(n_forces)))
    growth = 0.004 + 0.002 * rng.standard_normal(n_forces)
    population = pd.DataFrame({
        "force": np.repeat(names, years.size),
        "year": np.tile(years, n_forces),
        "children": np.round(base_children[:, None] * np.exp(growth[:, None] * (years - 2019)))
        .ravel().astype(np.int64),
    })

    fully_adopted = adopting[force] & (episode_ramp >= 1.0)
    truth = {
        "seed": int(seed), "scale": scale, "window": {"start": first, "end": last},
        "extracted_at": EXTRACTED_AT,
        "adoption": {str(f): str(c) for f, c in zip(names, cohort) if c is not None},
        "reports": {
            "rate_ratio": rate_ratio, "phase_in_months": PHASE_IN_MONTHS,
            "description": ("Expected reports in an adopting force are multiplied by "
                            f"1 - {1.0 - rate_ratio:.12g} * min((k + 1) / 4, 1) in month k after adoption (k = 0 is "
                            f"the adoption month): {rate_ratio:.12g} from k = 3 on, by independent thinning."),
        },
        "time_to_found": {
            "hazard_ratio": hazard_ratio, "horizon_hours": RMST_HORIZON_HOURS,
            "rmst_difference_hours": _rmst_difference(baseline_log_hazard[fully_adopted],
                                                      RMST_HORIZON_HOURS, hazard_ratio),
            "description": (f"Hazard of being found multiplied by {hazard_ratio:.12g} (proportional hazards) from "
                            "month k = 3 after adoption, log hazard ratio ramped by (k + 1) / 4 "
                            "before; rmst_difference_hours is the mean over fully adopted "
                            "episodes of the 72-hour RMST change (negative = found sooner)."),
        },
        "episodes": int(n), "censored": int(open_at_extraction.sum()),
    }
    return SyntheticData(episodes=episodes, population=population, truth=truth, forces=forces)


def write_spoc_rollout(out_dir, seed: int = 20240510, scale: str = "regional", rate_ratio: float = RATE_RATIO,
                       hazard_ratio: float = HAZARD_RATIO) -> dict:
    """Simulate and write episodes, population.csv and truth.json into ``out_dir``.

    Parameters
    ----------
    out_dir : str or path-like
        Folder to write to (created if missing).
    seed : int
        Seed passed to :func:`simulate_spoc_rollout`.
    scale : {"regional", "national"}
        Regional writes ``episodes.csv.gz``; national writes ``episodes.parquet``.

    Returns
    -------
    dict
        ``{"episodes": filename, "population": filename, "truth": filename}``.

    Notes
    -----
    The same seed gives byte-identical files (gzip without a timestamp; timestamps as
    ``YYYY-MM-DD HH:MM``, ``found_at`` empty when open; truth with sorted keys).
    """
    data = simulate_spoc_rollout(seed=seed, scale=scale, rate_ratio=rate_ratio, hazard_ratio=hazard_ratio)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if scale == "national":
        episodes_name = "episodes.parquet"
        data.episodes.to_parquet(out / episodes_name, index=False, compression="zstd")
    else:
        episodes_name = "episodes.csv.gz"
        text = data.episodes.to_csv(index=False, date_format="%Y-%m-%d %H:%M", na_rep="",
                                    lineterminator="\n")
        compressed = gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0)
        (out / episodes_name).write_bytes(compressed)
    data.population.to_csv(out / "population.csv", index=False, lineterminator="\n")
    (out / "truth.json").write_text(json.dumps(data.truth, sort_keys=True, indent=2) + "\n",
                                    encoding="utf-8")
    return {"episodes": episodes_name, "population": "population.csv", "truth": "truth.json"}
