"""A force's missing-persons export with UK day-first dates in local time (issue 16).

examples/police_extract/ holds a synthetic export as a force analyst holds it (its own
column names, ``27/10/2024 01:30`` dates in London wall-clock time, columns evalkit does
not use) and the design that maps it (``data.columns``, ``data.date_format``,
``data.timezone``). These tests check that it validates and runs, and compare evalkit's
durations, periods and clock-change counts with an independent reading of the file's text
in this test (``datetime.strptime`` and :mod:`zoneinfo` arithmetic on aware UTC times).
"""

from __future__ import annotations

import csv
import datetime as dt
import importlib.util
import json
import re
import zoneinfo
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import evalkit
from evalkit.cli import main
from evalkit.data import load_data
from evalkit.data.episodes import parse_timestamps, validate_episodes

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "police_extract"
DESIGN = EXAMPLE / "design.yaml"
LONDON = zoneinfo.ZoneInfo("Europe/London")
UTC = dt.timezone.utc
FORMAT = "%d/%m/%Y %H:%M"


# ----------------------------------------------------------------------------- the independent reading
def _instant(text: str) -> dt.datetime:
    """London wall-clock text as a UTC instant: fold=0 (the first reading of a repeated hour; a
    skipped hour read with the offset before the change), computed with zoneinfo itself."""
    return dt.datetime.strptime(text, FORMAT).replace(tzinfo=LONDON, fold=0).astimezone(UTC)


def _kind(text: str) -> str:
    """'ambiguous', 'nonexistent' or 'plain': by round trips through UTC, not by offsets."""
    naive = dt.datetime.strptime(text, FORMAT)
    back = [naive.replace(tzinfo=LONDON, fold=f).astimezone(UTC).astimezone(LONDON).replace(tzinfo=None) for f in (0, 1)]
    if back[0] != naive and back[1] != naive:
        return "nonexistent"
    instants = {naive.replace(tzinfo=LONDON, fold=f).astimezone(UTC) for f in (0, 1)}
    return "ambiguous" if len(instants) == 2 else "plain"


