"""SSDA903 returns (evalkit/data/ssda903.py): reading, DfE rules, episodes, exposure.

The shipped synthetic returns (examples/ssda903) are recomputed here independently, in
plain pandas from the CSV text: counts per authority and month, looked-after child-days
per month, hours to found and censoring, and the rows each DfE rule leaves out. Each rule
also has a failing-row fixture of its own. The XML return is checked against its CSV twin
(tests/data/ssda903_xml, ssda903_csv), against an ElementTree reading, and through the
synthetic returns written in both forms.
"""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evalkit.data import load_data
from evalkit.data.ssda903 import (
    READ_COLUMNS,
    RULES,
    TABLE_COLUMNS,
    find_tables,
    missing_rule_failures,
    read_returns,
    read_table,
)
from evalkit.design import design_from_mapping
from evalkit.errors import EvalkitError

ROOT = Path(__file__).resolve().parents[1]
RETURNS = ROOT / "examples" / "ssda903" / "returns"
ADOPTION = {"E08000036": "2021-10", "E08000035": "2021-10", "E08000034": "2022-04", "E08000016": "2022-04",
            "E08000019": "2022-04"}


def design(source, units=None, **data):
    mapping = {
        "evalkit": 1, "title": "t",
        "intervention": {"name": "x", "mechanism": "information_sharing"},
        "data": {"source": str(source), "layout": "ssda903", "person_key": "ephemeral", "frequency": "month", **data},
        "units": units or {"adoption": ADOPTION if Path(source) == RETURNS else {"E08000036": "2021-10"}},
        "outcomes": [{"name": "reports", "measure": "count"}, {"name": "persons", "measure": "count"},
                     {"name": "time_to_found", "measure": "duration_hours", "horizon": 72}],
        "analysis": [{"method": "staggered_did", "outcome": "reports"}],
    }
    return design_from_mapping(mapping, path=ROOT / "designs" / "test.yaml")


# ----------------------------------------------------------------------------- independent reading
def _read_all(kind: str) -> pd.DataFrame:
    parts = []
    for path in sorted(RETURNS.glob(f"*/*/{kind}.csv")):
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        frame["LA"], frame["YEAR"] = path.parent.parent.name, int(path.parent.name)
        frame["where"] = f"{path.relative_to(RETURNS)}:row" + pd.Series(np.arange(2, len(frame) + 2)).astype(str).radd(" ")
        parts.append(frame)
    out = pd.concat(parts, ignore_index=True)
    for column in ("DOB", "DECOM", "DEC", "MIS_START", "MIS_END"):
        if column in out:
            out[column] = pd.to_datetime(out[column].replace("", None), format="%d/%m/%Y")
    return out


