"""Adoption dates inside a period (issue 12): floored for period counts, with a warning; split
at the exact date for episode-level analyses of time to found."""

from __future__ import annotations

import numpy as np

import evalkit
from evalkit.data import load_data
from evalkit.methods.survival.survival import survival_frame
from tests.test_hostile import edit_design, make_project


def _project(tmp_path, adoption: str):
    design = make_project(tmp_path / "project")
    edit_design(design.parent, "units:\n  treated: [A]", f"units:\n  adoption: {{A: {adoption}}}\n  comparison: [B]")
    edit_design(design.parent, "- {name: reports, measure: count, per: 1000}",
                "- {name: reports, measure: count, per: 1000}\n  - {name: time_to_found, measure: duration_hours}")
    return design


def test_a_date_inside_the_month_is_floored_for_counts_with_a_warning(tmp_path):
    inside = evalkit.run(evalkit.load_design(_project(tmp_path / "a", "2021-01-15")))
    whole = evalkit.run(evalkit.load_design(_project(tmp_path / "b", "2021-01")))
    check = next(c for c in inside.checks if c.name == "adoption_dates")
    assert check.status == "warn" and "A: 2021-01-15" in check.detail and check.values == {"dates": {"A": "2021-01-15"}}
    assert not any(c.name == "adoption_dates" for c in whole.checks)
    # the monthly counts see the same adoption month either way
    assert inside.estimate("level_change").estimate == whole.estimate("level_change").estimate


def test_time_to_found_splits_the_month_of_adoption_at_the_date(tmp_path):
    design = evalkit.load_design(_project(tmp_path, "2021-01-06"))
    data = load_data(design)
    assert {str(u): f"{d:%Y-%m-%d}" for u, d in data.adoption_dates.items()} == {"A": "2021-01-06"}
    spec = evalkit.design.SurvivalDiDOptions(method="survival_did", outcome="time_to_found", transition="include")
    frame, _ = survival_frame(design, data, spec)
    january = frame[(frame["period"].astype(str) == "2021-01")]
    treated_january = january[january["treated"]]
    # area A reports on the 3rd and the 9th of each month: before and after the 6th
    assert sorted(treated_january["post"].tolist()) == [False, True]
    # the comparison area's post starts at the same date (every adopter has an exact date)
    comparison_january = january[~january["treated"]]
    assert comparison_january["post"].tolist() == [False]  # B reports on the 5th
    assert np.all(frame.loc[frame["period"].astype(str) == "2021-02", "post"])
