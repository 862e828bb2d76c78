"""survival_did's restricted-mean difference: inference that holds with few areas (issue 12).

The area-level procedures (evalkit/methods/survival/area_inference.py) are checked against
brute force and scipy; the method's default is checked end to end on episodes simulated
here (not by evalkit's generators). Coverage measured at scale: benchmarks/
rmst_inference_coverage.py, docs/methods/survival_did.md.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

import evalkit
from evalkit.methods.survival.area_inference import (area_bootstrap, area_randomization, area_se, area_t,
                                                     weighted_difference)


def _areas(seed: int, n_treated: int, n_comparison: int, effect: float = 0.0):
    rng = np.random.default_rng(seed)
    n = n_treated + n_comparison
    treated = np.arange(n) < n_treated
    weights = rng.integers(200, 900, n).astype(float)
    change = rng.normal(0.0, 1.0, n) + effect * treated
    return change, weights, treated


def _brute_force_p(change, weights, treated) -> float:
    """Every choice of the adopting areas, the observed one included; two-sided."""
    n, k = change.size, int(treated.sum())
    observed = abs(weighted_difference(change, weights, treated))
    values = []
    for chosen in itertools.combinations(range(n), k):
        mask = np.zeros(n, dtype=bool)
        mask[list(chosen)] = True
        values.append(abs(weighted_difference(change, weights, mask)))
    return float(np.mean(np.array(values) >= observed * (1 - 1e-9)))


def test_randomization_p_value_is_the_exact_share_of_assignments():
    change, weights, treated = _areas(1, 3, 5, effect=1.2)
    result = area_randomization(change, weights, treated, 0.05, 999, np.random.default_rng(0))
    assert result.details["randomization"]["exhaustive"] is True
    assert result.details["randomization"]["n_assignments"] == 56
    assert result.p_value == pytest.approx(_brute_force_p(change, weights, treated), abs=1e-12)


def test_the_interval_is_the_set_of_effects_the_test_does_not_reject():
    change, weights, treated = _areas(2, 4, 8, effect=0.8)
    result = area_randomization(change, weights, treated, 0.05, 999, np.random.default_rng(0))
    estimate = weighted_difference(change, weights, treated)
    assert result.low < estimate < result.high
    width = result.high - result.low
    for end, outward in ((result.low, -1.0), (result.high, 1.0)):
        inside = change - (end - outward * 0.01 * width) * treated
        outside = change - (end + outward * 0.01 * width) * treated
        assert _brute_force_p(inside, weights, treated) >= 0.05
        assert _brute_force_p(outside, weights, treated) < 0.05
    # one procedure: the verdict of the test and of the interval agree
    assert (result.p_value < 0.05) == (not result.low <= 0.0 <= result.high)


def test_one_adopting_area_of_twelve_gives_no_interval_and_says_why():
    change, weights, treated = _areas(3, 1, 11)
    result = area_randomization(change, weights, treated, 0.05, 999, np.random.default_rng(0))
    assert result.low is None and result.high is None and result.p_value is None
    assert result.note.startswith("with one adopting area among 12 no interval at 95% is possible")
    assert "only 12 ways" in result.note and "0.0833" in result.note
    assert result.details["randomization"]["p_value"] >= 1 / 12


def test_t_reference_is_welch_and_student_with_equal_weights():
    change, _, treated = _areas(4, 4, 8, effect=0.5)
    weights = np.ones(change.size)
    welch = area_t(change, weights, treated, 0.05)
    reference = stats.ttest_ind(change[treated], change[~treated], equal_var=False)
    assert welch.details["se_rule"] == "welch"
    assert welch.p_value == pytest.approx(reference.pvalue, rel=1e-10)
    interval = reference.confidence_interval(0.95)
    assert (welch.low, welch.high) == pytest.approx((interval.low, interval.high), rel=1e-10)
    # two adopting areas: the pooled spread (Welch's would rest on one degree of freedom)
    change, _, treated = _areas(5, 2, 10)
    pooled = area_t(change, np.ones(change.size), treated, 0.05)
    student = stats.ttest_ind(change[treated], change[~treated], equal_var=True)
    assert pooled.details["se_rule"] == "pooled" and pooled.details["df"] == 10
    assert pooled.p_value == pytest.approx(student.pvalue, rel=1e-10)
    assert area_se(change, np.ones(change.size), treated, "welch")[0] is not None


@pytest.mark.slow
def test_randomization_interval_covers_in_simulation():
    """400 sets of 4 + 8 areas with unequal sizes: the inverted interval covers about 95%."""
    covered = 0
    for seed in range(400):
        rng = np.random.default_rng(seed)
        weights = rng.integers(100, 1000, 12).astype(float)
        treated = np.arange(12) < 4
        change = rng.normal(0.0, 1.0, 12) - 2.0 * treated
        result = area_randomization(change, weights, treated, 0.05, 999, rng)
        covered += result.low <= -2.0 <= result.high
    # Monte Carlo SE about 1.1 points at 400
    assert 0.91 <= covered / 400 <= 0.99


def test_bootstrap_needs_two_areas_a_side_and_is_seeded():
    change, weights, treated = _areas(6, 3, 5)
    one = area_bootstrap(change, weights, treated, 0.05, 199, np.random.default_rng(7))
    two = area_bootstrap(change, weights, treated, 0.05, 199, np.random.default_rng(7))
    assert one == two and one[1] < weighted_difference(change, weights, treated) < one[2]


# ----------------------------------------------------------------------------- end to end
def _design(folder, treated: int, comparison: int, seed: int = 5, effect: float = 1.0, **options):
    """Exponential hours to found with an area frailty; adoption in month 13 of 24."""
    rng = np.random.default_rng(seed)
    rows = []
    areas = [f"T{i}" for i in range(1, treated + 1)] + [f"C{i}" for i in range(1, comparison + 1)]
    for area in areas:
        frailty = np.exp(0.2 * rng.standard_normal())
        for month in range(24):
            n = 40
            factor = effect if area.startswith("T") and month >= 12 else 1.0
            start = pd.Timestamp("2020-01-01") + pd.DateOffset(months=month)
            reported = start + pd.to_timedelta(rng.uniform(0, 27 * 24, n), unit="h")
            hours = rng.exponential(8.0 * frailty, n) * factor
            found = reported + pd.to_timedelta(np.round(hours * 60), unit="min")
            rows.append(pd.DataFrame({"area": area, "reported_at": reported.strftime("%Y-%m-%d %H:%M"),
                                      "found_at": found.strftime("%Y-%m-%d %H:%M")}))
    pd.concat(rows).to_csv(folder / "episodes.csv", index=False)
    design = {
        "evalkit": 1, "title": "RMST inference", "intervention": {"name": "pilot", "start": "2021-01"},
        "data": {"source": "episodes.csv", "layout": "episodes", "extracted_at": "2021-12-31",
                 "columns": {"unit": "area", "reported_at": "reported_at", "found_at": "found_at"}},
        "units": {"treated": areas[:treated]},
        "outcomes": [{"name": "time_to_found", "measure": "duration_hours", "horizon": 72}],
        "analysis": [{"method": "survival_did", "outcome": "time_to_found", **options}],
        "seed": seed,
    }
    (folder / "design.yaml").write_text(yaml.safe_dump(design), encoding="utf-8")
    return evalkit.load_design(folder / "design.yaml")


def _fit(design):
    from evalkit.data import load_data
    from evalkit.methods.survival.survival import fit

    result = fit(design, load_data(design), design.analysis[0])
    rmst = next(e for e in result.estimates if e.estimand == "rmst_difference_did")
    check = next(c for c in result.checks if c.name == "few_clusters")
    return rmst, check, result


def test_default_is_the_area_randomization_test_with_few_adopting_areas(tmp_path):
    rmst, check, result = _fit(_design(tmp_path, 4, 8, effect=0.6))
    d = rmst.details
    assert d["inference"] == "randomization" and d["inference_declared"] == "auto"
    assert d["inference_reason"].startswith("chosen by default: with 4 adopting areas")
    assert d["randomization"]["exhaustive"] and d["randomization"]["n_assignments"] == 495
    # one procedure: p-value, interval and verdict
    assert rmst.p_value == d["randomization"]["p_value"]
    assert d["test_rejects"] == (rmst.p_value < 0.05) == (rmst.ci_high < 0 or rmst.ci_low > 0)
    assert rmst.ci_low < rmst.estimate < rmst.ci_high < 0   # found sooner, clearly
    assert d["interval_note"] is None and "test inversion" in d["ci_method"]
    assert check.status == "warn" and "re-assigning which areas adopted" in check.detail
    # the same inputs give the same numbers
    again, _, _ = _fit(_design(tmp_path, 4, 8, effect=0.6))
    assert (again.ci_low, again.ci_high, again.p_value) == (rmst.ci_low, rmst.ci_high, rmst.p_value)


def test_one_adopting_area_has_no_interval_and_a_plain_note(tmp_path):
    design = _design(tmp_path, 1, 11, effect=0.6)
    rmst, check, _ = _fit(design)
    assert rmst.ci_low is None and rmst.ci_high is None and rmst.p_value is None
    assert rmst.details["interval_note"].startswith("with one adopting area among 12 no interval at 95% is possible")
    assert rmst.details["test_rejects"] is False
    assert check.status == "fail" and "only 1 adopting area" in check.detail
    from evalkit.report.words import estimate_words

    _, span = estimate_words(rmst, {}, "month")
    assert span.startswith("no interval: with one adopting area among 12")


@pytest.mark.parametrize("inference, words", [("t", "t reference"), ("bootstrap", "bootstrap")])
def test_declared_inference_is_used_and_named(tmp_path, inference, words):
    rmst, _, _ = _fit(_design(tmp_path, 4, 8, effect=0.6, inference=inference, reps=199))
    assert rmst.details["inference"] == inference and rmst.details["inference_reason"].startswith("declared")
    assert words in rmst.details["ci_method"]
    assert rmst.ci_low < rmst.estimate < rmst.ci_high