@pytest.fixture(scope="module")
def independent():
    """Rule failures, kept episodes and child-days, computed here without the reader."""
    mis, eps = _read_all("missing"), _read_all("episodes")
    year_end = pd.to_datetime(mis["YEAR"].astype(str) + "-03-31")
    fails = {
        "564": mis["MISSING"].isin(["M", "A"]) & mis["MIS_START"].isna(),
        "567": mis["MIS_END"] < mis["MIS_START"],
        "570": mis["MIS_START"] > year_end,
        "586": mis["MIS_START"] <= mis["DOB"],
    }
    # 574: each child's previous row in the return, by start date (groupby-shift)
    ordered = mis.dropna(subset=["MIS_START"]).sort_values(["LA", "YEAR", "CHILD", "MIS_START"], kind="stable")
    groups = ordered.groupby(["LA", "YEAR", "CHILD"], sort=False)
    previous_end = groups["MIS_END"].shift(1)
    later = groups.cumcount() > 0
    fails["574"] = (later & (previous_end.isna() | (ordered["MIS_START"] < previous_end))).reindex(mis.index, fill_value=False)
    # 581: a start inside none of the child's episodes in that return
    pairs = mis.dropna(subset=["MIS_START"]).reset_index().merge(eps, on=["LA", "YEAR", "CHILD"], how="left",
                                                                 suffixes=("", "_e"))
    inside = (pairs["DECOM"] <= pairs["MIS_START"]) & (pairs["DEC"].isna() | (pairs["MIS_START"] <= pairs["DEC"]))
    inside &= pairs["DECOM"].notna()
    fails["581"] = ~inside.groupby(pairs["index"]).max().reindex(mis.index, fill_value=True)
    fails["581"] &= mis["MIS_START"].notna()
    # 577: periods of care (episodes following on without a gap), then the one holding the start
    e = eps.sort_values(["LA", "YEAR", "CHILD", "DECOM"], kind="stable")
    by = e.groupby(["LA", "YEAR", "CHILD"], sort=False)
    gap = (by.cumcount() == 0) | (e["DECOM"] > by["DEC"].shift(1))
    e = e.assign(poc=gap.cumsum())
    pocs = e.groupby("poc").agg(LA=("LA", "first"), YEAR=("YEAR", "first"), CHILD=("CHILD", "first"),
                                begin=("DECOM", "first"), end=("DEC", lambda d: d.iloc[-1]))
    held = mis.dropna(subset=["MIS_START"]).reset_index().merge(pocs, on=["LA", "YEAR", "CHILD"])
    held = held[(held["begin"] <= held["MIS_START"]) & (held["end"].isna() | (held["MIS_START"] <= held["end"]))]
    ended = held["end"].notna() & (held["MIS_END"].isna() | (held["MIS_END"] > held["end"]))
    fails["577"] = pd.Series(mis.index.isin(held.loc[ended, "index"]), index=mis.index)
    broken = np.logical_or.reduce([f.fillna(False).to_numpy() for f in fails.values()])
    kept = mis[~broken & mis["MISSING"].isin(["M", "A"])]
    kept = kept.sort_values("YEAR").groupby(["LA", "CHILD", "MIS_START"], as_index=False).last()
    # child-days per month: overlap of [DECOM, DEC) (open: to 1 April) with each month
    eps = eps.sort_values("YEAR").groupby(["LA", "CHILD", "DECOM"], as_index=False).last()
    stop = eps["DEC"].fillna(pd.to_datetime((eps["YEAR"]).astype(str) + "-04-01"))
    months = pd.period_range("2019-04", "2024-03", freq="M")
    starts = np.maximum(eps["DECOM"].to_numpy()[:, None], months.start_time.to_numpy()[None, :])
    ends = np.minimum(stop.to_numpy()[:, None], (months.end_time + pd.Timedelta(1, "ns")).to_numpy()[None, :])
    days = np.clip((ends - starts) / np.timedelta64(1, "D"), 0, None)
    child_days = pd.DataFrame(days, columns=months).groupby(eps["LA"].to_numpy()).sum()
    return {"fails": {k: int(v.fillna(False).sum()) for k, v in fails.items()}, "kept": kept,
            "child_days": child_days, "missing": mis}


@pytest.fixture(scope="module")
def loaded():
    return load_data(design(RETURNS, include_away=True))


def test_rule_counts_match_an_independent_computation(independent, loaded):
    counted = {c.values["rule"]: c.values["rows_left_out"] for c in loaded.checks if c.name.startswith("dfe_rule_")}
    assert counted == independent["fails"]
    assert sum(counted.values()) >= 10  # the shipped returns carry planted breaches of every rule
    planted = json.loads((RETURNS.parent / "truth.json").read_text())["planted_breaches"]
    assert all(counted[rule] >= sum(b["rule"] == rule for b in planted) >= 1 for rule in RULES)
    # a few rows in 7,915 are routine: noted, not a warning that would lower certainty
    assert all(c.status == "pass" for c in loaded.checks if c.name.startswith("dfe_rule_"))


def test_counts_per_authority_and_month_match(independent, loaded):
    kept = independent["kept"]
    expected = kept.groupby([kept["LA"], kept["MIS_START"].dt.to_period("M")]).size()
    panel = loaded.panel.set_index(["unit", "period"])["reports"]
    expected = expected.reindex(panel.index, fill_value=0)
    assert (panel.to_numpy() == expected.to_numpy()).all()
    assert panel.sum() == len(kept[(kept["MIS_START"] >= "2019-04-01") & (kept["MIS_START"] <= "2024-03-31")])
    # persons: distinct (authority, CHILD) per month
    persons = kept.groupby([kept["LA"], kept["MIS_START"].dt.to_period("M")])["CHILD"].nunique()
    assert (loaded.panel.set_index(["unit", "period"])["persons"].to_numpy()
            == persons.reindex(panel.index, fill_value=0).to_numpy()).all()


def test_exposure_is_looked_after_child_days(independent, loaded):
    exposure = loaded.panel.pivot(index="unit", columns="period", values="exposure")
    expected = independent["child_days"].reindex(index=exposure.index, columns=exposure.columns)
    assert np.allclose(exposure.to_numpy(), expected.to_numpy())
    assert (exposure.to_numpy() > 0).all()


