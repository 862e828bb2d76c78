"""Hostile and broken input: one line, naming the file and row, no traceback, nothing written.

Every case starts from a small valid project (a design, an episode extract and an
exposure file, or a panel), breaks one thing, runs ``evalkit run`` and checks:

* exit status 1 and exactly one line on stderr, ``error: <file>[:<row or key>]: ...``;
* the file at fault is named, and the row (or design key) where there is one;
* no traceback and no "internal error" (which would be a bug of ours);
* the output folder was not created.

A property-based test then applies random edits (hypothesis) to the valid files and
checks that loading them never raises anything but an EvalkitError.
"""

from __future__ import annotations

import gzip
import re
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import evalkit
from evalkit.cli import main
from evalkit.data import load_data

DESIGN = """\
evalkit: 1
title: Hostile input test
intervention: {name: Test SPOC, mechanism: single_point_of_contact, start: 2021-01}
data:
  source: episodes.csv
  layout: episodes
  columns: {unit: force, reported_at: reported_at, found_at: found_at, person: child_id,
            episode: episode_id, age: age, looked_after: looked_after}
  extracted_at: 2021-12-31
  frequency: month
  window: {start: 2020-01, end: 2021-12}
  exposure:
    source: population.csv
    columns: {unit: force, time: year, value: children}
units:
  treated: [A]
outcomes:
  - {name: reports, measure: count, per: 1000}
analysis:
  - {method: its, outcome: reports, family: poisson, errors: none}
"""

PANEL_DESIGN = """\
evalkit: 1
title: Hostile panel test
intervention: {name: Test SPOC, start: 2021-01}
data: {source: panel.csv, layout: panel, columns: {unit: unit, time: month, exposure: pop}}
units: {treated: [A]}
outcomes: [{name: reports, column: reports, measure: count}]
analysis: [{method: its, outcome: reports, family: poisson, errors: none}]
"""

HEADER = "force,reported_at,found_at,child_id,episode_id,age,looked_after"


def episode_lines() -> list[str]:
    """The valid extract: areas A and B, one or two episodes a month in 2020-2021."""
    lines = [HEADER]
    number = 0
    for year in (2020, 2021):
        for month in range(1, 13):
            for force, day, child in (("A", 3, "c1"), ("B", 5, "c2"), ("A", 9, f"c{month + 2}")):
                number += 1
                lines.append(f"{force},{year}-{month:02d}-{day:02d} 10:00,{year}-{month:02d}-{day:02d} 18:30,"
                             f"{child},E{number:04d},{10 + month % 7},{'yes' if child == 'c1' else 'no'}")
    return lines


POPULATION = "force,year,children\nA,2020,1000\nA,2021,1010\nB,2020,2000\nB,2021,2020\n"


def panel_lines() -> list[str]:
    lines = ["unit,month,reports,pop"]
    for unit in ("A", "B"):
        for year in (2020, 2021):
            for month in range(1, 13):
                lines.append(f"{unit},{year}-{month:02d},{20 + month},{1000}")
    return lines


def make_project(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "episodes.csv").write_text("\n".join(episode_lines()) + "\n", encoding="utf-8")
    (folder / "population.csv").write_text(POPULATION, encoding="utf-8")
    (folder / "panel.csv").write_text("\n".join(panel_lines()) + "\n", encoding="utf-8")
    (folder / "panel.yaml").write_text(PANEL_DESIGN, encoding="utf-8")
    (folder / "design.yaml").write_text(DESIGN, encoding="utf-8")
    return folder / "design.yaml"


