"""Hostile and broken input: one line, naming the file and row, no traceback, nothing written.

Every case starts from a small valid project (a design, an episode extract and an
exposure file, or a panel), breaks one thing, runs ``evalkit run`` and checks:

* exit status 1 and exactly one line on stderr, ``error: <file>[:<row or key>]: ...``;
* the file at fault is named, and the row (or design key) where there is one;
* no traceback and no "internal error" (which would be a bug of ours);
* the output folder was not created.

A property-based test then applies random edits (hypothesis) to the valid files and
checks that loading them never raises anything but an EvalkitError.

The catalogue, by class (issue 13); each class has cases that failed before it was fixed:

* broken files and values: one line with the file and row (the CASES table);
* no silent misreadings: time zones in one column only, dates alone among date-times,
  day-first dates without ``data.date_format``, a window beyond the data (never
  zero-filled), a YAML key written twice;
* one line, never an internal error: dates outside 1678-2261, ``extracted_at`` as a number
  or with an offset, infinite costs, a design nested 50,000 deep, a FIFO as a source, a
  gzip bomb of one long line, a malformed results.json given to ``evalkit report``;
* terminal output: control characters from data or design are printed escaped;
* examples: ``evalkit example`` never writes through a link nor replaces a file;
* disclosure covers every word: whole reports are scanned for uncontrolled counts;
* nothing half-written: a folder where report.html goes, a full disk, a missing Chromium,
  an interrupted write, ``report R --out R``;
* byte-identical: one and two BLAS threads give the same bytes;
* secrets and database sources (last section): no secret in any output, credentials sent
  only where the user bound them, every password form refused, reads never write.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import re
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
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


def _all_rows(d: Path, old: str, new: str) -> None:
    path = d / "episodes.csv"
    path.write_text(path.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")


def _panel_dates(d: Path, fmt: str) -> None:
    """The panel's YYYY-MM periods rewritten as full dates in ``fmt`` (the 1st of each month)."""
    lines = (d / "panel.csv").read_text(encoding="utf-8").splitlines()
    out = [lines[0]]
    for line in lines[1:]:
        unit, month, rest = line.split(",", 2)
        out.append(f"{unit},{pd.Timestamp(month + '-01').strftime(fmt)},{rest}")
    (d / "panel.csv").write_text("\n".join(out) + "\n", encoding="utf-8")


