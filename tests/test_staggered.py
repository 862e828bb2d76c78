"""staggered_did (Callaway & Sant'Anna 2021) against R did, csdid, statsmodels and simulations.

References (tests/fixtures/staggered/, see SOURCE.md there):
* mpdta_R_did_*.csv: R did 2.5.x, ``att_gt(yname = "lemp", tname = "year", idname =
  "countyreal", gname = "first.treat", data = mpdta, control_group = ..., est_method =
  "dr", bstrap = FALSE)``, ``aggte(type = "simple" | "dynamic" | "group" | "calendar")``;
* mpdta_csdid_lpop_*.csv: csdid 0.4.3 with ``xformla = "lemp~lpop"`` for est_method reg,
  ipw and dr (make_mpdta_csdid_lpop.py beside them).
Tolerances: points 1e-8, standard errors 1e-6 (the issue's), W 1e-6, p to R's 5 decimals.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import yaml

import evalkit
from evalkit.design import design_from_mapping
from evalkit.inference.multiplier import multiplier_draws, multiplier_weights, summarize
from evalkit.methods.staggered import aggte
from evalkit.methods.staggered.att_gt import NEVER, control_membership, group_time_att, standard_errors

from .conftest import ROOT, write

FIXTURES = ROOT / "tests" / "fixtures" / "staggered"
MPDTA_DESIGN = ROOT / "designs" / "mpdta_staggered.yaml"
SCENARIOS = {"never_treated": "mpdta_nev_dr", "not_yet_treated": "mpdta_nyt_dr"}
POINT, SE = 1e-8, 1e-6


# ----------------------------------------------------------------------------- helpers
def mpdta_arrays():
    data = pd.read_csv(ROOT / "tests" / "data" / "mpdta.csv")
    wide = data.pivot(index="countyreal", columns="year", values="lemp")
    years = wide.columns.to_numpy()
    units = data.groupby("countyreal").first().reindex(wide.index)
    first = units["first.treat"].to_numpy()
    cohort = np.where(first == 0, NEVER, np.searchsorted(years, first))
    return wide.to_numpy(), cohort, units[["lpop"]].to_numpy(), years


def by_analysis(results, control_group):
    estimates = [e for e in results.estimates if e.method == "staggered_did"
                 and e.details["control_group"] == control_group]
    checks = [c for c in results.checks if c.method == "staggered_did"]
    index = estimates[0].details["analysis"]
    return {e.estimand: e for e in estimates}, checks[2 * index: 2 * index + 2], index


@pytest.fixture(scope="module")
def mpdta_results():
    return evalkit.run(evalkit.load_design(MPDTA_DESIGN))


# ----------------------------------------------------------------------------- R did on mpdta
@pytest.mark.reference
@pytest.mark.parametrize("control_group", list(SCENARIOS))
def test_mpdta_att_gt_match_r_did(mpdta_results, control_group):
    reference = pd.read_csv(FIXTURES / "mpdta_R_did_attgt.csv")
    reference = reference[reference["scenario"] == SCENARIOS[control_group]]
    estimates, _, _ = by_analysis(mpdta_results, control_group)
    table = pd.DataFrame(estimates["att_simple"].details["att_gt"])
    assert len(table) == len(reference) == 12
    merged = reference.assign(group=reference["group"].astype(str), t=reference["t"].astype(str)).merge(
        table, left_on=["group", "t"], right_on=["cohort", "period"], validate="one_to_one")
    np.testing.assert_allclose(merged["estimate"], merged["att"], rtol=0, atol=POINT)
    np.testing.assert_allclose(merged["se_x"], merged["se_y"], rtol=0, atol=SE)


@pytest.mark.reference
@pytest.mark.parametrize("control_group", list(SCENARIOS))
def test_mpdta_aggregations_match_r_did(mpdta_results, control_group):
    reference = pd.read_csv(FIXTURES / "mpdta_R_did_aggte.csv")
    reference = reference[reference["scenario"] == SCENARIOS[control_group]]
    estimates, _, _ = by_analysis(mpdta_results, control_group)
    for kind, estimand in (("simple", "att_simple"), ("dynamic", "att_dynamic"), ("group", "att_group"),
                           ("calendar", "att_calendar")):
        rows = reference[reference["type"] == kind]
        assert estimates[estimand].estimate == pytest.approx(rows["overall_att"].iloc[0], abs=POINT)
        assert estimates[estimand].se == pytest.approx(rows["overall_se"].iloc[0], abs=SE)
        assert estimates[estimand].scale == "difference"
        if kind == "dynamic":
            components = [(int(e), estimates[f"event_{int(e)}"].estimate, estimates[f"event_{int(e)}"].se)
                          for e in rows["egt"]]
        elif kind in ("group", "calendar"):
            components = [(int(c["cohort" if kind == "group" else "period"]), c["estimate"], c["se"])
                          for c in estimates[estimand].details["components"]]
        else:
            continue
        assert [c[0] for c in components] == rows["egt"].astype(int).tolist()
        np.testing.assert_allclose([c[1] for c in components], rows["att_egt"], rtol=0, atol=POINT)
        np.testing.assert_allclose([c[2] for c in components], rows["se_egt"], rtol=0, atol=SE)


@pytest.mark.reference
@pytest.mark.parametrize("control_group", list(SCENARIOS))
def test_mpdta_pretest_matches_r_did(mpdta_results, control_group):
    reference = pd.read_csv(FIXTURES / "mpdta_R_did_pretest.csv").set_index("scenario").loc[SCENARIOS[control_group]]
    _, checks, _ = by_analysis(mpdta_results, control_group)
    pre = next(c for c in checks if c.name == "pre_trends")
    # R did's pre-test is kept beside the calibrated pooled test that decides
    r_did = pre.values["r_did"]
    assert r_did["test"] == "att_gt_wald" and r_did["df"] == 5 and r_did["calibrated"] is None
    assert r_did["W"] == pytest.approx(reference["W"], abs=1e-6) and pre.values["W"] == r_did["W"]
    assert round(r_did["p_value"], 5) == pytest.approx(reference["Wpval"], abs=1e-12)
    assert pre.values["test"] == "pooled_bins_welch_hotelling" and pre.values["calibrated"] is True
    assert pre.status == "pass"


def test_mpdta_run_records(mpdta_results):
    """Both analyses, the headline from att_simple, JSON-able output, event-study series."""
    assert mpdta_results.evidence["headline_estimand"] == "att_simple"
    assert mpdta_results.evidence["design_level"] == 3
    text = mpdta_results.to_json_text()
    parsed = json.loads(text)
    series = [a for a in parsed["analyses"] if a["method"] == "staggered_did"][0]["series"]
    assert series["event_time"] == [-3, -2, -1, 0, 1, 2, 3]
    assert series["band_critical"] >= 1.959
    assert all(lo <= hi for lo, hi in zip(series["band_low"], series["ci_low"]))
    assert series["cohorts"] == [1, 2, 2, 3, 2, 1, 1]     # 2004 has no e = -1: 2003 is only a base


# ----------------------------------------------------------------------------- covariates
CSDID_SCENARIOS = [(est, cg) for est in ("reg", "ipw", "dr") for cg in ("nev", "nyt")]
ESTIMATION = {"reg": "regression", "ipw": "ipw", "dr": "doubly_robust"}
CONTROL = {"nev": "never_treated", "nyt": "not_yet_treated"}


@pytest.mark.reference
@pytest.mark.parametrize("est, control", CSDID_SCENARIOS)
def test_covariates_match_csdid(est, control):
    Y, cohort, lpop, _ = mpdta_arrays()
    scenario = f"mpdta_{control}_{est}_lpop"
    gt = group_time_att(Y, cohort, control_group=CONTROL[control], covariates=lpop, estimation=ESTIMATION[est])
    cells = pd.read_csv(FIXTURES / "mpdta_csdid_lpop_attgt.csv")
    cells = cells[cells["scenario"] == scenario]
    np.testing.assert_allclose(gt.att, cells["att"], rtol=0, atol=POINT)
    np.testing.assert_allclose(gt.se, cells["se"], rtol=0, atol=SE)
    aggregates = pd.read_csv(FIXTURES / "mpdta_csdid_lpop_aggte.csv")
    aggregates = aggregates[aggregates["scenario"] == scenario]
    for kind, result in aggte.aggregate_all(aggte.make_plan(gt), gt.att, gt.influence).items():
        rows = aggregates[aggregates["type"] == kind]
        assert result.overall == pytest.approx(rows["overall_att"].iloc[0], abs=POINT)
        assert standard_errors(result.overall_influence[:, None])[0] == pytest.approx(rows["overall_se"].iloc[0], abs=SE)
        if kind != "simple":
            np.testing.assert_allclose(result.values, rows["att_egt"], rtol=0, atol=POINT)
            np.testing.assert_allclose(standard_errors(result.influence), rows["se_egt"], rtol=0, atol=SE)


def test_doubly_robust_cell_against_statsmodels():
    """ATT(2004, 2006), never-treated, covariate lpop: Sant'Anna & Zhao (2020) eq. 3.1 by hand."""
    Y, cohort, lpop, years = mpdta_arrays()
    g, t, base = 1, 3, 0                      # positions of 2004, 2006 and the base 2003
    sample = (cohort == g) | (cohort == NEVER)
    d = (cohort[sample] == g).astype(float)
    dy = Y[sample, t] - Y[sample, base]
    X = sm.add_constant(lpop[sample])
    ps = sm.Logit(d, X).fit(disp=0).predict(X)
    m = sm.OLS(dy[d == 0], X[d == 0]).fit().predict(X)
    w1, w0 = d, ps * (1 - d) / (1 - ps)
    expected = np.sum(w1 * (dy - m)) / np.sum(w1) - np.sum(w0 * (dy - m)) / np.sum(w0)
    gt = group_time_att(Y, cohort, covariates=lpop, estimation="doubly_robust")
    cell = np.flatnonzero((gt.cohort == g) & (gt.period == t))[0]
    assert gt.att[cell] == pytest.approx(expected, abs=1e-9)
    # outcome regression: treated mean change minus the controls' fitted change for the treated
    gt_reg = group_time_att(Y, cohort, covariates=lpop, estimation="regression")
    assert gt_reg.att[cell] == pytest.approx(dy[d == 1].mean() - m[d == 1].mean(), abs=1e-9)


