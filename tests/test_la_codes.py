"""DfE three-digit authority codes and authorities abolished since 2009 (issue 16).

The lookup (examples/geography/la_to_pfa.csv) carries each upper-tier authority's DfE code
and the authorities abolished since 2009. These tests check it against the DfE's own
lists, stored beside it in examples/geography/sources/ and parsed here on their own (not
through make_lookup.py): GIAS's "Local authority name and associated codes" table and the
Explore Education Statistics screener's list of authorities. Then they check that the
layouts give the same results whichever code names an authority, that an abolished
authority's data count in the right police force area, and that unknown codes are
one-line errors naming where they are.
"""

from __future__ import annotations

import csv
import hashlib
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evalkit.data import load_data
from evalkit.data.geography import (
    DFE_CODE_VINTAGE, authority, collection_year_span, dfe_code_pairs, dfe_codes, ons_code, police_force_areas,
)
from evalkit.data.ssda903 import TABLE_COLUMNS
from evalkit.design import design_from_mapping
from evalkit.errors import EvalkitError

ROOT = Path(__file__).resolve().parents[1]
GEOGRAPHY = ROOT / "examples" / "geography"
GIAS = GEOGRAPHY / "sources" / "gias_english_la_name_codes.csv"
SCREENER = GEOGRAPHY / "sources" / "dfe_screener_las.csv"
RETURNS = ROOT / "examples" / "ssda903" / "returns"


def _lookup() -> dict[str, dict]:
    with open(GEOGRAPHY / "la_to_pfa.csv", newline="", encoding="utf-8") as handle:
        return {row["LA_CODE"]: row for row in csv.DictReader(handle)}


def _gias() -> list[tuple[str, str, str]]:
    """(name, DfE code, ONS code) for every GIAS row with a real ONS code (not pre-1998 X999999)."""
    with open(GIAS, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))[1:]
    return [(name, dfe, ons) for name, dfe, ons in rows if re.fullmatch(r"E\d{8}", ons)]


# ----------------------------------------------------------------------------- the sources
def test_the_stored_sources_are_the_copies_source_md_names():
    text = (GEOGRAPHY / "SOURCE.md").read_text(encoding="utf-8")
    for path in (GIAS, SCREENER):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert digest in text, f"{path.name}: SHA-256 {digest} is not the one SOURCE.md records"


def test_every_dfe_code_reads_as_the_ons_code_gias_gives_it():
    gias = _gias()
    assert len(gias) == 160  # 153 authorities of 2024 and 7 abolished ones GIAS still lists
    codes = dfe_codes()
    for name, dfe, ons in gias:
        assert codes.get(dfe) == ons, (name, dfe, ons, codes.get(dfe))
    # and the lookup holds no DfE code GIAS does not list
    assert set(codes) == {dfe for _, dfe, _ in gias}
    assert codes["208"] == "E09000022" and codes["886"] == "E10000016"  # Lambeth, Kent
    # codes whose ONS code changed keep one authority: read as the code in use on the vintage day
    assert DFE_CODE_VINTAGE == "2024-04-01"
    assert (codes["815"], codes["933"], codes["929"], codes["390"]) == ("E06000065", "E06000066", "E06000057",
                                                                          "E08000037")
    # abolished authorities keep their own codes
    assert {d: codes[d] for d in ("835", "836", "837", "825", "928", "820", "875", "909")} == {
        "835": "E10000009", "836": "E06000029", "837": "E06000028", "825": "E06000060", "928": "E10000021",
        "820": "E10000001", "875": "E10000004", "909": "E10000006"}


def test_every_pair_in_the_dfe_screener_list_is_in_the_lookup_and_no_other():
    with open(SCREENER, newline="", encoding="utf-8") as handle:
        listed = list(csv.DictReader(handle))
    pairs = {(r["old_la_code"], r["new_la_code"]) for r in listed
             if re.fullmatch(r"\d{3}", r["old_la_code"]) and re.fullmatch(r"E\d{8}", r["new_la_code"])}
    assert len(pairs) == 167  # 176 rows less 3 combined ("940 / 941"), the forces overseas (z), 5 without (x)
    assert dfe_code_pairs() == pairs
    lookup = _lookup()
    for r in listed:
        code = r["new_la_code"]
        if not re.fullmatch(r"E\d{8}", code):
            continue  # "E06000061 / E06000062" and the forces-overseas "z" rows
        row = lookup[code]
        day, month, year = (r["date_of_termination"] or "//").split("/")
        assert row["ENDED"] == (f"{year}-{month}-{day}" if r["date_of_termination"] else ""), code
        assert (r["status"] == "terminated") == bool(row["ENDED"]), code