def test_durations_are_days_times_24_and_open_ones_censored_at_31_march(independent, loaded):
    kept = independent["kept"]
    kept = kept[kept["MIS_START"] >= "2019-04-01"]  # the window: the collection years held
    end = kept["MIS_END"].fillna(pd.to_datetime(kept["YEAR"].astype(str) + "-04-01"))
    hours = np.sort(((end - kept["MIS_START"]).dt.days * 24).to_numpy(dtype=float))
    episodes = loaded.episodes
    assert np.array_equal(np.sort(episodes["hours_to_found"].to_numpy()), hours)
    assert int(episodes["censored"].sum()) == int(kept["MIS_END"].isna().sum()) == loaded.censored > 0
    assert (episodes["hours_to_found"] % 24 == 0).all()


def test_an_episode_open_at_31_march_is_one_episode_with_the_later_end(independent):
    mis = independent["missing"]
    both = mis.dropna(subset=["MIS_START"]).groupby(["LA", "CHILD", "MIS_START"])["YEAR"].nunique()
    assert (both > 1).sum() > 10  # the shipped returns carry such episodes
    la, child, start = both[both > 1].index[0]
    rows = mis[(mis["LA"] == la) & (mis["CHILD"] == child) & (mis["MIS_START"] == start)].sort_values("YEAR")
    assert rows["MIS_END"].iloc[0] is pd.NaT or pd.isna(rows["MIS_END"].iloc[0])
    kept = independent["kept"]
    one = kept[(kept["LA"] == la) & (kept["CHILD"] == child) & (kept["MIS_START"] == start)]
    assert len(one) == 1 and (pd.isna(one["MIS_END"].iloc[0]) or one["MIS_END"].iloc[0] == rows["MIS_END"].iloc[-1])


def test_without_include_away_only_m_counts(independent):
    data = load_data(design(RETURNS))
    kept = independent["kept"]
    kept = kept[kept["MIS_START"] >= "2019-04-01"]
    assert data.panel["reports"].sum() == int((kept["MISSING"] == "M").sum())


def test_child_ids_are_pseudonymised_per_authority(loaded):
    raw = set(_read_all("missing")["CHILD"])
    categories = [str(c) for c in loaded.episodes["person"].cat.categories]
    assert not raw & set(categories)
    assert all(c.split(":")[0][:3] in ("E06", "E08") and len(c.split(":")[1]) == 64 for c in categories)


def test_only_the_needed_columns_are_read():
    tables = find_tables(RETURNS, "returns")
    assert {t.kind for t in tables} == {"header", "episodes", "missing"}
    for table in tables[:3]:
        frame = read_table(table)
        assert set(frame.columns) == set(READ_COLUMNS[table.kind]) | {"file", "row", "LA", "YEAR"}


def test_combined_tables_with_la_and_year_read_the_same(tmp_path, loaded):
    for kind in ("header", "episodes", "missing"):
        parts = []
        for path in sorted(RETURNS.glob(f"*/*/{kind}.csv")):
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
            frame.insert(0, "LA", path.parent.parent.name)
            frame.insert(1, "YEAR", path.parent.name)
            parts.append(frame)
        pd.concat(parts).to_csv(tmp_path / f"{kind}_all.csv", index=False)
    data = load_data(design(tmp_path, include_away=True))
    assert data.panel["reports"].tolist() == loaded.panel["reports"].tolist()
    assert np.allclose(data.panel["exposure"], loaded.panel["exposure"])


def test_pipeline_puts_rule_checks_and_resolution_in_results(loaded):
    import evalkit

    d = evalkit.load_design(ROOT / "designs" / "ssda903_return_home.yaml")
    results = evalkit.run(d, data=load_data(d))
    names = [c.name for c in results.checks]
    assert {f"dfe_rule_{r}" for r in RULES} <= set(names) and "duration_resolution" in names
    resolution = next(c for c in results.checks if c.name == "duration_resolution")
    assert resolution.values == {"resolution": "day"}
    assert any(e.method == "staggered_did" for e in results.estimates)


# ----------------------------------------------------------------------------- failing-row fixtures
HEADER = ",".join(TABLE_COLUMNS["missing"])


def write_return(root: Path, missing: list[str], episodes: list[str] | None = None, la="E08000036", year=2022):
    folder = root / la / str(year)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "missing.csv").write_text(HEADER + "\n" + "\n".join(missing) + "\n")
    if episodes is not None:
        lines = [",".join(TABLE_COLUMNS["episodes"])]
        for row in episodes:
            child, decom, dec = row.split(",")
            lines.append(f"{child},{decom},S,C2,N1,U1,PR1,{dec},{'X1' if dec else ''},,WF1,WF2,")
        (folder / "episodes.csv").write_text("\n".join(lines) + "\n")
    return root