def test_covariates_through_the_design_file(tmp_path):
    raw = yaml.safe_load(MPDTA_DESIGN.read_text())
    raw["data"]["source"] = str(ROOT / "tests" / "data" / "mpdta.csv")
    raw["analysis"] = [{"method": "staggered_did", "outcome": "lemp", "covariates": ["lpop"]}]
    results = evalkit.run(design_from_mapping(raw, path=tmp_path / "design.yaml"))
    aggregates = pd.read_csv(FIXTURES / "mpdta_csdid_lpop_aggte.csv")
    simple = aggregates[(aggregates["scenario"] == "mpdta_nev_dr_lpop") & (aggregates["type"] == "simple")].iloc[0]
    estimate = results.estimate("att_simple")
    assert estimate.estimate == pytest.approx(simple["overall_att"], abs=POINT)
    assert estimate.se == pytest.approx(simple["overall_se"], abs=SE)
    assert estimate.details["estimation"] == "doubly_robust" and estimate.details["covariates"] == ["lpop"]
    pretest = pd.read_csv(FIXTURES / "mpdta_csdid_lpop_pretest.csv").set_index("scenario").loc["mpdta_nev_dr_lpop"]
    assert next(c for c in results.checks if c.name == "pre_trends").values["W"] == pytest.approx(pretest["W"], abs=1e-6)