def _gzip_long_line(d: Path) -> None:
    """A small .csv.gz that inflates to one 64 MB line (a decompression bomb's shape)."""
    with gzip.open(d / "episodes.csv.gz", "wb", compresslevel=9) as out:
        out.write((HEADER + "\n").encode())
        block = b"x" * (1 << 20)
        for _ in range(64):
            out.write(block)
    edit_design(d, "source: episodes.csv", "source: episodes.csv.gz")


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
    # --- no silent misreadings (issue 13): refused, never read some other way
    ("zone_in_one_column_only", lambda d: _all_rows(d, " 10:00,", " 10:00+01:00,"),
     "design.yaml", "episodes.csv", None, r"reported_at has a time zone but found_at"),
    ("date_alone_among_date_times", lambda d: edit_row(d / "episodes.csv", 10, "2020-03-09 10:00", "2020-03-09"),
     "design.yaml", "episodes.csv", "row 10", r"'2020-03-09' .* is a date without a time of day"),
    ("day_first_dates_without_a_format", lambda d: edit_row(d / "episodes.csv", 10, "2020-03-09 10:00", "09/03/2020 10:00"),
     "design.yaml", "episodes.csv", "row 10", r"is not written YYYY-MM-DD; dates written like it can be day-first or month-first.*data.date_format"),
    ("date_not_matching_declared_format", lambda d: (edit_design(d, "frequency: month", "date_format: '%Y-%m-%d %H:%M'\n  frequency: month"),
                                                     edit_row(d / "episodes.csv", 10, "2020-03-09 10:00", "09/03/2020 10:00")),
     "design.yaml", "episodes.csv", "row 10", r"does not match the declared date_format"),
    ("timezone_unknown", lambda d: edit_design(d, "frequency: month", "timezone: Europe/Londn\n  frequency: month"),
     "design.yaml", "design.yaml", "data.timezone", r"'Europe/Londn' is not an IANA time zone \(did you mean 'Europe/London'\?\)"),
    ("panel_day_first_periods", lambda d: _panel_dates(d, "%d/%m/%Y"),
     "panel.yaml", "panel.csv", "row 2", r"can be day-first or month-first"),
    ("window_long_before_the_data", lambda d: edit_design(d, "window: {start: 2020-01, end: 2021-12}", "window: {start: 1900-01, end: 2021-12}"),
     "design.yaml", "design.yaml", "data.window.start", r"data start in 2020-01: the periods before would count as zero"),
    ("panel_window_after_the_data", lambda d: (d / "panel.yaml").write_text(
        PANEL_DESIGN.replace("layout: panel,", "layout: panel, window: {start: 2020-01, end: 2023-12},")),
     "panel.yaml", "panel.yaml", "data.window.end", r"data end in 2021-12: the periods after would count as zero"),
    ("yaml_key_written_twice", lambda d: (d / "design.yaml").write_text(
        (d / "design.yaml").read_text() + "analysis:\n  - {method: its, outcome: reports, family: quasipoisson}\n"),
     "design.yaml", "design.yaml", "line 21", r"key 'analysis' is written twice \(first on line 19\)"),
    # --- one line, never an internal error
    ("found_in_year_9999", lambda d: edit_row(d / "episodes.csv", 10, "2020-03-09 18:30", "9999-12-31 00:00"),
     "design.yaml", "episodes.csv", "row 10", r"outside the years 1678-2261"),
    ("reported_before_1678", lambda d: edit_row(d / "episodes.csv", 10, "2020-03-09 10:00", "1600-03-09 10:00"),
     "design.yaml", "episodes.csv", "row 10", r"outside the years 1678-2261"),
    ("extracted_at_a_number", lambda d: edit_design(d, "extracted_at: 2021-12-31", "extracted_at: 20211231"),
     "design.yaml", "design.yaml", "data.extracted_at", r"extracted_at is the number 20211231, not a date"),
    ("extracted_at_with_an_offset", lambda d: edit_design(d, "extracted_at: 2021-12-31", "extracted_at: 2022-01-02T09:00+01:00"),
     "design.yaml", "episodes.csv", None, r"data.extracted_at has a time zone but"),
    ("extracted_at_past_2262_in_new_york", lambda d: (
        edit_design(d, "extracted_at: 2021-12-31", "extracted_at: 2262-04-11"),
        edit_design(d, "frequency: month", "timezone: America/New_York\n  frequency: month")),
     "design.yaml", "design.yaml", "data.extracted_at", r"outside the years 1678-2261 once read as America/New_York time"),
    ("infinite_cost", lambda d: edit_design(d, "start: 2021-01}", "start: 2021-01, annual_cost: .inf}"),
     "design.yaml", "design.yaml", "intervention.annual_cost", r"finite number"),
    ("nan_cost_per_episode", lambda d: edit_design(d, "start: 2021-01}", "start: 2021-01, cost_per_episode: .nan}"),
     "design.yaml", "design.yaml", "intervention.cost_per_episode", r"finite number"),
    ("design_nested_50000_deep", lambda d: (d / "design.yaml").write_text("a: " + "[" * 50_000 + "]" * 50_000 + "\n"),
     "design.yaml", "design.yaml", None, r"nested too deeply"),
    ("source_is_a_fifo", lambda d: ((d / "episodes.csv").unlink(), os.mkfifo(d / "episodes.csv")),
     "design.yaml", "episodes.csv", None, r"not a regular file"),
    ("exposure_is_a_fifo", lambda d: ((d / "population.csv").unlink(), os.mkfifo(d / "population.csv")),
     "design.yaml", "population.csv", None, r"not a regular file"),
    ("gzip_bomb_one_long_line", _gzip_long_line, "design.yaml", "episodes.csv.gz", "row 2", r"a line is longer than 16 MB"),
    ("escape_sequence_in_a_unit", lambda d: edit_row(d / "episodes.csv", 5, "A,", "\x1b[2J\x1b]0;owned\x07A,"),
     "design.yaml", "population.csv", None, r"\\x1b\[2J\\x1b\]0;owned\\x07A"),
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
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", stderr), "a raw control character reached the terminal"
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

    def fake_write_example(name, out_dir, seed=None, scale="regional", fmt="csv"):
        calls.append((name, scale))
        return make_project(out_dir)

    monkeypatch.setattr(evalkit.examples, "write_example", fake_write_example)
    result = CliRunner().invoke(main, ["example", "spoc-rollout", "--scale", "national", "--out", str(tmp_path / "n")])
    assert result.exit_code == 0, result.output
    assert calls == [("spoc-rollout", "national")]


# ---- Terminal output, examples, disclosure, outputs, determinism (issue 13) ----
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def test_control_characters_in_names_are_shown_escaped_by_validate(tmp_path):
    """A unit called "\x1b[2JA" is printed as text (\\x1b[2J...), never as a terminal command."""
    design = make_project(tmp_path / "project")
    evil = "\x1b[2J\x1b]0;owned\x07A"
    _all_rows(design.parent, "\nA,", f"\n{evil},")
    _pop(design.parent, "A,2020,1000\nA,2021,1010", f"{evil},2020,1000\n{evil},2021,1010")
    edit_design(design.parent, "treated: [A]", 'treated: ["\\e[2J\\e]0;owned\\aA"]')
    result = CliRunner().invoke(main, ["validate", str(design)])
    assert result.exit_code == 0, result.output
    assert "\\x1b[2J\\x1b]0;owned\\x07A" in result.output
    assert not CONTROL.search(result.output.replace("\n", "")), repr(result.output)