IN_CARE = ["1,01/01/2020,", "2,01/01/2020,", "3,01/01/2020,"]
CASES = {
    # rule: (missing rows, episodes rows, the row (file row number) that breaks it)
    "564": (["1,01/01/2008,M,05/05/2021,06/05/2021", "2,01/01/2008,M,,"], IN_CARE, 3),
    "567": (["1,01/01/2008,M,05/05/2021,06/05/2021", "2,01/01/2008,M,09/05/2021,08/05/2021"], IN_CARE, 3),
    "570": (["1,01/01/2008,M,05/05/2021,06/05/2021", "2,01/01/2008,M,02/04/2022,03/04/2022"], IN_CARE, 3),
    "574": (["1,01/01/2008,M,05/05/2021,10/05/2021", "1,01/01/2008,M,08/05/2021,12/05/2021"], IN_CARE, 3),
    "577": (["1,01/01/2008,M,05/05/2021,06/05/2021", "2,01/01/2008,M,01/09/2021,"],
            ["1,01/01/2020,", "2,01/01/2020,02/09/2021"], 3),
    "581": (["1,01/01/2008,M,05/05/2021,06/05/2021", "2,01/01/2008,M,01/12/2020,02/12/2020"],
            ["1,01/01/2020,", "2,01/06/2021,"], 3),
    "586": (["1,01/01/2008,M,05/05/2021,06/05/2021", "2,06/05/2021,M,05/05/2021,06/05/2021"], IN_CARE, 3),
}


@pytest.mark.parametrize("rule", sorted(CASES))
def test_each_rule_has_a_failing_row(tmp_path, rule):
    missing, episodes, bad_row = CASES[rule]
    returns = read_returns(write_return(tmp_path, missing, episodes), "returns")
    failures = missing_rule_failures(returns.missing, returns.episodes)
    assert returns.missing["row"][failures[rule]].tolist() == [bad_row]
    others = {r: int(f.sum()) for r, f in failures.items() if r != rule}
    assert not any(others.values()), others
    data = load_data(design(tmp_path, window={"start": "2021-04", "end": "2022-03"}))
    check = next(c for c in data.checks if c.name == f"dfe_rule_{rule}")
    assert check.values["rows_left_out"] == 1 and check.status == "warn"  # 1 of 2 rows: material
    # the breaking row is named in results.json, never in the report's text (a record of a small count)
    assert check.values["first_row"].endswith(f"E08000036/2022/missing.csv:row {bad_row}")
    assert "missing.csv" not in check.detail
    assert data.panel["reports"].sum() == 1


def test_577_and_581_pass_without_an_episodes_table_and_say_so(tmp_path):
    write_return(tmp_path, ["1,01/01/2008,M,05/05/2021,06/05/2021"])
    data = load_data(design(tmp_path, window={"start": "2021-04", "end": "2022-03"}))
    check = next(c for c in data.checks if c.name == "dfe_rule_581")
    assert check.status == "warn" and "without an Episodes table" in check.detail
    assert "exposure" not in data.panel


def test_an_open_episode_is_censored_at_31_march_or_an_earlier_extract(tmp_path):
    write_return(tmp_path, ["1,01/01/2008,M,01/02/2022,"], ["1,01/01/2020,"])
    window = {"start": "2021-04", "end": "2022-02"}
    data = load_data(design(tmp_path, window=window))
    assert data.episodes["censored"].tolist() == [True]
    assert data.episodes["hours_to_found"].tolist() == [59 * 24.0]  # 1 February to the end of 31 March
    earlier = load_data(design(tmp_path, extracted_at="2022-03-30", window=window))
    assert earlier.episodes["hours_to_found"].tolist() == [58 * 24.0]  # to the end of 30 March


def test_reported_in_two_returns_is_one_episode(tmp_path):
    write_return(tmp_path, ["1,01/01/2008,M,30/03/2021,"], ["1,01/01/2020,"], year=2021)
    write_return(tmp_path, ["1,01/01/2008,M,30/03/2021,04/04/2021"], ["1,01/01/2020,"], year=2022)
    data = load_data(design(tmp_path))
    assert len(data.episodes) == 1
    assert data.episodes["hours_to_found"].tolist() == [5 * 24.0] and not data.episodes["censored"].any()


