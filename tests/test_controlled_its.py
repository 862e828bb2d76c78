"""Controlled ITS (Linden's multiple-group parameterisation) against independent fits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

import evalkit

from .conftest import write


def two_group_project(tmp_path, family="gaussian", errors="newey_west", lags=2, n=48, start=30, seed=11, noise=1.0,
                      comparison_fit="pooled"):
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
    analysis: [{{method: controlled_its, outcome: y, family: {family}, errors: {errors}, lags: {lags},
                 comparison_fit: {comparison_fit}, small_sample: none}}]
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


# ----------------------------------------------------------------------------- comparison panels (itsa)
ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def panel_reference(tmp_path, start=30):
    """The stacked design with every comparison unit as its own panel, built from the CSV."""
    panel = pd.read_csv(tmp_path / "panel.csv")
    n = panel["month"].nunique()
    t = np.arange(n) - start
    post = (t >= 0).astype(float)
    base = np.column_stack([np.ones(n), t, post, post * t])
    blocks, ys = [], []
    for area in ("T", "C1", "C2"):
        z = 1.0 if area == "T" else 0.0
        blocks.append(np.hstack([base, z * base]))
        ys.append(panel.loc[panel["area"] == area, "y"].to_numpy(dtype=float))
    return np.vstack(blocks), np.concatenate(ys), np.repeat([0, 1, 2], n)


def test_comparison_panels_are_the_default(tmp_path):
    design, _, _ = two_group_project(tmp_path)
    text = __import__("re").sub(r",\s*comparison_fit: pooled", "", design.read_text())
    assert "comparison_fit" not in text
    design.write_text(text)
    assert evalkit.load_design(design).analysis[0].comparison_fit == "panels"


def test_gaussian_panels_match_ols_with_newey_west_within_each_unit(tmp_path):
    design, _, _ = two_group_project(tmp_path, comparison_fit="panels")
    results = evalkit.run(evalkit.load_design(design))
    X, y, groups = panel_reference(tmp_path)
    reference = sm.OLS(y, X).fit(cov_type="hac-panel", cov_kwds={"groups": groups, "maxlags": 2,
                                                                 "use_correction": "hac"})
    from scipy import stats
    n, k = X.shape
    for name, j in (("level_change_difference", 6), ("slope_change_difference", 7)):
        got = results.estimate(name)
        assert got.estimate == pytest.approx(reference.params[j], rel=1e-9)
        assert got.se == pytest.approx(reference.bse[j], rel=1e-9)
        t_stat = reference.params[j] / reference.bse[j]
        assert got.p_value == pytest.approx(2 * stats.t.sf(abs(t_stat), n - k), rel=1e-6)
        assert got.details["comparison_fit"] == "panels" and got.details["n_comparison_series"] == 2
    assert results.estimate("pre_slope", group="comparison").estimate == pytest.approx(reference.params[1], rel=1e-9)
    # balanced panels with shared coefficients: the averaged series gives the same point
    # estimates, but not the same standard errors
    design.write_text(design.read_text().replace("comparison_fit: panels", "comparison_fit: pooled"))
    pooled = evalkit.run(evalkit.load_design(design))
    assert pooled.estimate("level_change_difference").estimate == pytest.approx(reference.params[6], rel=1e-9)
    assert pooled.estimate("level_change_difference").se != pytest.approx(reference.bse[6], rel=1e-3)
    # the figure still shows one comparison line: the average of the units and of their fits
    panel_series, pooled_series = results.analyses[0].series, pooled.analyses[0].series
    assert panel_series["comparison_observed"] == pytest.approx(pooled_series["comparison_observed"], rel=1e-12)
    assert panel_series["comparison_fitted"] == pytest.approx(pooled_series["comparison_fitted"], rel=1e-9)
    assert len(panel_series["comparison_fitted"]) == len(panel_series["periods"])


def test_poisson_panels_match_glm_with_newey_west_within_each_unit(tmp_path):
    design, _, _ = two_group_project(tmp_path, family="poisson", errors="newey_west", lags=1, comparison_fit="panels")
    results = evalkit.run(evalkit.load_design(design))
    X, y, groups = panel_reference(tmp_path)
    reference = sm.GLM(y, X, family=sm.families.Poisson()).fit(
        cov_type="hac-panel", cov_kwds={"groups": groups, "maxlags": 1, "use_correction": False})
    level_diff = results.estimate("level_change_difference")
    assert np.log(level_diff.estimate) == pytest.approx(reference.params[6], rel=1e-7)
    assert level_diff.se == pytest.approx(reference.bse[6], rel=1e-6)
    assert results.estimate("slope_change", group="comparison").estimate == pytest.approx(np.exp(reference.params[3]),
                                                                                         rel=1e-7)


def test_a_missing_value_in_one_comparison_unit_is_named(tmp_path):
    design, _, _ = two_group_project(tmp_path, comparison_fit="panels")
    csv = tmp_path / "panel.csv"
    lines = csv.read_text().splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("C2,2019-03"))
    lines[row] = "C2,2019-03,,2000"
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(evalkit.EvalkitError, match="missing for comparison unit 'C2' in 2019-03"):
        evalkit.run(evalkit.load_design(design))


def _bartlett_panel_hac(X, y, groups, lags):
    """Stata's newey on panel data, written out: OLS, Bartlett-weighted autocovariances of the
    scores within each panel, times n / (n - k). Independent of statsmodels."""
    n, k = X.shape
    beta = np.linalg.solve(X.T @ X, X.T @ y)
    meat = np.zeros((k, k))
    for g in np.unique(groups):
        rows = groups == g
        scores = X[rows] * (y[rows] - X[rows] @ beta)[:, None]
        meat += scores.T @ scores
        for lag in range(1, lags + 1):
            gamma = scores[lag:].T @ scores[:-lag]
            meat += (1 - lag / (lags + 1)) * (gamma + gamma.T)
    bread = np.linalg.inv(X.T @ X)
    return beta, bread @ meat @ bread * n / (n - k)


def test_prop99_reproduces_lindens_published_multiple_group_itsa():
    """Linden (2015), Stata Journal 15(2):480-500: itsa cigsale, treatid(3) trperiod(1989) lag(1).

    Published: level change difference -2.806417 (P = 0.631), trend change difference
    -0.991143 (P = 0.136). Tolerances: coefficients to the printed 6 decimals (5e-7); the
    level P to its printed 3 decimals; the trend P within 0.001 (we get 0.1368, which prints
    as 0.137; the same sandwich written out by hand gives the same, see the method page).
    """
    results = evalkit.run(evalkit.load_design(ROOT / "designs" / "prop99_controlled_its.yaml"))
    level = results.estimate("level_change_difference")
    trend = results.estimate("slope_change_difference")
    assert level.estimate == pytest.approx(-2.806417, abs=5e-7)
    assert trend.estimate == pytest.approx(-0.991143, abs=5e-7)
    assert round(level.p_value, 3) == 0.631
    assert trend.p_value == pytest.approx(0.136, abs=1e-3)
    # independent computation: the panel Newey-West sandwich written out with numpy
    panel = pd.read_csv(ROOT / "examples" / "prop99" / "prop99.csv")
    states = ["California"] + sorted(set(panel["state"]) - {"California"})
    assert len(states) == 39 and len(panel) == 39 * 31
    years = np.arange(1970, 2001)
    t = years - 1989.0
    post = (years >= 1989).astype(float)
    base = np.column_stack([np.ones(31), t, post, post * t])
    X = np.vstack([np.hstack([base, base * (s == "California")]) for s in states])
    y = np.concatenate([panel.loc[panel["state"] == s].sort_values("year")["cigsale"].to_numpy() for s in states])
    groups = np.repeat(np.arange(39), 31)
    beta, V = _bartlett_panel_hac(X, y, groups, lags=1)
    from scipy import stats
    for got, j in ((level, 6), (trend, 7)):
        assert got.estimate == pytest.approx(beta[j], rel=1e-10)
        assert got.se == pytest.approx(np.sqrt(V[j, j]), rel=1e-10)
        assert got.p_value == pytest.approx(2 * stats.t.sf(abs(beta[j]) / np.sqrt(V[j, j]), len(y) - 8), rel=1e-8)
    assert results.estimate("pre_slope", group="treated").estimate == pytest.approx(beta[1] + beta[5], rel=1e-10)


def test_prop99_pooled_keeps_the_old_averaged_fit(tmp_path):
    """`comparison_fit: pooled` is the averaged series (the numbers quoted in issue 12)."""
    text = (ROOT / "designs" / "prop99_controlled_its.yaml").read_text()
    text = text.replace("comparison_fit: panels", "comparison_fit: pooled").replace(
        "../examples/prop99/", str(ROOT / "examples" / "prop99") + "/")
    (tmp_path / "d.yaml").write_text(text)
    results = evalkit.run(evalkit.load_design(tmp_path / "d.yaml"))
    assert results.estimate("level_change_difference").estimate == pytest.approx(-2.806417, abs=5e-7)
    assert round(results.estimate("level_change_difference").p_value, 3) == 0.708
    assert round(results.estimate("slope_change_difference").p_value, 3) == 0.168


def test_poisson_panels_use_each_units_own_exposure(tmp_path):
    """Counts with a population column: each comparison unit is offset by its own exposure."""
    rng = np.random.default_rng(5)
    n, start = 40, 24
    t = np.arange(n) - start
    post = (t >= 0).astype(float)
    periods = pd.period_range("2019-01", periods=n, freq="M")
    pops = {"T": 5000.0, "C1": 1000.0, "C2": 20000.0}
    rows, blocks, ys, offsets = ["area,month,y,pop"], [], [], []
    base = np.column_stack([np.ones(n), t, post, post * t])
    for area, z in (("T", 1.0), ("C1", 0.0), ("C2", 0.0)):
        pop = pops[area] * (1 + 0.002 * np.arange(n))
        y = rng.poisson(pop * np.exp(-4 + 0.003 * t - z * 0.2 * post)).astype(float)
        rows += [f"{area},{p},{int(v)},{float(w)!r}" for p, v, w in zip(periods, y, pop)]
        blocks.append(np.hstack([base, z * base]))
        ys.append(y)
        offsets.append(np.log(pop))
    write(tmp_path / "panel.csv", "\n".join(rows) + "\n")
    design = write(tmp_path / "d.yaml", f"""
    evalkit: 1
    title: Exposure
    intervention: {{name: X, start: {periods[start]}}}
    data: {{source: panel.csv, layout: panel, columns: {{unit: area, time: month, exposure: pop}}}}
    units: {{treated: [T]}}
    outcomes: [{{name: y, column: y, measure: count, per: 1000}}]
    analysis: [{{method: controlled_its, outcome: y, family: poisson, errors: newey_west, lags: 1}}]
    """)
    results = evalkit.run(evalkit.load_design(design))
    X, y, offset = np.vstack(blocks), np.concatenate(ys), np.concatenate(offsets)
    groups = np.repeat([0, 1, 2], n)
    reference = sm.GLM(y, X, family=sm.families.Poisson(), offset=offset).fit(
        cov_type="hac-panel", cov_kwds={"groups": groups, "maxlags": 1, "use_correction": False})
    level = results.estimate("level_change_difference")
    assert np.log(level.estimate) == pytest.approx(reference.params[6], rel=1e-7)
    assert level.se == pytest.approx(reference.bse[6], rel=1e-6)
    assert np.log(level.estimate) == pytest.approx(-0.2, abs=0.1)
