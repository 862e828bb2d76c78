"""The notebook API (issue 14): a design from a mapping, data from a DataFrame, tidy results.

A DataFrame run must equal a file run of the same rows: same estimates, checks and
headline (only the data fingerprint and the design path differ).
"""

from __future__ import annotations

import math

import pandas as pd
import pytest
import yaml

import evalkit
from tests.test_hostile import make_project


def _same_results(a: evalkit.Results, b: evalkit.Results) -> None:
    left, right = a.summary(), b.summary()
    pd.testing.assert_frame_equal(left, right, check_exact=True)
    pd.testing.assert_frame_equal(a.checks_frame(), b.checks_frame())
    assert a.evidence["headline"] == b.evidence["headline"]
    for x, y in zip(a.estimates, b.estimates):
        assert x.details.keys() == y.details.keys()


@pytest.mark.parametrize("design_name, data_name", [("design.yaml", "episodes.csv"), ("panel.yaml", "panel.csv")])
def test_a_dataframe_run_equals_the_file_run(tmp_path, design_name, data_name):
    design_path = make_project(tmp_path / "project").parent / design_name
    from_file = evalkit.run(evalkit.load_design(design_path))
    frame = pd.read_csv(design_path.parent / data_name, dtype=str, keep_default_na=False)
    mapping = yaml.safe_load(design_path.read_text(encoding="utf-8"))
    del mapping["data"]["source"]
    design = evalkit.design_from_dict(mapping, base_dir=design_path.parent)  # the exposure file is still a file
    from_frame = evalkit.run(design, data=frame)
    _same_results(from_file, from_frame)
    # typed columns (timestamps, numbers) read as a typed file is: the same results again
    if data_name == "episodes.csv":
        typed = frame.assign(reported_at=pd.to_datetime(frame["reported_at"]),
                             found_at=pd.to_datetime(frame["found_at"].replace("", None)),
                             age=pd.to_numeric(frame["age"]))
        _same_results(from_file, evalkit.run(design, data=typed))


def test_an_in_memory_design_without_its_data_says_how_to_pass_them(tmp_path):
    design_path = make_project(tmp_path / "project")
    mapping = yaml.safe_load(design_path.read_text(encoding="utf-8"))
    del mapping["data"]["source"]
    design = evalkit.design_from_dict(mapping, base_dir=design_path.parent)
    with pytest.raises(evalkit.EvalkitError, match=r"data.source: .*in memory.*data=frame"):
        evalkit.run(design)
    frame = pd.read_csv(design_path.parent / "episodes.csv", dtype=str, keep_default_na=False)
    with pytest.raises(evalkit.EvalkitError, match=r"column 'force' not found"):
        evalkit.run(design, data=frame.drop(columns="force"))


def test_design_from_dict_refuses_what_a_file_would(tmp_path):
    mapping = yaml.safe_load(make_project(tmp_path / "project").read_text(encoding="utf-8"))
    mapping["data"]["frequncy"] = "month"
    with pytest.raises(evalkit.EvalkitError, match=r"data.frequncy: unknown key 'frequncy' \(did you mean 'frequency'"):
        evalkit.design_from_dict(mapping)
    assert "frequncy" in mapping["data"] and "source" in mapping["data"]  # the caller's mapping is not changed


def test_summary_checks_frame_and_short_repr(tmp_path):
    results = evalkit.run(evalkit.load_design(make_project(tmp_path / "project")))
    table = results.summary()
    assert list(table.columns) == ["outcome", "method", "estimand", "group", "scale", "estimate", "se", "ci_low",
                                   "ci_high", "p_value"]
    assert len(table) == len(results.estimates)
    level = results.estimate("level_change")
    row = table[table["estimand"] == "level_change"].iloc[0]
    assert row["estimate"] == level.estimate and row["ci_low"] == level.ci_low and row["p_value"] == level.p_value
    checks = results.checks_frame()
    assert list(checks.columns) == ["name", "status", "method", "outcome", "detail"] and len(checks) == len(results.checks)
    text = repr(results)
    assert text.startswith("<evalkit Results: 'Hostile input test'") and len(text) < 500
    html = results._repr_html_()
    assert "<table" in html and "level_change" in html and not math.isnan(row["estimate"])


def test_the_notebook_view_escapes_names():
    results = evalkit.Results(design={"title": "<script>alert(1)</script>"}, data={}, estimates=[], checks=[],
                              analyses=[], evidence={"headline": "<b>x</b>"}, context={})
    html = results._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html and "&lt;b&gt;" in html