# ----------------------------------------------------------------------------- successions
def test_an_abolished_authority_lies_in_the_force_area_of_what_replaced_it():
    lookup = _lookup()
    replaced = {code: row for code, row in lookup.items() if row["REPLACED_BY"]}
    assert len(replaced) == 36  # 19 upper-tier codes and the 17 districts of Cumbria, N. Yorkshire, Somerset
    for code, row in replaced.items():
        for successor in row["REPLACED_BY"].split():
            later = lookup[successor]
            assert later["PFA_CODE"] == row["PFA_CODE"], (code, successor)
            # the successor's code came into use the day after the old one went out of use
            if later["STARTED"]:
                assert pd.Timestamp(later["STARTED"]) - pd.Timestamp(row["ENDED"]) == pd.Timedelta(days=1), code
    expected = {"E10000009": "E23000039", "E06000028": "E23000039", "E06000029": "E23000039",  # Dorset 2019
                "E10000002": "E23000029",  # Buckinghamshire 2020: Thames Valley
                "E10000021": "E23000022",  # Northamptonshire 2021
                "E10000001": "E23000026", "E10000004": "E23000006", "E10000005": "E23000035",  # 2009
                "E10000010": "E23000008", "E10000022": "E23000007", "E10000026": "E23000016", "E10000033": "E23000038"}
    assert police_force_areas(list(expected), "x") == expected
    assert collection_year_span("E10000009") == (None, 2019) and collection_year_span("E06000058") == (2020, None)
    assert collection_year_span("E10000021") == (None, 2021) and collection_year_span("E06000061") == (2022, None)


def test_a_three_digit_code_the_dfe_does_not_list_is_a_one_line_error():
    assert ons_code("886", "x") == "E10000016" and ons_code("E10000016", "x") == "E10000016"
    with pytest.raises(EvalkitError, match=r"returns/999: '999' is not a DfE local authority code.*208 for Lambeth"):
        ons_code("999", "returns/999")


# ----------------------------------------------------------------------------- SSDA903 returns
def _ssda_design(source, units=None, **data):
    spec = {"source": str(source), "layout": "ssda903", "person_key": "environment", "include_away": True}
    spec.update(data)
    return design_from_mapping({
        "evalkit": 1, "title": "t", "intervention": {"name": "x", "mechanism": "information_sharing"},
        "data": spec, "units": units or {"adoption": {"E08000036": "2021-10"}},
        "outcomes": [{"name": "reports", "measure": "count"},
                     {"name": "time_to_found", "measure": "duration_hours", "horizon": 72}],
        "analysis": [{"method": "did", "outcome": "reports"}],
    }, path=ROOT / "designs" / "t.yaml")


def _gias_code(ons: str) -> str:
    return next(dfe for _, dfe, code in _gias() if code == ons)


