"""Moderators (EMMIE; issue 17): a test of whether the effect differs between subgroups comes
before the subgroup rows, so one subgroup's interval is not read as a difference."""

from __future__ import annotations

import math

import pytest

import evalkit
from evalkit.evidence import subgroup_differences
from evalkit.results import Estimate
from evalkit.synthesis.meta import meta_analysis
from tests.test_hostile import make_project


def _subgroup(level, moderator, estimate, se, scale="ratio"):
    return Estimate(outcome="reports", method="did", estimand="att", scale=scale, estimate=estimate, se=se,
                    group=f"subgroup: {level}", details={"moderator": moderator, "subgroup": level, "se_scale": "log"})


def test_the_subgroup_test_is_cochrans_q_as_metafor_gives_it():
    """Q and its p equal the fixed-effect Q of the metafor-checked engine (tests/test_synthesis.py)."""
    rows = [("high risk", 0.70, 0.10), ("medium risk", 0.95, 0.08), ("low risk", 1.05, 0.20)]
    out = subgroup_differences([_subgroup(level, "risk", ratio, se) for level, ratio, se in rows])
    assert len(out) == 1 and out[0].group == "moderator: risk" and out[0].details["df"] == 2
    reference = meta_analysis([math.log(r) for _, r, _ in rows], [se**2 for _, _, se in rows], method="FE")
    assert out[0].estimate == pytest.approx(reference.q, rel=1e-12)
    assert out[0].p_value == pytest.approx(reference.q_p, rel=1e-10)
    assert out[0].details["differs"] is (reference.q_p < 0.05)


def test_a_subgroup_on_another_scale_is_left_out_and_said():
    estimates = [_subgroup("looked-after children", "looked_after", 0.9, 0.1),
                 _subgroup("other children", "looked_after", 0.8, 0.1),
                 _subgroup("unknown", "looked_after", -0.03, 0.04, scale="difference")]
    out = subgroup_differences(estimates)
    assert out[0].details["subgroups"] == ["looked-after children", "other children"]
    assert out[0].details["left_out"] == ["unknown"]
    assert subgroup_differences([_subgroup("only", "looked_after", 0.9, 0.1)]) == []


def test_the_report_says_whether_subgroups_differ_before_their_rows(tmp_path):
    results = evalkit.run(evalkit.load_design(make_project(tmp_path / "project")))
    tests = [e for e in results.estimates if e.estimand == "subgroup_difference"]
    assert {e.group for e in tests} == {"moderator: looked_after", "moderator: age_band"}
    html = evalkit.report.render.render_html(results)
    section = html[html.index('id="h-moderators"'):]
    assert section.index("Does the change differ between groups") < section.index("<table")
    assert "Looked-after and other children:" in section
