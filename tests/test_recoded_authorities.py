"""Recoded authorities and unknown codes in the SSDA903 and DfE published layouts (issue 16).

ONS recoded Barnsley (DfE 370, E08000016 to E08000038) and Sheffield (373, E08000019 to
E08000039) in 2025: the same authorities under new codes. Whatever code names one in the
folders, a combined table, a published file or the design, its returns must be one unit with
one series, one person key and one two-return merge, and a tree renamed from one code to the
other must give the same panel, episodes, checks and data SHA-256 apart from the naming. The
shipped returns are re-arranged here under the 2025 codes, and under old and new codes
across years, and compared with the single-code run. Unknown ONS-style codes are one-line
errors naming where they are; Missing rows with a blank or unknown MISSING code are counted;
the City of London option is checked through a design against a sum computed here. One
authority under two codes is refused where it would count twice or lose a date: a county
(under either of its codes) with one of its districts in a force-area aggregate, a design
naming it treated and adopting, or adopting and a comparison unit or donor. A published row
whose new_la_code is newer than the lookup counts as its old_la_code's authority.
"""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from evalkit.data import load_data
from evalkit.data.ssda903 import TABLE_COLUMNS
from evalkit.design import design_from_mapping
from evalkit.errors import EvalkitError

from .test_la_codes import STATUSES, _published_design, _return  # the published file's series, its design; a return

ROOT = Path(__file__).resolve().parents[1]
RETURNS = ROOT / "examples" / "ssda903" / "returns"
#: a few of the shipped authorities keep the loads quick: Barnsley, Sheffield, Wakefield, Kirklees
KEPT = ("E08000016", "E08000019", "E08000036", "E08000034")
NEW = {"E08000016": "E08000038", "E08000019": "E08000039"}
KEY = "a-fixed-test-key-of-32-characters!!"
SOUTH_YORKSHIRE = "E23000011"


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv("EVALKIT_PSEUDONYM_KEY", KEY)


def _tree(root: Path, rename) -> Path:
    """The kept authorities' shipped returns, each year's folder under ``rename(code, year)``."""
    for code in KEPT:
        for year_dir in sorted((RETURNS / code).iterdir()):
            shutil.copytree(year_dir, root / rename(code, int(year_dir.name)) / year_dir.name)
    return root


def _design(source, units, **data):
    spec = {"source": str(source), "layout": "ssda903", "person_key": "environment", "include_away": True, **data}
    return design_from_mapping({
        "evalkit": 1, "title": "t", "intervention": {"name": "x", "mechanism": "information_sharing"},
        "data": spec, "units": units,
        "outcomes": [{"name": "reports", "measure": "count"}, {"name": "persons", "measure": "count"},
                     {"name": "time_to_found", "measure": "duration_hours", "horizon": 72}],
        "analysis": [{"method": "did", "outcome": "reports"}],
    }, path=ROOT / "designs" / "t.yaml")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """The kept authorities under their pre-2025 codes, loaded by authority and by force area."""
    mp = pytest.MonkeyPatch()
    mp.setenv("EVALKIT_PSEUDONYM_KEY", KEY)
    root = _tree(tmp_path_factory.mktemp("base") / "returns", lambda code, year: code)
    by_la = load_data(_design(root, {"adoption": {"E08000016": "2022-04"}}))
    by_force = load_data(_design(root, {"adoption": {SOUTH_YORKSHIRE: "2022-04"}, "aggregate": "police_force_area"}))
    mp.undo()
    return root, by_la, by_force


def _checks(data, root: Path, names: dict[str, str]) -> list:
    """The checks with each first-row file named as in the base tree."""
    out = []
    for check in data.checks:
        values = dict(check.values or {})
        first = values.get("first_row")
        if isinstance(first, str):
            first = first.replace(str(root), "R")
            for old, new in names.items():
                first = first.replace(f"/{new}/", f"/{old}/")
            values["first_row"] = first
        out.append((check.name, check.status, check.detail, values))
    return out