@pytest.mark.parametrize("text", ["2021-05-05", "05/05/21", "31/02/2021", "5 May 2021"])
def test_a_date_not_written_dd_mm_yyyy_is_refused_with_file_row_and_column(tmp_path, text):
    write_return(tmp_path, ["1,01/01/2008,M,05/05/2021,06/05/2021", f"2,01/01/2008,M,{text},"])
    with pytest.raises(EvalkitError) as caught:
        load_data(design(tmp_path))
    message = str(caught.value)
    assert "E08000036/2022/missing.csv:row 3" in message and "MIS_START" in message and "dd/mm/YYYY" in message
    assert "\n" not in message


def test_folder_problems_are_one_line_errors(tmp_path):
    with pytest.raises(EvalkitError, match="does not exist"):
        load_data(design(tmp_path / "nowhere"))
    (tmp_path / "Wakefield").mkdir()
    with pytest.raises(EvalkitError, match="not named by a local authority code"):
        load_data(design(tmp_path))
    (tmp_path / "Wakefield").rmdir()
    with pytest.raises(EvalkitError, match="no Missing table"):
        load_data(design(tmp_path))
    folder = tmp_path / "E08000036" / "2022"
    folder.mkdir(parents=True)
    (folder / "missing.csv").write_text("CHILD,MISSING,MIS_START,MIS_END\n1,M,01/05/2021,\n")
    with pytest.raises(EvalkitError, match="has no column DOB"):
        load_data(design(tmp_path))


def test_dfe_three_digit_codes_name_authorities(tmp_path):
    write_return(tmp_path, ["1,01/01/2008,M,05/05/2021,06/05/2021"], IN_CARE, la="384")
    write_return(tmp_path, ["1,01/01/2008,M,05/05/2021,06/05/2021"], IN_CARE, la="382")
    data = load_data(design(tmp_path, units={"adoption": {"384": "2021-10"}}, window={"start": "2021-04", "end": "2022-03"}))
    # read as their ONS codes (Wakefield, Kirklees): the same units as folders named E08000036, E08000034
    # (tests/test_la_codes.py compares whole trees named both ways)
    assert data.units == ["E08000034", "E08000036"] and list(data.adoption) == ["E08000036"]


# ----------------------------------------------------------------------------- the example
def test_example_writes_the_shipped_returns_byte_for_byte(tmp_path):
    from evalkit.examples import write_example

    first = write_example("ssda903", tmp_path / "a")
    write_example("ssda903", tmp_path / "b")
    compared = filecmp.dircmp(tmp_path / "a", tmp_path / "b")
    assert not compared.diff_files and not compared.left_only
    for path in sorted(RETURNS.rglob("*.csv")):
        relative = path.relative_to(RETURNS.parent)
        assert (tmp_path / "a" / relative).read_bytes() == path.read_bytes(), relative
    assert first.name == "ssda903.yaml"
    text = first.read_text()
    assert "layout: ssda903" in text and "source: returns" in text


def test_other_tables_are_ignored_and_a_broken_csv_is_one_line(tmp_path):
    write_return(tmp_path, ["1,01/01/2008,M,05/05/2021,06/05/2021"], IN_CARE)
    folder = tmp_path / "E08000036" / "2022"
    (folder / "oc3.csv").write_text("CHILD,IN_TOUCH,ACTIV,ACCOM\n1,YES,F1,S\n")
    (folder / "notes.txt").write_text("not a table\n")
    assert {t.kind for t in find_tables(tmp_path, "returns")} == {"missing", "episodes"}
    (folder / "missing.csv").write_text(HEADER + "\n1,01/01/2008,M,05/05/2021,06/05/2021\n2,01/01/2008,M\n")
    with pytest.raises(EvalkitError, match="missing.csv: is not a readable CSV table"):
        load_data(design(tmp_path))


def test_data_columns_do_not_apply(tmp_path):
    write_return(tmp_path, ["1,01/01/2008,M,05/05/2021,06/05/2021"], IN_CARE)
    with pytest.raises(EvalkitError, match="data.columns: layout ssda903 reads the DfE's own columns"):
        load_data(design(tmp_path, columns={"unit": "LA"}))


# ----------------------------------------------------------------------------- returns held once, with no gaps
def _copy_returns(tmp_path) -> Path:
    import shutil

    target = tmp_path / "returns"
    shutil.copytree(RETURNS, target)
    return target