def test_missing_covariate_column_is_a_design_error(tmp_path):
    raw = yaml.safe_load(MPDTA_DESIGN.read_text())
    raw["data"]["source"] = str(ROOT / "tests" / "data" / "mpdta.csv")
    raw["analysis"] = [{"method": "staggered_did", "outcome": "lemp", "covariates": ["population"]}]
    with pytest.raises(evalkit.EvalkitError, match="population"):
        evalkit.run(design_from_mapping(raw, path=tmp_path / "design.yaml"))


# ----------------------------------------------------------------------------- conventions
def test_not_yet_treated_excludes_the_cohort_being_estimated():
    groups = np.array([2, 5, 7, NEVER])
    # a pre-period cell of cohort 5 at t = 3: cohort 5 is "not yet treated" but is the treated group
    members = control_membership(np.array([5, 2]), np.array([3, 4]), np.array([2, 1]), groups, "not_yet_treated", 0)
    assert members[0].tolist() == [False, False, True, True]
    assert members[1].tolist() == [False, True, True, True]
    # anticipation of 2: cohort 5 is treated (in anticipation) from 3, so no control at t = 4
    members = control_membership(np.array([2]), np.array([4]), np.array([1]), groups, "not_yet_treated", 2)
    assert members[0].tolist() == [False, False, True, True]
    assert control_membership(np.array([5]), np.array([3]), np.array([2]), groups, "never_treated", 0)[0].tolist() == \
        [False, False, False, True]


