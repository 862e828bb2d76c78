"""The event studies did and staggered_did record for the parallel-trends sensitivity
(``series["honest_inputs"]``: evalkit/methods/did/event_study.py,
evalkit/methods/staggered/honest_inputs.py), and the sensitivity's cheaper search.

References (nothing here needs R, pyfixest, honestdid or the network):
- tests/fixtures/honest_did/: the spoc_rollout panel did fits, and pyfixest's fepois / feols
  event study on it with bins built independently in pandas (make_reference.py);
- tests/fixtures/honest_staggered/: the mpdta inputs and the Python port of HonestDiD
  (honestdid 0.1.1) on them (make_reference.py);
- staggered_did's own event study with ``base_period: universal`` (checked against R did
  elsewhere: tests/test_staggered*.py) and a unit bootstrap for the joint covariance.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import evalkit
from evalkit.data import load_data
from evalkit.evidence import parallel_trends_sensitivity, sensitivity_inputs
from evalkit.inference.honest import original_ci, relative_magnitudes_breakdown, relative_magnitudes_ci
from evalkit.methods import get_method
from evalkit.methods.did.bacon import NEVER as DID_NEVER
from evalkit.methods.did.estimate import DiDSample
from evalkit.methods.did.event_study import binned_event_study
from evalkit.methods.staggered.aggte import make_plan
from evalkit.methods.staggered.att_gt import NEVER, group_time_att
from evalkit.methods.staggered.honest_inputs import binned_event_study as staggered_event_study
from evalkit.methods.staggered.honest_inputs import bin_width
from tests.conftest import ROOT

FIXTURES = Path(__file__).parent / "fixtures"


# ----------------------------------------------------------------------------- did against pyfixest
def spoc_sample(family: str) -> tuple[DiDSample, np.ndarray]:
    meta = json.loads((FIXTURES / "honest_did" / "meta.json").read_text())
    frame = pd.read_csv(FIXTURES / "honest_did" / "spoc_did_panel.csv")
    adopt = frame.groupby("area")["adopt"].first().to_numpy()
    positions = np.where(adopt >= 0, adopt, DID_NEVER)
    counts = frame["reports"].to_numpy(float)
    exposure = frame["exposure"].to_numpy(float)
    y = counts if family == "poisson" else counts / exposure * meta["per"]
    sample = DiDSample(units=list(range(meta["n_units"])),
                       periods=pd.period_range("2016-01", periods=meta["n_times"], freq="M"),
                       unit=frame["area"].to_numpy(), time=frame["month"].to_numpy(), y=y, counts=counts,
                       exposure=exposure if family == "poisson" else None, transition=meta["transition"],
                       family=family, control_group="not_yet_treated", per=meta["per"], balanced=True)
    return sample, positions


@pytest.mark.parametrize("family", ["poisson", "linear"])
def test_did_event_study_matches_pyfixest(family):
    reference = json.loads((FIXTURES / "honest_did" / "spoc_did_pyfixest.json").read_text())[family]
    sample, positions = spoc_sample(family)
    found = binned_event_study(sample, positions, per_year=12)
    assert found["labels"] == reference["labels"] == [-4, -3, -2, 0, 1, 2]
    assert (found["num_pre"], found["num_post"]) == (3, 3)
    np.testing.assert_allclose(found["betahat"], reference["coef"], rtol=1e-6, atol=1e-8)
    # pyfixest without small-sample factors; ours carries the headline's
    raw = np.array(found["sigma"]) / found["correction"]
    np.testing.assert_allclose(raw, reference["vcov"], rtol=1e-6, atol=1e-12)
    assert found["rows"] == reference["nobs"]
    G = 13
    expected = G / (G - 1) if family == "poisson" else None
    if expected is not None:
        assert found["correction"] == pytest.approx(expected)
    assert sum(found["l_vec"]) == pytest.approx(1.0)


def test_did_event_study_rows_left_out_beyond_the_last_post_bin():
    sample, positions = spoc_sample("poisson")
    from evalkit.methods.did import event_study

    bins = event_study.event_bins(sample, positions, per_year=6)   # half-years: more bins after adoption than kept
    cell, keep, labels, beyond = bins
    assert max(labels) == event_study.MAX_POST_BINS - 1 and beyond > 0
    assert not keep[(positions[sample.unit] != DID_NEVER) & (cell < 0) & keep
                    & (sample.time >= positions[sample.unit])].any()


# ----------------------------------------------------------------------------- staggered_did on mpdta
@pytest.fixture(scope="module")
def mpdta():
    design = evalkit.load_design(ROOT / "designs" / "mpdta_staggered.yaml")
    return design, load_data(design)


def fit(design, data, index=0, **update):
    spec = design.analysis[index].model_copy(update=update)
    return get_method(spec.method)(design, data, spec, index)


def test_staggered_bins_are_the_universal_event_study(mpdta):
    """On yearly data each bin is one event time: the event study of base_period: universal (R did's aggte
    dynamic), with the same analytic standard errors; the target is att_simple itself."""
    design, data = mpdta
    result = fit(design, data)
    inputs = result.analysis.series["honest_inputs"]
    assert inputs["event_bins"] == [-4, -3, -2, 0, 1, 2, 3] and inputs["base_period"] == "universal"
    universal = fit(design, data, base_period="universal")
    events = {e.estimand: e for e in universal.estimates}
    expected = [events[f"event_{b}"].estimate for b in inputs["event_bins"]]
    np.testing.assert_allclose(inputs["betahat"], expected, rtol=0, atol=1e-12)
    ses = [events[f"event_{b}"].se for b in inputs["event_bins"]]
    np.testing.assert_allclose(np.sqrt(np.diag(inputs["sigma"])), ses, rtol=1e-10)
    simple = next(e for e in result.estimates if e.estimand == "att_simple")
    post = np.array(inputs["betahat"][inputs["num_pre"]:])
    assert float(np.array(inputs["l_vec"]) @ post) == pytest.approx(simple.estimate, abs=1e-12)
    # published: R did's universal-base event study of mpdta (HonestDiD's staggered example)
    np.testing.assert_allclose(inputs["betahat"], [0.0033, 0.0250, 0.0245, -0.0199, -0.0510, -0.1373, -0.1008],
                               atol=6e-5)
    # the stored inputs of the honestdid reference are these
    stored = json.loads((FIXTURES / "honest_staggered" / "mpdta_inputs.json").read_text())
    np.testing.assert_allclose(stored["betahat"], inputs["betahat"], rtol=1e-10)
    np.testing.assert_allclose(stored["sigma"], inputs["sigma"], rtol=1e-8)


def mpdta_arrays():
    frame = pd.read_csv(ROOT / "examples" / "mpdta" / "mpdta.csv")
    wide = frame.pivot(index="countyreal", columns="year", values="lemp")
    first = frame.groupby("countyreal")["first.treat"].first().reindex(wide.index).to_numpy()
    years = list(wide.columns)
    cohort = np.array([years.index(g) if g else NEVER for g in first], dtype=np.int64)
    return wide.to_numpy(float), cohort


def binned(Y, cohort):
    gt = group_time_att(Y, cohort, control_group="never_treated", base_period="universal")
    plan = make_plan(gt, 0)
    return staggered_event_study(gt, plan, bin_width(cohort, NEVER, 1, 0), 0)


def test_staggered_joint_covariance_agrees_with_a_unit_bootstrap():
    """The influence-function covariance of the bins against resampling the counties (400 draws:
    Monte Carlo error of a variance about 7%, of a correlation about 0.05)."""
    Y, cohort = mpdta_arrays()
    found = binned(Y, cohort)
    sigma = np.array(found["sigma"])
    rng = np.random.default_rng(1)
    draws = []
    for _ in range(400):
        pick = rng.integers(0, len(Y), len(Y))
        draws.append(binned(Y[pick], cohort[pick])["betahat"])
    boot = np.cov(np.array(draws), rowvar=False)
    ratio = np.diag(boot) / np.diag(sigma)
    assert np.all(np.abs(ratio - 1) < 0.25), ratio
    corr = sigma / np.sqrt(np.outer(np.diag(sigma), np.diag(sigma)))
    corr_boot = boot / np.sqrt(np.outer(np.diag(boot), np.diag(boot)))
    assert np.max(np.abs(corr - corr_boot)) < 0.15
    # the post bins are correlated (shared comparison units): a diagonal covariance would be wrong
    assert np.max(np.abs(corr[np.triu_indices(len(corr), 1)])) > 0.3


def test_staggered_monthly_bins_are_yearly_against_the_year_before(mpdta):
    """Monthly data: bins of 12 months, the reference the year before adoption; each bin is the
    share-weighted average of ATT(g,t) - R_g, R_g the cohort's mean over its reference year."""
    rng = np.random.default_rng(3)
    n, T = 40, 60
    cohort = np.full(n, NEVER, dtype=np.int64)
    cohort[:10], cohort[10:20] = 30, 42
    Y = rng.normal(0, 1, (n, T)) + np.arange(T)[None, :] * 0.01
    gt = group_time_att(Y, cohort, control_group="never_treated", base_period="universal")
    plan = make_plan(gt, 0)
    width = bin_width(cohort, NEVER, 12, 0)
    assert width == 12
    found = staggered_event_study(gt, plan, width, 0)
    assert found["bins"] == [-3, -2, 0, 1, 2]    # -3: only cohort 42 has its months 6..17 in the window
    # direct: cohort 30, bin -2 = months 6..17, reference = months 18..29, never-treated comparison
    never = cohort == NEVER

    def change(rows, cols, ref):
        return Y[np.ix_(rows, cols)].mean() - Y[np.ix_(rows, ref)].mean()

    d30 = change(cohort == 30, range(6, 18), range(18, 30)) - change(never, range(6, 18), range(18, 30))
    d42 = change(cohort == 42, range(18, 30), range(30, 42)) - change(never, range(18, 30), range(30, 42))
    assert found["betahat"][1] == pytest.approx((d30 + d42) / 2, abs=1e-12)
    d42_3 = change(cohort == 42, range(6, 18), range(30, 42)) - change(never, range(6, 18), range(30, 42))
    assert found["betahat"][0] == pytest.approx(d42_3, abs=1e-12)
    # post bin 2: only cohort 30 (months 54..59, a partial year) against its reference year
    d = change(cohort == 30, range(54, 60), range(18, 30)) - change(never, range(54, 60), range(18, 30))
    assert found["betahat"][-1] == pytest.approx(d, abs=1e-12)