def _rows() -> list[dict]:
    with open(EXAMPLE / "force_export.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


#: the extract was taken at the end of 31/12/2025 in London (GMT then): 2025-12-31 23:59:59.999999 UTC
EXTRACTED = dt.datetime(2026, 1, 1, tzinfo=LONDON).astimezone(UTC) - dt.timedelta(microseconds=1)


def _expected_hours(row: dict) -> float:
    reported = _instant(row["Reported Date/Time"])
    found = _instant(row["Found Date/Time"]) if row["Found Date/Time"] else None
    end = EXTRACTED if found is None or found > EXTRACTED else found
    return (end - reported).total_seconds() / 3600


@pytest.fixture(scope="module")
def data():
    return load_data(evalkit.load_design(DESIGN))


# ----------------------------------------------------------------------------- the shipped example
def test_the_export_is_what_its_generator_writes(tmp_path):
    spec = importlib.util.spec_from_file_location("make_extract", EXAMPLE / "make_extract.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    written = module.write(tmp_path / "force_export.csv")
    assert written.read_bytes() == (EXAMPLE / "force_export.csv").read_bytes()


def test_the_export_looks_like_a_force_export():
    rows = _rows()
    assert 300 <= len(rows) <= 1500
    header = list(rows[0])
    for column in ("Occurrence Ref", "Person ID", "Reported Date/Time", "Found Date/Time", "Force Area", "Division",
                   "Officer in Case"):
        assert column in header
    assert rows[0]["Reported Date/Time"][2] == "/"  # day-first text, not ISO
    with pytest.raises(evalkit.EvalkitError, match="day-first or month-first"):
        parse_timestamps(pd.Series([r["Reported Date/Time"] for r in rows]), "f", "c", "csv", False)


def test_validate_and_run_work_end_to_end(tmp_path):
    result = CliRunner().invoke(main, ["validate", str(DESIGN)])
    assert result.exit_code == 0, result.output
    assert "local_time (warn)" in result.output
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", str(DESIGN), "--out", str(out)])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "results.json").read_text())
    check = next(c for c in record["checks"] if c["name"] == "local_time")
    assert check["status"] == "warn"
    assert (out / "report.html").exists()
    # the check names counts and rules, never a row or an occurrence reference
    assert "MP/" not in json.dumps(check) and "row" not in check["detail"]


def test_durations_equal_an_independent_computation(data):
    rows = _rows()
    episodes = data.episodes
    assert len(episodes) == len(rows)
    expected = np.array([_expected_hours(rows[r]) for r in episodes["row"]])
    np.testing.assert_allclose(episodes["hours_to_found"].to_numpy(), expected, rtol=0, atol=1e-9)
    censored = np.array([not rows[r]["Found Date/Time"] for r in episodes["row"]])
    assert censored.any()
    np.testing.assert_array_equal(episodes["censored"].to_numpy(), censored)


@pytest.mark.parametrize("reported, found, hours", [
    ("30/03/2025 00:30", "30/03/2025 03:30", 2.0),   # spring: the clocks skip 01:00-02:00
    ("26/10/2025 00:30", "26/10/2025 03:30", 4.0),   # autumn: 01:00-02:00 happens twice
])
def test_an_episode_across_each_clock_change_lasts_its_real_hours(data, reported, found, hours):
    rows = _rows()
    position = next(i for i, r in enumerate(rows) if r["Reported Date/Time"] == reported and r["Found Date/Time"] == found)
    episode = data.episodes.loc[data.episodes["row"] == position].iloc[0]
    assert episode["hours_to_found"] == pytest.approx(hours, abs=1e-12)
    assert (_instant(found) - _instant(reported)) == dt.timedelta(hours=hours)  # the test's own arithmetic agrees


def test_periods_follow_the_local_calendar_date(data):
    """00:30 on 1 April 2025 is 23:30 UTC on 31 March: the report counts in April."""
    rows = _rows()
    position = next(i for i, r in enumerate(rows) if r["Reported Date/Time"] == "01/04/2025 00:30")
    episode = data.episodes.loc[data.episodes["row"] == position].iloc[0]
    assert str(episode["period"]) == "2025-04"
    assert _instant("01/04/2025 00:30").month == 3
    # every unit-month count equals the count by local calendar month, from the text
    expected: dict = {}
    for row in rows:
        local = dt.datetime.strptime(row["Reported Date/Time"], FORMAT)
        key = (row["Division"], f"{local.year}-{local.month:02d}")
        expected[key] = expected.get(key, 0) + 1
    panel = data.panel
    got = {(u, str(p)): int(n) for u, p, n in zip(panel["unit"], panel["period"], panel["reports"]) if n}
    assert got == expected


def test_ambiguous_and_nonexistent_times_are_counted_in_checks(data):
    """Episodes with a date-time (reported or found) at a clock change, counted once each."""
    rows = _rows()
    kinds = [{_kind(r["Reported Date/Time"])} | ({_kind(r["Found Date/Time"])} if r["Found Date/Time"] else set())
             for r in rows]
    ambiguous = sum("ambiguous" in k for k in kinds)
    nonexistent = sum("nonexistent" in k for k in kinds)
    assert ambiguous >= 1 and nonexistent >= 1  # the export plants one of each
    check = next(c for c in data.checks if c.name == "local_time")
    assert check.status == "warn"
    assert check.values == {"timezone": "Europe/London", "ambiguous": ambiguous, "nonexistent": nonexistent,
                            "reordered": 0}
    assert f"{ambiguous} episode" in check.detail and f"{nonexistent} episode" in check.detail
    assert "first occurrence" in check.detail and "offset before the change" in check.detail


def test_an_episode_reported_and_found_in_the_repeated_hour_counts_once():
    raw = _frame(["26/10/2025 01:10", "26/10/2025 01:20", "30/03/2025 01:30"],
                 ["26/10/2025 01:50", "27/10/2025 01:50", "30/03/2025 02:30"])
    raw.attrs["kind"] = "csv"
    formats = {"reported_at": FORMAT, "found_at": FORMAT}
    episodes = validate_episodes(raw, COLUMNS, "e.csv", None, formats, "Europe/London")
    assert episodes.attrs["local_time"] == {"timezone": "Europe/London", "ambiguous": 2, "nonexistent": 1, "reordered": 0}
    # 01:30 in the skipped hour is 01:30 GMT, the same instant as 02:30 BST: no time passed
    assert episodes["hours_to_found"].tolist() == [40 / 60, 25.5, 0.0]  # 00:20 UTC to 01:50 UTC next day


def test_in_the_report_the_counts_pass_disclosure_control(tmp_path):
    out = tmp_path / "out"
    assert CliRunner().invoke(main, ["run", str(DESIGN), "--out", str(out)]).exit_code == 0
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "hour the clocks went back" in html
    assert "fewer than 10 episode(s) with a date-time in the hour the clocks went back" in html
    assert not re.search(r"\b[1-9] episode\(s\)", html)  # small counts are not shown as they are


def test_a_reading_with_no_clock_change_passes(tmp_path):
    folder = _copy_example(tmp_path)
    rows = [r for r in _rows() if _kind(r["Reported Date/Time"]) == "plain"
            and (not r["Found Date/Time"] or _kind(r["Found Date/Time"]) == "plain")]
    assert len(rows) < len(_rows())
    with open(folder / "force_export.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    data = load_data(evalkit.load_design(folder / "design.yaml"))
    check = next(c for c in data.checks if c.name == "local_time")
    assert check.status == "pass" and check.values["ambiguous"] == check.values["nonexistent"] == 0


# ----------------------------------------------------------------------------- without data.timezone
def _copy_example(tmp_path: Path) -> Path:
    folder = tmp_path / "police"
    folder.mkdir()
    for name in ("design.yaml", "force_export.csv"):
        (folder / name).write_bytes((EXAMPLE / name).read_bytes())
    return folder


def test_without_timezone_times_are_taken_as_written(tmp_path):
    folder = _copy_example(tmp_path)
    design = folder / "design.yaml"
    text = design.read_text()
    assert "  timezone: Europe/London\n" in text
    design.write_text(text.replace("  timezone: Europe/London\n", ""))
    data = load_data(evalkit.load_design(design))
    assert not [c for c in data.checks if c.name == "local_time"]
    rows = _rows()
    naive_end = dt.datetime(2025, 12, 31, 23, 59, 59, 999999)
    expected = []
    for r in data.episodes["row"]:
        reported = dt.datetime.strptime(rows[r]["Reported Date/Time"], FORMAT)
        found = rows[r]["Found Date/Time"]
        end = dt.datetime.strptime(found, FORMAT) if found else naive_end
        expected.append((min(end, naive_end) - reported).total_seconds() / 3600)
    np.testing.assert_allclose(data.episodes["hours_to_found"].to_numpy(), expected, rtol=0, atol=1e-9)
    # the wall clock's difference: 3 hours both nights, the hour lost or gained unseen
    spring = rows.index(next(r for r in rows if r["Reported Date/Time"] == "30/03/2025 00:30"))
    assert data.episodes.loc[data.episodes["row"] == spring, "hours_to_found"].iloc[0] == 3.0


def test_timezone_utc_changes_nothing_but_adds_the_check(tmp_path):
    folder = _copy_example(tmp_path)
    design = folder / "design.yaml"
    with_utc = load_data(evalkit.load_design(_rewrite(design, "  timezone: Europe/London\n", "  timezone: UTC\n")))
    without = load_data(evalkit.load_design(_rewrite(design, "  timezone: UTC\n", "")))
    pd.testing.assert_frame_equal(with_utc.panel, without.panel)
    for column in ("reported_at", "found_at", "hours_to_found", "censored", "period"):
        pd.testing.assert_series_equal(with_utc.episodes[column], without.episodes[column])
    assert [c.name for c in with_utc.checks] == ["local_time"] and without.checks == []


def _rewrite(path: Path, old: str, new: str) -> Path:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    return path


# ----------------------------------------------------------------------------- refused in one line
def _one_line_error(args) -> str:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, result.output
    return lines[0]


def test_an_unknown_timezone_is_a_one_line_design_error(tmp_path):
    folder = _copy_example(tmp_path)
    design = _rewrite(folder / "design.yaml", "timezone: Europe/London", "timezone: Europe/Londn")
    line = _one_line_error(["validate", str(design)])
    assert "design.yaml:data.timezone:" in line
    assert "'Europe/Londn' is not an IANA time zone" in line and "did you mean 'Europe/London'" in line
    previous = "Europe/Londn"
    for bad in ("BST", "../../etc/passwd", "localtime", "'+01:00'"):
        _rewrite(design, f"timezone: {previous}", f"timezone: {bad}")
        assert "design.yaml:data.timezone:" in _one_line_error(["validate", str(design)])
        previous = bad


SSDA903 = """\
evalkit: 1
title: t
intervention: {{name: t, mechanism: information_sharing}}
data: {{source: {returns}, layout: ssda903, person_key: ephemeral, frequency: month, {extra}}}
units: {{adoption: {{E08000036: 2021-10, E08000035: 2021-10}}}}
outcomes: [{{name: reports, measure: count}}]
analysis: [{{method: did, outcome: reports, family: poisson}}]
"""


@pytest.mark.parametrize("extra, key", [
    ("date_format: '%d/%m/%Y'", "data.date_format"),
    ("timezone: Europe/London", "data.timezone"),
])
def test_date_keys_are_refused_under_ssda903(tmp_path, extra, key):
    design = tmp_path / "d.yaml"
    design.write_text(SSDA903.format(returns=ROOT / "examples" / "ssda903" / "returns", extra=extra))
    line = _one_line_error(["validate", str(design)])
    assert f"d.yaml:{key}: {key} does not apply to layout ssda903" in line and f"remove {key}" in line


@pytest.mark.parametrize("extra, key", [
    ("date_format: '%Y'", "data.date_format"),
    ("timezone: Europe/London", "data.timezone"),
])
def test_date_keys_are_refused_under_dfe_published(tmp_path, extra, key):
    design = tmp_path / "d.yaml"
    design.write_text(
        "evalkit: 1\ntitle: t\nintervention: {name: t, mechanism: information_sharing}\n"
        f"data: {{source: {ROOT / 'examples' / 'dfe_published' / 'cla_missing_la.csv'}, layout: dfe_published, "
        f"frequency: year, {extra}}}\n"
        "units: {adoption: {E08000036: 2021}}\n"
        "outcomes: [{name: reports, column: number, measure: count}]\n"
        "analysis: [{method: did, outcome: reports, family: poisson}]\n")
    line = _one_line_error(["validate", str(design)])
    assert f"{key} does not apply to layout dfe_published" in line


def test_timezone_is_refused_for_a_panel(tmp_path):
    (tmp_path / "p.csv").write_text("unit,month,n\nA,2021-01,1\n")
    design = tmp_path / "d.yaml"
    design.write_text("evalkit: 1\ntitle: t\nintervention: {name: t, start: 2021-01}\n"
                      "data: {source: p.csv, layout: panel, timezone: Europe/London, columns: {unit: unit, time: month}}\n"
                      "units: {treated: [A]}\noutcomes: [{name: n, column: n, measure: count}]\n"
                      "analysis: [{method: its, outcome: n, family: poisson, errors: none}]\n")
    assert "data.timezone: data.timezone does not apply to layout panel" in _one_line_error(["validate", str(design)])


# ----------------------------------------------------------------------------- other sources and extracted_at
def _frame(reported, found) -> pd.DataFrame:
    raw = pd.DataFrame({"unit": ["A"] * len(reported), "reported": reported, "found": found})
    raw.attrs["kind"] = "parquet"
    return raw


COLUMNS = {"unit": "unit", "reported_at": "reported", "found_at": "found"}


def test_zone_less_timestamps_from_parquet_follow_the_timezone(tmp_path):
    reported = pd.to_datetime(["2025-03-30 00:30", "2025-10-26 00:30"])
    found = pd.to_datetime(["2025-03-30 03:30", "2025-10-26 03:30"])
    path = tmp_path / "e.parquet"
    _frame(reported, found).to_parquet(path)
    from evalkit.data.sources import read_table

    raw = read_table(path, "e.parquet", ["unit", "reported", "found"], "data.source")
    local = validate_episodes(raw, COLUMNS, "e.parquet", None, timezone="Europe/London")
    assert local["hours_to_found"].tolist() == [2.0, 4.0]
    assert validate_episodes(raw, COLUMNS, "e.parquet", None)["hours_to_found"].tolist() == [3.0, 3.0]


def test_zone_aware_timestamps_keep_their_own_zone():
    # 23:30 UTC on 31 March is April in London: the period follows the local date, the
    # duration the instants, whatever data.timezone says
    reported = pd.to_datetime(["2025-03-31 23:30"]).tz_localize("UTC")
    found = pd.to_datetime(["2025-04-01 01:30"]).tz_localize("UTC")
    episodes = validate_episodes(_frame(reported, found), COLUMNS, "e", None, timezone="Europe/London")
    assert episodes["hours_to_found"].tolist() == [2.0]
    assert episodes["reported_at"].iloc[0] == pd.Timestamp("2025-04-01 00:30")  # London's wall clock
    # a database's aware values arrive as UTC with the column named in attrs (evalkit/data/sql.py)
    raw = _frame(reported.tz_localize(None), pd.to_datetime(["2025-04-01 02:30"]))
    raw.attrs["utc_columns"] = ["reported"]
    episodes = validate_episodes(raw, COLUMNS, "e", None, timezone="Europe/London")
    assert episodes["hours_to_found"].tolist() == [2.0]  # 02:30 BST found = 01:30 UTC


def test_sql_marks_its_zone_aware_columns():
    from evalkit.data.sql import _plain_column

    aware = pd.Series([dt.datetime(2025, 4, 1, 1, 30, tzinfo=UTC)], dtype=object)
    naive = pd.Series([dt.datetime(2025, 4, 1, 1, 30)], dtype=object)
    assert _plain_column(aware).attrs.get("utc") is True
    assert not _plain_column(naive).attrs.get("utc")
    assert _plain_column(aware).iloc[0] == _plain_column(naive).iloc[0]


def test_extracted_at_is_local_time_too():
    """An open episode is censored at the extract's local time, on the real clock."""
    raw = _frame(["26/10/2025 00:30"], [""])
    raw.attrs["kind"] = "csv"
    extracted = pd.Timestamp("2025-10-26 03:30")
    formats = {"reported_at": FORMAT, "found_at": FORMAT}
    local = validate_episodes(raw, COLUMNS, "e.csv", extracted, formats, "Europe/London")
    assert local["censored"].tolist() == [True] and local["hours_to_found"].tolist() == [4.0]
    assert validate_episodes(raw, COLUMNS, "e.csv", extracted, formats)["hours_to_found"].tolist() == [3.0]


@settings(max_examples=200, deadline=None)
@given(st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 12, 31)).map(
    lambda d: d.replace(second=0, microsecond=0)),
       st.sampled_from(["Europe/London", "Australia/Lord_Howe", "America/New_York", "Asia/Kolkata"]))
def test_any_local_time_is_the_instant_zoneinfo_gives(moment, zone):
    parsed = parse_timestamps(pd.Series([moment.strftime(FORMAT)]), "f", "c", "csv", False, FORMAT, zone)
    expected = moment.replace(tzinfo=zoneinfo.ZoneInfo(zone), fold=0).astimezone(UTC).replace(tzinfo=None)
    assert parsed.iloc[0] == pd.Timestamp(expected)


def test_a_local_time_at_the_edge_of_the_nanosecond_range_is_one_line():
    with pytest.raises(evalkit.EvalkitError, match=r"^f:row 3: '2262-04-11 23:00:00' in column 'c' is outside the years "
                       r"1678-2261 once read as America/New_York time"):
        parse_timestamps(pd.Series(["2000-01-01 00:00", "2262-04-11 23:00"]), "f", "c", "csv", False, None,
                         "America/New_York")


def test_the_docs_give_the_example_s_own_numbers(data):
    text = (ROOT / "docs" / "police-extracts.md").read_text(encoding="utf-8")
    check = next(c for c in data.checks if c.name == "local_time")
    assert f"{data.rows} occurrences" in text
    assert f"{check.values['ambiguous']} ambiguous and {check.values['nonexistent']} nonexistent" in text
    assert f"open at extraction (censored): {data.censored}" in text
    assert "police-extracts.md" in (ROOT / "docs" / "data.md").read_text(encoding="utf-8")
    assert "police-extracts.md" in (ROOT / "README.md").read_text(encoding="utf-8")
    assert "`data.timezone`" in (ROOT / "docs" / "design-file.md").read_text(encoding="utf-8")


def test_an_extract_time_with_a_zone_is_placed_on_the_local_calendar(tmp_path):
    """23:30 UTC on 30 June is 00:30 BST on 1 July: June is over by London's calendar."""
    folder = _copy_example(tmp_path)
    design = _rewrite(folder / "design.yaml", "extracted_at: 2025-12-31", "extracted_at: 2025-06-30T23:30:00+00:00")
    _rewrite(design, "window: {start: 2023-01, end: 2025-12}", "window: {start: 2023-01, end: 2025-06}")
    cut = dt.datetime(2025, 6, 30, 23, 30, tzinfo=UTC)
    with pytest.raises(evalkit.EvalkitError, match=r"after the extract was taken \(2025-07-01\)"):  # London's date
        load_data(evalkit.load_design(design))
    rows = [r for r in _rows() if _instant(r["Reported Date/Time"]) <= cut]
    with open(folder / "force_export.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    data = load_data(evalkit.load_design(design))
    assert str(data.periods[-1]) == "2025-06"
    _rewrite(design, "  timezone: Europe/London\n", "")
    with pytest.raises(evalkit.EvalkitError, match="window ends with 2025-06, which is not over"):
        evalkit.load_design(design)


# ----------------------------------------------------------------------------- review of issue 16 (b11ebb8)
FORMATS = {"reported_at": FORMAT, "found_at": FORMAT}


def _csv_frame(reported, found) -> pd.DataFrame:
    raw = _frame(reported, found)
    raw.attrs["kind"] = "csv"
    return raw


def test_a_time_in_the_skipped_hour_found_soon_after_is_not_refused():
    """01:30 on 30 March 2025 is read as 02:30 BST; found at 02:10 BST, it would be found before
    it was reported, though the file's own times are in order: 0 hours, counted in the check."""
    raw = _csv_frame(["30/03/2025 00:10", "30/03/2025 01:30", "30/03/2025 01:40"],
                     ["30/03/2025 00:20", "30/03/2025 02:10", "30/03/2025 03:40"])
    episodes = validate_episodes(raw, COLUMNS, "e.csv", None, FORMATS, "Europe/London")
    assert episodes["hours_to_found"].tolist() == [10 / 60, 0.0, 1.0]
    assert episodes["found_at"].iloc[1] == episodes["reported_at"].iloc[1] == pd.Timestamp("2025-03-30 02:30")
    assert not episodes["censored"].any()
    assert episodes.attrs["local_time"] == {"timezone": "Europe/London", "ambiguous": 0, "nonexistent": 2,
                                            "reordered": 1}


def test_the_example_with_such_an_episode_runs_and_says_so(tmp_path):
    folder = _copy_example(tmp_path)
    export = folder / "force_export.csv"
    lines = export.read_text(encoding="utf-8").split("\n")
    assert ",30/03/2025 01:30,30/03/2025 09:15," in lines[720]  # the file's row 721
    lines[720] = lines[720].replace("30/03/2025 09:15", "30/03/2025 02:10")
    export.write_text("\n".join(lines), encoding="utf-8")
    data = load_data(evalkit.load_design(folder / "design.yaml"))
    episode = data.episodes.loc[data.episodes["row"] == 719].iloc[0]
    assert episode["hours_to_found"] == 0.0 and not episode["censored"]
    check = next(c for c in data.checks if c.name == "local_time")
    assert check.status == "warn" and check.values["reordered"] == 1
    assert "1 episode(s) found, as written, after they were reported" in check.detail
    assert "0 hours to found" in check.detail


@pytest.mark.parametrize("reported, found, shown", [
    # a genuine reversal: out of order as written and as read, whether or not a time is at a change
    ("30/03/2025 01:40", "30/03/2025 01:30", "found_at (30/03/2025 01:30) is before reported_at (30/03/2025 01:40)"),
    ("26/10/2025 01:50", "26/10/2025 01:10", "found_at (26/10/2025 01:10) is before reported_at (26/10/2025 01:50)"),
    ("12/05/2025 10:00", "12/05/2025 09:00", "found_at (12/05/2025 09:00) is before reported_at (12/05/2025 10:00)"),
])
def test_a_genuine_reversal_is_refused_with_the_values_as_written(reported, found, shown):
    raw = _csv_frame(["01/05/2025 10:00", reported], ["01/05/2025 11:00", found])
    with pytest.raises(evalkit.EvalkitError, match=r"^e\.csv:row 3: " + re.escape(shown)):
        validate_episodes(raw, COLUMNS, "e.csv", None, FORMATS, "Europe/London")
    with pytest.raises(evalkit.EvalkitError, match=r"^e\.csv:row 3: " + re.escape(shown)):  # and without a zone
        validate_episodes(raw, COLUMNS, "e.csv", None, FORMATS)


def test_found_at_a_skipped_time_after_a_later_report_follows_the_rule():
    """The converse is not refused: reported 02:10 BST (01:10 UTC), found at 01:30 in the skipped
    hour, read by the rule as 01:30 GMT (01:30 UTC), 20 minutes later; the clock not yet put
    forward is what such a time means."""
    raw = _csv_frame(["30/03/2025 02:10"], ["30/03/2025 01:30"])
    episodes = validate_episodes(raw, COLUMNS, "e.csv", None, FORMATS, "Europe/London")
    assert episodes["hours_to_found"].tolist() == [pytest.approx(20 / 60, abs=1e-12)]
    assert episodes.attrs["local_time"]["reordered"] == 0 and episodes.attrs["local_time"]["nonexistent"] == 1


def test_a_reversal_between_zoned_values_is_shown_as_written():
    raw = _csv_frame(["2025-05-01T10:00+01:00"], ["2025-05-01T08:30Z"])  # 09:00 UTC and 08:30 UTC
    with pytest.raises(evalkit.EvalkitError, match=re.escape("found_at (2025-05-01T08:30Z) is before reported_at "
                                                             "(2025-05-01T10:00+01:00)")):
        validate_episodes(raw, COLUMNS, "e.csv", None, None, "Europe/London")


@pytest.mark.parametrize("utc_columns", [[], ["reported"]])
def test_a_zoned_value_whose_local_time_is_past_2262_is_one_line(utc_columns):
    # 23:00 UTC on 11 April 2262 is 08:00 on the 12th in Tokyo: past what evalkit's clock holds
    raw = _csv_frame(["2262-04-10T12:00Z", "2262-04-11T23:00Z"], ["", ""])
    if utc_columns:  # a database's zone-aware values arrive as UTC (evalkit/data/sql.py)
        raw = _frame(pd.to_datetime(["2262-04-10 12:00", "2262-04-11 23:00"]), [pd.NaT, pd.NaT])
        raw.attrs["utc_columns"] = utc_columns
    value = "2262-04-11 23:00:00" if utc_columns else "2262-04-11T23:00Z"
    row = "row 2" if utc_columns else "row 3"
    with pytest.raises(evalkit.EvalkitError, match=rf"^e:{row}: '{value}' in column 'reported' is outside the years "
                       r"1678-2261 once read as Asia/Tokyo time; correct the date-time$"):
        validate_episodes(raw, COLUMNS, "e", pd.Timestamp("2262-04-11T23:30Z"), None, "Asia/Tokyo")
    # in New York the same instants are on the clock: read
    episodes = validate_episodes(raw, COLUMNS, "e", pd.Timestamp("2262-04-11T23:30Z"), None, "America/New_York")
    assert episodes["hours_to_found"].tolist() == [35.5, 0.5]


@pytest.mark.parametrize("extracted", [pd.Timestamp("2262-04-11 23:59:59.999999"), pd.Timestamp("2262-04-11T23:00Z")])
def test_an_extract_time_past_2262_on_the_local_clock_is_one_line(extracted):
    raw = _csv_frame(["2025-05-01 10:00"], [""])
    zone = "America/New_York" if extracted.tzinfo is None else "Asia/Tokyo"
    with pytest.raises(evalkit.EvalkitError, match=rf"^e:data\.extracted_at: .* is outside the years 1678-2261 once "
                       rf"read as {zone} time; correct data\.extracted_at$"):
        validate_episodes(raw, COLUMNS, "e", extracted, None, zone)


@pytest.mark.parametrize("extracted_at, zone", [("2262-04-11", "America/New_York"),
                                                ("2262-04-11T23:00:00+00:00", "Asia/Tokyo")])
def test_a_design_whose_extract_time_is_past_2262_locally_is_one_line(tmp_path, extracted_at, zone):
    folder = _copy_example(tmp_path)
    design = _rewrite(folder / "design.yaml", "extracted_at: 2025-12-31", f"extracted_at: {extracted_at}")
    _rewrite(design, "timezone: Europe/London", f"timezone: {zone}")
    line = _one_line_error(["validate", str(design)])
    assert "design.yaml:data.extracted_at:" in line
    written = re.escape(extracted_at).replace("T", "[T ]")  # YAML reads a date-time with a zone as one
    assert re.search(rf"extracted_at '{written}' is outside the years 1678-2261 once read as {zone} time", line)


@pytest.mark.parametrize("zone", ["America/New_York", "Australia/Lord_Howe"])
def test_the_check_s_words_do_not_speak_of_london_for_another_zone(zone):
    from evalkit.data.episodes import clock_change_words

    words = clock_change_words({"timezone": zone, "ambiguous": 2, "nonexistent": 1, "reordered": 1})
    assert zone in words
    for london in ("Europe/London", "BST", "GMT"):
        assert london not in words
    assert "first occurrence" in words and "offset before the change" in words


def test_the_docs_say_what_the_code_does_with_zones():
    text = " ".join((ROOT / "docs" / "police-extracts.md").read_text(encoding="utf-8").split())
    # tzdata is installed with evalkit: nobody needs to install it by hand
    assert "install the `tzdata` package" not in text
    assert "`tzdata`" in text and "installed with evalkit" in text
    assert '"tzdata' in (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    # one column mixing zoned and zone-less values is refused with data.timezone too
    assert "refused with or without `data.timezone`" in text
    raw = _csv_frame(["2025-05-01 10:00", "2025-05-01T11:00+01:00"], ["", ""])
    with pytest.raises(evalkit.EvalkitError, match="has a time zone, but earlier date-times do not"):
        validate_episodes(raw, COLUMNS, "e", pd.Timestamp("2025-06-01"), None, "Europe/London")
    # a zoned column beside a zone-less one is accepted with it
    raw = _csv_frame(["2025-05-01T10:00+01:00"], ["2025-05-01 12:00"])
    assert validate_episodes(raw, COLUMNS, "e", None, None, "Europe/London")["hours_to_found"].tolist() == [2.0]