def test_universal_base_period_is_a_reparametrisation_of_varying():
    Y, cohort, _, _ = mpdta_arrays()
    varying = group_time_att(Y, cohort, base_period="varying")
    universal = group_time_att(Y, cohort, base_period="universal")
    for g in varying.cohorts:
        v = {t: a for c, t, a in zip(varying.cohort, varying.period, varying.att) if c == g}
        u = {t: a for c, t, a in zip(universal.cohort, universal.period, universal.att) if c == g}
        assert u[g - 1] == 0.0
        for t in range(g, Y.shape[1]):                                     # post cells agree
            assert u[t] == pytest.approx(v[t], abs=1e-12)
        for t in range(0, g - 1):                                          # pre: minus the sum of short gaps
            assert u[t] == pytest.approx(-sum(v[s] for s in range(t + 1, g)), abs=1e-12)
    # the Wald pre-test is invariant to that invertible transformation
    design = evalkit.load_design(MPDTA_DESIGN)
    design.analysis = design.analysis[:1]
    design.analysis[0].base_period = "universal"
    check = next(c for c in evalkit.run(design).checks if c.name == "pre_trends")
    assert check.values["W"] == pytest.approx(7.79123662720035, abs=1e-6)


def test_anticipation_moves_the_base_period():
    Y, cohort, _, years = mpdta_arrays()
    gt = group_time_att(Y, cohort, anticipation=1)
    g, t = 3, 3                                                            # 2006 cohort in 2006
    cell = np.flatnonzero((gt.cohort == g) & (gt.period == t))[0]
    assert gt.base[cell] == 1                                              # 2004 = g - anticipation - 1
    treated, never = cohort == g, cohort == NEVER
    expected = (Y[treated, t] - Y[treated, 1]).mean() - (Y[never, t] - Y[never, 1]).mean()
    assert gt.att[cell] == pytest.approx(expected, abs=1e-12)


# ----------------------------------------------------------------------------- simulation
def simulate_heterogeneous(seed=7, n_per_group=200, T=10):
    """Cohorts adopting at 3, 5 and 7 with effects growing in time since adoption, larger
    for earlier cohorts: TWFE is biased (late vs early comparisons), CS is not."""
    rng = np.random.default_rng(seed)
    cohort = np.repeat([3, 5, 7, NEVER], n_per_group)
    slope = {3: 0.30, 5: 0.15, 7: 0.05}
    t = np.arange(T)
    truth = np.zeros((cohort.size, T))
    for g, s in slope.items():
        truth[cohort == g] = np.where(t >= g, s * (t - g + 1), 0.0)
    y = rng.normal(0, 1, cohort.size)[:, None] + 0.2 * t[None, :] + truth + rng.normal(0, 0.1, (cohort.size, T))
    return y, cohort, truth