def _same_data(got, want, got_root, want_root, names=None, units=None):
    """Panel, episodes, checks, SHA-256, rows and censored equal, units renamed by ``units``."""
    units = units or {}
    panel, episodes = got.panel.copy(), got.episodes.copy()
    panel["unit"] = panel["unit"].map(lambda u: units.get(u, u))
    episodes["unit"] = episodes["unit"].map(lambda u: units.get(u, u))
    episodes["person"] = episodes["person"].astype(str).map(
        lambda p: units.get(p.split(":")[0], p.split(":")[0]) + ":" + p.split(":", 1)[1])
    want_episodes = want.episodes.copy()
    want_episodes["person"] = want_episodes["person"].astype(str)

    def ordered(frame, by):  # units sort by their names: put both in one order ("row" numbers that order)
        return frame.drop(columns=["row"], errors="ignore").sort_values(by, kind="stable").reset_index(drop=True)

    pd.testing.assert_frame_equal(ordered(panel, ["unit", "period"]), ordered(want.panel, ["unit", "period"]))
    by = ["unit", "reported_at", "person", "found_at"]
    pd.testing.assert_frame_equal(ordered(episodes, by), ordered(want_episodes, by))
    assert _checks(got, got_root, names or {}) == _checks(want, want_root, {})
    assert (got.sha256, got.rows, got.censored) == (want.sha256, want.rows, want.censored)


# ----------------------------------------------------------------------------- the recodings
def test_pure_recodings_are_chains_and_abolitions_are_not():
    from evalkit.data.geography import recoding_chain

    assert recoding_chain("E08000038") == recoding_chain("E08000016") == ("E08000016", "E08000038")
    assert recoding_chain("E08000019") == ("E08000019", "E08000039")
    assert recoding_chain("E08000037") == ("E08000020", "E08000037")  # Gateshead 2013
    assert recoding_chain("E06000065") == ("E10000023", "E06000065")  # North Yorkshire 2023, the same DfE 815
    # mergers and splits are not recodings: Dorset county (835) into Dorset (838), Cumbria into two
    for code in ("E10000009", "E06000059", "E10000006", "E06000063", "E10000021", "E08000036"):
        assert recoding_chain(code) == (code,)


def test_folders_under_the_2025_codes_give_the_same_data_as_under_the_old(base, tmp_path):
    root, by_la, by_force = base
    renamed = _tree(tmp_path / "returns", lambda code, year: NEW.get(code, code))
    # the design names Barnsley by its old code: the data's unit is the code the folders use
    got = load_data(_design(renamed, {"adoption": {"E08000016": "2022-04"}}))
    assert got.units == sorted(["E08000034", "E08000036", "E08000038", "E08000039"])
    assert list(got.adoption) == ["E08000038"]
    _same_data(got, by_la, renamed, root, names=NEW, units={v: k for k, v in NEW.items()})
    aggregated = load_data(_design(renamed, {"adoption": {SOUTH_YORKSHIRE: "2022-04"}, "aggregate": "police_force_area"}))
    _same_data(aggregated, by_force, renamed, root, names=NEW, units={v: k for k, v in NEW.items()})


@pytest.mark.parametrize("name", ["370", "E08000016", "E08000038"])
def test_a_design_may_name_a_recoded_authority_by_any_of_its_codes(base, tmp_path, name):
    renamed = _tree(tmp_path / "returns", lambda code, year: NEW.get(code, code))
    data = load_data(_design(renamed, {"adoption": {name: "2022-04"}, "comparison": ["373", "E08000036"]}))
    assert list(data.adoption) == ["E08000038"] and data.comparison_units == ["E08000039", "E08000036"]


