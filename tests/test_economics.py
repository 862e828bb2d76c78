"""The cost section prices missing episodes only, per the areas its estimate covers (issue 17)."""

from __future__ import annotations

import evalkit
from evalkit.report.words import economics_words
from tests.conftest import ROOT
from tests.test_hostile import edit_design, make_project


def test_a_count_that_is_not_missing_episodes_is_not_priced_as_police_time():
    results = evalkit.run(evalkit.load_design(ROOT / "designs" / "sicily_smoking_ban.yaml"))
    assert results.evidence["economics"] is None  # heart attacks are not missing episodes


def test_a_declared_cost_prices_any_count(tmp_path):
    design = make_project(tmp_path / "project")
    panel = design.parent / "panel.yaml"
    panel.write_text(panel.read_text(encoding="utf-8").replace("start: 2021-01}", "start: 2021-01, cost_per_episode: 100}"),
                     encoding="utf-8")
    results = evalkit.run(evalkit.load_design(panel))
    econ = results.evidence["economics"]
    assert econ["cost_per_episode"] == 100 and econ["areas"] == 1


def test_per_area_totals_use_the_areas_the_estimate_covers(tmp_path):
    """An ITS of the first cohort (3 areas) is not divided over all 7 adopters."""
    design = make_project(tmp_path / "project")
    edit_design(design.parent, "units:\n  treated: [A]", "units:\n  treated: [A]\n  adoption: {B: 2021-06}")
    results = evalkit.run(evalkit.load_design(design))
    econ = results.evidence["economics"]
    assert econ["areas"] == 1  # the ITS pools A only, though A and B adopt
    words = economics_words(results)
    assert "across the 1 adopting" not in words["sentence"] or "per adopting area" not in words["sentence"]