def test_a_year_missing_between_an_authoritys_returns_is_refused(tmp_path):
    import shutil

    returns = _copy_returns(tmp_path)
    shutil.rmtree(returns / "E08000032" / "2022")
    with pytest.raises(EvalkitError, match=r"authority E08000032 has returns for 2020 to 2024 but none for 2022"):
        load_data(design(returns))


@pytest.mark.parametrize("table", ["missing", "episodes"])
def test_a_years_folder_without_its_missing_or_episodes_table_is_refused(tmp_path, table):
    returns = _copy_returns(tmp_path)
    (returns / "E08000032" / "2022" / f"{table}.csv").unlink()
    with pytest.raises(EvalkitError, match=rf"E08000032/2022/ has no {table.title()} table"):
        load_data(design(returns))


def test_a_return_held_twice_is_refused(tmp_path):
    returns = _copy_returns(tmp_path)
    table = pd.read_csv(returns / "E08000032" / "2022" / "missing.csv", dtype=str)
    table.assign(LA="E08000032", YEAR="2022").to_csv(returns / "missing_combined.csv", index=False)
    with pytest.raises(EvalkitError, match=r"holds the Missing table of E08000032 for 2022, which .* holds too"):
        load_data(design(returns))


# ----------------------------------------------------------------------------- the XML return
XML_RETURN = ROOT / "tests" / "data" / "ssda903_xml"
CSV_RETURN = ROOT / "tests" / "data" / "ssda903_csv"
ONE_YEAR = {"start": "2021-04", "end": "2022-03"}


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["file", "row"]).reset_index(drop=True)


def _element_lines(path: Path, tag: str) -> list[int]:
    return [n for n, line in enumerate(path.read_text().splitlines(), 1) if line.strip() == f"<{tag}>"]


def test_the_xml_return_reads_into_the_tables_of_its_csv_twin():
    xml, csv_tables = read_returns(XML_RETURN, "x"), read_returns(CSV_RETURN, "c")
    for kind in ("header", "episodes", "missing"):
        pd.testing.assert_frame_equal(_plain(getattr(xml, kind)), _plain(getattr(csv_tables, kind)))
    path = XML_RETURN / "E08000036" / "2022" / "ssda903.xml"
    # an independent reading with ElementTree: every AMISSING, with its child's DOB
    import xml.etree.ElementTree as ET

    expected = []
    for child in ET.parse(path).getroot():
        header = child.find("HEADER")
        for period in header.findall("AMISSING"):
            expected.append((header.findtext("CHILDID"), header.findtext("DOB"), period.findtext("MISSING"),
                             period.findtext("MIS_START"), period.findtext("MIS_END") or ""))
    got = [(c, f"{d:%d/%m/%Y}", m, f"{s:%d/%m/%Y}", "" if pd.isna(e) else f"{e:%d/%m/%Y}")
           for c, d, m, s, e in xml.missing[["CHILD", "DOB", "MISSING", "MIS_START", "MIS_END"]].itertuples(index=False)]
    assert got == expected and len(got) == 5
    # a row's number is the line of its element
    assert xml.missing["row"].tolist() == _element_lines(path, "AMISSING")
    assert xml.episodes["row"].tolist() == _element_lines(path, "EPISODE")
    assert xml.header["row"].tolist() == _element_lines(path, "CHILD")
    assert xml.files == [path]


def test_the_xml_return_and_its_csv_twin_load_identically():
    xml = load_data(design(XML_RETURN, include_away=True, window=ONE_YEAR))
    csv_tables = load_data(design(CSV_RETURN, include_away=True, window=ONE_YEAR))
    pd.testing.assert_frame_equal(xml.panel, csv_tables.panel)
    pd.testing.assert_frame_equal(xml.episodes.drop(columns="person"), csv_tables.episodes.drop(columns="person"))
    assert [(c.name, c.status, c.values.get("rows_left_out")) for c in xml.checks] == \
        [(c.name, c.status, c.values.get("rows_left_out")) for c in csv_tables.checks]
    # rule 567 leaves out the period ending before it starts, named by its line in the XML
    rule = next(c for c in xml.checks if c.name == "dfe_rule_567")
    path = XML_RETURN / "E08000036" / "2022" / "ssda903.xml"
    assert rule.values["rows_left_out"] == 1
    assert rule.values["first_row"].endswith(f"E08000036/2022/ssda903.xml:line {_element_lines(path, 'AMISSING')[3]}")
    # M and A from 1 April 2021 to 31 March 2022, the 567 row left out: 4 episodes, 1 open at 31 March
    assert len(xml.episodes) == 4 and xml.censored == 1
    assert sorted(xml.episodes["hours_to_found"]) == [0.0, 24.0, 72.0, 96.0]