def test_old_and_new_codes_across_years_are_one_authority(base, tmp_path):
    root, by_la, by_force = base
    # Barnsley 2020-22 under E08000016, 2023-24 under E08000038; Sheffield 2020-23 old, 2024 new;
    # episodes open at 31 March 2022 are in both codes' returns
    mixed = _tree(tmp_path / "returns", lambda code, year: NEW[code] if code in NEW and year >= 2023 + (code == "E08000019")
                  else code)
    assert sorted(p.name for p in mixed.iterdir()) == ["E08000016", "E08000019", "E08000034", "E08000036",
                                                       "E08000038", "E08000039"]
    names = {"E08000016": "E08000038", "E08000019": "E08000039"}
    for units, want in (({"adoption": {SOUTH_YORKSHIRE: "2022-04"}, "aggregate": "police_force_area"}, by_force),
                        ({"adoption": {"E08000038": "2022-04"}}, by_la)):
        got = load_data(_design(mixed, units))
        # each authority is named by the code most of its returns use: the old ones here
        assert got.units == want.units
        assert (len(got.episodes), got.censored, got.episodes["person"].nunique()) == \
            (len(want.episodes), want.censored, want.episodes["person"].nunique())
        assert got.panel["exposure"].sum() == want.panel["exposure"].sum()
        _same_data(got, want, mixed, root, names=names)


def test_a_year_missing_between_the_two_codes_is_refused(tmp_path):
    gap = _tree(tmp_path / "returns", lambda code, year: NEW[code] if code in NEW and year >= 2023 else code)
    shutil.rmtree(gap / "E08000016" / "2022")
    # two returns under each code: the unit takes the newer code (a tie)
    with pytest.raises(EvalkitError, match=r"authority E08000038 has returns for 2020 to 2024 but none for 2022"):
        load_data(_design(gap, {"adoption": {"E08000036": "2021-10"}}))


# ----------------------------------------------------------------------------- one authority named twice
def test_a_county_under_its_new_code_with_one_of_its_districts_is_refused():
    from evalkit.data.geography import police_force_areas, upper_tier_authorities

    # North Yorkshire's data renamed to the unitary's code (most years under it) and Craven, one of
    # the county's districts: the district would count twice in the force area
    for held in (["E10000023", "E07000163"], ["E06000065", "E07000163"], ["815", "E07000163"]):
        with pytest.raises(EvalkitError, match=r"holds both the county E(10000023|06000065) \(North Yorkshire\) "
                                               r"and its district E07000163 \(Craven\)"):
            police_force_areas(held, "x")
        with pytest.raises(EvalkitError, match=r"district E07000163 \(Craven\)"):
            upper_tier_authorities(held, "x")
    assert set(police_force_areas(["E06000065", "E07000128"], "x").values()) == {"E23000009", "E23000003"}


def test_returns_of_a_recoded_county_and_one_of_its_districts_are_refused_when_aggregated(tmp_path):
    for la, years in (("E10000023", (2020, 2021)), ("E06000065", (2022, 2023, 2024)),
                      ("E07000163", (2020, 2021, 2022, 2023, 2024)), ("E08000036", (2020, 2021, 2022, 2023, 2024))):
        for year in years:
            _return(tmp_path, la, year, [_row(1, year, 5)])
    with pytest.raises(EvalkitError, match=r"holds both the county E06000065 \(North Yorkshire\) and its district "
                                           r"E07000163 \(Craven\): the district would count twice"):
        load_data(_design(tmp_path, {"adoption": {"E23000010": "2021-10"}, "aggregate": "police_force_area"}))


def test_published_figures_of_a_recoded_county_and_one_of_its_districts_are_refused_when_aggregated(tmp_path):
    rows = []
    for i, period in enumerate(YEARS):
        rows += [(period, "815", "E10000023" if period < "202122" else "E06000065", 400 + i, 20 + i),
                 (period, "384", "E08000036", 500 + i, 20 + i)]
        if period <= "202223":
            rows.append((period, "", "E07000163", 40, 2))  # Craven, to its abolition in March 2023
    path = _published(tmp_path / "ny.csv", rows)
    with pytest.raises(EvalkitError, match=r"holds both the county E06000065 \(North Yorkshire\) and its district "
                                           r"E07000163 \(Craven\)"):
        load_data(_published_design(path, {"adoption": {"E23000010": 2022}, "aggregate": "police_force_area"}))


