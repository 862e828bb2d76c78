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
from evalkit.data.geography import load_lookup, lookup_path, police_force_areas
from evalkit.design import design_from_mapping
from evalkit.errors import EvalkitError

ROOT = Path(__file__).resolve().parents[1]
GEOGRAPHY = ROOT / "examples" / "geography"
WEST_YORKSHIRE = {"E08000032", "E08000033", "E08000034", "E08000035", "E08000036"}
SOUTH_YORKSHIRE = {"E08000016", "E08000017", "E08000018", "E08000019"}


def test_the_shipped_lookup_is_the_one_its_script_writes(tmp_path):
    shutil.copy(GEOGRAPHY / "make_lookup.py", tmp_path)
    subprocess.run([sys.executable, "make_lookup.py"], cwd=tmp_path, check=True)
    assert (tmp_path / "la_to_pfa.csv").read_bytes() == (GEOGRAPHY / "la_to_pfa.csv").read_bytes()
    assert lookup_path().read_bytes() == (GEOGRAPHY / "la_to_pfa.csv").read_bytes()  # the packaged copy


def test_every_authority_has_one_force_area_and_the_known_ones_are_right():
    with open(GEOGRAPHY / "la_to_pfa.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len({r["LA_CODE"] for r in rows}) == 150
    assert all(r["PFA_CODE"][:3] in ("E23", "W15") and len(r["PFA_CODE"]) == 9 for r in rows)
    by_force = {}
    for r in rows:
        by_force.setdefault(r["PFA_CODE"], set()).add(r["LA_CODE"])
    assert by_force["E23000010"] == WEST_YORKSHIRE and by_force["E23000011"] == SOUTH_YORKSHIRE
    assert by_force["E23000001"] == {f"E09{n:06d}" for n in range(2, 34)}  # 32 boroughs, not the City
    assert by_force["E23000034"] == {"E09000001"}
    assert len({r["PFA_CODE"] for r in rows if r["PFA_CODE"].startswith("W15")}) == 4
    assert sum(1 for r in rows if r["LA_CODE"].startswith("W06")) == 22


def test_city_of_london_joins_the_metropolitan_police_unless_told_not_to():
    assert police_force_areas(["E09000001", "E09000033"], "x") == {"E09000001": "E23000001", "E09000033": "E23000001"}
    assert police_force_areas(["E09000001"], "x", merge_city_of_london=False) == {"E09000001": "E23000034"}


def test_an_authority_not_in_the_lookup_is_a_one_line_error():
    with pytest.raises(EvalkitError, match="'E10000017' is not in the police force area lookup.*shire counties"):
        police_force_areas(["E08000036", "E10000017"], "returns")
    assert "E10000017" not in load_lookup()


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
