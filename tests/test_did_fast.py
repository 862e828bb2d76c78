"""did's randomization inference as arrays (evalkit/methods/did/fast_ppml.py).

The array solvers must give ``estimate``'s statistic for every assignment (to 1e-9, on random
balanced and unbalanced panels with zeros, Poisson TWFE and extended TWFE with both control
groups, linear TWFE), and a did fit with them must report exactly what the one-at-a-time
path reports (byte-identical estimate, details and series).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import evalkit.methods.did.did as did_module
from evalkit.methods.did.bacon import NEVER
from evalkit.methods.did.estimate import DiDSample, estimate
from evalkit.methods.did.fast_ppml import PermutationStatistics, linear_statistics, poisson_statistics

from .test_did import STAGGERED, fit_did, month, panel_design, simulated_panel


def random_sample(rng, family: str, missing: float, zeros: float, transition: int, control: str,
                  exposure: bool, units: int = 8, periods: int = 20) -> DiDSample:
    names = [f"u{i}" for i in range(units)]
    grid_u, grid_t = (a.ravel() for a in np.meshgrid(np.arange(units), np.arange(periods), indexing="ij"))
    present = rng.random(len(grid_u)) >= missing
    unit, time = grid_u[present], grid_t[present]
    mean = np.exp(rng.normal(2.0, 0.5, units))[unit] * np.exp(rng.normal(0.0, 0.2, periods))[time]
    y = rng.poisson(mean).astype(float)
    y[rng.random(len(y)) < zeros] = 0.0
    if family == "linear":
        y = y + rng.normal(size=len(y))
    return DiDSample(names, pd.period_range("2020-01", periods=periods, freq="M"), unit, time, y,
                     y if family == "poisson" else None, rng.uniform(0.5, 2.0, len(y)) if exposure else None,
                     transition, family, control, None, missing == 0.0)


def random_assignments(rng, units: int, dates: list[int], n: int = 12) -> np.ndarray:
    out = np.full((n, units), NEVER)
    for b in range(n):
        out[b, rng.permutation(units)[: len(dates)]] = dates
    return out


def reference(sample, positions, estimator) -> np.ndarray:
    values = []
    for p in positions:
        try:
            values.append(estimate(sample, p, estimator, covariance=False).statistic)
        except (ZeroDivisionError, FloatingPointError):    # a degenerate draw estimate itself cannot fit
            values.append(np.inf)
    return np.array(values)


CASES = [(missing, zeros, transition, control, exposure)
         for missing in (0.0, 0.1) for zeros in (0.0, 0.25) for transition in (0, 2)
         for control in ("not_yet_treated", "never_treated") for exposure in (True, False)]


@pytest.mark.parametrize("missing, zeros, transition, control, exposure", CASES)
def test_poisson_statistics_match_estimate(missing, zeros, transition, control, exposure):
    rng = np.random.default_rng(CASES.index((missing, zeros, transition, control, exposure)))
    sample = random_sample(rng, "poisson", missing, zeros, transition, control, exposure)
    for estimator, dates in (("twfe", [5, 5, 11]), ("extended_twfe", [5, 5, 11]), ("extended_twfe", [6, 9, 13])):
        positions = random_assignments(rng, sample.n_units, dates)
        fast, fallback, state = poisson_statistics(sample, positions, estimator)
        slow = reference(sample, positions, estimator)
        usable = ~fallback & (slow != np.inf)
        # with a quarter of the counts zero an area's effect can rest on a single zero (no maximum
        # may exist): those are left to estimate
        if zeros == 0.0:
            assert usable.sum() >= len(positions) // 2
        np.testing.assert_array_equal(np.isnan(fast[usable]), np.isnan(slow[usable]))
        finite = usable & np.isfinite(slow)
        if finite.any():
            assert np.max(np.abs(fast[finite] - slow[finite])) < 1e-9
            # a warm start from another null's solution reaches the same answer
            again, _, _ = poisson_statistics(sample, positions, estimator, start=state)
            assert np.max(np.abs(again[finite] - fast[finite])) < 1e-10
    if missing == 0.0 and zeros == 0.0:
        assert not fallback.any()


@pytest.mark.parametrize("missing, transition", [(0.0, 0), (0.0, 2), (0.1, 0), (0.1, 2)])
def test_linear_statistics_match_estimate(missing, transition):
    rng = np.random.default_rng(17 + transition + int(missing * 10))
    sample = random_sample(rng, "linear", missing, 0.0, transition, "not_yet_treated", False)
    positions = random_assignments(rng, sample.n_units, [4, 4, 12])
    fast, fallback = linear_statistics(sample, positions)
    slow = reference(sample, positions, "twfe")
    assert not fallback.any()
    assert np.max(np.abs(fast - slow)) < 1e-9


def test_a_separated_cohort_period_is_left_out_as_estimate_does():
    rng = np.random.default_rng(5)
    sample = random_sample(rng, "poisson", 0.0, 0.0, 0, "not_yet_treated", True)
    positions = random_assignments(rng, sample.n_units, [5, 5, 11])
    # no counts in one treated area-period of every cohort-11 area: the cohort x period cell is empty
    for b in range(len(positions)):
        for u in np.flatnonzero(positions[b] == 11):
            sample.y[(sample.unit == u) & (sample.time == 15)] = 0.0
    fast, fallback, _ = poisson_statistics(sample, positions, "extended_twfe")
    slow = reference(sample, positions, "extended_twfe")
    ok = ~fallback
    assert ok.sum() >= 6
    assert np.max(np.abs(fast[ok] - slow[ok])) < 1e-9


def _record(result) -> str:
    att = result.estimates[0]
    return json.dumps({"estimate": [att.estimate, att.ci_low, att.ci_high, att.p_value, att.se],
                       "details": att.details, "series": result.analysis.series,
                       "checks": [repr(c) for c in result.checks]}, sort_keys=True, default=repr)


def _both_paths(design) -> tuple[str, str, object]:
    records = {}
    try:
        for fast in (True, False):
            did_module.FAST_PERMUTATIONS = fast
            result, _ = fit_did(design)
            records[fast] = (_record(result), result)
    finally:
        did_module.FAST_PERMUTATIONS = True
    return records[True][0], records[False][0], records[True][1]


@pytest.mark.parametrize("seed, transition", [(3, 0), (4, 1)])
def test_fit_reports_what_one_estimate_call_per_assignment_reports(tmp_path, seed, transition):
    """The whole estimate record (p-value, interval, histogram, every detail) to the last bit."""
    rng = np.random.default_rng(seed)
    adoption = {"A0": month(6), "A1": month(6), "A2": month(10)}
    frame = simulated_panel(rng, adoption, areas=9, periods=18, effect=np.log(0.9), counts=True, scale=50.0)
    design = panel_design(tmp_path, frame, {"inference": "randomization", "reps": 99}, adoption, measure="count",
                          exposure=True, per=1000, transition=transition)
    fast, slow, result = _both_paths(design)
    assert fast == slow
    att = result.estimates[0]
    assert att.details["randomization"]["exhaustive"] and att.ci_low is not None and att.ci_high is not None


def test_fit_reports_the_same_with_random_permutations_and_the_linear_family(tmp_path):
    rng = np.random.default_rng(11)
    frame = simulated_panel(rng, STAGGERED, areas=12, periods=20, effect=np.log(0.9), counts=True, scale=20.0)
    design = panel_design(tmp_path, frame, {"inference": "randomization", "reps": 99}, STAGGERED, measure="count",
                          exposure=True, per=1000)
    fast, slow, result = _both_paths(design)
    assert fast == slow and not result.estimates[0].details["randomization"]["exhaustive"]
    adoption = {"A0": month(5), "A1": month(5)}
    linear = simulated_panel(rng, adoption, areas=8, periods=14, effect=0.3)
    design = panel_design(tmp_path, linear, {"inference": "randomization"}, adoption)
    fast, slow, _ = _both_paths(design)
    assert fast == slow


def test_decisive_entries_are_estimates_own():
    """The observed assignment and the entries at the rejection threshold come from estimate."""
    rng = np.random.default_rng(2)
    sample = random_sample(rng, "poisson", 0.0, 0.0, 0, "not_yet_treated", True)
    positions = random_assignments(rng, sample.n_units, [5, 5, 11], n=40)
    observed = estimate(sample, positions[0], "extended_twfe", covariance=True)
    post = (positions[0][sample.unit] != NEVER) & (sample.time >= positions[0][sample.unit])
    permutations = PermutationStatistics(sample, "extended_twfe", positions, post, observed.params, observed.se)
    permutations.vector(0.0)
    permutations.refresh(observed.statistic)
    vector = permutations.vector(0.0)
    assert vector[0] == estimate(sample, positions[0], "extended_twfe", covariance=False,
                                 start=observed.params).statistic
    decisive = permutations.decisive[0.0]
    assert 0 in decisive and len(decisive) < len(positions)
    for b in decisive:
        assert vector[b] == estimate(sample, positions[b], "extended_twfe", covariance=False,
                                     start=observed.params).statistic
    fast = permutations.fast(0.0)
    assert np.max(np.abs(fast - vector)) < 1e-9


@pytest.mark.parametrize("family, estimator", [("poisson", "extended_twfe"), ("poisson", "twfe"), ("linear", "twfe")])
def test_test_and_inversion_are_the_same_on_an_unbalanced_panel_with_zeros(family, estimator, monkeypatch):
    """did's test and inversion, fast and one at a time, on a panel with missing area-periods
    (the assignments solved in chunks of 12, as a large design's would be)."""
    import evalkit.methods.did.fast_ppml as fast_ppml

    monkeypatch.setattr(fast_ppml, "CHUNK_CELLS", 12 * 9 * 18)
    rng = np.random.default_rng(8)
    sample = random_sample(rng, family, 0.1, 0.05 if family == "poisson" else 0.0, 1, "not_yet_treated", True,
                           units=9, periods=18)
    positions = np.full(sample.n_units, NEVER)
    positions[:3] = [6, 6, 11] if estimator == "extended_twfe" else [6, 6, 6]
    observed = estimate(sample, positions, estimator, covariance=True)
    adoption = {u: sample.periods[p] for u, p in zip(sample.units, positions) if p != NEVER}

    class Spec:
        reps = 99

    out, tests = {}, {}
    try:
        for fast in (True, False):
            did_module.FAST_PERMUTATIONS = fast
            test, inverted = did_module._randomization(sample, positions, estimator, observed, adoption,
                                                       np.random.default_rng(1), Spec, 0.05)
            out[fast] = (test.p_value, test.observed, repr(test.histogram()), repr(inverted.to_dict()))
            tests[fast] = test
    finally:
        did_module.FAST_PERMUTATIONS = True
    # what is reported is identical; the statistics not reported agree to rounding
    assert out[True] == out[False]
    assert np.allclose(tests[True].statistics, tests[False].statistics, rtol=0, atol=1e-9, equal_nan=True)
    assert inverted.low is not None and inverted.high is not None


def test_entries_that_never_settle_are_all_estimates(monkeypatch):
    """If the decisive entries kept changing, every entry would come from estimate: the same answer."""
    rng = np.random.default_rng(9)
    sample = random_sample(rng, "poisson", 0.0, 0.0, 0, "not_yet_treated", True, units=7, periods=12)
    positions = np.full(sample.n_units, NEVER)
    positions[:2] = [5, 5]
    observed = estimate(sample, positions, "twfe", covariance=True)
    adoption = {u: sample.periods[p] for u, p in zip(sample.units, positions) if p != NEVER}

    class Spec:
        reps = 99

    slow_rounds = []
    monkeypatch.setattr(PermutationStatistics, "refresh", lambda self, *a, **k: slow_rounds.append(1) or True)
    test, inverted = did_module._randomization(sample, positions, "twfe", observed, adoption,
                                               np.random.default_rng(1), Spec, 0.05)
    monkeypatch.setattr(did_module, "FAST_PERMUTATIONS", False)
    slow_test, slow_inverted = did_module._randomization(sample, positions, "twfe", observed, adoption,
                                                         np.random.default_rng(1), Spec, 0.05)
    assert len(slow_rounds) == 20
    assert test.statistics.tobytes() == slow_test.statistics.tobytes()
    assert repr(inverted.to_dict()) == repr(slow_inverted.to_dict())