def twfe(y, treated):
    """The two-way fixed effects coefficient on the treatment dummy (balanced panel)."""
    def within(a):
        return a - a.mean(axis=1, keepdims=True) - a.mean(axis=0, keepdims=True) + a.mean()
    d, w = within(treated.astype(float)), within(y)
    return float((d * w).sum() / (d * d).sum())


def test_simulation_recovers_heterogeneous_effects_where_twfe_fails():
    y, cohort, truth = simulate_heterogeneous()
    for control_group in ("never_treated", "not_yet_treated"):
        gt = group_time_att(y, cohort, control_group=control_group)
        true_cells = np.array([truth[cohort == g, t].mean() for g, t in zip(gt.cohort, gt.period)])
        z = (gt.att - true_cells) / gt.se
        assert np.max(np.abs(z)) < 4.5
        plan = aggte.make_plan(gt)
        simple = aggte.simple(plan, gt.att, gt.influence)
        true_simple = truth[(cohort != NEVER)[:, None] & (truth != 0)].mean()   # unit-period average of post effects
        se = standard_errors(simple.overall_influence[:, None])[0]
        assert abs(simple.overall - true_simple) < 4 * se
        event = aggte.dynamic(plan, gt.att, gt.influence)
        for e, value in zip(event.labels, event.values):
            if e >= 0:
                expected = np.mean([s * (e + 1) for g, s in {3: .30, 5: .15, 7: .05}.items() if g + e < y.shape[1]])
                assert value == pytest.approx(expected, abs=0.05)
    bias = twfe(y, truth != 0) - true_simple
    assert abs(bias) > 0.2                     # TWFE is far off the same truth


def count_panel(tmp_path, seed=11, trend_gap=0.0, treated_units=24, months=60):
    """A monthly count panel with exposure and a planted rate ratio 0.88 from adoption."""
    rng = np.random.default_rng(seed)
    n_units = treated_units + 16
    periods = pd.period_range("2018-01", periods=months, freq="M")
    adoption = np.array(["2020-01", "2020-07", "2021-01"])[np.arange(treated_units) % 3]
    adopt = np.concatenate([adoption, [""] * (n_units - treated_units)])
    rng.shuffle(adopt)
    children = rng.integers(20000, 60000, n_units)
    rate = rng.gamma(20, 2 / 20, n_units)                               # about 2 per 1000 children a month
    season = 1 + 0.15 * np.sin(2 * np.pi * np.arange(months) / 12)
    rows = []
    for i in range(n_units):
        start = periods.get_loc(pd.Period(adopt[i], "M")) if adopt[i] else months
        trend = np.exp(trend_gap * (np.arange(months) - start) / 12) if adopt[i] else 1.0
        effect = np.where(np.arange(months) >= start, 0.88, 1.0)
        mu = children[i] / 1000 * rate[i] * season * effect * trend
        counts = rng.poisson(mu)
        for j, p in enumerate(periods):
            rows.append((f"area{i:02d}", str(p), counts[j], children[i], adopt[i] or "0"))
    frame = pd.DataFrame(rows, columns=["area", "month", "reports", "children", "adopted"])
    frame.to_csv(tmp_path / "panel.csv", index=False)
    return write(tmp_path / "design.yaml", """
        evalkit: 1
        title: Count panel
        intervention: {name: SPOC, transition: 0}
        data:
          source: panel.csv
          layout: panel
          columns: {unit: area, time: month, exposure: children}
          frequency: month
        units: {adoption_column: adopted}
        outcomes:
          - {name: reports, column: reports, measure: count, per: 1000}
        analysis:
          - {method: staggered_did, outcome: reports, control_group: not_yet_treated}
        seed: 5
        """)