def test_example_never_writes_through_a_link_nor_replaces_a_file(tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("keep me\n", encoding="utf-8")
    out = tmp_path / "example"
    out.mkdir()
    (out / "sicily.csv").symlink_to(target)
    result = CliRunner().invoke(main, ["example", "sicily-smoking-ban", "--out", str(out)])
    assert result.exit_code == 1 and "sicily.csv" in result.stderr and "already exists" in result.stderr
    assert target.read_text(encoding="utf-8") == "keep me\n"
    assert not (out / "sicily_smoking_ban.yaml").exists() and [p.name for p in out.iterdir()] == ["sicily.csv"]
    # an existing design file is not replaced either (each example's design is named after it)
    (out / "sicily.csv").unlink()
    (out / "sicily_smoking_ban.yaml").write_text("mine\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["example", "sicily-smoking-ban", "--out", str(out)])
    assert result.exit_code == 1 and "sicily_smoking_ban.yaml" in result.stderr
    assert (out / "sicily_smoking_ban.yaml").read_text(encoding="utf-8") == "mine\n"
    assert sorted(p.name for p in out.iterdir()) == ["sicily_smoking_ban.yaml"]  # nothing half-written beside it
    # into an empty folder it works
    result = CliRunner().invoke(main, ["example", "sicily-smoking-ban", "--out", str(tmp_path / "fresh")])
    assert result.exit_code == 0, result.output


def _report_text(html: str) -> str:
    """The words of a report as a reader sees them (no markup, styles or figure code)."""
    import html as html_module

    body = re.sub(r"<svg.*?</svg>|<style.*?</style>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", html_module.unescape(re.sub(r"<[^>]+>", " ", body)))


#: a count of episodes, children or rows as prose shows it
COUNT_PHRASE = re.compile(r"(?<![\w.,£])(\d{1,3}(?:,\d{3})+|\d+)(?![\w.,%])\s+(?:episodes?|rows?|records?|children|"
                          r"persons?|reports?|censored|found)\b", re.IGNORECASE)


def _uncontrolled_counts(text: str, min_count: int = 10, round_to: int = 5) -> list[str]:
    bad = []
    for match in COUNT_PHRASE.finditer(text):
        value = int(match.group(1).replace(",", ""))
        if value != 0 and (value < min_count or value % round_to):
            bad.append(text[max(0, match.start() - 40):match.end()])
    return bad


def test_every_count_in_the_report_text_is_disclosure_controlled(tmp_path):
    """Check details, annex settings, notes and the footer put counts under the same rule as tables."""
    design = make_project(tmp_path / "project")
    # 3 episodes still open at extraction and 72 rows: both were published exactly before
    lines = (design.parent / "episodes.csv").read_text(encoding="utf-8").splitlines()
    for i in range(1, len(lines)):
        fields = lines[i].split(",")
        fields[2] = "" if i in (19, 39, 59) else fields[2].replace("18:30", f"{11 + i % 12}:{i % 60:02d}")
        lines[i] = ",".join(fields)
    (design.parent / "episodes.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    edit_design(design.parent, "- {name: reports, measure: count, per: 1000}",
                "- {name: reports, measure: count, per: 1000}\n  - {name: time_to_found, measure: duration_hours}")
    edit_design(design.parent, "units:\n  treated: [A]", "units:\n  treated: [A]\n  comparison: [B]")
    edit_design(design.parent, "analysis:\n", "analysis:\n  - {method: survival_did, outcome: time_to_found, reps: 99, min_episodes: 3}\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", str(design), "--out", str(out)])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert record["data"]["censored"] == 3 and record["data"]["rows"] == 72  # the analyst's record keeps them
    text = _report_text((out / "report.html").read_text(encoding="utf-8"))
    assert "fewer than 10 episodes open at extraction" in text
    assert "3 episodes" not in text and "72 rows" not in text and "70 rows" in text
    assert not _uncontrolled_counts(text), _uncontrolled_counts(text)
    # the same rule, whatever the preset: the dfe preset rounds to 10
    edit_design(design.parent, "analysis:", "report: {disclosure: {preset: dfe}}\nanalysis:")
    result = CliRunner().invoke(main, ["run", str(design), "--out", str(tmp_path / "dfe")])
    text = _report_text((tmp_path / "dfe" / "report.html").read_text(encoding="utf-8"))
    assert not _uncontrolled_counts(text, min_count=1, round_to=10), _uncontrolled_counts(text, 1, 10)


def test_a_dollar_in_a_name_is_text_not_mathtext(tmp_path):
    design = make_project(tmp_path / "project")
    text = (design.parent / "panel.yaml").read_text(encoding="utf-8").replace("name: reports", "name: cost $a$ b$")
    (design.parent / "panel.yaml").write_text(text.replace("outcome: reports", "outcome: cost $a$ b$"), encoding="utf-8")
    result = CliRunner().invoke(main, ["run", str(design.parent / "panel.yaml"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "cost $a$ b$" in (tmp_path / "out" / "report.html").read_text(encoding="utf-8")


def test_a_successful_run_prints_no_library_warnings(tmp_path):
    design = make_project(tmp_path / "project")
    result = CliRunner().invoke(main, ["run", str(design), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0 and result.stderr == "", result.stderr[:500]
    assert "unsuppressed record" in result.stdout  # who may see results.json is said when it is written


def _good_run(tmp_path):
    design = make_project(tmp_path / "project")
    out = tmp_path / "out"
    assert CliRunner().invoke(main, ["run", str(design), "--out", str(out)]).exit_code == 0
    return design, out, {p.name: p.read_bytes() for p in out.iterdir()}


def test_a_folder_where_the_report_goes_leaves_the_previous_outputs(tmp_path):
    design, out, before = _good_run(tmp_path)
    (out / "report.html").unlink()
    (out / "report.html").mkdir()
    (out / "results.json").write_bytes(b'{"previous": true}')
    result = CliRunner().invoke(main, ["run", str(design), "--out", str(out)])
    assert result.exit_code == 1 and "report.html" in result.stderr and "is a folder" in result.stderr
    assert (out / "results.json").read_bytes() == b'{"previous": true}'
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "results.json"]


def test_a_full_disk_leaves_the_previous_pair_and_no_temporary_file(tmp_path, monkeypatch):
    import errno

    from evalkit import outputs

    design, out, before = _good_run(tmp_path)
    real = outputs.text_producer

    def failing(text):
        if text.lstrip().startswith("<!DOCTYPE"):
            def produce(path):
                raise OSError(errno.ENOSPC, "No space left on device")
            return produce
        return real(text)

    monkeypatch.setattr(outputs, "text_producer", failing)
    edit_design(design.parent, "title: Hostile input test", "title: A new title")
    result = CliRunner().invoke(main, ["run", str(design), "--out", str(out)])
    assert result.exit_code == 1 and "No space left on device" in result.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # both files as they were, nothing else


def test_a_missing_chromium_leaves_the_previous_pair(tmp_path, monkeypatch):
    from evalkit.report import pdf

    design, out, before = _good_run(tmp_path)
    monkeypatch.setattr(pdf, "find_chromium", lambda: None)
    edit_design(design.parent, "title: Hostile input test", "title: A new title")
    result = CliRunner().invoke(main, ["run", str(design), "--out", str(out), "--pdf"])
    assert result.exit_code == 1 and "no Chromium found" in result.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_an_interrupted_write_leaves_no_temporary_file(tmp_path):
    from evalkit.outputs import write_outputs

    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text("old", encoding="utf-8")

    def interrupted(path):
        path.write_bytes(b"%PDF-half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_outputs({out / "results.json": "new", out / "report.pdf": interrupted})
    assert sorted(p.name for p in out.iterdir()) == ["results.json"]
    assert (out / "results.json").read_text(encoding="utf-8") == "old"


def test_report_never_overwrites_its_input(tmp_path):
    design, out, before = _good_run(tmp_path)
    results = out / "results.json"
    for target in (results, out / "copy.json", out / "design.yaml"):
        result = CliRunner().invoke(main, ["report", str(results), "--out", str(target)])
        assert result.exit_code == 1 and "not a report" in result.stderr, result.output
    (out / "notes.txt").write_text("my notes\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["report", str(results), "--out", str(out / "notes.txt")])
    assert result.exit_code == 1 and "not an HTML report" in result.stderr
    assert results.read_bytes() == before["results.json"]
    assert (out / "notes.txt").read_text(encoding="utf-8") == "my notes\n"
    result = CliRunner().invoke(main, ["report", str(results), "--out", str(out / "report.html")])
    assert result.exit_code == 0 and (out / "report.html").read_bytes() == before["report.html"]


@pytest.mark.parametrize("edit", [
    lambda r: r.__setitem__("estimates", "none"),
    lambda r: r["estimates"].__setitem__(0, "not a record"),
    lambda r: r["estimates"][0].__setitem__("estimate", "big"),
    lambda r: r["estimates"][0].pop("method"),
    lambda r: r["context"].pop("disclosure"),
    lambda r: r["context"].__setitem__("outcomes", None),
    lambda r: r["evidence"].__setitem__("effects", 3),
    lambda r: r["analyses"][0].__setitem__("settings", []),
    lambda r: r["data"].__setitem__("periods", []),
    lambda r: r.pop("checks"),
], ids=["estimates", "estimate_record", "estimate_value", "method", "disclosure", "outcomes", "effects", "settings",
        "periods", "checks"])
def test_report_on_a_malformed_results_file_is_one_line(edit, tmp_path):
    design, out, before = _good_run(tmp_path)
    record = json.loads((out / "results.json").read_text(encoding="utf-8"))
    edit(record)
    (out / "results.json").write_text(json.dumps(record), encoding="utf-8")
    result = CliRunner().invoke(main, ["report", str(out / "results.json"), "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 1, result.output
    assert result.stderr.count("\n") == 1 and "results.json" in result.stderr and "internal error" not in result.stderr
    assert not (tmp_path / "r.html").exists()


def test_same_inputs_give_the_same_bytes_with_one_or_two_blas_threads(tmp_path):
    import subprocess
    import sys

    design = make_project(tmp_path / "project")
    outputs = []
    for threads in ("1", "2"):
        env = {**os.environ, "OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        out = tmp_path / f"out{threads}"
        subprocess.run([sys.executable, "-m", "evalkit.cli", "run", str(design), "--out", str(out)], check=True,
                       env=env, capture_output=True, cwd=tmp_path)
        outputs.append({p.name: p.read_bytes().replace(str(out).encode(), b"OUT") for p in out.iterdir()})
    assert outputs[0] == outputs[1]


# ---- property-based: the date-time parsers (issue 13) ----
_DATE_TEXT = st.one_of(
    st.text(max_size=30),
    st.from_regex(r"\A\d{1,4}[-/. ]\d{1,2}[-/. ]\d{1,4}( \d{1,2}:\d{2}(:\d{2})?)?( ?(Z|[+-]\d{2}:?\d{2}))?\Z", fullmatch=True),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_DATE_TEXT, min_size=1, max_size=6), st.sampled_from([None, "%d/%m/%Y %H:%M", "%Y-%m-%d"]),
       st.sampled_from([None, "Europe/London"]))
def test_random_date_text_is_read_or_refused_in_one_line(values, date_format, timezone):
    from evalkit.data.episodes import parse_timestamps

    try:
        parsed = parse_timestamps(pd.Series(values, dtype=object), "f.csv", "reported_at", "csv", True, date_format,
                                  timezone)
    except evalkit.EvalkitError as exc:
        assert "\n" not in exc.message and exc.message.startswith("f.csv")
        return
    assert str(parsed.dtype) == "datetime64[ns]" and len(parsed) == len(values)


@settings(max_examples=200, deadline=None)
@given(st.datetimes(min_value=dt.datetime(1700, 1, 1), max_value=dt.datetime(2200, 12, 31)).map(
    lambda d: d.replace(microsecond=0)))
def test_a_date_time_is_read_exactly_in_iso_and_in_a_declared_day_first_form(moment):
    """ISO text gives back the instant; day-first text gives it back under its declared format,
    and without one it is refused whenever day and month could be swapped."""
    from evalkit.data.episodes import parse_timestamps

    iso = parse_timestamps(pd.Series([moment.strftime("%Y-%m-%d %H:%M:%S")]), "f", "c", "csv", False)
    assert iso.iloc[0] == pd.Timestamp(moment)
    uk = moment.strftime("%d/%m/%Y %H:%M:%S")
    declared = parse_timestamps(pd.Series([uk]), "f", "c", "csv", False, "%d/%m/%Y %H:%M:%S")
    assert declared.iloc[0] == pd.Timestamp(moment)
    with pytest.raises(evalkit.EvalkitError, match="day-first or month-first"):
        parse_timestamps(pd.Series([uk]), "f", "c", "csv", False)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=12), st.from_regex(r"\A\d{1,4}[-/Qq]\d{1,2}([-/]\d{1,4})?\Z", fullmatch=True)),
                min_size=1, max_size=5), st.sampled_from(["month", "quarter", "year"]))
@example(values=["0000Q1"], frequency="month")   # pandas' text parser raised its own error on it
def test_random_period_text_is_read_or_refused_in_one_line(values, frequency):
    from evalkit.data.panel import parse_period_column

    frame = pd.DataFrame({"time": pd.Series(values, dtype=object)})
    try:
        parse_period_column(frame, ["time"], frequency, "panel.csv")
    except evalkit.EvalkitError as exc:
        assert "\n" not in exc.message and exc.message.startswith("panel.csv")


# ---- Secrets and database sources (issue 13) ----
# A design file is not trusted with secrets: it may not read a secret from the environment
# (${NAME} is expanded only in a URL's database, from an allow-list), may
# not send a password to a host the user did not list (EVALKIT_DB_PASSWORD_HOSTS), may not
# hold a password in any form, and may not write anything through a database source. No
# message, progress stage or summary shows an expanded value or a password.
import sqlite3  # noqa: E402

from evalkit.data.progress import StageTimes, listening  # noqa: E402

from .fake_postgres import FakePostgres  # noqa: E402
from .test_sql import (  # noqa: E402, F401  (fixtures are used by name)
    PG_PORT,
    SMALL_FORCES,
    _probe_rows,
    _typed,
    assert_same_data,
    csv_reference,
    pg_password,
    postgres,
    spoc_frame,
)
from .test_sql import write_design as write_sql_design  # noqa: E402

DB_SECRETS = {"EVALKIT_DB_PASSWORD": "dbpass-Secret-41", "PGPASSWORD": "pgpass-Secret-42",
              "MY_SECRET_TOKEN": "token-Secret-43", "HOME": "/home/home-Secret-44"}


@pytest.fixture
def secret_environment(monkeypatch, tmp_path):
    """Secrets in the environment, as on an analyst's machine (the pseudonym key is set by conftest)."""
    for name, value in DB_SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("EVALKIT_DB_PASSWORD_HOSTS", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-pgpass"))
    return list(DB_SECRETS.values()) + [os.environ["EVALKIT_PSEUDONYM_KEY"]]


def _one_error_line(result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output and "internal error" not in lines[0], result.output
    return lines[0]


def _small_sqlite(folder: Path, frame: pd.DataFrame, name: str = "extract.db") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as connection:
        frame[frame["force"].isin(SMALL_FORCES)].replace("", None).to_sql("episodes", connection, index=False)
    connection.close()
    return path


def _files(folder: Path) -> set:
    return {p.relative_to(folder) for p in folder.rglob("*")}


@pytest.mark.parametrize("source", [
    "sqlite:///${EVALKIT_PSEUDONYM_KEY}",                          # the case: the key was echoed
    "duckdb:///${EVALKIT_DB_PASSWORD}/extract.duckdb",
    "sqlite:///data/${MY_SECRET_TOKEN}.db",
    "postgresql://${EVALKIT_PSEUDONYM_KEY}@127.0.0.1:9/evalkit",   # a secret as the user name
    "postgresql://evalkit@127.0.0.1:9/${HOME}",                    # a home path as the database
    "postgresql://evalkit@${MY_SECRET_TOKEN}:9/evalkit",           # into the host
    "postgresql://evalkit@127.0.0.1:${MY_SECRET_TOKEN}/evalkit",   # into the port
    "postgresql://evalkit@127.0.0.1:9/evalkit?application_name=${MY_SECRET_TOKEN}",  # into the query
])
def test_a_design_cannot_make_evalkit_read_a_secret_variable(source, secret_environment, tmp_path):
    design = write_sql_design(tmp_path, f"  source: '{source}'\n  table: episodes")
    result = CliRunner().invoke(main, ["run", str(design), "--out", str(tmp_path / "out")])
    line = _one_error_line(result)
    assert re.search(r"may only use|no variable is expanded|is expanded only", line), line
    assert line.startswith(f"error: {design}:data"), line  # refused when the design is loaded
    for secret in secret_environment:
        assert secret not in result.output
    assert not (tmp_path / "out").exists()


def test_expanded_values_are_shown_only_as_written(monkeypatch, tmp_path, spoc_frame):
    monkeypatch.setenv("EVALKIT_DB_NAME", "private-7Zq/extract.db")
    design = write_sql_design(tmp_path, "  source: sqlite:///${EVALKIT_DB_NAME}\n  table: episodes")
    line = _one_error_line(CliRunner().invoke(main, ["validate", str(design)]))
    assert "database file not found (${EVALKIT_DB_NAME})" in line and "private-7Zq" not in line, line
    # a file that is not a database: the driver's message names the path it opened
    (tmp_path / "private-7Zq").mkdir()
    (tmp_path / "private-7Zq" / "extract.duckdb").write_bytes(b"not a database at all" * 100)
    duck = write_sql_design(tmp_path, "  source: duckdb:///${EVALKIT_DB_NAME}\n  table: episodes")
    monkeypatch.setenv("EVALKIT_DB_NAME", "private-7Zq/extract.duckdb")
    line = _one_error_line(CliRunner().invoke(main, ["validate", str(duck)]))
    assert "cannot connect" in line and "private-7Zq" not in line, line
    # read for real: the summary and every progress stage show the URL as written
    monkeypatch.setenv("EVALKIT_DB_NAME", "private-7Zq/extract.db")
    _small_sqlite(tmp_path / "private-7Zq", spoc_frame)
    design = write_sql_design(tmp_path, "  source: sqlite:///${EVALKIT_DB_NAME}\n  table: episodes")
    result = CliRunner().invoke(main, ["validate", str(design)])
    assert result.exit_code == 0, result.output
    assert "data: sqlite:///${EVALKIT_DB_NAME} (episodes" in result.output and "private-7Zq" not in result.output
    with listening(StageTimes()) as times:
        load_data(evalkit.load_design(design))
    assert times.times and not any("private-7Zq" in name or "extract" in name for name, _ in times.times)


def test_a_password_is_sent_only_to_a_host_the_user_listed(secret_environment, monkeypatch, tmp_path):
    with FakePostgres() as server:
        design = write_sql_design(tmp_path, f"  source: postgresql://evalkit@127.0.0.1:{server.port}/evalkit\n"
                                            "  table: episodes")
        with pytest.raises(evalkit.EvalkitError, match="cannot connect") as info:
            load_data(evalkit.load_design(design))
        assert server.received and server.passwords == [], server.received  # it connected, and sent no password
        assert "EVALKIT_DB_PASSWORD_HOSTS" in info.value.message
        for secret in secret_environment:
            assert secret.encode() not in server.everything and secret not in info.value.message
        # the design: a secret as the user name, a home path as the database
        server.received.clear()
        (tmp_path / "hostile").mkdir()
        hostile = write_sql_design(tmp_path / "hostile", f"  source: postgresql://${{EVALKIT_PSEUDONYM_KEY}}@127.0.0.1:"
                                             f"{server.port}/${{HOME}}\n  table: episodes")
        with pytest.raises(evalkit.EvalkitError, match="no variable is expanded|may only use"):
            load_data(evalkit.load_design(hostile))
        assert server.received == []
        # another port of a listed host is another server
        monkeypatch.setenv("EVALKIT_DB_PASSWORD_HOSTS", f"127.0.0.1:{server.port + 1}")
        with pytest.raises(evalkit.EvalkitError, match="cannot connect"):
            load_data(evalkit.load_design(design))
        assert server.passwords == []
        # listed: the password goes to that host, and no message repeats it
        monkeypatch.setenv("EVALKIT_DB_PASSWORD_HOSTS", f"db.example.org, 127.0.0.1:{server.port}")
        with pytest.raises(evalkit.EvalkitError, match="password authentication failed") as info:
            load_data(evalkit.load_design(design))
        assert server.passwords == [b"p" + (len(b"dbpass-Secret-41") + 5).to_bytes(4, "big") + b"dbpass-Secret-41\0"]
        assert "dbpass-Secret-41" not in info.value.message
        # libpq's PGPASSWORD follows the same rule: sent to a listed host only
        monkeypatch.delenv("EVALKIT_DB_PASSWORD")
        server.received.clear()
        with pytest.raises(evalkit.EvalkitError, match="password authentication failed"):
            load_data(evalkit.load_design(design))
        assert [p[5:] for p in server.passwords] == [b"pgpass-Secret-42\0"]
        monkeypatch.setenv("EVALKIT_DB_PASSWORD_HOSTS", "db.example.org")
        server.received.clear()
        with pytest.raises(evalkit.EvalkitError, match="PGPASSWORD was not sent to 127.0.0.1"):
            load_data(evalkit.load_design(design))
        assert server.received and server.passwords == []


@pytest.mark.parametrize("source", [
    "postgresql://evalkit:pa/Secret-6@127.0.0.1:9/evalkit",      # '/' in the password fooled the old rule
    "postgresql://evalkit@127.0.0.1:9/evalkit?password=Secret-6",
    "postgresql://evalkit@127.0.0.1:9/evalkit?sslmode=disable&PassWord=Secret-6",
    "postgresql://evalkit@127.0.0.1:9/evalkit?passwd=Secret-6",
    "postgresql://evalkit@127.0.0.1:9/evalkit?pwd=Secret-6",
    "postgresql://evalkit@127.0.0.1:9/evalkit?sslpassword=Secret-6",
    "postgresql://evalkit@127.0.0.1:9/evalkit?sslkey=/keys/Secret-6.key",
    "postgresql://evalkit@127.0.0.1:9/evalkit?pass%77ord=Secret-6",
    "duckdb:///extract.duckdb?password=Secret-6",
    # read as file names (no table: a file needs none) and echoed in "file not found"
    " postgresql://evalkit:Secret-6@127.0.0.1:9/evalkit",         # a leading space
    "\tpostgresql://evalkit@127.0.0.1:9/evalkit?password=Secret-6",
    "postgresql:evalkit:Secret-6@127.0.0.1:9/evalkit",            # no '//'
])
def test_every_form_of_password_in_the_url_is_refused_and_never_echoed(source, tmp_path):
    table = "\n  table: episodes" if source.startswith(("postgresql://", "duckdb://")) else ""
    design = write_sql_design(tmp_path, f"  source: {json.dumps(source)}{table}")
    result = CliRunner().invoke(main, ["validate", str(design)])
    line = _one_error_line(result)
    assert line.startswith(f"error: {design}:data"), line  # refused when loading, before any connection
    assert re.search(r"password|credential", line), line
    assert "Secret-6" not in result.output


@pytest.mark.parametrize("query", [
    "VACUUM INTO 'copy.db'",                       # a full copy of the extract, raw child ids and all
    "VACUUM INTO '{folder}/copy.db'",
    "ATTACH 'file:attached.db?mode=rwc' AS other",  # created a file
    "ATTACH '{folder}/attached.db' AS other",
    "CREATE TEMP TABLE copied AS SELECT * FROM episodes",
    "PRAGMA query_only = OFF",
    "SELECT * FROM episodes; VACUUM INTO 'copy.db'",
])
def test_a_sqlite_source_writes_nothing_anywhere(query, tmp_path, monkeypatch, spoc_frame):
    monkeypatch.chdir(tmp_path)  # a relative file name lands here
    database = _small_sqlite(tmp_path, spoc_frame)
    before = database.read_bytes()
    design = write_sql_design(tmp_path, f"  source: sqlite:///extract.db\n  query: \"{query.format(folder=tmp_path)}\"")
    files = _files(tmp_path)
    refused = r"refused the query \((attempt to write a readonly database|.*not allowed)|more than one statement"
    with pytest.raises(evalkit.EvalkitError, match=refused) as info:
        load_data(evalkit.load_design(design))
    assert "\n" not in info.value.message
    assert _files(tmp_path) == files and database.read_bytes() == before


@pytest.mark.parametrize("backend", ["sqlite", "duckdb", "postgresql"])
def test_data_query_is_one_statement_for_every_backend(backend, tmp_path, spoc_frame, request):
    if backend == "postgresql":
        request.getfixturevalue("postgres")
        request.getfixturevalue("pg_password")
        # a second statement could end the read-only transaction and write
        source = (f"  source: postgresql://evalkit@127.0.0.1:{PG_PORT}/evalkit\n"
                  "  query: SELECT * FROM spoc_episodes; COMMIT; BEGIN READ WRITE; SELECT write_probe(); COMMIT")
    elif backend == "duckdb":
        import duckdb

        with duckdb.connect(str(tmp_path / "extract.duckdb")) as connection:
            connection.register("small", _typed(spoc_frame[spoc_frame["force"].isin(SMALL_FORCES)]))
            connection.execute("CREATE TABLE episodes AS SELECT * FROM small")
        source = "  source: duckdb:///extract.duckdb\n  query: SELECT 1 AS x; SELECT * FROM episodes"
    else:
        _small_sqlite(tmp_path, spoc_frame)
        source = "  source: sqlite:///extract.db\n  query: SELECT 1 AS x; SELECT * FROM episodes"
    before = _probe_rows() if backend == "postgresql" else None
    with pytest.raises(evalkit.EvalkitError, match=r"data.query: data.query holds more than one statement"):
        load_data(evalkit.load_design(write_sql_design(tmp_path, source)))
    if backend == "postgresql":
        assert _probe_rows() == before


def test_duckdb_table_is_read_and_nothing_is_written(tmp_path, spoc_frame, csv_reference, monkeypatch):
    import duckdb

    monkeypatch.chdir(tmp_path)
    small = _typed(spoc_frame[spoc_frame["force"].isin(SMALL_FORCES)])
    with duckdb.connect(str(tmp_path / "extract.duckdb")) as connection:
        connection.register("small", small)
        connection.execute("CREATE TABLE episodes AS SELECT * FROM small")
    design = write_sql_design(tmp_path, "  source: duckdb:///extract.duckdb\n  table: episodes")
    before, files = (tmp_path / "extract.duckdb").read_bytes(), _files(tmp_path)
    assert_same_data(load_data(evalkit.load_design(design)), csv_reference)
    with pytest.raises(evalkit.EvalkitError, match=r"table 'episode' not found \(did you mean 'episodes'\?\)"):
        load_data(evalkit.load_design(write_sql_design(tmp_path, "  source: duckdb:///extract.duckdb\n  table: episode")))
    for escape in ("COPY (SELECT * FROM episodes) TO 'stolen.csv'", f"EXPORT DATABASE '{tmp_path}/exported'",
                   f"ATTACH '{tmp_path}/other.duckdb' AS other", "INSTALL httpfs",
                   "SELECT * FROM read_csv('/etc/passwd')", "SET enable_external_access = true"):
        with pytest.raises(evalkit.EvalkitError, match="refused the query"):
            load_data(evalkit.load_design(write_sql_design(tmp_path, f"  source: duckdb:///extract.duckdb\n"
                                                                     f"  query: \"{escape}\"")))
    assert (tmp_path / "extract.duckdb").read_bytes() == before
    assert _files(tmp_path) == files


# ---- property-based: random database URLs
_USER_PARTS = st.sampled_from(["evalkit", "${EVALKIT_DB_USER}", "${EVALKIT_PSEUDONYM_KEY}", "${HOME}", "a%40b",
                               "${EVALKIT_DB_PASSWORD}", "u$er", "", "x y"])
_PASSWORD = st.text(alphabet="abcXYZ0189/@:%?#&=$ {}", min_size=0, max_size=10).map(lambda t: "Pw8" + t)
_HOSTS = st.sampled_from(["127.0.0.1", "[::1]", "localhost", "${MY_SECRET_TOKEN}", "", "127.0.0.1@x",
                          "127.0.0.1,localhost"])
_PORTS = st.sampled_from([None, "9", "0", "abc", "${MY_SECRET_TOKEN}", ""])
_DATABASES = st.sampled_from(["evalkit", "${EVALKIT_DB_NAME}", "${HOME}", "${EVALKIT_PSEUDONYM_KEY}", "",
                              "nowhere.db", "data/${MY_SECRET_TOKEN}.db", ":memory:", "a;b"])
_QUERY_KEYS = st.sampled_from(["sslmode", "password", "PWD", "sslkey", "options", "application_name", "host",
                               "pass%77ord", "user", "x", "passfile", "service"])
_QUERY = st.lists(st.tuples(_QUERY_KEYS, st.text(alphabet="abc0/${}=&", max_size=6)), max_size=3)
_CREDENTIAL_KEYS = {"password", "pwd", "sslkey", "pass%77ord", "passfile", "service"}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(scheme=st.sampled_from(["postgresql", "postgresql+psycopg", "postgres", "sqlite", "duckdb", "mysql"]),
       user=st.one_of(st.none(), _USER_PARTS), password=st.one_of(st.none(), _PASSWORD), host=_HOSTS, port=_PORTS,
       database=_DATABASES, query=_QUERY, space=st.sampled_from(["", " ", "\t", "\n"]), table=st.booleans())
def test_random_database_urls_never_leak_or_crash(secret_environment, monkeypatch, scheme, user, password, host, port,
                                                  database, query, space, table):
    userinfo = "" if user is None and password is None else (user or "") + (
        "" if password is None else ":" + password) + "@"
    netloc = userinfo + host + ("" if port is None else ":" + port)
    url = f"{scheme}://{netloc}/{database}" + ("?" + "&".join(f"{k}={v}" for k, v in query) if query else "")
    carries_password = password is not None or any(key.lower() in _CREDENTIAL_KEYS for key, _ in query)
    monkeypatch.setenv("EVALKIT_DB_USER", "user-Value-45")
    monkeypatch.setenv("EVALKIT_DB_NAME", "dbname-Value-46")
    never_shown = secret_environment + ["user-Value-45", "dbname-Value-46"] + ([password] if password else [])
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        path = folder / "design.yaml"
        what = "  table: episodes" if table else "  query: SELECT * FROM episodes"
        path.write_text(DESIGN.replace("  source: episodes.csv", f"  source: {json.dumps(space + url)}\n{what}"),
                        encoding="utf-8")
        try:
            design = evalkit.load_design(path)
        except evalkit.EvalkitError as exc:
            message = exc.message
        else:
            assert not carries_password and not space, f"not refused when loaded: {url!r}"
            try:
                load_data(design)
            except evalkit.EvalkitError as exc:
                message = exc.message
            else:
                raise AssertionError(f"read data from {url!r}")
    assert "\n" not in message and message.strip()
    for secret in never_shown:
        assert secret not in message, (url, message)


def test_an_episode_longer_than_the_nanosecond_clock_is_refused_not_negative():
    # 1677-10-01 to 2025 is 348 years: past 2**63 nanoseconds, the span wrapped to a negative duration
    from evalkit.data.episodes import validate_episodes
    from evalkit.errors import EvalkitError

    raw = pd.DataFrame({"u": ["A", "A"], "r": ["2024-01-01 10:00", "1677-10-01 00:00"], "f": ["2024-01-01 12:00", "2025-01-01 00:00"]})
    with pytest.raises(EvalkitError, match=r"row 3: episode reported 1677-10-01 00:00 lasts more than 292 years"):
        validate_episodes(raw, {"unit": "u", "reported_at": "r", "found_at": "f"}, "e.csv", None)
