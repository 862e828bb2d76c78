"""The report's plain words (evalkit.report.words) and the mechanisms a design may declare
(evalkit.mechanisms): no test statistics for commissioners, units on every number, cost
that asserts no saving the interval does not support, schemes mapped to mechanisms."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import yaml

import evalkit
from evalkit import mechanisms
from evalkit.design import design_from_mapping
from evalkit.errors import EvalkitError
from evalkit.report import words
from evalkit.report.render import render_html
from evalkit.results import Estimate

from .conftest import ROOT


@pytest.mark.parametrize("text", ["W = 3.68", "p = 0.03", "p<0.001", "Breusch-Godfrey test of order 12",
                                  "chi-squared 2.6", "t(12) = 2.1", "z = 1.96", "Wald 25.82", "(se 0.083)",
                                  "F = 3.79 on 2 and 3.7 degrees of freedom", "Schoenfeld residual test"])
def test_the_statistics_pattern_finds_test_statistics(text):
    assert words.STATISTICS.search(text)


@pytest.mark.parametrize("text", ["children", "3.7 hours sooner", "per year", "People", "the police", "Ps",
                                  "</p><script>alert('d')</script>"])
def test_the_statistics_pattern_leaves_plain_words_alone(text):
    assert not words.STATISTICS.search(text)


def test_every_check_has_a_plain_sentence_for_every_status_without_statistics():
    for name in list(words.CHECK_PLAIN) + ["some_new_check"]:
        for status in ("pass", "warn", "fail"):
            text = words.check_plain(name, status)
            assert text and not words.STATISTICS.search(text), (name, status, text)
    assert "moving in step" in words.check_plain("pre_trends", "pass")
    assert "moving apart" in words.check_plain("pre_trends", "fail")


def test_analyses_are_named_by_what_they_do():
    assert words.method_does("staggered_did", {"control_group": "not_yet_treated"}).startswith(
        "compared with areas that had not yet started")
    assert "never adopted" in words.method_does("did", {"control_group": "never_treated"})
    assert words.analysis_name("its").endswith("(interrupted time series)")


def test_headline_statistics_are_stripped_for_commissioners():
    sentence = "X reduced reports by about 20% against the synthetic comparison (placebo p = 0.05)."
    assert words.strip_statistics(sentence) == "X reduced reports by about 20% against the synthetic comparison."


def _estimate(estimand, scale, est, low, high, **details):
    return Estimate(method="m", outcome="o", estimand=estimand, scale=scale, estimate=est, se=None,
                    ci_low=low, ci_high=high, p_value=None, details=details)


def test_every_number_carries_its_unit():
    hours = words.estimate_words(_estimate("rmst_difference_did", "difference", -3.67, -4.55, -2.83), {}, "month")
    assert hours == ("3.67 hours sooner", "2.83 to 4.55 hours sooner")
    slope = words.estimate_words(_estimate("slope_change", "ratio", 0.997, 0.993, 1.001), {}, "month")
    assert slope == ("0.3% fewer a month", "0.7% fewer a month to 0.1% more a month")
    hazard = words.estimate_words(_estimate("hazard_ratio_did", "ratio", 1.21, 1.16, 1.26), {}, "month")
    assert hazard == ("21% more likely to be found at any moment", "16% to 26% more likely to be found at any moment")
    rate = words.estimate_words(_estimate("att_simple", "difference", -0.036, -0.121, 0.049,
                                          difference_unit="rate per 1000 of exposure per period"),
                                {"label": "missing reports", "per": 1000}, "month")
    assert rate == ("0.036 fewer missing reports per 1,000 a month",
                    "0.121 fewer missing reports per 1,000 a month to 0.049 more missing reports per 1,000 a month")


def test_adoption_schedule_states_every_cohort():
    adoption = {"A": "2021-04", "B": "2021-04", "C": "2021-04", "D": "2022-01", "E": "2022-01",
                "F": "2022-10", "G": "2022-10"}
    assert words.adoption_schedule(adoption) == "3 areas from 2021-04, 2 from 2022-01, 2 from 2022-10"


def test_annex_settings_write_seeds_plainly_and_name_unadjusted_estimation():
    assert words.setting_text("seed", 20240510, "did") == "20240510"
    assert words.setting_text("estimation", "none", "staggered_did").startswith("unadjusted")
    assert words.setting_text("family", "poisson", "did") is None


def _results_with_economics(low, high):
    econ = {"reports_change_per_year": -497.4, "cost_per_episode": 1870, "police_cost_saved_per_year": 930124.0,
            "annual_cost": 85000.0, "police_cost_saved_range": [low, high], "net_saving_per_year": 845124.0}
    context = {"intervention": {"name": "SPOC", "cost_per_episode_source": "Shalev Greene & Pakes (2014)",
                                "cost_price_year": 2014},
               "adoption": {u: "2021-04" for u in "ABCDEFG"}}
    return SimpleNamespace(evidence={"economics": econ}, context=context)


def test_cost_leads_with_the_range_and_claims_no_saving_when_the_interval_spans_no_change():
    econ = words.economics_words(_results_with_economics(-421246.5, 2281495.2))
    text = econ["sentence"]
    assert econ["spans_zero"] and text.index("£421,000") < text.index("£930,000")
    assert "No net saving can be claimed" in text and "net saving of" not in text
    assert "7 adopting areas" in text and "per adopting area" in text
    facts = " ".join(econ["facts"])
    assert "£1,870 at 2014 prices" in facts and "Shalev Greene & Pakes (2014)" in facts


def test_cost_gives_the_net_saving_when_the_interval_excludes_no_change():
    econ = words.economics_words(_results_with_economics(300000.0, 1500000.0))
    assert not econ["spans_zero"] and "net saving of about £845,000 a year" in econ["sentence"]
    assert "2014 prices" in econ["sentence"]


# ----------------------------------------------------------------------------- mechanisms
def test_every_named_scheme_maps_onto_the_reviews_mechanisms():
    for name, (text, uses) in mechanisms.SCHEMES.items():
        assert text and uses and set(uses) <= set(mechanisms.MECHANISMS) - {"other"}, name
    assert mechanisms.expand("philomena_protocol") == ["information_sharing", "roles_responsibilities"]
    assert mechanisms.expand(["return_home_interviews", "multi_agency_safeguarding_hub", "joint_training"]) == [
        "information_sharing", "multiagency_meetings", "cross_agency_technology", "joint_training"]
    assert mechanisms.main_mechanism("single_point_of_contact") == "single_point_of_contact"
    assert mechanisms.words("other", "a text-message alert to foster carers") == "a text-message alert to foster carers"


def _spoc_raw():
    return yaml.safe_load((ROOT / "designs" / "spoc_rollout.yaml").read_text())


def test_a_design_may_list_several_mechanisms_or_schemes_and_a_single_one_still_loads():
    raw = _spoc_raw()
    assert design_from_mapping(raw, path=ROOT / "designs" / "x.yaml").intervention.mechanism == "single_point_of_contact"
    raw["intervention"]["mechanism"] = ["missing_persons_coordinator", "joint_training"]
    design = design_from_mapping(raw, path=ROOT / "designs" / "x.yaml")
    assert design.intervention.mechanism == ["missing_persons_coordinator", "joint_training"]
    raw["intervention"]["mechanism"] = "philomena_protocl"
    with pytest.raises(EvalkitError, match=r"intervention.mechanism: unknown mechanism 'philomena_protocl' "
                                           r"\(did you mean 'philomena_protocol'\?\)"):
        design_from_mapping(raw, path=ROOT / "designs" / "x.yaml")
    raw["intervention"]["mechanism"] = []
    with pytest.raises(EvalkitError, match="empty list"):
        design_from_mapping(raw, path=ROOT / "designs" / "x.yaml")


def test_results_keep_the_main_mechanism_as_a_string_and_list_them_all(tmp_path):
    import shutil

    shutil.copytree(ROOT / "examples" / "sicily", tmp_path / "examples" / "sicily")
    raw = yaml.safe_load((ROOT / "designs" / "sicily_smoking_ban.yaml").read_text())
    raw["data"]["source"] = "examples/sicily/sicily.csv"
    raw["intervention"]["mechanism"] = ["return_home_interviews", "other"]
    raw["intervention"]["mechanism_description"] = "a text-message alert to foster carers"
    path = tmp_path / "d.yaml"
    path.write_text(yaml.safe_dump(raw))
    results = evalkit.run(evalkit.load_design(path))
    intervention = results.context["intervention"]
    assert intervention["mechanism"] == "information_sharing"   # what a synthesis pools by: a string
    assert intervention["mechanisms"] == ["information_sharing", "multiagency_meetings", "other"]
    assert intervention["declared_mechanisms"] == ["return_home_interviews", "other"]
    html = render_html(results)
    assert "return home interviews" in html and "a text-message alert to foster carers" in html
    # the diagnosis hook: a smallest detectable change joins "What this means" when given
    assert "could reliably detect" not in html
    assert "a fall of about 15% or more" in render_html(results, diagnosis={"headline": {"mde": 0.85}})


def test_docs_point_only_to_files_in_the_repository():
    """The mechanism list and the evidence language live in docs/; nothing points outside the repository."""
    import re

    outside = re.compile(r"\b(?:DOMAIN|METHODS|SPEC|STYLE)\.md\b|/work/shared")
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    assert [str(p.relative_to(ROOT)) for p in pages if outside.search(p.read_text(encoding="utf-8"))] == []
    for page in ("mechanisms.md", "evidence-language.md"):
        assert (ROOT / "docs" / page).is_file()
    listed = (ROOT / "docs" / "mechanisms.md").read_text(encoding="utf-8")
    assert all(f"`{name}`" in listed for name in mechanisms.KNOWN)


def test_two_analyses_with_one_method_and_outcome_stay_apart():
    """mpdta's plan has staggered_did twice (never- and not-yet-treated comparisons)."""
    import evalkit
    from evalkit.report.render import view_model
    from tests.conftest import ROOT

    results = evalkit.run(evalkit.load_design(ROOT / "designs" / "mpdta_staggered.yaml"))
    model = view_model(results)
    simple = [row["method"] for row in model["main_rows"] if "Average effect in the adopting" in row["what"]]
    assert len(simple) == 2 and simple[0] != simple[1], simple
    groups = [g for g in model["estimate_groups"] if g["method"] == "staggered_did"]
    assert len(groups) == 2
    assert {id(e) for e in groups[0]["main"]}.isdisjoint({id(e) for e in groups[1]["main"]})
