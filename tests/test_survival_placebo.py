"""survival_did's placebo check: a pretend adoption inside the pre-period (issue 12).

The data are simulated here (not by evalkit's generator): exponential times to found per
area and month, 4 adopting and 4 comparison areas, adoption in month 13. With parallel
pre-period trends the check passes; when the adopting areas' children were already being
found faster and faster before adoption, it fails and the design level drops by one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import evalkit

DESIGN = """\
evalkit: 1
title: Placebo test
intervention: {{name: SPOC, start: 2021-01}}
data:
  source: episodes.csv
  layout: episodes
  columns: {{unit: area, reported_at: reported_at, found_at: found_at}}
  extracted_at: 2021-12-31
units: {{treated: [T1, T2, T3, T4]}}
outcomes: [{{name: time_to_found, measure: duration_hours}}]
analysis: [{{method: survival_did, outcome: time_to_found, reps: 199}}]
seed: {seed}
"""


def _write(folder, seed: int, pre_trend: float, treated: int = 4) -> evalkit.Design:
    """Episodes with hazard x (1 + pre_trend * months since the start) in adopting areas before adoption."""
    rng = np.random.default_rng(seed)
    rows = []
    for area in [f"T{i}" for i in range(1, treated + 1)] + ["C1", "C2", "C3", "C4"]:
        frailty = np.exp(0.1 * rng.standard_normal())
        for month in range(24):
            n = 60
            rate = frailty / 8.0  # about 8 hours to found on average
            if area.startswith("T") and month < 12:
                rate *= 1.0 + pre_trend * month
            start = pd.Timestamp("2020-01-01") + pd.DateOffset(months=month)
            reported = start + pd.to_timedelta(rng.uniform(0, 27 * 24, n), unit="h")
            found = reported + pd.to_timedelta(np.round(rng.exponential(1.0 / rate, n) * 60), unit="min")
            rows.append(pd.DataFrame({"area": area, "reported_at": reported.strftime("%Y-%m-%d %H:%M"),
                                      "found_at": found.strftime("%Y-%m-%d %H:%M")}))
    pd.concat(rows).to_csv(folder / "episodes.csv", index=False)
    text = DESIGN.format(seed=seed).replace("[T1, T2, T3, T4]", "[" + ", ".join(f"T{i}" for i in range(1, treated + 1)) + "]")
    (folder / "design.yaml").write_text(text, encoding="utf-8")
    return evalkit.load_design(folder / "design.yaml")


def _placebo(results):
    return next(c for c in results.checks if c.name == "placebo" and c.method == "survival_did")


def test_parallel_pre_period_trends_pass_the_placebo(tmp_path):
    results = evalkit.run(_write(tmp_path, 1, pre_trend=0.0))
    check = _placebo(results)
    assert check.status == "pass", check.detail
    assert check.values["pretend_adoption"] == {f"T{i}": "2020-07" for i in range(1, 5)}
    assert 0.85 < check.values["hazard_ratio"] < 1.15
    assert check.values["calibrated"] is True


def test_diverging_pre_period_trends_fail_it_and_lower_the_level(tmp_path):
    results = evalkit.run(_write(tmp_path, 2, pre_trend=0.08))
    check = _placebo(results)
    assert check.status == "fail", check.detail
    assert check.values["hazard_ratio"] > 1.2  # found faster and faster before adoption
    effect = next(e for e in results.evidence["effects"] if e["method"] == "survival_did")
    assert effect["design_level"] == 2 and "placebo" in " ".join(effect["lowered_because"])


def test_with_one_adopting_area_a_failed_placebo_only_warns(tmp_path):
    """Its size was not held with one adopting area (11% in simulation), so it does not lower the level."""
    results = evalkit.run(_write(tmp_path, 2, pre_trend=0.2, treated=1))
    check = _placebo(results)
    assert check.values["calibrated"] is False and check.values["adopting_areas"] == 1
    assert check.status == "warn" and "does not lower the design level" in check.detail
    effect = next(e for e in results.evidence["effects"] if e["method"] == "survival_did")
    assert not any("placebo" in reason for reason in effect["lowered_because"])


@pytest.mark.slow
def test_the_placebo_holds_its_size_under_parallel_trends(tmp_path):
    """Under parallel trends the placebo fails about 5% of datasets (40 datasets: at most 6 failures,
    a bound the binomial(40, 0.05) exceeds with probability under 0.5%)."""
    failures = 0
    for seed in range(100, 140):
        folder = tmp_path / str(seed)
        folder.mkdir()
        failures += _placebo(evalkit.run(_write(folder, seed, pre_trend=0.0))).status == "fail"
    assert failures <= 6, failures