# ----------------------------------------------------------------------------- edits
def set_row(path: Path, row: int, text: str) -> None:
    """Replace spreadsheet row ``row`` (the header is row 1) of a text file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[row - 1] = text
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def edit_row(path: Path, row: int, old: str, new: str) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert old in lines[row - 1], (old, lines[row - 1])
    lines[row - 1] = lines[row - 1].replace(old, new, 1)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def edit_design(path: Path, old: str, new: str, name: str = "design.yaml") -> None:
    target = path / name
    text = target.read_text(encoding="utf-8")
    assert old in text, old
    target.write_text(text.replace(old, new, 1), encoding="utf-8")


def to_parquet(folder: Path, frame: pd.DataFrame) -> None:
    frame.to_parquet(folder / "episodes.parquet", index=False)
    edit_design(folder, "source: episodes.csv", "source: episodes.parquet")


def valid_frame() -> pd.DataFrame:
    lines = episode_lines()
    rows = [line.split(",") for line in lines[1:]]
    frame = pd.DataFrame(rows, columns=lines[0].split(","))
    frame["reported_at"] = pd.to_datetime(frame["reported_at"])
    frame["found_at"] = pd.to_datetime(frame["found_at"])
    return frame


# Each case: (id, how to break the project, the design to run, expected file, expected
# row or key (None: none applies), a pattern the message must match)
def _empty_file(d):
    (d / "episodes.csv").write_bytes(b"")


def _header_only(d):
    (d / "episodes.csv").write_text(HEADER + "\n")


def _binary(d):
    (d / "episodes.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4)


def _nul_in_text(d):
    text = (d / "episodes.csv").read_bytes().replace(b"c2,E0005", b"c2\x00,E0005", 1)
    (d / "episodes.csv").write_bytes(text)


def _semicolons(d):
    (d / "episodes.csv").write_text("\n".join(line.replace(",", ";") for line in episode_lines()) + "\n")


def _latin1(d):
    lines = episode_lines()
    lines[6] = lines[6].replace(",c4,", ",c\u00e9,")
    (d / "episodes.csv").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))


def _huge_field(d):
    edit_row(d / "episodes.csv", 9, ",c2,", "," + "x" * 50_000 + ",")


def _ragged(d):
    edit_row(d / "episodes.csv", 12, ",no", ",no,surplus")


def _open_quote(d):
    edit_row(d / "episodes.csv", 21, ",c2,", ',"c2,')


def _gzip_corrupt(d):
    (d / "episodes.csv.gz").write_bytes(b"\x1f\x8b\x08\x00" + b"not really gzip" * 10)
    edit_design(d, "source: episodes.csv", "source: episodes.csv.gz")


def _gzip_truncated(d):
    data = gzip.compress((d / "episodes.csv").read_bytes())
    (d / "episodes.csv.gz").write_bytes(data[: len(data) // 2])
    edit_design(d, "source: episodes.csv", "source: episodes.csv.gz")


def _parquet_corrupt(d):
    (d / "episodes.parquet").write_bytes(b"PAR1" + b"\x00garbage" * 50 + b"PAR1")
    edit_design(d, "source: episodes.csv", "source: episodes.parquet")


def _parquet_numeric_dates(d):
    frame = valid_frame()
    frame["reported_at"] = np.arange(len(frame)) + 1_600_000_000
    to_parquet(d, frame)


def _parquet_duplicate_episode(d):
    frame = valid_frame()
    frame.loc[30, "episode_id"] = frame.loc[4, "episode_id"]
    to_parquet(d, frame)


def _parquet_huge_field(d):
    frame = valid_frame()
    frame.loc[7, "child_id"] = "y" * 20_000
    to_parquet(d, frame)


def _pop(d, old, new):
    text = (d / "population.csv").read_text().replace(old, new, 1)
    (d / "population.csv").write_text(text)


def _panel(d, row, old, new):
    edit_row(d / "panel.csv", row, old, new)


CASES = [
    # --- dates
    ("dates_out_of_order", lambda d: edit_row(d / "episodes.csv", 5, "2020-02-03 18:30", "2020-02-01 08:00"),
     "design.yaml", "episodes.csv", "row 5", r"found_at .* is before reported_at"),
    ("unparseable_date", lambda d: edit_row(d / "episodes.csv", 7, "2020-02-09 10:00", "9th Feb"),
     "design.yaml", "episodes.csv", "row 7", r"'9th Feb' in column 'reported_at' is not a date-time"),
    ("impossible_date", lambda d: edit_row(d / "episodes.csv", 8, "2020-03-03 10:00", "2020-13-45 10:00"),
     "design.yaml", "episodes.csv", "row 8", r"'2020-13-45 10:00' .* is not a date-time"),
    ("timezone_mixed", lambda d: edit_row(d / "episodes.csv", 10, "2020-03-09 10:00", "2020-03-09T10:00+01:00"),
     "design.yaml", "episodes.csv", "row 10", r"has a time zone, but earlier date-times do not"),
    ("reported_after_extract", lambda d: edit_row(d / "episodes.csv", 73, "2021-12-09 10:00,2021-12-09 18:30",
                                                  "2022-01-09 10:00,2022-01-09 18:30"),
     "design.yaml", "episodes.csv", "row 73", r"after the extract was taken"),
    ("empty_reported_at", lambda d: edit_row(d / "episodes.csv", 11, "2020-04-03 10:00", ""),
     "design.yaml", "episodes.csv", "row 11", r"column 'reported_at' is empty"),
    ("parquet_numeric_dates", _parquet_numeric_dates, "design.yaml", "episodes.parquet", "row 1",
     r"column 'reported_at' holds numbers, not date-times"),
    # --- identifiers and values
    ("duplicate_episode_id", lambda d: edit_row(d / "episodes.csv", 40, ",E0039,", ",E0003,"),
     "design.yaml", "episodes.csv", "row 40", r"episode id 'E0003' appears twice"),
    ("parquet_duplicate_episode_id", _parquet_duplicate_episode, "design.yaml", "episodes.parquet", "row 31",
     r"episode id 'E0005' appears twice"),
    ("empty_unit", lambda d: set_row(d / "episodes.csv", 14, ",2020-05-03 10:00,2020-05-03 18:30,c1,E0013,15,yes"),
     "design.yaml", "episodes.csv", "row 14", r"column 'force' is empty"),
    ("flag_not_yes_no", lambda d: edit_row(d / "episodes.csv", 15, ",no", ",maybe"),
     "design.yaml", "episodes.csv", "row 15", r"'maybe' in column 'looked_after' is not yes/no"),
    ("age_not_a_number", lambda d: edit_row(d / "episodes.csv", 16, ",15,", ",thirteen,"),
     "design.yaml", "episodes.csv", "row 16", r"'thirteen' in column 'age' is not an age"),
    ("age_negative", lambda d: edit_row(d / "episodes.csv", 17, ",16,", ",-3,"),
     "design.yaml", "episodes.csv", "row 17", r"age -3 in column 'age' is outside"),
    # --- broken files
    ("empty_file", _empty_file, "design.yaml", "episodes.csv", None, r"the file is empty"),
    ("header_only", _header_only, "design.yaml", "episodes.csv", None, r"has a header but no rows"),
    ("binary_file", _binary, "design.yaml", "episodes.csv", "row 3", r"is a binary file"),
    ("nul_byte_in_text", _nul_in_text, "design.yaml", "episodes.csv", "row 6", r"is a binary file"),
    ("wrong_delimiter", _semicolons, "design.yaml", "episodes.csv", "row 1", r"separated by semicolons, not commas"),
    ("wrong_encoding", _latin1, "design.yaml", "episodes.csv", "row 7", r"is not UTF-8 text"),
    ("huge_single_field", _huge_field, "design.yaml", "episodes.csv", "row 9", r"is 50,000 characters long"),
    ("parquet_huge_field", _parquet_huge_field, "design.yaml", "episodes.parquet", "row 8", r"is 20,000 characters long"),
    ("ragged_row", _ragged, "design.yaml", "episodes.csv", "row 12", r"has 8 fields but the header has 7"),
    ("short_row", lambda d: edit_row(d / "episodes.csv", 13, ",14,no", ""),
     "design.yaml", "episodes.csv", "row 13", r"has 5 fields but the header has 7"),
    ("blank_line_inside", lambda d: set_row(d / "episodes.csv", 18, ""),
     "design.yaml", "episodes.csv", "row 18", r"a blank line .* inside the data"),
    ("duplicate_header", lambda d: edit_row(d / "episodes.csv", 1, "episode_id", "child_id"),
     "design.yaml", "episodes.csv", "row 1", r"column 'child_id' appears twice in the header"),
    ("unclosed_quote", _open_quote, "design.yaml", "episodes.csv", "row 21", r"quoted value is never closed"),
    ("gzip_corrupt", _gzip_corrupt, "design.yaml", "episodes.csv.gz", None, r"not a valid gzip file"),
    ("gzip_truncated", _gzip_truncated, "design.yaml", "episodes.csv.gz", None, r"gzip|cannot be read"),
    ("parquet_corrupt", _parquet_corrupt, "design.yaml", "episodes.parquet", None, r"cannot be read as Parquet"),
    ("missing_column", lambda d: edit_row(d / "episodes.csv", 1, "found_at", "foundat"),
     "design.yaml", "episodes.csv", None, r"column 'found_at' not found \(did you mean 'foundat'\?\)"),
    ("file_not_found", lambda d: (d / "episodes.csv").unlink(), "design.yaml", "episodes.csv", None, r"file not found"),
    ("source_is_a_folder", lambda d: ((d / "episodes.csv").unlink(), (d / "episodes.csv").mkdir()),
     "design.yaml", "episodes.csv", None, r"is a folder"),
    ("unknown_file_type", lambda d: edit_design(d, "source: episodes.csv", "source: episodes.xlsx"),
     "design.yaml", "episodes.xlsx", None, r"unknown file type|file not found"),
    # --- exposure
    ("nan_exposure", lambda d: _pop(d, "A,2021,1010", "A,2021,NaN"),
     "design.yaml", "population.csv", "row 3", r"column 'children' is missing a value"),
    ("negative_exposure", lambda d: _pop(d, "B,2020,2000", "B,2020,-2000"),
     "design.yaml", "population.csv", "row 4", r"exposure 'children' is -2000, but it must be above 0"),
    ("zero_exposure", lambda d: _pop(d, "A,2020,1000", "A,2020,0"),
     "design.yaml", "population.csv", "row 2", r"exposure 'children' is 0, but it must be above 0"),
    ("exposure_not_a_number", lambda d: _pop(d, "B,2021,2020", "B,2021,lots"),
     "design.yaml", "population.csv", "row 5", r"'lots' in column 'children' is not a number"),
    ("exposure_duplicate_year", lambda d: _pop(d, "B,2021,2020", "B,2020,2020"),
     "design.yaml", "population.csv", "row 5", r"unit 'B' has time 2020 twice"),
    ("exposure_missing_year", lambda d: _pop(d, "B,2021,2020\n", ""),
     "design.yaml", "population.csv", None, r"no exposure for unit 'B' in 2021"),
    # --- panel
    ("panel_duplicate_unit_period", lambda d: _panel(d, 5, "A,2020-04", "A,2020-03"),
     "panel.yaml", "panel.csv", "row 5", r"unit 'A' has period 2020-03 twice"),
    ("panel_missing_unit_period",
     lambda d: (d / "panel.csv").write_text("\n".join(line for i, line in enumerate(panel_lines()) if i != 29) + "\n"),
     "panel.yaml", "panel.csv", None, r"unit 'B' has no row for period 2020-05"),
    ("panel_negative_count", lambda d: _panel(d, 7, "A,2020-06,26", "A,2020-06,-26"),
     "panel.yaml", "panel.csv", "row 7", r"count 'reports' is negative"),
    ("panel_infinite_count", lambda d: _panel(d, 8, "A,2020-07,27", "A,2020-07,inf"),
     "panel.yaml", "panel.csv", "row 8", r"infinite value"),
    ("panel_nan_exposure", lambda d: _panel(d, 9, "A,2020-08,28,1000", "A,2020-08,28,nan"),
     "panel.yaml", "panel.csv", "row 9", r"column 'pop' is missing a value"),
    ("panel_zero_exposure", lambda d: _panel(d, 10, "A,2020-09,29,1000", "A,2020-09,29,0"),
     "panel.yaml", "panel.csv", "row 10", r"exposure 'pop' is 0"),
    ("panel_bad_period", lambda d: _panel(d, 11, "A,2020-10", "A,Octember"),
     "panel.yaml", "panel.csv", "row 11", r"'Octember' in column 'month' is not a period"),
    # --- the design
    ("design_not_a_mapping", lambda d: (d / "design.yaml").write_text("- just\n- a list\n"),
     "design.yaml", "design.yaml", None, r"the design is not a mapping"),
    ("design_is_a_scalar", lambda d: (d / "design.yaml").write_text("42\n"),
     "design.yaml", "design.yaml", None, r"the design is not a mapping"),
    ("design_invalid_yaml", lambda d: edit_design(d, "units:\n  treated: [A]", "units:\n  treated: [A"),
     "design.yaml", "design.yaml", None, r"not valid YAML"),
    ("design_data_not_a_mapping", lambda d: (d / "design.yaml").write_text(
        DESIGN.split("data:")[0] + "data: [1, 2]\nunits: {treated: [A]}\noutcomes: [{name: reports, measure: count}]\n"
        "analysis: [{method: its, outcome: reports}]\n"),
     "design.yaml", "design.yaml", "data", r"."),
    ("design_unknown_key", lambda d: edit_design(d, "frequency: month", "frequncy: month"),
     "design.yaml", "design.yaml", "data.frequncy", r"unknown key 'frequncy' \(did you mean 'frequency'\?\)"),
    ("unknown_unit", lambda d: edit_design(d, "treated: [A]", "treated: [Northshire]"),
     "design.yaml", "design.yaml", "units.treated", r"unit 'Northshire' is not in the data"),
    ("unknown_time_unit", lambda d: edit_design(d, "frequency: month", "frequency: fortnight"),
     "design.yaml", "design.yaml", "data.frequency", r"'fortnight' is not allowed"),
    ("unknown_hours_unit", lambda d: edit_design(d, "- {name: reports, measure: count, per: 1000}",
                                                  "- {name: reports, measure: count, per: 1000}\n"
                                                  "  - {name: found_24h, measure: share_found_within, hours: 24h}"),
     "design.yaml", "design.yaml", "outcomes[1].hours", r"24h"),
    ("window_backwards", lambda d: edit_design(d, "window: {start: 2020-01, end: 2021-12}", "window: {start: 2021-12, end: 2020-01}"),
     "design.yaml", "design.yaml", "data.window", r"window ends \(2020-01\) before it starts"),
    ("window_outside_the_data", lambda d: (edit_design(d, "window: {start: 2020-01, end: 2021-12}", "window: {start: 2015-01, end: 2016-12}"),
                                           edit_design(d, "start: 2021-01", "start: 2016-01")),
     "design.yaml", "episodes.csv", None, r"no episode is reported inside the window"),
    ("window_overlaps_after_extract", lambda d: edit_design(d, "extracted_at: 2021-12-31", "extracted_at: 2021-12-15"),
     "design.yaml", "design.yaml", "data", r"window ends with 2021-12, which is not over when the extract was taken"),
    ("no_pre_period", lambda d: edit_design(d, "start: 2021-01", "start: 2020-01"),
     "design.yaml", "design.yaml", "units", r"no pre-period"),
    ("pseudonym_key_missing", lambda d: edit_design(d, "frequency: month", "person_key_env: EVALKIT_TEST_UNSET_KEY\n  frequency: month"),
     "design.yaml", "design.yaml", "data.columns.person", r"EVALKIT_TEST_UNSET_KEY is not set"),
    ("database_password_in_design", lambda d: edit_design(d, "source: episodes.csv",
                                                          "source: postgresql://evalkit:hunter2-secret@127.0.0.1:1/evalkit\n  table: episodes"),
     "design.yaml", "design.yaml", "data", r"holds a password"),
]


def _expected_place(file: str, location: str | None) -> str:
    return re.escape(file) + (re.escape(f":{location}:") if location else r"(:[^:]+)?:")


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_hostile_input_is_one_line_with_file_and_row(case, tmp_path):
    name, breaker, design_name, file, location, pattern = case
    folder = tmp_path / "project"
    make_project(folder)
    breaker(folder)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", str(folder / design_name), "--out", str(out)])
    stderr = result.stderr
    assert result.exit_code == 1, (result.exit_code, result.output)
    lines = stderr.strip("\n").split("\n")
    assert len(lines) == 1, stderr
    line = lines[0]
    assert line.startswith("error: "), line
    assert "Traceback" not in result.output and "internal error" not in line, line
    assert re.search(r"error: (\S*/)?" + _expected_place(file, location), line), (file, location, line)
    assert re.search(pattern, line), (pattern, line)
    assert "hunter2-secret" not in result.output
    assert not out.exists(), "a failed run wrote its output folder"


def test_the_catalogue_is_large_enough_and_distinct():
    assert len(CASES) >= 30
    assert len({c[0] for c in CASES}) == len(CASES)


def test_the_unbroken_projects_run(tmp_path):
    design = make_project(tmp_path / "project")
    for name in ("design.yaml", "panel.yaml"):
        result = CliRunner().invoke(main, ["run", str(design.parent / name), "--out", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        assert (tmp_path / name / "results.json").exists()


def test_byte_order_mark_and_crlf_are_accepted(tmp_path):
    design = make_project(tmp_path / "project")
    text = "\r\n".join(episode_lines()) + "\r\n"
    (design.parent / "episodes.csv").write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    data = load_data(evalkit.load_design(design))
    assert int(data.panel["reports"].sum()) == 72


# ----------------------------------------------------------------------------- property-based
EDIT = st.one_of(
    st.tuples(st.just("delete"), st.integers(0, 10**6), st.integers(1, 40)),
    st.tuples(st.just("insert"), st.integers(0, 10**6), st.binary(min_size=1, max_size=12)),
    st.tuples(st.just("replace"), st.integers(0, 10**6), st.binary(min_size=1, max_size=6)),
    st.tuples(st.just("duplicate_line"), st.integers(0, 10**6), st.just(b"")),
    st.tuples(st.just("drop_line"), st.integers(0, 10**6), st.just(b"")),
    st.tuples(st.just("swap_lines"), st.integers(0, 10**6), st.just(b"")),
    st.tuples(st.just("text"), st.integers(0, 10**6),
              st.sampled_from([b",", b"\"", b";", b"\n", b"\r", b"\t", b"NaN", b"-1", b"0", b"+01:00", b"9999-99-99",
                               b"", b"\x00", b"\xff\xfe", b"\xc3\xa9", b"1e309", b"inf", b"  ", b"C0000001", b"E0001"])),
)


def apply_edit(data: bytes, edit) -> bytes:
    kind, where, payload = edit
    if kind in ("duplicate_line", "drop_line", "swap_lines"):
        lines = data.split(b"\n")
        i = where % len(lines)
        if kind == "duplicate_line":
            lines.insert(i, lines[i])
        elif kind == "drop_line":
            del lines[i]
        else:
            j = (i + 1) % len(lines)
            lines[i], lines[j] = lines[j], lines[i]
        return b"\n".join(lines)
    i = where % (len(data) + 1)
    if kind == "delete":
        return data[:i] + data[i + payload:]
    if kind == "replace":
        return data[:i] + payload + data[i + len(payload):]
    return data[:i] + payload + data[i:]


def _load_never_crashes(folder: Path, design_name: str = "design.yaml") -> None:
    try:
        design = evalkit.load_design(folder / design_name)
        load_data(design)
    except evalkit.EvalkitError as exc:
        assert "\n" not in exc.message and exc.message.strip()


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(target=st.sampled_from(["episodes.csv", "population.csv", "panel.csv", "design.yaml", "panel.yaml"]),
       edits=st.lists(EDIT, min_size=1, max_size=4))
def test_random_edits_of_valid_files_never_crash(target, edits):
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        make_project(folder)
        path = folder / target
        data = path.read_bytes()
        for edit in edits:
            data = apply_edit(data, edit)
        path.write_bytes(data)
        _load_never_crashes(folder, "panel.yaml" if target.startswith("panel") else "design.yaml")


@settings(max_examples=40, deadline=None)
@given(edits=st.lists(EDIT, min_size=1, max_size=3))
def test_random_edits_of_a_gzipped_extract_never_crash(edits):
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        make_project(folder)
        data = gzip.compress((folder / "episodes.csv").read_bytes(), mtime=0)
        for edit in edits:
            data = apply_edit(data, edit)
        (folder / "episodes.csv.gz").write_bytes(data)
        edit_design(folder, "source: episodes.csv", "source: episodes.csv.gz")
        _load_never_crashes(folder)


def test_apply_edit_examples():
    assert apply_edit(b"abc\ndef", ("delete", 1, 1)) == b"ac\ndef"
    assert apply_edit(b"abc\ndef", ("swap_lines", 0, b"")) == b"def\nabc"
    assert textwrap.dedent(apply_edit(b"ab", ("insert", 1, b"X")).decode()) == "aXb"


# ----------------------------------------------------------------------------- around the data layer
def test_progress_is_drawn_on_a_terminal_only(tmp_path):
    import io

    from evalkit.cli import _TerminalProgress
    from evalkit.data.progress import StageTimes, listening, stage

    screen = io.StringIO()
    times = StageTimes()
    with listening(_TerminalProgress(screen)), listening(times):
        with stage("read rows", total=4) as advance:
            advance(2)
            advance(2)
    drawn = screen.getvalue()
    assert "read rows [" + "#" * 12 + "." * 12 + "] 2/4" in drawn and "] 4/4" in drawn
    assert [name for name, _ in times.times] == ["read rows"]
    # CliRunner's stderr is not a terminal: no bar, no escape codes in the error line
    design = make_project(tmp_path / "project")
    (design.parent / "episodes.csv").write_bytes(b"")
    result = CliRunner().invoke(main, ["validate", str(design)])
    assert result.exit_code == 1 and "\x1b" not in result.stderr and "\r" not in result.stderr


def test_scale_is_an_option_of_the_simulated_example_only(tmp_path):
    result = CliRunner().invoke(main, ["example", "sicily-smoking-ban", "--scale", "national", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "only for spoc-rollout" in result.output
    assert not (tmp_path / "x").exists()
    result = CliRunner().invoke(main, ["example", "spoc-rollout", "--scale", "county"])
    assert result.exit_code == 2


def test_scale_reaches_the_example_writer(tmp_path, monkeypatch):
    import evalkit.examples

    calls = []

    def fake_write_example(name, out_dir, seed=None, scale="regional"):
        calls.append((name, scale))
        return make_project(out_dir)

    monkeypatch.setattr(evalkit.examples, "write_example", fake_write_example)
    result = CliRunner().invoke(main, ["example", "spoc-rollout", "--scale", "national", "--out", str(tmp_path / "n")])
    assert result.exit_code == 0, result.output
    assert calls == [("spoc-rollout", "national")]