@pytest.fixture(scope="module")
def synthetic_both_forms(tmp_path_factory):
    """The synthetic returns written by `evalkit example ssda903 --format xml`, and the same
    returns as CSV tables (write_returns one_dob=True: one date of birth per child, as the XML holds)."""
    from click.testing import CliRunner

    from evalkit.cli import main
    from evalkit.data.ssda903_synthetic import write_returns

    root = tmp_path_factory.mktemp("ssda903_forms")
    result = CliRunner().invoke(main, ["example", "ssda903", "--format", "xml", "--out", str(root / "xml")])
    assert result.exit_code == 0, result.output
    write_returns(root / "csv", one_dob=True)
    return root


def test_xml_and_csv_forms_of_the_synthetic_returns_derive_the_same(synthetic_both_forms):
    root = synthetic_both_forms
    xml_files = sorted((root / "xml" / "returns").rglob("*"))
    assert {p.name for p in xml_files if p.is_file()} == {"ssda903.xml"}
    assert len([p for p in xml_files if p.is_file()]) == 50  # ten authorities, five years
    xml = load_data(design_from_mapping(_mapping(root / "xml" / "returns"), path=ROOT / "designs" / "test.yaml"))
    csv_tables = load_data(design_from_mapping(_mapping(root / "csv" / "returns"), path=ROOT / "designs" / "test.yaml"))
    # counts, persons, durations and exposure per authority and month
    pd.testing.assert_frame_equal(xml.panel, csv_tables.panel)
    assert xml.panel["reports"].sum() > 10_000 and (xml.panel["exposure"] > 0).all()
    # the episodes themselves (a person is the same pseudonym in both: the same codes)
    pd.testing.assert_frame_equal(xml.episodes.drop(columns="person"), csv_tables.episodes.drop(columns="person"))
    assert np.array_equal(xml.episodes["person"].cat.codes, csv_tables.episodes["person"].cat.codes)
    assert (xml.rows, xml.censored) == (csv_tables.rows, csv_tables.censored)
    # the same rows left out by each DfE rule; the XML names them by line
    assert [(c.name, c.status, c.values.get("rows_left_out")) for c in xml.checks] == \
        [(c.name, c.status, c.values.get("rows_left_out")) for c in csv_tables.checks]
    assert all(c.values["first_row"].split(":")[-1].startswith("line ") for c in xml.checks
               if c.name.startswith("dfe_rule_") and c.values["rows_left_out"])
    # both are the shipped example's simulated returns (the same truth.json)
    shipped = json.loads((RETURNS.parent / "truth.json").read_text())
    assert json.loads((root / "xml" / "truth.json").read_text()) == shipped


def _mapping(source):
    return {
        "evalkit": 1, "title": "t", "intervention": {"name": "x", "mechanism": "information_sharing"},
        "data": {"source": str(source), "layout": "ssda903", "person_key": "ephemeral", "frequency": "month",
                 "include_away": True},
        "units": {"adoption": ADOPTION},
        "outcomes": [{"name": "reports", "measure": "count"}, {"name": "persons", "measure": "count"},
                     {"name": "time_to_found", "measure": "duration_hours", "horizon": 72}],
        "analysis": [{"method": "staggered_did", "outcome": "reports"}],
    }


def _xml_return(root: Path, text: str, la="E08000036", year=2022, name="ssda903.xml") -> Path:
    folder = root / la / str(year)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder / name


FIXTURE_XML = (XML_RETURN / "E08000036" / "2022" / "ssda903.xml").read_text()


@pytest.mark.parametrize("prolog", [
    # entity expansion ("billion laughs") and an external entity: refused before anything is expanded or fetched
    '<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>\n',
    '<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n',
    '<!DOCTYPE EXPSSDA903 SYSTEM "http://example.invalid/ssda903.dtd">\n',
])
def test_a_document_type_declaration_is_refused(tmp_path, prolog):
    text = FIXTURE_XML.replace("<EXPSSDA903>", prolog + "<EXPSSDA903>", 1)
    if "lol" in prolog:
        text = text.replace("<ETHNIC>BOTH</ETHNIC>", "<ETHNIC>&lol2;</ETHNIC>")
    _xml_return(tmp_path, text)
    with pytest.raises(EvalkitError) as caught:
        load_data(design(tmp_path, window=ONE_YEAR))
    message = str(caught.value)
    assert "E08000036/2022/ssda903.xml:line 2: declares a document type" in message and "\n" not in message


