"""Controlled ITS (Linden's multiple-group parameterisation) against independent fits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

import evalkit

from .conftest import write


def two_group_project(tmp_path, family="gaussian", errors="newey_west", lags=2, n=48, start=30, seed=11, noise=1.0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    post = (t >= start).astype(float)
    periods = pd.period_range("2018-01", periods=n, freq="M")
    rows = ["area,month,y,pop"]
    values = {}
    for area, z in (("T", 1.0), ("C1", 0.0), ("C2", 0.0)):
        if family == "gaussian":
            y = 50 + 0.2 * t + z * (2 + 0.05 * t) - 1.0 * post - z * (4 * post + 0.3 * post * (t - start)) \
                + rng.normal(0, noise, n)
        else:
            mu = np.exp(np.log(2000) - 3 + 0.004 * t + z * 0.1 - z * 0.15 * post + 0.05 * post)
            y = rng.poisson(mu).astype(float)
        values[area] = y
        rows += [f"{area},{p},{float(v)!r},2000" for p, v in zip(periods, y)]
    write(tmp_path / "panel.csv", "\n".join(rows) + "\n")
    measure = "continuous" if family == "gaussian" else "count"
    design = write(tmp_path / "d.yaml", f"""
    evalkit: 1
    title: Controlled
    intervention: {{name: X, start: {periods[start]}}}
    data: {{source: panel.csv, layout: panel, columns: {{unit: area, time: month}}}}
    units: {{treated: [T]}}
    outcomes: [{{name: y, column: y, measure: {measure}}}]
    analysis: [{{method: controlled_its, outcome: y, family: {family}, errors: {errors}, lags: {lags}}}]
    """)
    # independent stacked design: treated rows, then the comparison series (mean or sum)
    comparison = (values["C1"] + values["C2"]) / (2 if family == "gaussian" else 1)
    T = t - start
    base = np.column_stack([np.ones(n), T, post, post * T])
    X = np.vstack([np.hstack([base, base]), np.hstack([base, np.zeros_like(base)])])
    y = np.concatenate([values["T"], comparison])
    return design, X, y


def test_gaussian_controlled_its_matches_ols_with_panel_newey_west(tmp_path):
    design, X, y = two_group_project(tmp_path)
    results = evalkit.run(evalkit.load_design(design))
    groups = np.repeat([1, 0], len(y) // 2)
    reference = sm.OLS(y, X).fit(cov_type="hac-panel", cov_kwds={"groups": groups, "maxlags": 2}, use_t=True)
    level_diff = results.estimate("level_change_difference")
    slope_diff = results.estimate("slope_change_difference")
    assert level_diff.estimate == pytest.approx(reference.params[6], rel=1e-9)
    assert level_diff.se == pytest.approx(reference.bse[6], rel=1e-9)
    assert slope_diff.estimate == pytest.approx(reference.params[7], rel=1e-9)
    # Stata newey's convention: t with n - k degrees of freedom (statsmodels' panel HAC would
    # use the number of groups - 1)
    from scipy import stats
    t_stat = reference.params[7] / reference.bse[7]
    assert slope_diff.p_value == pytest.approx(2 * stats.t.sf(abs(t_stat), len(y) - 8), rel=1e-6)
    treated_level = results.estimate("level_change", group="treated")
    assert treated_level.estimate == pytest.approx(reference.params[2] + reference.params[6], rel=1e-9)
    comparison_level = results.estimate("level_change", group="comparison")
    assert comparison_level.estimate == pytest.approx(reference.params[2], rel=1e-9)


def test_controlled_its_recovers_planted_differences(tmp_path):
    design, _, _ = two_group_project(tmp_path, noise=0.01)
    results = evalkit.run(evalkit.load_design(design))
    assert results.estimate("level_change_difference").estimate == pytest.approx(-4.0, abs=0.02)
    assert results.estimate("slope_change_difference").estimate == pytest.approx(-0.3, abs=0.002)
    assert results.estimate("pre_slope", group="treated").estimate == pytest.approx(0.25, abs=0.002)
    assert results.estimate("level_change", group="comparison").estimate == pytest.approx(-1.0, abs=0.02)


def test_poisson_controlled_its_matches_glm(tmp_path):
    design, X, y = two_group_project(tmp_path, family="poisson", errors="none")
    results = evalkit.run(evalkit.load_design(design))
    level_diff = results.estimate("level_change_difference")
    assert level_diff.scale == "ratio"
    # no exposure declared, so no offset; the comparison series is the sum of the two areas
    plain = sm.GLM(y, X, family=sm.families.Poisson()).fit()
    assert np.log(level_diff.estimate) == pytest.approx(plain.params[6], rel=1e-8)
    assert level_diff.se == pytest.approx(plain.bse[6], rel=1e-8)
    assert results.estimate("level_change", group="treated").estimate == pytest.approx(
        np.exp(plain.params[2] + plain.params[6]), rel=1e-8)


def test_prais_winsten_is_refused_for_controlled_its(tmp_path):
    design, _, _ = two_group_project(tmp_path, errors="prais_winsten")
    with pytest.raises(evalkit.EvalkitError, match="prais_winsten is not available for controlled_its"):
        evalkit.run(evalkit.load_design(design))