def _start_design(source, units, analysis=None):
    spec = {"source": str(source), "layout": "ssda903", "person_key": "environment", "include_away": True}
    return design_from_mapping({
        "evalkit": 1, "title": "t", "intervention": {"name": "x", "mechanism": "information_sharing",
                                                      "start": "2021-04"},
        "data": spec, "units": units, "outcomes": [{"name": "reports", "measure": "count"}],
        "analysis": analysis or [{"method": "did", "outcome": "reports"}],
    }, path=ROOT / "designs" / "t.yaml")


@pytest.mark.parametrize("treated, adopter", [("E08000038", "E08000016"), ("370", "E08000016"),
                                              ("E08000016", "370"), ("384", "E08000036")])
def test_an_authority_treated_and_adopting_under_two_codes_is_refused(base, treated, adopter):
    root = base[0]  # the shipped returns, Barnsley under E08000016
    with pytest.raises(EvalkitError) as caught:
        load_data(_start_design(root, {"treated": [treated], "adoption": {adopter: "2022-10"}}))
    message = str(caught.value)
    assert f"units.treated and units.adoption.{adopter}: '{treated}' and '{adopter}' are one authority" in message
    assert "one adoption date would be lost" in message and "\n" not in message


def test_an_adopting_authority_named_as_a_comparison_or_donor_under_another_code_is_refused(base):
    root = base[0]
    with pytest.raises(EvalkitError, match=r"t.yaml:units.comparison: names an adopting authority "
                                           r"\(units.adoption.E08000016\): 'E08000038' and 'E08000016' are one "
                                           r"authority, Barnsley \(E08000016 or E08000038\)"):
        load_data(_start_design(root, {"adoption": {"E08000016": "2022-10"}, "comparison": ["E08000038", "E08000036"]}))
    with pytest.raises(EvalkitError, match=r"units.comparison: .*'373' and 'E08000039' are one authority"):
        load_data(_start_design(root, {"treated": ["E08000039"], "comparison": ["373", "E08000036"]}))
    with pytest.raises(EvalkitError, match=r"analysis\[0\].comparison: .*\(analysis\[0\].units\): '370' and "
                                           r"'E08000038' are one authority"):
        load_data(_start_design(root, {"adoption": {"E08000038": "2022-10"}}, [
            {"method": "controlled_its", "outcome": "reports", "units": ["E08000038"], "comparison": ["370"]}]))
    with pytest.raises(EvalkitError, match=r"analysis\[0\].donors: .*\(units.adoption.384\): 'E08000036' and "
                                           r"'384' are one authority"):
        load_data(_start_design(root, {"adoption": {"384": "2022-10"}}, [
            {"method": "synthetic_control", "outcome": "reports", "donors": ["E08000036", "E08000034"]}]))


def test_adoption_periods_never_drops_a_treated_units_date():
    from evalkit.data.prepare import adoption_periods

    design = _start_design("returns", {"treated": ["E08000036"]})
    design.units = design.units.model_copy(update={"adoption": {"E08000036": "2022-10"}})  # past design.py's checks
    periods = pd.period_range("2020-04", "2024-03", freq="M")
    with pytest.raises(EvalkitError, match=r"units.adoption.E08000036 names unit 'E08000036', which units.treated "
                                           r"or another units.adoption key names too"):
        adoption_periods(design, pd.DataFrame(), ["E08000034", "E08000036"], periods, None)


# ----------------------------------------------------------------------------- DfE published figures
YEARS = ("201920", "202021", "202122", "202223", "202324")