def test_count_outcome_reports_a_rate_ratio(tmp_path):
    results = evalkit.run(evalkit.load_design(count_panel(tmp_path)))
    simple = results.estimate("att_simple")
    assert simple.scale == "ratio" and simple.details["se_scale"] == "log"
    assert simple.ci_low < 0.88 < simple.ci_high
    assert simple.estimate == pytest.approx(0.88, abs=0.03)
    d = simple.details
    # the ratio is the treated rate over the treated rate minus the ATT on the rate
    assert simple.estimate == pytest.approx(d["treated_rate"] / (d["treated_rate"] - d["difference"]), rel=1e-12)
    assert d["counterfactual_rate"] == pytest.approx(d["treated_rate"] - d["difference"], rel=1e-12)
    assert d["difference"] < 0 and d["difference_ci_low"] < d["difference"] < d["difference_ci_high"]
    assert d["per_year"] < 0 and d["per_year_ci_low"] < d["per_year"] < d["per_year_ci_high"]
    for name in ("att_dynamic", "att_group", "att_calendar", "event_0"):
        assert results.estimate(name).scale == "ratio"
    series = results.analyses[0].series
    assert series["scale"] == "rate_difference" and len(series["ratio"]) == len(series["event_time"])
    # monthly data: more pre-period cells than units, so the binned pre-test is used
    check = next(c for c in results.checks if c.name == "pre_trends")
    assert check.values["test"] == "pooled_bins_welch_hotelling" and check.status == "pass"
    assert check.values["r_did"] is None and check.values["calibrated"] is True
    assert "ratio" in results.evidence["headline"] or "%" in results.evidence["headline"]


def test_ratio_standard_error_agrees_with_the_bootstrap(tmp_path):
    design = evalkit.load_design(count_panel(tmp_path, seed=12))
    analytic = evalkit.run(design).estimate("att_simple")
    design.analysis[0].inference = "multiplier_bootstrap"
    boot = evalkit.run(design).estimate("att_simple")
    assert boot.estimate == analytic.estimate
    assert boot.se == pytest.approx(analytic.se, rel=0.15)


def test_pre_trend_failure_lowers_the_design_level(tmp_path):
    design = evalkit.load_design(count_panel(tmp_path, seed=13, trend_gap=0.25))
    results = evalkit.run(design)
    check = next(c for c in results.checks if c.name == "pre_trends")
    assert check.status == "fail" and check.values["p_value"] < 0.05
    assert results.evidence["design_level"] == 2
    assert results.evidence["lowered_because"] == ["pre trends check failed"]


def test_few_treated_units_warn(tmp_path):
    results = evalkit.run(evalkit.load_design(count_panel(tmp_path, seed=14, treated_units=3)))
    few = next(c for c in results.checks if c.name == "few_treated")
    assert few.status == "warn" and few.values["treated_units"] == 3
    assert results.evidence["certainty"] == "low"


def test_transition_periods_are_left_out_of_the_averages(tmp_path):
    path = count_panel(tmp_path, seed=15)
    raw = yaml.safe_load(path.read_text())
    raw["intervention"]["transition"] = 3
    raw["outcomes"][0]["measure"] = "continuous"       # difference scale: averages are easy to check
    excluded = evalkit.run(design_from_mapping(raw, path=path))
    raw["analysis"][0]["transition"] = "include"
    included = evalkit.run(design_from_mapping(raw, path=path))
    table = pd.DataFrame(excluded.estimate("att_simple").details["att_gt"])
    assert (table["in_aggregates"] == (table["event_time"] >= 3)).all()
    events = {e.details["event_time"]: e.estimate for e in excluded.estimates if e.estimand.startswith("event_")}
    assert excluded.estimate("att_dynamic").estimate == pytest.approx(np.mean([v for e, v in events.items() if e >= 3]))
    assert included.estimate("att_dynamic").estimate == pytest.approx(np.mean([v for e, v in events.items() if e >= 0]))


def test_every_unit_treated_uses_the_last_cohort_as_comparison(tmp_path):
    raw = yaml.safe_load(MPDTA_DESIGN.read_text())
    data = pd.read_csv(ROOT / "tests" / "data" / "mpdta.csv")
    data[data["first.treat"] > 0].to_csv(tmp_path / "treated.csv", index=False)
    raw["data"]["source"] = "treated.csv"
    raw["analysis"] = [{"method": "staggered_did", "outcome": "lemp", "control_group": "not_yet_treated"}]
    results = evalkit.run(design_from_mapping(raw, path=tmp_path / "design.yaml"))
    table = pd.DataFrame(results.estimate("att_simple").details["att_gt"])
    assert set(table["cohort"]) == {"2004", "2006"} and table["period"].max() == "2006"
    assert "comparison group" in results.analyses[0].notes[0]
    raw["analysis"][0]["control_group"] = "never_treated"
    with pytest.raises(evalkit.EvalkitError, match="never-treated"):
        evalkit.run(design_from_mapping(raw, path=tmp_path / "design.yaml"))


