"""Issue 12, the report side: a diagnosis's calibration verdict, a report that lowers certainty
when the headline's interval is too narrow, the relative-magnitudes sensitivity to parallel
trends, and a headline that names where it comes from."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import evalkit
from evalkit.diagnose import diagnose
from evalkit.diagnose.diagnosands import calibration, calibration_by_estimand
from evalkit.evidence import parallel_trends_sensitivity, reassess, sensitivity_words
from evalkit.report.diagnosis import calibration_by_analysis, calibration_words
from evalkit.report.render import render_html, view_model
from evalkit.report.words import STATISTICS
from evalkit.results import Analysis, Check, Estimate

from .conftest import ROOT
from .test_diagnose import GaussianITS

HONEST = Path(__file__).parent / "fixtures" / "honest"


def _cell(effect, coverage, fpr=None, sims=200, failed=0, unbounded=0):
    n = sims - failed
    cell = {"analysis": 0, "estimand": "att", "effect": effect, "simulations": sims, "failed": failed,
            "coverage": coverage, "coverage_se": (coverage * (1 - coverage) / n) ** 0.5,
            "unbounded_intervals": unbounded}
    if fpr is not None:
        cell.update(false_positive_rate=fpr, false_positive_rate_se=(fpr * (1 - fpr) / n) ** 0.5)
    return cell


# ----------------------------------------------------------------------------- 1. the verdict
def test_calibration_passes_inside_the_target_allowing_for_monte_carlo_error():
    assert calibration([_cell(1.0, 0.95, 0.05), _cell(0.85, 0.95)])["verdict"] == "pass"
    # 91% +/- 2 x 2.0 points reaches 93%: not shown to be outside the target
    assert calibration([_cell(1.0, 0.95, 0.05), _cell(0.85, 0.91)])["verdict"] == "pass"


def test_calibration_fails_a_narrow_interval_and_says_which_rate():
    out = calibration([_cell(1.0, 0.95, 0.05), _cell(0.85, 0.86)])
    assert out["verdict"] == "fail"
    assert [(r["rate"], r["effect"], r["direction"]) for r in out["reasons"]] == [("coverage", 0.85, "too narrow")]
    # true nulls rejected 12% of the time: too narrow as well, whatever the coverage at a fall
    out = calibration([_cell(1.0, 0.88, 0.12), _cell(0.85, 0.95)])
    assert {(r["rate"], r["direction"]) for r in out["reasons"]} == {("coverage", "too narrow"),
                                                                      ("false_positive_rate", "too narrow")}


def test_calibration_fails_a_conservative_interval_as_too_wide():
    out = calibration([_cell(1.0, 0.995, 0.005), _cell(0.85, 0.99)])
    assert out["verdict"] == "fail" and {r["direction"] for r in out["reasons"]} == {"too wide"}


def test_the_monte_carlo_band_is_two_ses_and_keeps_a_spread_at_100_percent():
    from evalkit.diagnose.diagnosands import rate_band

    low, high = rate_band(0.90, 1000)
    se = (0.9 * 0.1 / 1000) ** 0.5
    assert low == pytest.approx(0.90 - 2 * se, abs=0.002) and high == pytest.approx(0.90 + 2 * se, abs=0.002)
    # every one of 120 simulations covered: not proof of a coverage above 97%; of 200, it is
    assert calibration([_cell(1.0, 1.0, 0.0, sims=120)])["verdict"] == "pass"
    assert calibration([_cell(1.0, 1.0, 0.0, sims=200)])["verdict"] == "fail"


def test_calibration_is_not_assessed_with_few_fits_or_no_interval():
    assert calibration([_cell(1.0, 0.80, 0.20, sims=60)])["verdict"] == "not assessed"
    assert calibration([_cell(1.0, 0.80, 0.20, sims=150, failed=60)])["verdict"] == "not assessed"
    no_interval = calibration([_cell(1.0, 1.0, 0.05, unbounded=200)])
    assert no_interval["verdict"] == "not assessed" and "no interval" in no_interval["why_not"][0]
    # an estimand the simulations do not score (no truth, so no coverage) gets no verdict at all
    unscored = {"analysis": 0, "estimand": "pre_slope", "effect": 1.0, "simulations": 200, "failed": 0}
    assert "pre_slope" not in calibration_by_estimand([unscored, _cell(1.0, 0.95, 0.05)], 0)


class AR1ITS(GaussianITS):
    """The same series with AR(1) noise (rho 0.8), fitted with errors: none: intervals too narrow."""

    def draws(self, sim, effects):
        from evalkit.diagnose.simulate import simulation_streams

        for draw in super().draws(sim, effects):
            rng, _ = simulation_streams(self.design.seed + 1, sim)
            e = rng.normal(0.0, self.sigma, len(self.periods))
            for t in range(1, len(e)):
                e[t] = 0.8 * e[t - 1] + 0.6 * e[t]
            draw.data.panel["y"] = draw.data.panel["y"].to_numpy() + e
            yield draw


@pytest.mark.slow  # about 15 s on an idle core (two 120-simulation diagnoses)
def test_diagnosis_json_carries_a_calibration_per_analysis_and_estimand(tmp_path):
    fine = diagnose(GaussianITS().design, sims=120, effect=[0.9], simulator=GaussianITS(), mde=False,
                    out=tmp_path / "fine")
    record = json.loads((tmp_path / "fine" / "diagnosis.json").read_text())
    assert record["analyses"][0]["calibration"]["level_change"] == "pass", record["analyses"][0]
    assert "2 Monte Carlo SEs" in record["settings"]["calibration_rule"]
    narrow = diagnose(AR1ITS().design, sims=120, effect=[0.9], simulator=AR1ITS(), mde=False)
    entry = narrow.analyses[0]
    assert entry["calibration"]["level_change"] == "fail"
    reasons = entry["calibration_reasons"]["level_change"]["reasons"]
    assert all(r["direction"] == "too narrow" for r in reasons) and reasons
    few = diagnose(GaussianITS().design, sims=10, effect=[0.9], simulator=GaussianITS(), mde=False)
    assert set(few.analyses[0]["calibration"].values()) == {"not assessed"}
    # deterministic: the same diagnosis gives the same bytes
    again = diagnose(GaussianITS().design, sims=120, effect=[0.9], simulator=GaussianITS(), mde=False)
    assert again.to_json_text() == fine.to_json_text()
    html = (tmp_path / "fine" / "diagnosis.html").read_text()
    assert "Does its 95% interval hold" in html and "level_change: <strong>pass</strong>" in html


# ----------------------------------------------------------------------------- 2. lowered certainty
@pytest.fixture(scope="module")
def spoc_results():
    return evalkit.run(evalkit.load_design(ROOT / "designs" / "spoc_rollout.yaml"))


def _diagnosis(verdict: str, coverage: float = 0.86, direction: str = "too narrow", method="staggered_did",
               index=1, estimand="att_simple") -> dict:
    reasons = [] if verdict != "fail" else [{"rate": "coverage", "effect": 0.85, "value": coverage, "se": 0.024,
                                              "target": [0.93, 0.97], "direction": direction}]
    return {"schema": "evalkit.diagnosis/1", "settings": {"sims": 200, "effects": [1.0, 0.85]},
            "simulator": {"model": "data"},
            "headline": {"analysis": 1, "method": "staggered_did", "outcome": "reports", "estimand": "att_simple",
                         "mde": 0.7, "calibration": verdict},
            "analyses": [{"analysis": index, "method": method, "outcome": "reports", "calibration": {estimand: verdict},
                          "calibration_reasons": {estimand: {"reasons": reasons}}}],
            "cells": []}


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _box(html: str) -> str:
    text = _text(html)
    return text[text.index("How strong is the evidence?"):text.index("The statistics behind each check")]


def test_a_failed_calibration_lowers_certainty_one_step_and_says_why(spoc_results):
    passed, failed = _diagnosis("pass"), _diagnosis("fail")
    assert spoc_results.evidence["certainty"] == "moderate"
    html_pass, html_fail = render_html(spoc_results, passed), render_html(spoc_results, failed)
    assert "moderate certainty" in _text(html_pass) and "low certainty" not in _text(html_pass)
    assert "low certainty" in _text(html_fail) and "moderate certainty" not in _text(html_fail)
    box = _box(html_fail)
    assert ("In simulations of this design the 95% range covered the true effect only 86% of the time (it should "
            "be about 95%), so the range may be too narrow; certainty lowered.") in box
    assert "certainty lowered" not in _box(html_pass)
    assert not STATISTICS.search(box)
    # the record itself is untouched: results.json does not depend on the diagnosis
    assert spoc_results.evidence["certainty"] == "moderate"


def test_the_verb_follows_the_lowered_certainty(spoc_results):
    clear = [replace(e, estimate=0.85, ci_low=0.78, ci_high=0.93, details={**e.details, "test_rejects": True})
             if e.method == "staggered_did" and e.estimand == "att_simple" and e.group is None else e
             for e in spoc_results.estimates]
    results = replace(spoc_results, estimates=clear)
    results = replace(results, evidence=reassess(results, {}))
    assert "probably reduced missing reports by about 15%" in results.evidence["headline"]
    lowered = view_model(results, _diagnosis("fail"))
    assert lowered["evidence"]["certainty"] == "low"
    assert "may have reduced missing reports by about 15%" in lowered["headline_text"]


def test_a_conservative_interval_is_said_but_lowers_nothing(spoc_results):
    wide = render_html(spoc_results, _diagnosis("fail", coverage=0.995, direction="too wide"))
    assert "moderate certainty" in _text(wide)
    assert ("For missing reports (compared with areas that had not yet started, each adoption date separately "
            "(staggered difference-in-differences)): in simulations of this design the 95% range covered the true "
            "effect 100% of the time, more than the 95% it should, so the range may be wider than it needs to be; "
            "certainty not lowered") in _box(wide)


def test_another_analysis_failing_calibration_is_named_in_the_box(spoc_results):
    other = _diagnosis("fail", method="did", index=2, estimand="att")
    box = _box(render_html(spoc_results, other))
    assert "moderate certainty" in _text(render_html(spoc_results, other))   # the headline's own is untouched
    assert re.search(r"Why another analysis of missing reports differs: .*difference-in-differences\) is weaker here "
                     r"because .*in simulations of this design the 95% range covered the true effect only 86%", box)
    found = calibration_by_analysis(spoc_results, other)
    assert found[("did", "reports")]["lower"] and ("staggered_did", "reports") not in found


def test_calibration_words_are_plain():
    for reasons in ([{"rate": "false_positive_rate", "effect": 1.0, "value": 0.14, "direction": "too narrow",
                      "target": [0.03, 0.07]}],
                    [{"rate": "coverage", "effect": 1.0, "value": 0.999, "direction": "too wide", "target": [0.93, 0.97]}]):
        words = calibration_words("fail", reasons)
        assert words and not STATISTICS.search(words)
    assert "found a change 14% of the time" in calibration_words("fail", [{"rate": "false_positive_rate", "effect": 1.0,
                                                                          "value": 0.14, "direction": "too narrow",
                                                                          "target": [0.03, 0.07]}])
    assert calibration_words("pass", []) is None and calibration_words("not assessed", []) is None


# ----------------------------------------------------------------------------- 3. sensitivity to parallel trends
def _medicaid_analysis():
    data = json.loads((HONEST / "medicaid_inputs.json").read_text())
    b, V = np.array(data["betahat"]), np.array(data["sigma"])
    series = {"honest_inputs": {"betahat": b.tolist(), "sigma": V.tolist(), "num_pre": 5, "num_post": 2,
                                "target": "first", "scale": "difference", "source": "HonestDiD README example"}}
    return Analysis("did", "coverage", "Medicaid expansion (HonestDiD README)", settings={"analysis": 0},
                    series=series)


def test_breakdown_value_matches_the_honestdid_published_example():
    """The Medicaid example of HonestDiD's README through the report's path: significant at
    Mbar = 1.5, not at 2; the engine (tests/test_honest.py) gives 1.943."""
    out = parallel_trends_sensitivity([_medicaid_analysis()], [], [])
    assert len(out) == 1 and out[0]["covariance"] == "recorded" and not out[0]["approximate"]
    assert 1.5 < out[0]["breakdown"] < 2.0 and out[0]["breakdown"] == pytest.approx(1.943, abs=0.002)
    robust = {r["mbar"]: r["ci"] for r in out[0]["robust_ci"]}
    assert robust[1.0][0] == pytest.approx(0.0170, abs=0.0006)   # README: (0.0170, 0.0720) at Mbar = 1
    assert robust[1.0][1] == pytest.approx(0.0720, abs=0.0006)
    words = sensitivity_words(out[0])
    assert "more than 1.9 times the largest year-to-year difference seen before adoption" in words
    assert not STATISTICS.search(words)


def test_sensitivity_words_for_weak_and_unclear_results():
    assert "exactly parallel" in sensitivity_words({"significant": True, "breakdown": 0.0})
    assert "treat it with caution" in sensitivity_words({"significant": True, "breakdown": 0.6})
    assert "no clear change" in sensitivity_words({"significant": False, "breakdown": 0.0})


def test_without_a_recorded_covariance_the_bins_and_headline_are_used_and_flagged_approximate():
    check = Check("pre_trends", "fail", "", method="did", outcome="reports",
                  values={"scale": "ratio", "bins": [{"years_before": 2, "estimate": 0.99, "se": 0.02},
                                                     {"years_before": 3, "estimate": 0.97, "se": 0.02}]})
    att = Estimate("reports", "did", "att", "ratio", 0.85, se=0.03, ci_low=0.80, ci_high=0.90,
                   details={"analysis": 0, "se_scale": "log"})
    analysis = Analysis("did", "reports", "did", settings={"analysis": 0})
    [record] = parallel_trends_sensitivity([analysis], [check], [att])
    assert record["approximate"] and record["covariance"] == "diagonal" and record["num_pre"] == 2
    assert record["estimate"] == pytest.approx(np.log(0.85)) and record["significant"] and record["breakdown"] > 1
    assert "not their covariance" in record["inputs"]


def test_the_report_shows_the_breakdown_in_the_annex_and_in_words_when_pre_trends_fail(spoc_results):
    html = render_html(spoc_results)
    assert 'id="sensitivity"' in html and "Breakdown M̄" in html
    records = {r["method"]: r for r in spoc_results.evidence["sensitivity"]}
    assert set(records) == {"did", "staggered_did"} and records["did"]["pre_trends"] == "fail"
    box = _box(html)
    assert "Trends before adoption differed for the analysis compared with areas that had not yet started, all " \
           "adoption dates in one model (difference-in-differences)" in box
    assert "no conclusion for a difference in trends to overturn" in box
    assert not STATISTICS.search(box)


# ----------------------------------------------------------------------------- 4. where the headline comes from
def test_the_headline_names_its_analysis_and_why(spoc_results):
    text = _text(render_html(spoc_results))
    found = text[text.index("What we found"):text.index("What this means")]
    assert ("This comes from the staggered difference-in-differences analysis (compared with areas that had not yet "
            "started, each adoption date separately), chosen because no analysis of missing reports in this plan has "
            "a stronger design") in found
    assert not STATISTICS.search(found)


def test_a_disagreement_in_direction_is_said(spoc_results):
    flipped = [replace(e, estimate=1.02) if e.method == "did" and e.estimand == "att" and e.group is None else e
               for e in spoc_results.estimates]
    checks = [c for c in spoc_results.checks if not (c.method == "did" and c.status == "fail")]
    results = replace(spoc_results, estimates=flipped, checks=checks)
    box = _box(render_html(results))
    assert "is weaker here because it points the other way (2% more)" in box


def test_disclosure_still_applies_to_the_new_words(spoc_results):
    results = copy.deepcopy(spoc_results)
    results.analyses = [replace(a, label=a.label + " (41 episodes)") if a.method == "did" else a
                        for a in results.analyses]
    html = render_html(results)
    annex = html[html.index('id="sensitivity"'):]
    assert "41 episodes" not in annex and "40 episodes" in annex


def test_another_outcomes_finding_is_lowered_and_named(spoc_results):
    survival = _diagnosis("fail", method="survival_did", index=3, estimand="hazard_ratio_did")
    survival["analyses"][0]["outcome"] = "time_to_found"
    model = view_model(spoc_results, survival)
    found = {f["outcome"]: f for f in model["evidence"]["effects"]}
    before = {f["outcome"]: f for f in spoc_results.evidence["effects"]}
    assert before["time_to_found"]["certainty"] == "low" and found["time_to_found"]["certainty"] == "very low"
    assert "the evidence is very uncertain" in found["time_to_found"]["sentence"]
    assert model["evidence"]["certainty"] == spoc_results.evidence["certainty"]   # the headline's is its own
    assert any(n.startswith("For time to found (how soon children were found") and "lowered to very low" in n
               for n in model["calibration_notes"])
