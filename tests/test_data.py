"""Loading and deriving data: counts per unit-period, censoring, and one-line errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import evalkit
from evalkit.data import load_data

from .conftest import write


def test_counts_are_derived_and_zero_filled(episode_project):
    data = load_data(evalkit.load_design(episode_project))
    panel = data.panel.set_index(["unit", "period"])
    assert len(data.periods) == 24 and data.units == ["A", "B"]
    assert len(panel) == 48  # B's odd months have no reports: zero rows, not missing
    b_jan = panel.loc[("B", pd.Period("2020-01", "M"))]
    assert b_jan["reports"] == 0 and b_jan["persons"] == 0
    a_mar = panel.loc[("A", pd.Period("2020-03", "M"))]
    assert a_mar["reports"] == 2 and a_mar["persons"] == 2
    # c1 first reported 2020-01; every later c1 episode is a repeat; c2 first 2020-03
    assert panel.loc[("A", pd.Period("2020-01", "M")), "repeat_reports"] == 0
    assert a_mar["repeat_reports"] == 1
    assert panel.loc[("A", pd.Period("2020-06", "M")), "repeat_reports"] == 2
    assert panel["reports"].sum() == 24 + 8 + 12


def test_hours_to_found_and_censoring(episode_project):
    data = load_data(evalkit.load_design(episode_project))
    episodes = data.episodes
    assert data.censored == 1
    open_episode = episodes[episodes["censored"]].iloc[0]
    # reported 2021-12-10 22:15, open at extraction (end of 2021-12-31)
    expected = (pd.Timestamp("2022-01-01") - pd.Timedelta(microseconds=1) - pd.Timestamp("2021-12-10 22:15"))
    assert open_episode["hours_to_found"] == pytest.approx(expected.total_seconds() / 3600)
    found = episodes[~episodes["censored"]]
    assert set(np.round(found["hours_to_found"], 6)) == {8.5, 10.0, 3.0}


def test_found_after_extraction_is_censored_at_extraction(episode_project):
    path = episode_project.parent / "episodes.csv"
    text = path.read_text().replace("2021-12-03 18:30", "2022-02-01 09:00")
    path.write_text(text)
    data = load_data(evalkit.load_design(episode_project))
    assert data.censored == 2


def _expect(design_path, pattern):
    with pytest.raises(evalkit.EvalkitError, match=pattern) as info:
        load_data(evalkit.load_design(design_path))
    assert "\n" not in info.value.message
    return info.value


def test_missing_file(episode_project):
    (episode_project.parent / "episodes.csv").unlink()
    _expect(episode_project, r"^episodes.csv: file not found; check data.source")


def test_missing_column_with_hint(episode_project):
    path = episode_project.parent / "episodes.csv"
    path.write_text(path.read_text().replace("found_at", "foundat", 1))
    _expect(episode_project, r"column 'found_at' not found \(did you mean 'foundat'\?\)")


def test_unparseable_date_names_the_row(episode_project):
    path = episode_project.parent / "episodes.csv"
    lines = path.read_text().splitlines()
    assert lines[3].startswith("B,2020-02-05 09:00")
    lines[3] = lines[3].replace("2020-02-05 09:00", "5th Feb")
    path.write_text("\n".join(lines) + "\n")
    error = _expect(episode_project, r"episodes.csv:row 4: '5th Feb' in column 'reported_at' is not a date-time")
    assert error.fix


def test_found_before_reported_names_the_row(episode_project):
    path = episode_project.parent / "episodes.csv"
    lines = path.read_text().splitlines()
    lines[1] = "A,2020-01-03 10:00,2020-01-02 18:30,c1"
    path.write_text("\n".join(lines) + "\n")
    _expect(episode_project, r"episodes.csv:row 2: found_at .* is before reported_at")


def test_treated_unit_absent(episode_project):
    text = episode_project.read_text().replace("treated: [A]", "treated: [Northshire]")
    episode_project.write_text(text)
    _expect(episode_project, r"units.treated: unit 'Northshire' is not in the data")


def test_no_pre_or_post_period(episode_project):
    text = episode_project.read_text()
    episode_project.write_text(text.replace("start: 2021-01", "start: 2020-01"))
    _expect(episode_project, "no pre-period")
    episode_project.write_text(text.replace("start: 2021-01", "start: 2022-06"))
    _expect(episode_project, "no post-period")


def test_open_episodes_need_extracted_at(episode_project):
    text = episode_project.read_text().replace("  extracted_at: 2021-12-31\n", "")
    episode_project.write_text(text)
    _expect(episode_project, "need data.extracted_at")


def test_panel_with_year_month_columns_and_exposure_file(tmp_path):
    rows = ["area,year,month,count"]
    for area in ("X", "Y"):
        for year in (2019, 2020):
            for month in range(1, 13):
                rows.append(f"{area},{year},{month},{10 + month}")
    write(tmp_path / "panel.csv", "\n".join(rows) + "\n")
    write(tmp_path / "pop.csv", "area,year,children\nX,2019,1000\nX,2020,1100\nY,2019,2000\nY,2020,2100\n")
    design = write(tmp_path / "d.yaml", """
    evalkit: 1
    title: Panel
    intervention: {name: P, start: 2020-01}
    data:
      source: panel.csv
      layout: panel
      columns: {unit: area, time: [year, month]}
      exposure: {source: pop.csv, columns: {unit: area, time: year, value: children}}
    units: {treated: [X]}
    outcomes: [{name: reports, column: count, measure: count, per: 1000}]
    analysis: [{method: its, outcome: reports}]
    """)
    data = load_data(evalkit.load_design(design))
    panel = data.panel.set_index(["unit", "period"])
    assert panel.loc[("X", pd.Period("2020-05", "M")), "exposure"] == 1100
    assert panel.loc[("Y", pd.Period("2019-12", "M")), "exposure"] == 2000
    assert data.adoption == {"X": pd.Period("2020-01", "M")}
    assert data.comparison_units == ["Y"]


def test_panel_duplicate_unit_period_and_bad_exposure(tmp_path):
    write(tmp_path / "panel.csv", "unit,month,y,pop\n1,2020-01,3,10\n1,2020-02,4,10\n1,2020-02,5,10\n")
    design = write(tmp_path / "d.yaml", """
    evalkit: 1
    title: Panel
    intervention: {name: P, start: 2020-02}
    data: {source: panel.csv, layout: panel, columns: {unit: unit, time: month, exposure: pop}}
    units: {treated: [1]}
    outcomes: [{name: y, column: y, measure: count}]
    analysis: [{method: its, outcome: y}]
    """)
    _expect(design, r"panel.csv:row 4: unit '1' has period 2020-02 twice")
    write(tmp_path / "panel.csv", "unit,month,y,pop\n1,2020-01,3,10\n1,2020-02,4,0\n")
    _expect(design, r"panel.csv:row 3: exposure 'pop' is 0, but it must be above 0")
    write(tmp_path / "panel.csv", "unit,month,y,pop\n1,2020-01,3,10\n1,2020-02,-4,10\n")
    _expect(design, r"panel.csv:row 3: count 'y' is negative")


def test_unit_ids_keep_their_type(tmp_path):
    write(tmp_path / "panel.csv", "unit,month,y\n3,2020-01,1\n3,2020-02,2\n4,2020-01,1\n4,2020-02,1\n")
    design = write(tmp_path / "d.yaml", """
    evalkit: 1
    title: Panel
    intervention: {name: P, start: 2020-02}
    data: {source: panel.csv, layout: panel, columns: {unit: unit, time: month}}
    units: {treated: ["3"]}
    outcomes: [{name: y, column: y, measure: count}]
    analysis: [{method: its, outcome: y}]
    """)
    data = load_data(evalkit.load_design(design))
    assert data.units == [3, 4] and list(data.adoption) == [3]