# ----------------------------------------------------------------------------- bootstrap
def test_multiplier_weights_and_summary():
    rng = np.random.default_rng(1)
    for kind in ("rademacher", "mammen"):
        v = multiplier_weights(rng, 4000, 50, kind)
        assert abs(v.mean()) < 0.02 and v.var() == pytest.approx(1.0, abs=0.03)
    n = 400
    influence = rng.normal(0, 2.0, (n, 3))
    summary = summarize(multiplier_draws(influence, multiplier_weights(rng, 2000, n)), n, 0.05)
    np.testing.assert_allclose(summary.se, standard_errors(influence), rtol=0.08)
    assert 1.96 < summary.critical < 2.6                 # sup over three near-independent t's


def test_bootstrap_inference_is_deterministic_and_close_to_analytic():
    design = evalkit.load_design(MPDTA_DESIGN)
    design.analysis = design.analysis[:1]
    analytic = evalkit.run(design)
    design.analysis[0].inference = "multiplier_bootstrap"
    first, second = evalkit.run(design), evalkit.run(design)
    assert first.to_json_text() == second.to_json_text()
    for estimand in ("att_simple", "att_dynamic", "att_group", "att_calendar", "event_0"):
        assert first.estimate(estimand).se == pytest.approx(analytic.estimate(estimand).se, rel=0.12)
    table = first.estimate("att_simple").details["att_gt"]
    assert all(row["band_low"] <= row["ci_low"] for row in table)


# ----------------------------------------------------------------------------- the SPOC example
@pytest.mark.slow
def test_spoc_example_recovers_the_planted_rate_ratio(tmp_path):
    """The synthetic SPOC rollout (7 forces in 3 cohorts, 6 never treated, rate ratio 0.88
    after a 3-month phase-in): the analysis entry proposed for designs/spoc_rollout.yaml."""
    from evalkit.examples import write_example

    path = write_example("spoc-rollout", tmp_path)
    raw = yaml.safe_load(path.read_text())
    raw["analysis"] = [{"method": "staggered_did", "outcome": "reports", "control_group": "not_yet_treated"}]
    results = evalkit.run(design_from_mapping(raw, path=path))
    truth = json.loads((tmp_path / "truth.json").read_text())["reports"]["rate_ratio"]
    simple = results.estimate("att_simple")
    assert simple.scale == "ratio" and simple.ci_low < truth < simple.ci_high
    assert simple.estimate == pytest.approx(truth, abs=0.03)
    assert simple.details["transition_excluded"] == 3 and simple.details["treated_units"] == 7
    checks = {c.name: c for c in results.checks}
    assert checks["pre_trends"].values["test"] == "pooled_bins_welch_hotelling"
    assert checks["few_treated"].status == "pass"


# ----------------------------------------------------------------------------- sparse ratios (issue 12)
def sparse_panel(tmp_path, seed: int, rate: float = 0.5, units: int = 14, treated: int = 3, months: int = 36):
    """Monthly counts near 0.5 per area-month: the adopting cohort's base month holds a handful of counts."""
    rng = np.random.default_rng(seed)
    periods = pd.period_range("2019-01", periods=months, freq="M")
    rows = []
    for i in range(units):
        adopt = "2020-07" if i < treated else ""
        start = periods.get_loc(pd.Period(adopt, "M")) if adopt else months
        mu = rate * rng.uniform(0.5, 1.5) * np.where(np.arange(months) >= start, 0.7, 1.0)
        rows += [(f"a{i:02d}", str(p), int(rng.poisson(mu[j])), adopt or "0") for j, p in enumerate(periods)]
    pd.DataFrame(rows, columns=["area", "month", "reports", "adopted"]).to_csv(tmp_path / "panel.csv", index=False)
    raw = {"evalkit": 1, "title": "sparse", "intervention": {"name": "SPOC", "transition": 0},
           "data": {"source": "panel.csv", "layout": "panel", "columns": {"unit": "area", "time": "month"},
                    "frequency": "month"},
           "units": {"adoption_column": "adopted"},
           "outcomes": [{"name": "reports", "column": "reports", "measure": "count"}],
           "analysis": [{"method": "staggered_did", "outcome": "reports"}], "seed": 5}
    return design_from_mapping(raw, path=tmp_path / "design.yaml")


