"""Time to found: Kaplan-Meier descriptives, the stratified Cox DiD, the RMST DiD and the
per-period duration outcomes, against R's survival package.

Reference values: tests/fixtures/survival/*.csv, written by reference.R (R 4.2.2,
survival 3.5-3) from survival_data.csv, which make_dataset.py wrote (seed 20240601) with
episodes.csv. The R calls are quoted above each comparison.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

import evalkit
from evalkit.data import load_data
from evalkit.data.durations import first_crossing_time, kaplan_meier
from evalkit.evidence import assess, found_sooner_sentence
from evalkit.methods import get_method
from evalkit.methods.survival.cox import CoxError, fit_cox
from evalkit.methods.survival.kaplan_meier import at_times, confidence_band, medians, restricted_means
from evalkit.methods.survival.survival import CELLS, survival_frame
from evalkit.results import Analysis, Estimate

from .conftest import ROOT, write

FIXTURES = ROOT / "tests" / "fixtures" / "survival"
DESIGN = FIXTURES / "design.yaml"


@pytest.fixture(scope="module")
def r_data() -> pd.DataFrame:
    return pd.read_csv(FIXTURES / "survival_data.csv")


@pytest.fixture(scope="module")
def fit_data(r_data) -> pd.DataFrame:
    return r_data[r_data["in_fit"] == 1].reset_index(drop=True)


@pytest.fixture(scope="module")
def loaded():
    design = evalkit.load_design(DESIGN)
    return design, load_data(design)


@pytest.fixture(scope="module")
def result(loaded):
    design, data = loaded
    return get_method("survival_did")(design, data, design.analysis[0], 0)


def _estimate(result, estimand, group=None):
    return next(e for e in result.estimates if e.estimand == estimand and e.group == group)


# ----------------------------------------------------------------------------- data
def test_evalkit_derives_the_same_analysis_frame_as_the_fixture_script(loaded, r_data, fit_data):
    """Censoring at extraction, post per area (first adoption for comparison areas) and the
    phase-in exclusion, as make_dataset.py computes them independently."""
    design, data = loaded
    frame, dropped = survival_frame(design, data, design.analysis[0])
    assert dropped == {"other_areas": 0, "phase_in": int((r_data["in_fit"] == 0).sum())} and dropped["phase_in"] > 0
    ours = frame.assign(unit=frame["unit"].astype(str), period=frame["period"].astype(str)) \
        .sort_values(["unit", "period", "hours", "found"], kind="mergesort").reset_index(drop=True)
    ref = fit_data.sort_values(["unit", "period", "hours", "found"], kind="mergesort").reset_index(drop=True)
    assert len(ours) == len(ref) == 4115
    assert (ours["unit"] == ref["unit"]).all() and (ours["period"] == ref["period"]).all()
    np.testing.assert_array_equal(ours["hours"].to_numpy(), ref["hours"].to_numpy())
    np.testing.assert_array_equal(ours["found"].to_numpy(), ref["found"].to_numpy() == 1)
    np.testing.assert_array_equal(ours["treated"].to_numpy(), ref["treated"].to_numpy() == 1)
    np.testing.assert_array_equal(ours["post"].to_numpy(), ref["post"].to_numpy() == 1)
    # open episodes are censored at extraction: kept, never counted as found
    assert int((~frame["found"]).sum()) == int((fit_data["found"] == 0).sum()) == 96


# ----------------------------------------------------------------------------- Cox
@pytest.mark.reference
@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_cox_matches_r(fit_data, ties):
    # coxph(Surv(hours, found) ~ post + treated_post + strata(unit), cluster = unit, ties = ties)
    ref = pd.read_csv(FIXTURES / "cox.csv")
    ref = ref[ref["ties"] == ties].set_index("term")
    f = fit_data
    fit = fit_cox(f["hours"], f["found"] == 1, np.column_stack([f["post"], f["treated"] * f["post"]]),
                  strata=f["unit"], cluster=f["unit"], ties=ties, names=["post", "treated_post"])
    for j, term in enumerate(["post", "treated_post"]):
        assert np.exp(fit.params[j]) == pytest.approx(ref.loc[term, "hazard_ratio"], abs=1e-5)
        assert fit.params[j] == pytest.approx(ref.loc[term, "coef"], abs=1e-7)
        assert fit.se(robust=True)[j] == pytest.approx(ref.loc[term, "robust_se"], rel=1e-3)
        assert fit.se(robust=False)[j] == pytest.approx(ref.loc[term, "model_se"], rel=1e-3)
    assert fit.loglik == pytest.approx(ref["loglik"].iloc[0], abs=1e-6)
    assert fit.loglik_null == pytest.approx(ref["loglik_null"].iloc[0], abs=1e-6)
    assert (fit.n, fit.events, fit.clusters, fit.strata) == (int(ref["n"].iloc[0]), int(ref["events"].iloc[0]), 8, 8)


@pytest.mark.reference
@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_proportional_hazards_test_matches_r_cox_zph(fit_data, ties):
    # cox.zph(fit)  (transform = "km")
    ref = pd.read_csv(FIXTURES / "zph.csv")
    ref = ref[ref["ties"] == ties].set_index("term")
    f = fit_data
    fit = fit_cox(f["hours"], f["found"] == 1, np.column_stack([f["post"], f["treated"] * f["post"]]),
                  strata=f["unit"], cluster=f["unit"], ties=ties, names=["post", "treated_post"])
    zph = fit.zph()
    for term in ("post", "treated_post"):
        assert zph["terms"][term]["chisq"] == pytest.approx(ref.loc[term, "chisq"], rel=1e-6)
        assert zph["terms"][term]["p"] == pytest.approx(ref.loc[term, "p"], rel=1e-6)
    assert zph["global"]["chisq"] == pytest.approx(ref.loc["GLOBAL", "chisq"], rel=1e-6)
    assert zph["global"]["df"] == 2


def test_statsmodels_phreg_gives_the_same_estimate(fit_data):
    """An independent engine for the point estimate and the model-based SE (statsmodels'
    robust SE differs under Efron ties: it uses Breslow-form score residuals)."""
    from statsmodels.duration.hazard_regression import PHReg

    f = fit_data
    X = np.column_stack([f["post"], f["treated"] * f["post"]]).astype(float)
    ours = fit_cox(f["hours"], f["found"] == 1, X, strata=f["unit"], ties="efron")
    theirs = PHReg(f["hours"].to_numpy(), X, status=f["found"].to_numpy(), strata=f["unit"].to_numpy(), ties="efron").fit()
    np.testing.assert_allclose(ours.params, theirs.params, atol=1e-7)
    np.testing.assert_allclose(ours.se(robust=False), theirs.bse, rtol=1e-6)


def test_cox_refuses_what_it_cannot_fit():
    time = np.array([1.0, 2.0, 3.0, 4.0])
    with pytest.raises(CoxError, match="no episode is found"):
        fit_cox(time, np.zeros(4, dtype=bool), np.array([0.0, 1.0, 0.0, 1.0]))
    with pytest.raises(CoxError, match="does not vary"):
        # the covariate is constant within each stratum: absorbed by the strata
        fit_cox(time, np.ones(4, dtype=bool), np.array([0.0, 0.0, 1.0, 1.0]), strata=[0, 0, 1, 1])


def test_proportional_hazards_check_flags_an_effect_that_fades():
    """Treated x post doubles the hazard in the first 6 hours and has no effect after: the
    Schoenfeld test must see it (and does not for a constant effect)."""
    rng = np.random.default_rng(7)
    n = 6000
    area = rng.integers(0, 6, n)
    treated = (area < 3).astype(float)
    post = (rng.random(n) < 0.5).astype(float)
    effect = treated * post
    base = rng.exponential(10.0, n)
    fading = np.where(effect == 1, np.where(base / 2 < 6, base / 2, base - 3), base)
    constant = np.where(effect == 1, base / 1.5, base)
    X = np.column_stack([post, effect])
    for hours, expect_flag in ((fading, True), (constant, False)):
        fit = fit_cox(np.round(hours, 2), np.ones(n, dtype=bool), X, strata=area, cluster=area)
        assert (fit.zph()["terms"]["x1"]["p"] < 0.01) is expect_flag


# ----------------------------------------------------------------------------- Kaplan-Meier
def _cells(fit_data):
    names = np.where(fit_data["treated"] == 1, "treated", "comparison") + "_" + np.where(fit_data["post"] == 1, "post", "pre")
    order = [f"{g}_{p}" for g, p in CELLS]
    codes = pd.Series(names).map({c: i for i, c in enumerate(order)}).to_numpy()
    return order, kaplan_meier(codes, fit_data["hours"], fit_data["found"] == 1, n_groups=4)


@pytest.mark.reference
def test_kaplan_meier_curves_match_r_survfit(fit_data):
    # survfit(Surv(hours, found) ~ cell)  (conf.type = "log")
    ref = pd.read_csv(FIXTURES / "km_curves.csv")
    order, table = _cells(fit_data)
    lower, upper = confidence_band(table, 0.05)
    for g, cell in enumerate(order):
        r = ref[ref["cell"] == cell]
        rows = table.rows(g)
        np.testing.assert_array_equal(table.time[rows], r["time"].to_numpy())
        np.testing.assert_array_equal(table.n_risk[rows], r["n_risk"].to_numpy())
        np.testing.assert_array_equal(table.n_event[rows], r["n_event"].to_numpy())
        np.testing.assert_array_equal(table.n_censor[rows], r["n_censor"].to_numpy())
        np.testing.assert_allclose(table.survival[rows], r["surv"].to_numpy(), atol=1e-12)
        np.testing.assert_allclose(np.sqrt(table.greenwood[rows]), r["std_err"].to_numpy(), atol=1e-12)
        np.testing.assert_allclose(lower[rows], r["lower"].to_numpy(), atol=1e-12, equal_nan=True)
        np.testing.assert_allclose(upper[rows], r["upper"].to_numpy(), atol=1e-12, equal_nan=True)


@pytest.mark.reference
def test_medians_restricted_means_and_shares_match_r(fit_data, result):
    # summary(km, rmean = 72)$table; summary(km, times = c(24, 48)); summary(km, times = seq(0, 72, 12))$n.risk
    ref = pd.read_csv(FIXTURES / "km_cells.csv").set_index("cell")
    order, table = _cells(fit_data)
    med, means = medians(table, 0.05), restricted_means(table, 72.0)
    shares = at_times(table, [24.0, 48.0], 0.05)
    risk = at_times(table, np.arange(0, 73, 12), 0.05)
    for g, cell in enumerate(order):
        r = ref.loc[cell]
        assert med["median"][g] == pytest.approx(r["median"], abs=1e-6)
        assert med["low"][g] == pytest.approx(r["median_lcl"], abs=1e-6)
        assert med["high"][g] == pytest.approx(r["median_ucl"], abs=1e-6)
        assert means["rmst"][g] == pytest.approx(r["rmean"], abs=1e-6)
        assert means["se"][g] == pytest.approx(r["se_rmean"], abs=1e-6)
        for i, h in enumerate((24, 48)):
            assert shares["survival"][g, i] == pytest.approx(r[f"surv_{h}"], abs=1e-6)
            assert shares["lower"][g, i] == pytest.approx(r[f"lower_{h}"], abs=1e-6)
            assert shares["upper"][g, i] == pytest.approx(r[f"upper_{h}"], abs=1e-6)
        assert risk["at_risk"][g].tolist() == [int(x) for x in r["n_risk_at"].split()]
        # the same numbers reach results.json through the method
        e = _estimate(result, "median_hours", cell)
        assert (e.estimate, e.ci_low, e.ci_high) == pytest.approx((r["median"], r["median_lcl"], r["median_ucl"]), abs=1e-6)
        e = _estimate(result, "rmst_hours", cell)
        assert (e.estimate, e.se) == pytest.approx((r["rmean"], r["se_rmean"]), abs=1e-6)
        e = _estimate(result, "share_found_within_24h", cell)
        assert (e.estimate, e.ci_low, e.ci_high) == pytest.approx((1 - r["surv_24"], 1 - r["upper_24"], 1 - r["lower_24"]), abs=1e-6)
        curve = next(c for c in result.analysis.series["curves"] if f"{c['group']}_{c['period']}" == cell)
        assert curve["at_risk"] == [int(x) for x in r["n_risk_at"].split()]


def test_median_rule_with_censoring_and_an_exact_half():
    # hand-computed: S = 0.8, 0.6, 0.6 (censored at 3), 0.3, 0 -> median 4; a naive median
    # of the observed hours would say 3 (counting the open episode as found at 3)
    t = kaplan_meier(np.zeros(5, int), [1, 2, 3, 4, 5], [True, True, False, True, True])
    assert first_crossing_time(t.survival, t.time, t.bounds)[0] == 4.0
    # S = 0.75, 0.5, 0.25, 0: exactly 0.5 on [2, 3) -> R takes the midpoint, 2.5
    t = kaplan_meier(np.zeros(4, int), [1, 2, 3, 4], [True] * 4)
    assert first_crossing_time(t.survival, t.time, t.bounds)[0] == 2.5
    # never below 0.5 -> not reached
    t = kaplan_meier(np.zeros(4, int), [1, 2, 3, 4], [True, False, False, False])
    assert np.isnan(first_crossing_time(t.survival, t.time, t.bounds)[0])


# ----------------------------------------------------------------------------- the method
@pytest.mark.reference
def test_hazard_ratio_did_matches_r(loaded, result):
    ref = pd.read_csv(FIXTURES / "cox.csv")
    r = ref[(ref["ties"] == "efron") & (ref["term"] == "treated_post")].iloc[0]
    hr = _estimate(result, "hazard_ratio_did")
    assert hr.scale == "ratio"
    assert hr.estimate == pytest.approx(r["hazard_ratio"], abs=1e-5)
    assert hr.details["robust_se"] == pytest.approx(r["robust_se"], rel=1e-3)
    assert hr.details["model_se"] == pytest.approx(r["model_se"], rel=1e-3)
    # default se: conservative = the larger of the two
    assert hr.se == pytest.approx(max(r["robust_se"], r["model_se"]), rel=1e-3)
    assert hr.ci_low == pytest.approx(np.exp(r["coef"] - 1.959963984540054 * hr.se), rel=1e-9)
    # se: cluster_robust is R's coxph(cluster = unit) interval exactly
    design, data = loaded
    spec = design.analysis[0].model_copy(update={"se": "cluster_robust"})
    robust = _estimate(get_method("survival_did")(design, data, spec, 0), "hazard_ratio_did")
    assert robust.se == pytest.approx(r["robust_se"], rel=1e-3)
    assert robust.ci_high == pytest.approx(np.exp(r["coef"] + 1.959963984540054 * r["robust_se"]), rel=1e-6)


@pytest.mark.reference
def test_rmst_difference_did_matches_r(result):
    # survfit(Surv(hours, found) ~ unit + post); restricted means at 72 h; weighted by n after
    ref = pd.read_csv(FIXTURES / "rmst_did.csv").iloc[0]
    e = _estimate(result, "rmst_difference_did")
    assert e.estimate == pytest.approx(ref["rmst_difference_did"], abs=1e-6)
    assert e.details["treated_change"] == pytest.approx(ref["treated_change"], abs=1e-6)
    assert e.details["comparison_change"] == pytest.approx(ref["comparison_change"], abs=1e-6)
    assert e.ci_low < e.estimate < e.ci_high and e.se > 0
    areas = pd.read_csv(FIXTURES / "area_rmst.csv")
    rows = {r["unit"]: r for r in result.analysis.series["area_rmst"]}
    for _, a in areas.iterrows():
        key = "rmst_post" if a["post"] == 1 else "rmst_pre"
        assert rows[a["unit"]][key] == pytest.approx(a["rmean"], abs=1e-6)
        assert rows[a["unit"]]["n_post" if a["post"] == 1 else "n_pre"] == a["n"]


def test_checks_series_and_determinism(loaded, result):
    design, data = loaded
    names = {c.name: c for c in result.checks}
    assert names["proportional_hazards"].status == "pass"
    assert names["few_clusters"].status == "warn"  # 4 adopting of 8 areas
    series = result.analysis.series
    assert series["at_hours"] == [0.0, 12.0, 24.0, 36.0, 48.0, 60.0, 72.0]
    assert [(c["group"], c["period"]) for c in series["curves"]] == list(CELLS)
    for c in series["curves"]:
        assert c["times"][0] == 0.0 and c["survival"][0] == 1.0
        assert len(c["times"]) == len(c["survival"]) == len(c["lower"]) == len(c["upper"])
        assert all(np.diff(c["survival"]) <= 0) and c["at_risk"][0] == c["n"]
    again = get_method("survival_did")(design, data, design.analysis[0], 0)
    assert [dataclasses.asdict(e) for e in again.estimates] == [dataclasses.asdict(e) for e in result.estimates]


def test_run_writes_json_and_a_found_sooner_headline(loaded):
    design, data = loaded
    results = evalkit.run(design, data)
    text = results.to_json_text()
    assert '"hazard_ratio_did"' in text and '"rmst_difference_did"' in text
    headline = results.evidence["headline"]
    assert headline.startswith("Test SPOC: missing children may have been found sooner, by about 5.4 hours within the first 72 hours")
    assert "more likely to be found at any given moment" in headline


# ----------------------------------------------------------------------------- per-period outcomes
@pytest.mark.reference
def test_monthly_median_and_share_found_match_r(loaded):
    # per unit-month: summary(survfit(Surv(hours, found) ~ 1))$table["median"] and 1 - S(24)
    _, data = loaded
    ref = pd.read_csv(FIXTURES / "monthly.csv")
    panel = data.panel.assign(key=data.panel["unit"].astype(str) + "|" + data.panel["period"].astype(str)).set_index("key")
    keys = ref["unit"] + "|" + ref["period"]
    np.testing.assert_allclose(panel.loc[keys, "median_hours"].to_numpy(), ref["median"].to_numpy(), atol=1e-6)
    np.testing.assert_allclose(panel.loc[keys, "found_24h"].to_numpy(), ref["share_24"].to_numpy(), atol=1e-6)
    small = panel.index.difference(keys)  # fewer than min_episodes = 18
    assert len(small) > 0 and panel.loc[small, ["median_hours", "found_24h"]].isna().all().all()
    assert (panel.loc[small, "reports"] < 18).all()


# ----------------------------------------------------------------------------- errors
def _design_with(tmp_path, old, new):
    text = DESIGN.read_text().replace("source: episodes.csv", f"source: {FIXTURES / 'episodes.csv'}")
    assert old in text
    return evalkit.load_design(write(tmp_path / "design.yaml", text.replace(old, new)))


def test_errors_are_one_line_and_name_the_key(tmp_path):
    # a monthly outcome is refused when the design loads (issue 14), not when the method is fitted
    with pytest.raises(evalkit.EvalkitError, match=r"analysis\[0\].outcome: survival_did cannot fit outcome 'median_hours' "
                       r"\(measure: median_hours_to_found\)"):
        _design_with(tmp_path, "{method: survival_did, outcome: time_to_found, reps: 199}",
                     "{method: survival_did, outcome: median_hours}")
    design = _design_with(tmp_path, "comparison: all_untreated", "comparison: [C1]")
    with pytest.raises(evalkit.EvalkitError) as info:
        evalkit.run(design.model_copy(update={"analysis": [design.analysis[0].model_copy(update={"min_episodes": 5000})]}))
    assert "\n" not in info.value.message and "min_episodes" in info.value.message


def test_found_sooner_headline_wording():
    def make(estimate, low, high, **details):
        return Estimate("time_to_found", "survival_did", "x", "ratio", estimate, ci_low=low, ci_high=high, details=details)

    hazard, rmst = make(1.25, 1.12, 1.40), make(-3.2, -4.9, -1.6, horizon_hours=72)
    assert found_sooner_sentence("SPOC", hazard, rmst, "moderate") == (
        "SPOC: missing children were probably found sooner, by about 3.2 hours within the first 72 hours "
        "(likely range 1.6 to 4.9 hours sooner), and about 25% more likely to be found at any given moment "
        "(likely range 12% to 40%).")
    assert found_sooner_sentence("SPOC", make(1.05, 0.97, 1.12), make(-0.8, -2.1, 0.6, horizon_hours=72), "low") == (
        "SPOC: little or no clear difference in how soon missing children are found; the data are consistent "
        "with anything from 2.1 hours sooner to 0.6 hours later within the first 72 hours.")
    later = found_sooner_sentence("SPOC", make(0.8, 0.7, 0.9), None, "low")
    assert later == ("SPOC: missing children may have been found later, about 20% less likely to be found at any "
                     "given moment (likely range 10% to 30%).")


def test_other_methods_keep_their_headline():
    estimate = Estimate("reports", "its", "cumulative_effect", "ratio", 0.88, ci_low=0.80, ci_high=0.95)
    evidence = assess([estimate], [], [Analysis("its", "reports", "ITS")], "reports", "SPOC", {"reports": "missing reports"})
    assert evidence["headline"] == "SPOC may have reduced missing reports by about 12% (likely range 5% to 20% fewer)."


# ----------------------------------------------------------------------------- planted truth
@pytest.mark.slow
def test_recovers_the_planted_effect_of_the_spoc_example(tmp_path):
    """designs/spoc_rollout.yaml's data (seed 20240510): truth.json plants hazard ratio 1.25
    and a 72-hour RMST difference; both must lie inside the reported intervals."""
    from evalkit.examples import write_example

    design_path = write_example("spoc-rollout", tmp_path)
    truth = __import__("json").loads((tmp_path / "truth.json").read_text())["time_to_found"]
    text = design_path.read_text().replace("analysis:\n", "analysis:\n  - {method: survival_did, outcome: time_to_found}\n", 1)
    design = evalkit.load_design(write(tmp_path / "survival.yaml", text))
    spec = next(s for s in design.analysis if s.method == "survival_did")
    result = get_method("survival_did")(design, load_data(design), spec, 0)
    hr, rmst = _estimate(result, "hazard_ratio_did"), _estimate(result, "rmst_difference_did")
    assert hr.ci_low < truth["hazard_ratio"] < hr.ci_high
    assert rmst.ci_low < truth["rmst_difference_hours"] < rmst.ci_high
    assert rmst.details["horizon_hours"] == truth["horizon_hours"] == 72