def _published(path: Path, rows, old_column: bool = True) -> Path:
    """rows: (time_period, old_la_code, new_la_code, children, incidents)."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        header = ["time_period", "time_identifier", "geographic_level", "country_code", "country_name",
                  "region_code", "region_name", "old_la_code", "la_name", "new_la_code", "missing_status", "number"]
        writer.writerow(header if old_column else [h for h in header if h != "old_la_code"])
        for period, old, new, children, incidents in rows:
            for status, number in zip(STATUSES, (children, incidents)):
                row = [period, "Financial year", "Local authority", "E92000001", "England", "", "", old, "name", new,
                       status, number]
                writer.writerow(row if old_column else row[:7] + row[8:])
    return path


def _series(recoded_from: str | None):
    """Barnsley, Sheffield and Wakefield; Barnsley and Sheffield under their 2025 codes from ``recoded_from``."""
    rows = []
    for i, period in enumerate(YEARS):
        new = recoded_from is not None and period >= recoded_from
        rows += [(period, "370", "E08000038" if new else "E08000016", 300 + i, 10 + i),
                 (period, "373", "E08000039" if new else "E08000019", 700 + i, 30 + 2 * i),
                 (period, "384", "E08000036", 500 + i, 20 + i)]
    return rows


def test_a_published_series_whose_last_year_is_under_the_new_code_is_one_authority(tmp_path):
    one = _published(tmp_path / "one.csv", _series(None))
    recoded = _published(tmp_path / "recoded.csv", _series("202324"))
    for units in ({"adoption": {"E08000016": 2022}}, {"adoption": {"370": 2022}}, {"adoption": {"E08000038": 2022}}):
        want, got = load_data(_published_design(one, units)), load_data(_published_design(recoded, units))
        assert got.units == want.units == ["E08000016", "E08000019", "E08000036"]  # the code most years use
        assert list(got.adoption) == ["E08000016"]
        pd.testing.assert_frame_equal(got.panel, want.panel)
    aggregated = load_data(_published_design(recoded, {"adoption": {SOUTH_YORKSHIRE: 2022},
                                                       "aggregate": "police_force_area"}))
    south = aggregated.panel[aggregated.panel["unit"] == SOUTH_YORKSHIRE]
    expected = {int(p[:4]) + 1: (300 + i + 700 + i, 10 + i + 30 + 2 * i) for i, p in enumerate(YEARS)}
    assert [(int(y), e, n) for y, e, n in zip(south["period"].dt.year, south["exposure"], south["incidents"])] == \
        [(y, *expected[y]) for y in sorted(expected)]
    # most years under the new code: the unit is named by it
    newer = load_data(_published_design(_published(tmp_path / "newer.csv", _series("202021")),
                                        {"adoption": {"370": 2022}}))
    assert newer.units == ["E08000036", "E08000038", "E08000039"] and list(newer.adoption) == ["E08000038"]
    renamed = newer.panel.assign(unit=newer.panel["unit"].map({"E08000038": "E08000016", "E08000039": "E08000019"}
                                                              ).fillna(newer.panel["unit"]))
    want = load_data(_published_design(one, {"adoption": {"370": 2022}})).panel
    pd.testing.assert_frame_equal(renamed.sort_values(["unit", "period"]).reset_index(drop=True), want)


# ----------------------------------------------------------------------------- unknown codes
def _row(child: int, year: int, day: int, code: str = "M") -> str:
    return f"{child},01/01/2008,{code},{day:02d}/05/{year - 1},{day + 1:02d}/05/{year - 1}"


def test_an_unknown_ons_code_is_a_one_line_error_naming_where_it_is(tmp_path):
    for year in (2021, 2022):
        _return(tmp_path / "a", "E08000036", year, [_row(1, year, 5)])
        _return(tmp_path / "a", "E08999999", year, [_row(1, year, 5)])
    with pytest.raises(EvalkitError) as caught:
        load_data(_design(tmp_path / "a", {"adoption": {"E08000036": "2021-10"}}))
    message = str(caught.value)
    assert re.search(r"a/E08999999: 'E08999999' is not a local authority code in the shipped lookup", message)
    assert "did you mean" not in message and "\n" not in message  # no neighbouring authority proposed
    # a clear typo (one known code one character away) is named
    _return(tmp_path / "b", "E09000330", 2022, [_row(1, 2022, 5)])
    with pytest.raises(EvalkitError, match=r"b/E09000330: 'E09000330' .*did you mean 'E09000030', Tower Hamlets"):
        load_data(_design(tmp_path / "b", {"adoption": {"E09000030": "2021-10"}}))
    # a combined table's LA column: the file, the row and the code
    combined = tmp_path / "c"
    combined.mkdir()
    (combined / "missing.csv").write_text(",".join(TABLE_COLUMNS["missing"]) + ",LA,YEAR\n"
                                          + _row(1, 2022, 5) + ",384,2022\n" + _row(1, 2022, 9) + ",E08999999,2022\n")
    with pytest.raises(EvalkitError, match=r"c/missing.csv:row 3: 'E08999999' is not a local authority code"):
        load_data(_design(combined, {"adoption": {"E08000036": "2021-10"}}))


def test_a_new_la_code_newer_than_the_lookup_counts_as_its_dfe_codes_authority(tmp_path):
    # a real ONS recoding newer than the lookup (370 Barnsley under a made-up E08000099 in 2023-24):
    # the DfE code names the authority, so the row is Barnsley's, with a warning listing the pair
    rows = _series(None)
    rows[-3] = (rows[-3][0], "370", "E08000099", *rows[-3][3:])
    rows[5] = (rows[5][0], "384", "E08000063", *rows[5][3:])  # Wakefield's second year, mistyped: Wakefield's
    want = load_data(_published_design(_published(tmp_path / "one.csv", _series(None)), {"adoption": {"370": 2022}}))
    got = load_data(_published_design(_published(tmp_path / "newer.csv", rows), {"adoption": {"370": 2022}}))
    assert got.units == want.units == ["E08000016", "E08000019", "E08000036"] and list(got.adoption) == ["E08000016"]
    pd.testing.assert_frame_equal(got.panel, want.panel)
    (check,) = [c for c in got.checks if c.name == "dfe_codes_unknown"]
    assert check.status == "warn" and check.values == {"pairs_unknown": 2}
    assert "370/E08000099" in check.detail and "384/E08000063" in check.detail
    # most years under the lookup's 2025 code: the row joins that unit, named by it
    later = _series("202021")
    later[-3] = (later[-3][0], "370", "E08000099", *later[-3][3:])
    got = load_data(_published_design(_published(tmp_path / "later.csv", later), {"adoption": {"E08000016": 2022}}))
    assert got.units == ["E08000036", "E08000038", "E08000039"] and list(got.adoption) == ["E08000038"]
    assert got.panel.groupby("unit")["incidents"].count().to_dict() == {u: 5 for u in got.units}


def test_an_unknown_new_la_code_without_an_old_la_code_is_refused_naming_the_row(tmp_path):
    rows = _series(None)
    rows[4] = (rows[4][0], "", "E08000063", *rows[4][3:])
    for name, old_column in (("blank.csv", True), ("bare.csv", False)):
        with pytest.raises(EvalkitError) as caught:
            load_data(_published_design(_published(tmp_path / name, rows, old_column=old_column),
                                        {"adoption": {"384": 2022}}))
        message = str(caught.value)
        assert f"{name}:row 10: 'E08000063' is not a local authority code in the shipped lookup" in message
        assert "\n" not in message


def test_a_suggestion_only_within_the_codes_country():
    from evalkit.data.geography import unknown_code_error

    # Northern Ireland-style codes are not typos of English ones one letter away
    assert "did you mean" not in str(unknown_code_error("N09000001", "x"))  # not E09000001, City of London
    assert "did you mean" not in str(unknown_code_error("N06000015", "x"))  # not W06000015, Cardiff
    # within a country the one-typo suggestion stands
    assert "did you mean 'E09000030', Tower Hamlets" in str(unknown_code_error("E09000330", "x"))
    assert "did you mean 'W06000001', Isle of Anglesey" in str(unknown_code_error("W09000001", "x"))


# ----------------------------------------------------------------------------- MISSING codes
def test_rows_with_a_blank_or_unknown_missing_code_are_counted(tmp_path):
    _return(tmp_path / "r", "E08000036", 2022, [_row(1, 2022, 5), _row(2, 2022, 9, ""), _row(1, 2022, 20, "X"),
                                                _row(2, 2022, 25)])
    _return(tmp_path / "r", "E08000034", 2022, [_row(1, 2022, 5), _row(2, 2022, 9, "A")])
    data = load_data(_design(tmp_path / "r", {"adoption": {"E08000036": "2021-10"}}, include_away=False))
    (check,) = [c for c in data.checks if c.name == "missing_code"]
    assert check.values == {"rows_left_out": 2, "first_row": f"{tmp_path / 'r'}/E08000036/2022/missing.csv:row 3"}
    assert check.status == "warn"  # 2 of 6 rows: more than 1%
    assert len(data.episodes) == 3  # the M rows; A is not counted without include_away and is no bad code


def test_an_xml_return_without_a_missing_element_is_counted(tmp_path):
    source = ROOT / "tests" / "data" / "ssda903_xml"
    (ons,) = [p.name for p in source.iterdir() if p.is_dir()]
    shutil.copytree(source, tmp_path / "x")
    (xml,) = (tmp_path / "x" / ons).glob("*/*.xml")
    text = xml.read_text(encoding="utf-8")
    assert "<MISSING>M</MISSING>" in text
    xml.write_text(text.replace("<MISSING>M</MISSING>", "", 1), encoding="utf-8")
    full = load_data(_design(source, {"adoption": {ons: "2021-10"}}))
    cut = load_data(_design(tmp_path / "x", {"adoption": {ons: "2021-10"}}))
    assert not [c for c in full.checks if c.name == "missing_code"]
    (check,) = [c for c in cut.checks if c.name == "missing_code"]
    assert check.values["rows_left_out"] == 1 and ":line " in check.values["first_row"]
    assert len(cut.episodes) == len(full.episodes) - 1


# ----------------------------------------------------------------------------- the City of London
def test_the_city_of_london_option_through_a_design(tmp_path):
    # City of London (201), Westminster (213) and Kent (886): planted missing episodes per year
    planted = {("201", 2021): 2, ("201", 2022): 1, ("213", 2021): 3, ("213", 2022): 4, ("886", 2021): 1,
               ("886", 2022): 2}
    children = {"201": (1,), "213": (1, 2, 3), "886": (1, 2)}
    for (la, year), n in planted.items():
        _return(tmp_path, la, year, [_row(1 + i % len(children[la]), year, 2 + 3 * i) for i in range(n)],
                children=children[la])

    def sums(las):  # episodes and child-days per collection year, computed here
        out = {}
        for year in (2021, 2022):
            days = (pd.Timestamp(f"{year}-04-01") - pd.Timestamp(f"{year - 1}-04-01")).days
            out[year] = (sum(planted[(la, year)] for la in las), sum(len(children[la]) for la in las) * days)
        return out

    for merge, forces in ((True, {"E23000001": ("201", "213"), "E23000032": ("886",)}),
                          (False, {"E23000001": ("213",), "E23000034": ("201",), "E23000032": ("886",)})):
        data = load_data(_design(tmp_path, {"adoption": {"E23000032": "2021-10"}, "aggregate": "police_force_area",
                                            "merge_city_of_london": merge}))
        assert data.units == sorted(forces)
        periods = data.panel["period"]
        year = periods.dt.year + (periods.dt.month >= 4)
        got = data.panel.groupby(["unit", year])[["reports", "exposure"]].sum()
        for force, las in forces.items():
            for y, (reports, exposure) in sums(las).items():
                assert (got.loc[(force, y), "reports"], got.loc[(force, y), "exposure"]) == (reports, exposure)