def test_returns_named_by_dfe_codes_give_the_same_data_as_returns_named_by_ons_codes(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_PSEUDONYM_KEY", "a-fixed-test-key-of-32-characters!!")
    shutil.copytree(RETURNS, tmp_path / "ons" / "returns")
    renamed = tmp_path / "dfe" / "returns"
    renamed.mkdir(parents=True)
    names = {}
    for folder in sorted(RETURNS.iterdir()):
        names[folder.name] = _gias_code(folder.name)  # from the GIAS table, not from evalkit
        shutil.copytree(folder, renamed / names[folder.name])
    assert names["E08000036"] == "384" and names["E06000014"] == "816"
    by_ons = load_data(_ssda_design(tmp_path / "ons" / "returns"))
    by_dfe = load_data(_ssda_design(renamed, units={"adoption": {"384": "2021-10"}}))  # the design may use either
    assert by_dfe.units == by_ons.units == sorted(names)
    assert by_dfe.adoption == by_ons.adoption
    pd.testing.assert_frame_equal(by_dfe.panel, by_ons.panel)
    pd.testing.assert_frame_equal(by_dfe.episodes, by_ons.episodes)
    assert by_dfe.sha256 == by_ons.sha256 and by_dfe.rows == by_ons.rows and by_dfe.censored == by_ons.censored

    def checks(data):  # the first breaking row names its file by the folder's own name
        out = []
        for check in data.checks:
            first = (check.values or {}).get("first_row")
            if isinstance(first, str):
                first = first.replace(str(renamed), "R").replace(str(tmp_path / "ons" / "returns"), "R")
            for ons, dfe in names.items():
                first = first.replace(f"/{dfe}/", f"/{ons}/") if isinstance(first, str) else first
            out.append((check.name, check.status, check.detail, {**(check.values or {}), "first_row": first}))
        return out

    assert checks(by_dfe) == checks(by_ons)


def _return(root: Path, la: str, year: int, missing: list[str], children=(1, 2)) -> None:
    folder = root / la / str(year)
    folder.mkdir(parents=True)
    (folder / "missing.csv").write_text(",".join(TABLE_COLUMNS["missing"]) + "\n" + "".join(f"{r}\n" for r in missing))
    (folder / "episodes.csv").write_text(",".join(TABLE_COLUMNS["episodes"]) + "\n" + "".join(
        f"{c},01/01/2015,S,C2,N1,U1,PR1,,,,WF1,WF2,\n" for c in children))


def _row(child: int, year: int, day: int) -> str:
    return f"{child},01/01/2008,M,{day:02d}/05/{year - 1},{day + 1:02d}/05/{year - 1}"


def test_an_abolished_authoritys_returns_count_in_its_force_area(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_PSEUDONYM_KEY", "a-fixed-test-key-of-32-characters!!")
    # Dorset force area: the county (835), Bournemouth (837) and Poole (836) to 2019; Dorset (838)
    # and Bournemouth, Christchurch and Poole (839) from 2020. Kent (886) throughout, to compare.
    planted = {("835", 2018): 3, ("835", 2019): 1, ("837", 2018): 2, ("837", 2019): 2, ("836", 2018): 1,
               ("836", 2019): 1, ("838", 2020): 2, ("838", 2021): 4, ("839", 2020): 1, ("839", 2021): 3,
               **{("886", y): 2 for y in (2018, 2019, 2020, 2021)}}
    for (la, year), n in planted.items():
        _return(tmp_path, la, year, [_row(1 + i % 2, year, 2 + 3 * i) for i in range(n)])
    design = _ssda_design(tmp_path, units={"adoption": {"E23000039": "2020-04"}, "aggregate": "police_force_area"})
    data = load_data(design)
    assert data.units == ["E23000032", "E23000039"]  # Kent, Dorset
    periods = data.panel["period"]
    collection_year = periods.dt.year + (periods.dt.month >= 4)  # April Y-1 to March Y is year Y
    got = data.panel.groupby(["unit", collection_year])[["reports", "exposure"]].sum()
    for force, las in (("E23000039", ("835", "836", "837", "838", "839")), ("E23000032", ("886",))):
        for year in (2018, 2019, 2020, 2021):
            held = [la for la in las if (la, year) in planted]
            assert got.loc[(force, year), "reports"] == sum(planted[(la, year)] for la in held), (force, year)
            # two children looked after all year in each authority's return
            days = (pd.Timestamp(f"{year}-04-01") - pd.Timestamp(f"{year - 1}-04-01")).days
            assert got.loc[(force, year), "exposure"] == 2 * days * len(held), (force, year)
    # unaggregated, Bournemouth (the first unit) has no children looked after once abolished: refused, saying why
    with pytest.raises(EvalkitError, match=r"no looked-after child-days for 'E06000028' in 2019-04 \(Bournemouth "
                                           r"E06000028 was abolished in collection year 2019.*police_force_area"):
        load_data(_ssda_design(tmp_path, units={"adoption": {"838": "2021-04"}}))


def test_folder_and_column_codes_unknown_or_held_twice_are_one_line_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_PSEUDONYM_KEY", "a-fixed-test-key-of-32-characters!!")
    _return(tmp_path / "a", "999", 2022, [_row(1, 2022, 5)])
    with pytest.raises(EvalkitError) as caught:
        load_data(_ssda_design(tmp_path / "a"))
    assert re.search(r"a/999: '999' is not a DfE local authority code", str(caught.value))
    assert "\n" not in str(caught.value)
    # one authority's return in two folders, one named each way
    _return(tmp_path / "b", "208", 2022, [_row(1, 2022, 5)])
    _return(tmp_path / "b", "E09000022", 2022, [_row(1, 2022, 5)])
    with pytest.raises(EvalkitError, match="holds the (Episodes|Missing) table of E09000022 for 2022, which .* holds too"):
        load_data(_ssda_design(tmp_path / "b", units={"adoption": {"208": "2021-10"}}))
    # North Yorkshire under the county's ONS code and under its DfE code (read as the unitary's)
    _return(tmp_path / "c", "815", 2022, [_row(1, 2022, 5)])
    _return(tmp_path / "c", "E10000023", 2022, [_row(1, 2022, 5)])
    with pytest.raises(EvalkitError, match=r"both are North Yorkshire \(DfE 815\), so its episodes would count twice"):
        load_data(_ssda_design(tmp_path / "c", units={"adoption": {"815": "2021-10"}}))
    # a combined table's LA column: the file and the row
    combined = tmp_path / "d"
    combined.mkdir()
    (combined / "missing.csv").write_text(",".join(TABLE_COLUMNS["missing"]) + ",LA,YEAR\n"
                                          + _row(1, 2022, 5) + ",384,2022\n" + _row(1, 2022, 9) + ",998,2022\n")
    with pytest.raises(EvalkitError, match=r"d/missing.csv:row 3: '998' is not a DfE local authority code"):
        load_data(_ssda_design(combined))


# ----------------------------------------------------------------------------- DfE published figures
STATUSES = ("Children looked after during the year", "Missing incidents")


def _published(path: Path, rows: list[tuple[str, str, str, int]]) -> Path:
    """rows: (time_period, old_la_code, new_la_code, incidents); 100 children looked after each."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["time_period", "time_identifier", "geographic_level", "country_code", "country_name",
                         "region_code", "region_name", "old_la_code", "la_name", "new_la_code", "missing_status",
                         "number"])
        for period, old, new, incidents in rows:
            for status, number in zip(STATUSES, (100, incidents)):
                writer.writerow([period, "Financial year", "Local authority", "E92000001", "England", "", "", old,
                                 "name", new, status, number])
    return path


def _published_design(path, units):
    return design_from_mapping({
        "evalkit": 1, "title": "t", "intervention": {"name": "x", "mechanism": "information_sharing"},
        "data": {"source": str(path), "layout": "dfe_published", "frequency": "year",
                 "columns": {"exposure": STATUSES[0]}},
        "units": units, "outcomes": [{"name": "incidents", "measure": "count", "column": "Missing incidents"}],
        "analysis": [{"method": "did", "outcome": "incidents"}],
    }, path=ROOT / "designs" / "t.yaml")


YEARS = ("201819", "201920", "202021", "202122", "202223")


def _northamptonshire_series():
    rows = []
    for i, period in enumerate(YEARS):
        rows.append((period, "855", "E10000018", 10 + i))  # Leicestershire throughout
        if period <= "202021":
            rows.append((period, "928", "E10000021", 30 + i))  # Northamptonshire to March 2021
        else:
            rows += [(period, "940", "E06000061", 12 + i), (period, "941", "E06000062", 20 + i)]
    return rows


def test_a_published_series_across_a_reorganisation_aggregates_to_its_force_area(tmp_path):
    rows = _northamptonshire_series()
    path = _published(tmp_path / "cla.csv", rows)
    data = load_data(_published_design(path, {"adoption": {"E23000021": 2022}, "aggregate": "police_force_area"}))
    assert data.units == ["E23000021", "E23000022"]
    assert not [c for c in data.checks if c.name == "dfe_codes_unknown"]
    got = data.panel.set_index(["unit", data.panel["period"].dt.year])[["incidents", "exposure"]]
    force = {"E10000018": "E23000021", "E10000021": "E23000022", "E06000061": "E23000022", "E06000062": "E23000022"}
    for period in YEARS:
        year = int(period[:4]) + 1
        for code in ("E23000021", "E23000022"):
            expected = [n for p, _, new, n in rows if p == period and force[new] == code]
            assert got.loc[(code, year), "incidents"] == sum(expected)
            assert got.loc[(code, year), "exposure"] == 100 * len(expected)
    # by authority, the county has no figures after it was abolished: refused, saying why
    with pytest.raises(EvalkitError, match=r"authority 'E06000061' has no figures for 2019 \(North Northamptonshire "
                                           r"E06000061 was created in collection year 2022"):
        load_data(_published_design(path, {"adoption": {"855": 2022}}))
    # aggregated, but a successor missing from the file: its force area's figures would fall
    partial = _published(tmp_path / "partial.csv", [r for r in rows if r[2] != "E06000062"])
    with pytest.raises(EvalkitError, match=r"'E10000021' \(Northamptonshire\) ended in 2021, but E06000062"):
        load_data(_published_design(partial, {"adoption": {"E23000021": 2022}, "aggregate": "police_force_area"}))


def test_old_and_new_la_codes_that_disagree_with_the_dfe_table(tmp_path):
    rows = [(p, "384", "E08000036", 5) for p in YEARS] + [(p, "382", "E08000034", 6) for p in YEARS]
    rows[3] = (YEARS[3], "382", "E08000036", 5)  # Kirklees' code on Wakefield's row
    path = _published(tmp_path / "bad.csv", rows)
    with pytest.raises(EvalkitError) as caught:
        load_data(_published_design(path, {"adoption": {"E08000036": 2021}}))
    message = str(caught.value)
    assert "bad.csv:row 8: old_la_code 382 (Kirklees) and new_la_code E08000036 (Wakefield) are different" in message
    assert "\n" not in message
    # a code newer than the table (a made-up 2027 authority): accepted, with a warning check
    newer = [(p, "384", "E08000036", 5) for p in YEARS] + [(p, "944", "E06000099", 6) for p in YEARS]
    data = load_data(_published_design(_published(tmp_path / "newer.csv", newer), {"adoption": {"384": 2021}}))
    assert data.units == ["E06000099", "E08000036"] and list(data.adoption) == ["E08000036"]
    (check,) = [c for c in data.checks if c.name == "dfe_codes_unknown"]
    assert check.status == "warn" and "944/E06000099" in check.detail and check.values == {"pairs_unknown": 1}
    assert authority("E06000099") is None and np.isfinite(data.panel["incidents"]).all()


def test_an_xml_return_in_a_folder_named_by_its_dfe_code_reads_as_in_its_ons_folder(tmp_path, monkeypatch):
    from evalkit.data.ssda903 import read_returns

    monkeypatch.setenv("EVALKIT_PSEUDONYM_KEY", "a-fixed-test-key-of-32-characters!!")
    source = ROOT / "tests" / "data" / "ssda903_xml"
    (ons,) = [p.name for p in source.iterdir() if p.is_dir()]
    shutil.copytree(source / ons, tmp_path / _gias_code(ons))
    by_ons, by_dfe = read_returns(source, "r"), read_returns(tmp_path, "r")
    for kind in ("header", "episodes", "missing"):
        pd.testing.assert_frame_equal(getattr(by_dfe, kind).drop(columns="file"),
                                      getattr(by_ons, kind).drop(columns="file"))
    assert set(by_dfe.missing["LA"]) == {ons}
    assert by_dfe.missing["file"].iloc[0] == f"r/{_gias_code(ons)}/2022/ssda903.xml"


def test_a_design_may_name_authorities_by_dfe_code_anywhere_it_names_units():
    from evalkit.data.ssda903 import with_ons_units

    design = design_from_mapping({
        "evalkit": 1, "title": "t", "intervention": {"name": "x", "mechanism": "information_sharing", "start": "2021-10"},
        "data": {"source": "returns", "layout": "ssda903", "person_key": "ephemeral"},
        "units": {"treated": [384], "comparison": ["382", "E08000035"]},
        "outcomes": [{"name": "reports", "measure": "count"}],
        "analysis": [{"method": "controlled_its", "outcome": "reports", "units": ["384"], "comparison": [382]}],
    }, path=ROOT / "designs" / "t.yaml")
    assert with_ons_units(design) is design  # updated in place: the analyses see what the data hold
    assert design.units.treated == ["E08000036"] and design.units.comparison == ["E08000034", "E08000035"]
    assert design.analysis[0].units == ["E08000036"] and design.analysis[0].comparison == ["E08000034"]
    design.units.treated = ["999"]
    with pytest.raises(EvalkitError, match=r"t.yaml:units.treated: '999' is not a DfE local authority code"):
        with_ons_units(design)