def test_staggered_breakdown_against_the_honestdid_port():
    """honestdid 0.1.1 (1000 least-favourable draws) on the mpdta inputs, att_simple as the target:
    every bound within a grid step with the same simulation size, and the breakdown value between
    the Mbar values where the port's interval excludes and includes 0."""
    inputs = json.loads((FIXTURES / "honest_staggered" / "mpdta_inputs.json").read_text())
    reference = json.loads((FIXTURES / "honest_staggered" / "mpdta_honestdid_py.json").read_text())
    b, V = np.array(inputs["betahat"]), np.array(inputs["sigma"])
    args = (b, V, inputs["num_pre"], inputs["num_post"])
    l_vec = inputs["l_vec"]
    for row in reference["rows"]:
        ours = relative_magnitudes_ci(*args, row["mbar"], l_vec=l_vec, lf_sims=1000, seed=0)
        step = ours.grid[1] - ours.grid[0]
        assert abs(ours.lb - row["lb"]) <= step * 1.01 and abs(ours.ub - row["ub"]) <= step * 1.01, (row, ours)
    usual = original_ci(*args, l_vec=l_vec)
    assert usual == pytest.approx((reference["original"]["lb"], reference["original"]["ub"]), rel=1e-10)
    found = relative_magnitudes_breakdown(*args, l_vec=l_vec)
    excludes = [r["mbar"] for r in reference["rows"] if r["ub"] < 0 or r["lb"] > 0]
    includes = [r["mbar"] for r in reference["rows"] if r["lb"] <= 0 <= r["ub"]]
    assert max(excludes) <= found["breakdown"] + 0.01 and found["breakdown"] <= min(includes) + 0.01


