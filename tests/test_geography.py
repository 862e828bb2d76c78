"""Local authority to police force area (evalkit/data/geography.py, examples/geography)."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evalkit.data import load_data
from evalkit.data.geography import load_lookup, lookup_path, police_force_areas, upper_tier_authorities
from evalkit.design import design_from_mapping
from evalkit.errors import EvalkitError

ROOT = Path(__file__).resolve().parents[1]
GEOGRAPHY = ROOT / "examples" / "geography"
WEST_YORKSHIRE = {"E08000032", "E08000033", "E08000034", "E08000035", "E08000036"}
SOUTH_YORKSHIRE = {"E08000016", "E08000017", "E08000018", "E08000019"}


def test_the_shipped_lookup_is_the_one_its_script_writes(tmp_path):
    shutil.copy(GEOGRAPHY / "make_lookup.py", tmp_path)
    shutil.copytree(GEOGRAPHY / "sources", tmp_path / "sources")  # the stored DfE list it reads
    subprocess.run([sys.executable, "make_lookup.py"], cwd=tmp_path, check=True)
    assert (tmp_path / "la_to_pfa.csv").read_bytes() == (GEOGRAPHY / "la_to_pfa.csv").read_bytes()
    assert lookup_path().read_bytes() == (GEOGRAPHY / "la_to_pfa.csv").read_bytes()  # the packaged copy


def _lookup_rows() -> list[dict]:
    with open(GEOGRAPHY / "la_to_pfa.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _in_use_2021(row: dict) -> bool:
    """In use on 1 April 2021 (the lookup's main vintage), or one of the 2023 unitaries."""
    return (not row["ENDED"] or row["ENDED"] >= "2021-04-01") and (not row["STARTED"] or row["STARTED"] <= "2023-04-01")


def test_every_authority_has_one_force_area_and_the_known_ones_are_right():
    everything = _lookup_rows()
    assert len(everything) == len({r["LA_CODE"] for r in everything}) == 375
    rows = [r for r in everything if _in_use_2021(r)]
    assert len(rows) == 359
    kinds = {}
    for r in rows:
        kinds[r["LA_CODE"][:3]] = kinds.get(r["LA_CODE"][:3], 0) + 1
    # 150 single-tier authorities of April 2021, 24 shire counties, their 181 districts,
    # and the four unitaries of April 2023 (E06000063-66)
    assert kinds == {"E06": 59 + 4, "E07": 181, "E08": 36, "E09": 33, "E10": 24, "W06": 22}
    # and 16 codes out of use by then or new since: 12 authorities abolished 2009-2021, two recoded
    # in 2013 (Northumberland E06000048, Gateshead E08000020) and two recodings of 2025
    former = sorted(r["LA_CODE"] for r in everything if not _in_use_2021(r))
    assert former == ["E06000028", "E06000029", "E06000048", "E08000020", "E08000038", "E08000039", "E10000001",
                      "E10000002", "E10000004", "E10000005", "E10000009", "E10000010", "E10000021", "E10000022",
                      "E10000026", "E10000033"]
    assert all(r["PFA_CODE"][:3] in ("E23", "W15") and len(r["PFA_CODE"]) == 9 for r in rows)
    by_force = {}
    for r in rows:
        by_force.setdefault(r["PFA_CODE"], set()).add(r["LA_CODE"])
    assert len(by_force) == 43  # every force area of England and Wales holds an authority
    assert by_force["E23000010"] == WEST_YORKSHIRE and by_force["E23000011"] == SOUTH_YORKSHIRE
    assert by_force["E23000001"] == {f"E09{n:06d}" for n in range(2, 34)}  # 32 boroughs, not the City
    assert by_force["E23000034"] == {"E09000001"}
    assert len({r["PFA_CODE"] for r in rows if r["PFA_CODE"].startswith("W15")}) == 4
    assert sum(1 for r in rows if r["LA_CODE"].startswith("W06")) == 22


def test_every_district_lies_in_a_county_of_the_same_force_area():
    rows = {r["LA_CODE"]: r for r in _lookup_rows() if _in_use_2021(r)}
    districts = [r for r in rows.values() if r["LA_CODE"].startswith("E07")]
    counties = {r["LA_CODE"] for r in rows.values() if r["LA_CODE"].startswith("E10")}
    assert len(districts) == 181 and len(counties) == 24
    for district in districts:
        county = rows[district["UTLA_CODE"]]
        assert county["LA_CODE"] in counties, district
        assert county["PFA_CODE"] == district["PFA_CODE"], (district, county)
        assert county["UTLA_CODE"] == county["LA_CODE"]
    # every county has districts, and every other authority is its own upper tier
    assert {r["UTLA_CODE"] for r in districts} == counties
    assert all(r["UTLA_CODE"] == r["LA_CODE"] for r in rows.values() if not r["LA_CODE"].startswith("E07"))
    # a few the Schedule to the Police Act names outright
    assert rows["E10000032"]["PFA_CODE"] == rows["E10000011"]["PFA_CODE"] == rows["E06000043"]["PFA_CODE"]  # Sussex
    assert rows["E10000025"]["PFA_CODE"] == rows["E06000038"]["PFA_CODE"] == "E23000029"  # Oxfordshire: Thames Valley
    assert rows["E10000023"]["PFA_CODE"] == rows["E06000014"]["PFA_CODE"] == "E23000009"  # North Yorkshire with York
    # the 2023 unitaries are in the force area of the county they replaced
    for unitary, county in (("E06000063", "E10000006"), ("E06000064", "E10000006"), ("E06000065", "E10000023"),
                            ("E06000066", "E10000027")):
        assert rows[unitary]["PFA_CODE"] == rows[county]["PFA_CODE"]


def test_district_data_aggregates_as_the_county_data_does():
    rows = {r["LA_CODE"]: r for r in _lookup_rows()}
    districts = sorted(code for code in rows if code.startswith("E07"))
    rng = np.random.default_rng(7)
    counts = {code: rng.poisson(20, size=12) for code in districts}  # twelve months of a district count
    # the county figures, summed here from the file itself
    county_counts = {}
    for code, series in counts.items():
        county = rows[code]["UTLA_CODE"]
        county_counts[county] = county_counts.get(county, 0) + series
    by_district, by_county = {}, {}
    for code, force in police_force_areas(counts, "d").items():
        by_district[force] = by_district.get(force, 0) + counts[code]
    for code, force in police_force_areas(county_counts, "c").items():
        by_county[force] = by_county.get(force, 0) + county_counts[code]
    assert by_district.keys() == by_county.keys() and len(by_district) == 23
    assert all(np.array_equal(by_district[f], by_county[f]) for f in by_district)
    # upper_tier_authorities does the district-to-county step the same way
    assert upper_tier_authorities(districts, "d") == {code: rows[code]["UTLA_CODE"] for code in districts}
    assert upper_tier_authorities(["E08000036"], "d") == {"E08000036": "E08000036"}


def test_a_county_held_with_its_own_district_is_refused():
    with pytest.raises(EvalkitError, match="both the county E10000003 .* and its district E07000008"):
        police_force_areas(["E10000003", "E07000008", "E06000031"], "returns")
    # a county with another county's district is fine
    assert police_force_areas(["E10000003", "E07000223"], "r") == {"E07000223": "E23000033", "E10000003": "E23000023"}


def test_city_of_london_joins_the_metropolitan_police_unless_told_not_to():
    assert police_force_areas(["E09000001", "E09000033"], "x") == {"E09000001": "E23000001", "E09000033": "E23000001"}
    assert police_force_areas(["E09000001"], "x", merge_city_of_london=False) == {"E09000001": "E23000034"}


def test_an_authority_not_in_the_lookup_is_a_one_line_error():
    with pytest.raises(EvalkitError, match="returns:units.aggregate: '999' is not a DfE local authority code"):
        police_force_areas(["E08000036", "999"], "returns")
    # a DfE code is read as its ONS code: 384 is Wakefield, 928 the Northamptonshire abolished in 2021
    assert police_force_areas(["384", "928"], "returns") == {"384": "E23000010", "928": "E23000022"}
    with pytest.raises(EvalkitError, match="'E10000099' is not in the police force area lookup"):
        police_force_areas(["E10000099"], "returns")
    assert "E10000017" in load_lookup()  # Lancashire: shire counties are covered now


def test_shire_county_returns_aggregate_with_their_force_areas_unitaries(tmp_path):
    from evalkit.data.ssda903 import TABLE_COLUMNS

    for la in ("E10000003", "E06000031", "E10000032"):  # Cambridgeshire, Peterborough, West Sussex
        folder = tmp_path / la / "2022"
        folder.mkdir(parents=True)
        (folder / "missing.csv").write_text(",".join(TABLE_COLUMNS["missing"]) + "\n1,01/01/2008,M,05/05/2021,"
                                            "06/05/2021\n2,01/01/2008,M,07/05/2021,08/05/2021\n")
        (folder / "episodes.csv").write_text(",".join(TABLE_COLUMNS["episodes"]) + "\n"
                                             + "".join(f"{c},01/01/2020,S,C2,N1,U1,PR1,,,,WF1,WF2,\n" for c in (1, 2)))
    design = design_from_mapping({
        "evalkit": 1, "title": "t", "intervention": {"name": "x", "mechanism": "information_sharing"},
        "data": {"source": str(tmp_path), "layout": "ssda903", "person_key": "ephemeral",
                 "window": {"start": "2021-04", "end": "2022-03"}},
        "units": {"adoption": {"E23000023": "2021-10"}, "aggregate": "police_force_area"},
        "outcomes": [{"name": "reports", "measure": "count"}],
        "analysis": [{"method": "did", "outcome": "reports"}],
    }, path=ROOT / "designs" / "t.yaml")
    data = load_data(design)
    assert data.units == ["E23000023", "E23000033"]
    totals = data.panel.groupby("unit")["reports"].sum().to_dict()
    assert totals == {"E23000023": 4, "E23000033": 2}


def _design(aggregate: bool):
    units = {"adoption": {"E23000010": "2021-10"}, "aggregate": "police_force_area"} if aggregate \
        else {"adoption": {"E08000036": "2021-10"}}
    return design_from_mapping({
        "evalkit": 1, "title": "t", "intervention": {"name": "x", "mechanism": "information_sharing"},
        "data": {"source": str(ROOT / "examples" / "ssda903" / "returns"), "layout": "ssda903",
                 "person_key": "ephemeral", "include_away": True},
        "units": units,
        "outcomes": [{"name": "reports", "measure": "count"}],
        "analysis": [{"method": "did", "outcome": "reports"}],
    }, path=ROOT / "designs" / "t.yaml")


def test_ssda903_returns_aggregate_to_force_areas():
    by_la = load_data(_design(False))
    by_force = load_data(_design(True))
    assert by_force.units == ["E23000009", "E23000010", "E23000011"]
    force_of = {la: ("E23000010" if la in WEST_YORKSHIRE else "E23000011" if la in SOUTH_YORKSHIRE else "E23000009")
                for la in by_la.units}
    assert sorted(la for la, force in force_of.items() if force == "E23000009") == ["E06000014"]  # York
    expected = by_la.panel.assign(unit=by_la.panel["unit"].map(force_of)).groupby(["unit", "period"])[
        ["reports", "exposure"]].sum()
    got = by_force.panel.set_index(["unit", "period"])[["reports", "exposure"]]
    assert np.array_equal(got["reports"].to_numpy(), expected.loc[got.index, "reports"].to_numpy())
    assert np.allclose(got["exposure"].to_numpy(), expected.loc[got.index, "exposure"].to_numpy())
    assert by_force.adoption == {"E23000010": by_la.adoption["E08000036"]}


def test_aggregate_and_include_away_need_local_authority_layouts(tmp_path):
    raw = {"evalkit": 1, "title": "t", "intervention": {"name": "x", "start": "2021-01"},
           "data": {"source": "e.csv", "columns": {"unit": "force", "reported_at": "r"}},
           "units": {"treated": ["A"], "aggregate": "police_force_area"},
           "outcomes": [{"name": "reports", "measure": "count"}], "analysis": [{"method": "its", "outcome": "reports"}]}
    with pytest.raises(EvalkitError, match="units.aggregate: units.aggregate counts local-authority data"):
        design_from_mapping(raw, path=tmp_path / "d.yaml")
    raw["units"].pop("aggregate")
    raw["data"]["include_away"] = True
    with pytest.raises(EvalkitError, match="data.include_away: data.include_away applies to SSDA903 returns"):
        design_from_mapping(raw, path=tmp_path / "d.yaml")
