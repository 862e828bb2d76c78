"""Calibration of the DiD checks and intervals by small independent simulations.

The data-generating processes here are written for these tests (not evalkit's generator):

* ``monthly_null``: 48 areas, 60 months, 3 cohorts of 3 adopting at months 36, 42 and 48
  (36 or more pre-adoption months), 39 never adopting, chosen at random; monthly counts
  Poisson with mean ``exp(a_i + s_t + u_it)`` (area effects, a common seasonal and
  calendar effect, an area-level AR(1) shock, rho 0.5): parallel trends hold in
  expectation because the cohorts are random.
* ``yearly_null``: an mpdta-like panel, 500 counties, 2003-2007, cohorts 2004 / 2006 / 2007
  of 20 / 40 / 131 counties and 309 never treated, a continuous outcome with county and
  year effects and AR(1) noise.

Under those nulls the pre-trend check's rejection rate must be near alpha = 0.05: the
bound 0.10 allows for Monte Carlo error (SE about 1.5 points at 200 datasets).
benchmarks/staggered_pretrend_size.py runs the same with more datasets and R did's test.
"""

from __future__ import annotations

import numpy as np
import pytest

from evalkit.methods.staggered.att_gt import NEVER
from evalkit.methods.staggered.pretrend import pooled_pre_trend_test


def monthly_null(rng: np.random.Generator, units: int = 48, months: int = 60, cohorts=(36, 42, 48), size: int = 3):
    cohort = np.full(units, NEVER, dtype=np.int64)
    chosen = rng.choice(units, size * len(cohorts), replace=False)
    for k, g in enumerate(cohorts):
        cohort[chosen[k * size:(k + 1) * size]] = g
    area = rng.normal(np.log(30), 0.6, units)
    calendar = 0.15 * np.sin(2 * np.pi * np.arange(months) / 12) + np.cumsum(rng.normal(0, 0.02, months))
    shock = np.zeros((units, months))
    shock[:, 0] = rng.normal(0, 0.1 / np.sqrt(0.75), units)
    for t in range(1, months):
        shock[:, t] = 0.5 * shock[:, t - 1] + rng.normal(0, 0.1, units)
    counts = rng.poisson(np.exp(area[:, None] + calendar[None, :] + shock))
    return counts.astype(float), cohort


def yearly_null(rng: np.random.Generator):
    sizes = {1: 20, 3: 40, 4: 131}
    units = 500
    cohort = np.full(units, NEVER, dtype=np.int64)
    order = rng.permutation(units)
    start = 0
    for g, n in sizes.items():
        cohort[order[start:start + n]] = g
        start += n
    county = rng.normal(6.0, 1.5, units)
    year = np.cumsum(rng.normal(0, 0.05, 5))
    noise = np.zeros((units, 5))
    noise[:, 0] = rng.normal(0, 0.15, units)
    for t in range(1, 5):
        noise[:, t] = 0.5 * noise[:, t - 1] + rng.normal(0, 0.15 * np.sqrt(0.75), units)
    return county[:, None] + year[None, :] + noise, cohort


def rejection_rate(simulate, per_year: int, datasets: int, seed: int, control_group: str = "never_treated"):
    """(rejection rate, its MC SE, share called calibrated, rejection rate among those)."""
    rng = np.random.default_rng(seed)
    rejected, calibrated = [], []
    for _ in range(datasets):
        Y, cohort = simulate(rng)
        test = pooled_pre_trend_test(Y, cohort, per_year, control_group=control_group, never=NEVER)
        rejected.append(test["p_value"] < 0.05)
        calibrated.append(test["calibrated"])
    rejected, calibrated = np.array(rejected), np.array(calibrated)
    rate = float(np.mean(rejected))
    among = float(np.mean(rejected[calibrated])) if calibrated.any() else float("nan")
    return rate, float(np.sqrt(rate * (1 - rate) / datasets)), float(np.mean(calibrated)), among


@pytest.mark.parametrize("control_group", ["never_treated", "not_yet_treated"])
def test_pooled_pre_trend_test_holds_its_size_on_monthly_data(control_group):
    # 3 cohorts of 3: the effective degrees of freedom are often near MIN_DF; the test is
    # conservative there (about 2-3% at alpha 0.05), never liberal
    rate, se, calibrated, among = rejection_rate(monthly_null, 12, 200, seed=101, control_group=control_group)
    assert calibrated >= 0.6
    assert 0.003 <= rate <= 0.10, f"rejection rate {rate:.3f} (MC SE {se:.3f})"
    assert among <= 0.10


def test_pooled_pre_trend_test_holds_its_size_on_yearly_data():
    rate, se, calibrated, _ = rejection_rate(yearly_null, 1, 200, seed=202)
    assert calibrated == 1.0
    assert 0.01 <= rate <= 0.10, f"rejection rate {rate:.3f} (MC SE {se:.3f})"


def test_pooled_pre_trend_test_detects_a_diverging_trend():
    rng = np.random.default_rng(303)
    detected = 0
    for _ in range(40):
        Y, cohort = monthly_null(rng)
        treated = cohort != NEVER
        # the adopting areas grow 20% a year faster before adoption
        Y[treated] = rng.poisson(Y[treated] * np.exp(0.2 * np.arange(Y.shape[1]) / 12))
        detected += pooled_pre_trend_test(Y, cohort, 12, never=NEVER)["p_value"] < 0.05
    assert detected / 40 >= 0.6


def test_one_unit_cohorts_borrow_the_comparison_spread():
    rng = np.random.default_rng(404)
    Y, cohort = monthly_null(rng, size=1)
    test = pooled_pre_trend_test(Y, cohort, 12, never=NEVER)
    assert sorted(test["borrowed_spread"]) == [36, 42, 48]
    assert np.isfinite(test["p_value"]) and test["df_effective"] > 4


def test_short_monthly_pre_periods_use_halves_and_hold_the_size():
    # 20 months, cohorts adopting at months 8, 9 and 11: no two years before adoption, so the
    # bins are halves of the longest pre-period (5 months); R did's test over the 25 pre-period
    # cells rejects about 91% of these null data sets (benchmarks/staggered_pretrend_size.py)
    def short(rng):
        return monthly_null(rng, units=48, months=20, cohorts=(8, 9, 11), size=10)

    Y, cohort = short(np.random.default_rng(5))
    test = pooled_pre_trend_test(Y, cohort, 12, never=NEVER)
    assert test["bin_width"] == 5 and test["bins"][0]["bin"] == "periods 6-10 before adoption"
    rate, se, calibrated, _ = rejection_rate(short, 12, 200, seed=505)
    assert calibrated == 1.0
    assert 0.005 <= rate <= 0.10, f"rejection rate {rate:.3f} (MC SE {se:.3f})"