def test_sparse_base_counts_withhold_the_ratio(tmp_path):
    design = sparse_panel(tmp_path, seed=4)
    design.analysis[0].inference = "analytic"   # the analytic ratio's absurd interval is what is withheld
    results = evalkit.run(design)
    check = next(c for c in results.checks if c.name == "sparse_ratio")
    assert check.status == "fail" and check.values["ratio_withheld"] is True
    assert check.values["effective_base_counts"] < check.values["threshold_withhold"] == 25
    assert "withheld" in check.detail and "difference in rates" in check.detail
    simple = results.estimate("att_simple")
    # the rate difference is reported; the ratio (with its absurd interval) is kept in details only
    assert simple.scale == "difference" and simple.estimate == simple.details["difference"]
    assert simple.ci_low == simple.details["difference_ci_low"] and simple.ci_low < simple.estimate < simple.ci_high
    withheld = simple.details["ratio_withheld"]
    assert withheld["estimate"] > 0 and withheld["ci_low"] < withheld["ci_high"] and withheld["why"] == check.detail
    assert all(e.scale == "difference" for e in results.estimates)
    assert results.analyses[0].series["ratio_withheld"] is True
    assert "%" not in results.evidence["headline"]


def test_a_sparse_panel_whose_counterfactual_is_zero_reports_the_difference(tmp_path):
    # the base month has no counts at all: formerly an error (counterfactual rate not above 0)
    results = evalkit.run(sparse_panel(tmp_path, seed=1))
    check = next(c for c in results.checks if c.name == "sparse_ratio")
    assert check.status == "fail" and check.values["effective_base_counts"] == 0.0
    assert results.estimate("att_simple").scale == "difference"


def test_dense_counts_keep_the_ratio(tmp_path):
    results = evalkit.run(evalkit.load_design(count_panel(tmp_path)))
    check = next(c for c in results.checks if c.name == "sparse_ratio")
    assert check.status == "pass" and check.values["effective_base_counts"] > 1000
    assert results.estimate("att_simple").scale == "ratio"


# ----------------------------------------------------------------------------- pre-trends: calibration (issue 12)
def test_pre_trend_check_says_whether_it_is_calibrated(tmp_path):
    results = evalkit.run(evalkit.load_design(count_panel(tmp_path, seed=16)))
    check = next(c for c in results.checks if c.name == "pre_trends")
    values = check.values
    assert values["calibrated"] is True and "degrees of freedom" in values["calibration"]
    assert values["df"] == 2 and values["df_effective"] > 4 and len(values["bins"]) == 2
    assert 0 <= values["p_value"] <= 1 and values["F"] >= 0


def test_a_failed_uncalibrated_check_does_not_lower_the_level():
    from evalkit.evidence import design_level
    from evalkit.results import Check

    common = {"method": "staggered_did", "outcome": "reports"}
    calibrated = Check("pre_trends", "fail", "x", values={"calibrated": True}, **common)
    rough = Check("pre_trends", "fail", "x", values={"calibrated": False}, **common)
    legacy = Check("pre_trends", "fail", "x", values={}, **common)
    assert design_level("staggered_did", [calibrated], "reports")[0] == 2
    assert design_level("staggered_did", [legacy], "reports")[0] == 2
    assert design_level("staggered_did", [rough], "reports") == (3, [])