# ----------------------------------------------------------------------------- the sensitivity uses them
def test_sensitivity_uses_the_recorded_event_study(mpdta):
    design, data = mpdta
    result = fit(design, data)
    inputs = sensitivity_inputs(result.analysis, result.checks, result.estimates)
    assert inputs["covariance"] == "recorded" and inputs["approximate"] is False
    assert inputs["l_vec"] == result.analysis.series["honest_inputs"]["l_vec"]
    records = parallel_trends_sensitivity([result.analysis], result.checks, result.estimates)
    assert len(records) == 1 and records[0]["approximate"] is False
    simple = next(e for e in result.estimates if e.estimand == "att_simple")
    assert records[0]["estimate"] == pytest.approx(simple.estimate, abs=1e-12)
    assert records[0]["num_pre"] == 3 and records[0]["num_post"] == 4
    # the diagonal fallback stays for a method that records nothing
    result.analysis.series.pop("honest_inputs")
    fallback = sensitivity_inputs(result.analysis, result.checks, result.estimates)
    assert fallback is not None and fallback["approximate"] is True


@pytest.mark.parametrize("mbar", [0.5, 2.0])
def test_bisection_search_gives_the_grid_hull(mbar):
    """search="bisect" (what the run uses) reports the same interval as testing all 1000 grid points."""
    inputs = json.loads((FIXTURES / "honest_staggered" / "mpdta_inputs.json").read_text())
    medicaid = json.loads((FIXTURES / "honest" / "medicaid_inputs.json").read_text())
    for data, l_vec in ((inputs, inputs["l_vec"]), (medicaid, None), (medicaid, [0.5, 0.5])):
        args = (np.array(data["betahat"]), np.array(data["sigma"]), data["num_pre"], data["num_post"], mbar)
        grid = relative_magnitudes_ci(*args, l_vec=l_vec)
        fast = relative_magnitudes_ci(*args, l_vec=l_vec, search="bisect")
        assert (fast.lb, fast.ub) == (grid.lb, grid.ub)
    with pytest.raises(ValueError, match="search"):
        relative_magnitudes_ci(*args, search="golden")


def test_the_words_never_claim_a_finding_the_headline_test_does_not_make():
    from evalkit.evidence import sensitivity_words

    record = {"significant": True, "breakdown": 0.8, "capped": False}
    assert "conclusion holds unless" in sensitivity_words(record)
    assert "no clear change" in sensitivity_words({**record, "headline_rejects": False})
    assert "conclusion holds unless" in sensitivity_words({**record, "headline_rejects": True})


def test_the_piecewise_breakdown_search_equals_testing_every_piece_at_every_midpoint():
    from evalkit.inference import honest

    inputs = json.loads((FIXTURES / "honest_staggered" / "mpdta_inputs.json").read_text())
    b, V = np.array(inputs["betahat"]), np.array(inputs["sigma"])
    l_vec = np.array(inputs["l_vec"])

    def excludes_zero(mbar):
        return all(p.rejects(0.0) for p in honest._pieces(b, V, 3, 4, l_vec, mbar, 0.05, 20000, 0))

    low, high = 0.0, 10.0
    while high - low > 1e-3:
        mid = (low + high) / 2
        low, high = (mid, high) if excludes_zero(mid) else (low, mid)
    assert relative_magnitudes_breakdown(b, V, 3, 4, l_vec=l_vec)["breakdown"] == low
