"""The DfE published "Children looked after in England" CSV (evalkit/data/dfe_published.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evalkit.data import load_data
from evalkit.design import Window, design_from_mapping
from evalkit.errors import EvalkitError

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "examples" / "dfe_published" / "cla_missing_la.csv"
EXPOSURE = "Children looked after during the year"


def design(source=FIXTURE, frequency="year", units=None, outcomes=None, exposure=EXPOSURE):
    data = {"source": str(source), "layout": "dfe_published", "frequency": frequency}
    if exposure:
        data["columns"] = {"exposure": exposure}
    return design_from_mapping({
        "evalkit": 1, "title": "t", "intervention": {"name": "x", "mechanism": "information_sharing"},
        "data": data,
        "units": units or {"adoption": {"E08000036": 2021}},
        "outcomes": outcomes or [{"name": "incidents", "measure": "count", "column": "Missing incidents"},
                                 {"name": "children", "measure": "count", "column": "Children who went missing"}],
        "analysis": [{"method": "did", "outcome": "incidents"}],
    }, path=ROOT / "designs" / "t.yaml")


def test_the_panel_is_the_published_local_authority_figures():
    raw = pd.read_csv(FIXTURE, dtype=str)
    la = raw[raw["geographic_level"] == "Local authority"].copy()
    la["year"] = la["time_period"].str[:4].astype(int) + 1
    wide = la.pivot_table(index=["new_la_code", "year"], columns="missing_status", values="number", aggfunc="first")
    suppressed = sorted(set(wide.index[(wide == "c").any(axis=1)].get_level_values(0)))
    assert suppressed == ["E09000001"]  # the fixture's City of London has small, suppressed numbers
    wide = wide.drop(index=suppressed, level=0).astype(float)
    data = load_data(design())
    assert data.units == sorted(set(wide.index.get_level_values(0)))
    assert [str(p) for p in data.periods] == ["2019", "2020", "2021", "2022", "2023"]
    panel = data.panel.set_index(["unit", data.panel["period"].dt.year])
    assert np.array_equal(panel["incidents"].to_numpy(), wide.loc[panel.index, "Missing incidents"].to_numpy())
    assert np.array_equal(panel["children"].to_numpy(), wide.loc[panel.index, "Children who went missing"].to_numpy())
    assert np.array_equal(panel["exposure"].to_numpy(), wide.loc[panel.index, EXPOSURE].to_numpy())
    names = {c.name: c for c in data.checks}
    assert names["dfe_caveat"].status == "warn" and "missing" in names["dfe_caveat"].detail
    assert names["dfe_suppressed"].values == {"authorities_left_out": 1} and "E09000001" in names["dfe_suppressed"].detail
    assert data.episodes is None and data.rows == len(la)


def test_the_published_figures_aggregate_to_force_areas():
    data = load_data(design(units={"adoption": {"E23000010": 2021}, "aggregate": "police_force_area"}))
    assert data.units == ["E23000010", "E23000011"]
    by_la = load_data(design())
    west = {"E08000033", "E08000034", "E08000036"}
    expected = by_la.panel[by_la.panel["unit"].isin(west)].groupby("period")["incidents"].sum()
    got = data.panel[data.panel["unit"] == "E23000010"].set_index("period")["incidents"]
    assert got.tolist() == expected.loc[got.index].tolist()


def test_a_monthly_frequency_is_refused():
    with pytest.raises(EvalkitError, match="yearly.*set data.frequency: year"):
        load_data(design(frequency="month", units={"adoption": {"E08000036": "2021-01"}}))


def test_an_unknown_missing_status_names_the_ones_there_are():
    with pytest.raises(EvalkitError, match="'Missing incident' is not a missing_status.*did you mean 'Missing incidents'"):
        load_data(design(outcomes=[{"name": "incidents", "measure": "count", "column": "Missing incident"}]))


def test_a_file_in_another_layout_is_refused(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("la,year,incidents\nE08000036,2021,3\n")
    with pytest.raises(EvalkitError, match="not the DfE published CSV: no column time_period"):
        load_data(design(source=path))


def test_a_bad_number_names_its_row(tmp_path):
    text = FIXTURE.read_text().splitlines()
    fields = text[5].split(",")
    fields[-1] = "12a"
    text[5] = ",".join(fields)
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(EvalkitError, match="bad.csv:row 6: '12a' in column 'number'"):
        load_data(design(source=path))


def test_a_missing_authority_year_is_refused_before_summing_into_force_areas(tmp_path):
    """Aggregated, a missing Kirklees year would read as a fall in West Yorkshire's figures."""
    raw = pd.read_csv(FIXTURE, dtype=str, keep_default_na=False)
    dropped = raw[~((raw["new_la_code"] == "E08000034") & (raw["time_period"] == "202122"))]
    dropped.to_csv(tmp_path / "cla.csv", index=False)
    with pytest.raises(EvalkitError, match=r"authority 'E08000034' has no figures for 2022"):
        load_data(design(tmp_path / "cla.csv", units={"adoption": {"E23000010": 2021}, "aggregate": "police_force_area"}))


def test_a_figure_suppressed_outside_the_window_drops_no_authority(tmp_path):
    raw = pd.read_csv(FIXTURE, dtype=str, keep_default_na=False)
    first_year = sorted(raw["time_period"].unique())[0]
    wakefield = (raw["new_la_code"] == "E08000036") & (raw["time_period"] == first_year) \
        & (raw["missing_status"] == "Missing incidents")
    raw.loc[wakefield, "number"] = "c"
    raw.to_csv(tmp_path / "cla.csv", index=False)
    spec = design(tmp_path / "cla.csv")
    spec.data.window = Window(start=2020, end=2023)
    data = load_data(spec)
    assert "E08000036" in data.units


def test_a_merged_authority_needs_every_authority_it_replaced():
    """Bournemouth, Christchurch and Poole replaced Bournemouth, Poole and the Dorset county:
    with only the county before 2020, the force area's early years would miss two of them."""
    from evalkit.data.dfe_published import _check_complete

    periods = pd.period_range("2018", "2021", freq="Y")

    def panel(rows):
        return pd.DataFrame({"unit": [u for u, _ in rows], "period": [pd.Period(str(y), "Y") for _, y in rows]})

    later = [(u, y) for u in ("E06000058", "E06000059") for y in (2020, 2021)]
    county = [("E10000009", y) for y in (2018, 2019)]
    with pytest.raises(EvalkitError, match="E06000028, E06000029, which it replaced, have no figures"):
        _check_complete(panel(county + later), periods, "f.csv", True)
    towns = [(u, y) for u in ("E06000028", "E06000029") for y in (2018, 2019)]
    _check_complete(panel(county + towns + later), periods, "f.csv", True)