@pytest.mark.parametrize("change, expected", [
    (("<MIS_START>05/05/2021</MIS_START>", "<MIS_START>2021-05-05</MIS_START>"),
     r"ssda903.xml:line 17: '2021-05-05' in element <AMISSING>/<MIS_START> is not a date written dd/mm/YYYY"),
    (("<DECOM>19/07/2020</DECOM>", "<DECOM>19/7/20</DECOM>"),
     r"ssda903.xml:line 87: '19/7/20' in element <EPISODE>/<DECOM> is not a date written dd/mm/YYYY"),
    (("<CHILDID>563324</CHILDID>", "<CHILDID></CHILDID>"), r"ssda903.xml:line 66: <CHILD> has no <CHILDID>"),
    (("</HEADER>\n    <EPISODE>\n      <DECOM>19/07/2020",
      "</HEADER>\n    <AMISSING><MISSING>M</MISSING></AMISSING>\n    <EPISODE>\n      <DECOM>19/07/2020"),
     r"ssda903.xml:line 87: <AMISSING> inside <EXPSSDA903>/<CHILD>, but the DfE return holds it in "
     r"<EXPSSDA903>/<CHILD>/<HEADER>"),
    (("<EXPSSDA903>\n", "<EXPSSDA903>\n<CHILDREN>\n"), r"ssda903.xml:line \d+: <AMISSING> inside "
     r"<EXPSSDA903>/<CHILDREN>/<CHILD>/<HEADER>, but the DfE return holds it in <EXPSSDA903>/<CHILD>/<HEADER>"),
    (("</EXPSSDA903>", ""), r"ssda903.xml:line 12\d: is not well-formed XML \(no element found\)"),
    (("<SEX>2</SEX>\n      <DOB>08/03/2006", "<SEX>2</sex>\n      <DOB>08/03/2006"), r"ssda903.xml:line \d+: is not well-formed XML \(mismatched tag\)"),
])
def test_a_broken_xml_return_is_a_one_line_error_naming_file_line_and_element(tmp_path, change, expected):
    assert FIXTURE_XML.count(change[0]) == 1
    _xml_return(tmp_path, FIXTURE_XML.replace(*change))
    with pytest.raises(EvalkitError, match=expected) as caught:
        load_data(design(tmp_path, window=ONE_YEAR))
    assert "\n" not in str(caught.value)


def test_xml_returns_sit_in_year_folders_once_and_other_xml_is_ignored(tmp_path):
    _xml_return(tmp_path, FIXTURE_XML)
    _xml_return(tmp_path, '<?xml version="1.0"?>\n<Message><Children/></Message>\n', name="cin_census.xml")
    data = load_data(design(tmp_path, window=ONE_YEAR))  # the CIN census file is not a 903 return
    assert data.sources == [str(tmp_path / "E08000036" / "2022" / "ssda903.xml")]
    # the same year as XML and as CSV tables would count every episode twice
    for table in ("header", "episodes", "missing"):
        (tmp_path / "E08000036" / "2022" / f"{table}.csv").write_bytes((CSV_RETURN / "E08000036" / "2022" /
                                                                         f"{table}.csv").read_bytes())
    with pytest.raises(EvalkitError, match="ssda903.xml: holds the Header table of E08000036 for 2022, which .*header.csv holds too"):
        load_data(design(tmp_path, window=ONE_YEAR))
    # an XML return outside an <authority>/<year>/ folder carries neither
    other = tmp_path / "loose"
    other.mkdir()
    (other / "return.xml").write_text(FIXTURE_XML)
    with pytest.raises(EvalkitError, match="return.xml: an XML return is one authority's year"):
        load_data(design(other, window=ONE_YEAR))


def test_a_gzipped_xml_return_reads_the_same(tmp_path):
    import gzip

    folder = tmp_path / "E08000036" / "2022"
    folder.mkdir(parents=True)
    (folder / "ssda903.xml.gz").write_bytes(gzip.compress(FIXTURE_XML.encode()))
    got, expected = read_returns(tmp_path, "g"), read_returns(XML_RETURN, "x")
    for kind in ("header", "episodes", "missing"):
        pd.testing.assert_frame_equal(_plain(getattr(got, kind)), _plain(getattr(expected, kind)))


def test_format_xml_is_only_for_the_ssda903_example(tmp_path):
    from click.testing import CliRunner

    from evalkit.cli import main

    result = CliRunner().invoke(main, ["example", "sicily-smoking-ban", "--format", "xml", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--format xml is only for ssda903" in result.output
