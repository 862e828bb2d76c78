"""SQL sources: PostgreSQL for real (a server from Debian's packages), SQLite and DuckDB files.

The PostgreSQL server is the one ``.ci/postgres.sh`` starts on 127.0.0.1 (port
EVALKIT_PG_PORT, default 54329) with the shipped SPOC example's episodes loaded as table
``spoc_episodes`` (and a view ``spoc_episodes_utc`` with time-zone-aware times). CI runs
the script before the tests; the session fixture runs it again (it is idempotent: it
starts a stopped server and reloads a stale fixture) and fails, never skips, if the
server does not answer.

Every database result is compared with the same episodes read from the shipped CSV file:
the derived panel (reports, persons, repeat reports) and the per-episode durations must
be identical.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

import evalkit
from evalkit.cli import main
from evalkit.data import load_data

from .conftest import ROOT

PG_PORT = int(os.environ.get("EVALKIT_PG_PORT", "54329"))
PG_PASSWORD = os.environ.get("EVALKIT_PG_TEST_PASSWORD", "evalkit-ci-only-password")
PG_URL = f"postgresql://evalkit@127.0.0.1:{PG_PORT}/evalkit"

COLUMNS = {"unit": "force", "reported_at": "reported_at", "found_at": "found_at", "person": "child_id",
           "episode": "episode_id"}
SMALL_FORCES = ("Northshire", "Westdale", "Elmshire")


def design_text(source_lines: str, treated: str = "[Northshire]") -> str:
    return f"""\
evalkit: 1
title: SQL source test
intervention: {{name: SPOC, mechanism: single_point_of_contact, start: 2021-04}}
data:
{source_lines}
  layout: episodes
  columns: {{unit: force, reported_at: reported_at, found_at: found_at, person: child_id, episode: episode_id}}
  extracted_at: 2024-03-31
  frequency: month
  window: {{start: 2016-01, end: 2023-12}}
units:
  treated: {treated}
outcomes:
  - {{name: reports, measure: count}}
  - {{name: persons, measure: count}}
  - {{name: repeat_reports, measure: count}}
analysis:
  - {{method: its, outcome: reports, family: quasipoisson, errors: none}}
"""


def write_design(folder, source_lines, **kwargs):
    path = folder / "design.yaml"
    path.write_text(design_text(source_lines, **kwargs), encoding="utf-8")
    return path


def load(path):
    return load_data(evalkit.load_design(path))


def _pg_connects() -> bool:
    engine = sa.create_engine(f"postgresql+psycopg://evalkit:{PG_PASSWORD}@127.0.0.1:{PG_PORT}/evalkit",
                              connect_args={"connect_timeout": 3}, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text("SELECT count(*) FROM spoc_episodes")).scalar() > 0
    except sa.exc.SQLAlchemyError:
        return False
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def postgres():
    """The fixture server's URL (no password).

    .ci/postgres.sh is idempotent (a fraction of a second when all is in place): it starts
    the server if it is down and reloads the fixture if the example's episodes changed.
    """
    run = subprocess.run(["bash", str(ROOT / ".ci" / "postgres.sh")], capture_output=True, text=True, timeout=900)
    # as a non-root developer the script cannot manage the server; one already running will do
    assert run.returncode == 0 or _pg_connects(), f".ci/postgres.sh failed:\n{run.stdout}\n{run.stderr}"
    assert _pg_connects(), "the PostgreSQL fixture server does not answer after .ci/postgres.sh"
    return PG_URL


@pytest.fixture
def pg_password(monkeypatch):
    monkeypatch.setenv("EVALKIT_DB_PASSWORD", PG_PASSWORD)
    monkeypatch.setenv("EVALKIT_DB_PASSWORD_HOSTS", f"127.0.0.1:{PG_PORT}")  # the only host that may get it
    return PG_PASSWORD


@pytest.fixture(scope="module")
def spoc_frame() -> pd.DataFrame:
    """The shipped example's episodes, as the CSV holds them (the PostgreSQL fixture's source)."""
    return pd.read_csv(ROOT / "examples" / "spoc" / "episodes.csv.gz", dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def csv_reference(spoc_frame, tmp_path_factory):
    """load_data on the three small forces, read from CSV: what every database must reproduce."""
    folder = tmp_path_factory.mktemp("csv")
    small = spoc_frame[spoc_frame["force"].isin(SMALL_FORCES)]
    small.to_csv(folder / "episodes.csv", index=False)
    return load(write_design(folder, "  source: episodes.csv"))  # the key: tests/conftest.py


def assert_same_data(data, reference):
    pd.testing.assert_frame_equal(data.panel.reset_index(drop=True), reference.panel.reset_index(drop=True),
                                  check_dtype=False)
    ours = data.episodes.sort_values(["unit", "reported_at"], kind="mergesort")
    theirs = reference.episodes.sort_values(["unit", "reported_at"], kind="mergesort")
    np.testing.assert_array_equal(ours["hours_to_found"].to_numpy(), theirs["hours_to_found"].to_numpy())
    np.testing.assert_array_equal(ours["censored"].to_numpy(), theirs["censored"].to_numpy())
    assert data.rows == reference.rows and data.censored == reference.censored


# ----------------------------------------------------------------------------- PostgreSQL
def test_postgres_table_gives_the_same_data_as_the_csv(postgres, pg_password, tmp_path, spoc_frame):
    data = load(write_design(tmp_path, f"  source: {postgres}\n  table: spoc_episodes",
                             treated="[Northshire, Ashcombe, Brackenmoor]"))
    assert data.rows == len(spoc_frame) == 52908
    assert int(data.panel["reports"].sum()) == len(spoc_frame)
    # distinct children and repeats agree with a count straight from the file
    first_reports = spoc_frame.sort_values("reported_at", kind="mergesort").drop_duplicates("child_id")
    assert int(data.panel["repeat_reports"].sum()) == len(spoc_frame) - len(first_reports)
    assert data.sha256 == load(write_design(tmp_path, f"  source: {postgres}\n  table: spoc_episodes",
                                            treated="[Northshire, Ashcombe, Brackenmoor]")).sha256


def test_postgres_query_with_bound_parameters(postgres, pg_password, tmp_path, csv_reference):
    source = (f"  source: {postgres}\n"
              "  query: >-\n"
              "    SELECT episode_id, force, child_id, reported_at, found_at FROM spoc_episodes\n"
              "    WHERE force IN (:first, :second, :third) AND reported_at >= :since ORDER BY episode_id\n"
              "  params: {first: Northshire, second: Westdale, third: Elmshire, since: 2010-01-01}")
    assert_same_data(load(write_design(tmp_path, source)), csv_reference)


def test_postgres_time_zone_aware_timestamps_are_read_as_utc(postgres, pg_password, tmp_path, csv_reference):
    source = (f"  source: {postgres}\n"
              "  query: SELECT * FROM spoc_episodes_utc WHERE force = ANY(CAST(:forces AS text[]))\n"
              "  params: {forces: '{Northshire,Westdale,Elmshire}'}")
    assert_same_data(load(write_design(tmp_path, source)), csv_reference)


def test_parameters_are_bound_never_formatted(postgres, pg_password, tmp_path):
    statements = []

    def spy(conn, cursor, statement, parameters, context, executemany):
        statements.append((statement, parameters))

    hostile = "Northshire' OR '1'='1"
    source = (f"  source: {postgres}\n"
              "  query: SELECT * FROM spoc_episodes WHERE force = :force\n"
              f"  params: {{force: \"{hostile}\"}}")
    sa.event.listen(sa.engine.Engine, "before_cursor_execute", spy)
    try:
        with pytest.raises(evalkit.EvalkitError, match="the query returned no rows"):
            load(write_design(tmp_path, source))
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", spy)
    query = [(s, p) for s, p in statements if "spoc_episodes" in s]
    assert query, statements
    text, parameters = query[-1]
    assert hostile not in text and "Northshire" not in text
    assert hostile in (parameters.values() if isinstance(parameters, dict) else parameters)


def _probe_rows() -> int:
    engine = sa.create_engine(f"postgresql+psycopg://evalkit:{PG_PASSWORD}@127.0.0.1:{PG_PORT}/evalkit",
                              poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        count = connection.execute(sa.text("SELECT count(*) FROM write_probe")).scalar()
    engine.dispose()
    return count


def test_postgres_connection_is_read_only(postgres, pg_password, tmp_path):
    # write_probe() inserts a row from inside a SELECT: only a read-only transaction stops it
    source = (f"  source: {postgres}\n"
              "  query: SELECT *, write_probe() AS written FROM spoc_episodes WHERE force = :force\n"
              "  params: {force: Elmshire}")
    before = _probe_rows()
    with pytest.raises(evalkit.EvalkitError, match=r"data.query: the database refused the query \(.*read-only transaction"):
        load(write_design(tmp_path, source))
    assert _probe_rows() == before


def test_credentials_come_from_the_environment_and_are_never_printed(postgres, tmp_path, monkeypatch):
    design = write_design(tmp_path, f"  source: {postgres}\n  table: spoc_episodes")
    monkeypatch.setenv("EVALKIT_DB_PASSWORD", "not-the-password-7Qx")
    monkeypatch.setenv("EVALKIT_DB_PASSWORD_HOSTS", f"127.0.0.1:{PG_PORT}")
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-pgpass"))
    result = CliRunner().invoke(main, ["run", str(design), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    line = result.stderr.strip()
    assert "\n" not in line and line.startswith(f"error: {postgres}:data.source: cannot connect to the database")
    assert "password authentication failed" in line and "EVALKIT_DB_PASSWORD" in line
    assert "not-the-password-7Qx" not in result.output
    assert not (tmp_path / "out").exists()


def test_a_password_in_the_design_is_refused_and_masked(tmp_path):
    design = write_design(tmp_path, f"  source: postgresql://evalkit:{PG_PASSWORD}@127.0.0.1:{PG_PORT}/evalkit\n"
                                    "  table: spoc_episodes")
    result = CliRunner().invoke(main, ["validate", str(design)])
    assert result.exit_code == 1
    assert "holds a password" in result.stderr and "EVALKIT_DB_PASSWORD" in result.stderr
    assert PG_PASSWORD not in result.output


def test_environment_references_in_the_url(postgres, pg_password, tmp_path, monkeypatch, csv_reference):
    # ${NAME} is expanded in the database only, from an allow-list (docs/data-sources.md)
    source = (f"  source: postgresql://evalkit@127.0.0.1:{PG_PORT}/${{EVALKIT_DB_NAME}}\n"
              "  query: SELECT * FROM spoc_episodes WHERE force IN (:a, :b, :c)\n"
              "  params: {a: Northshire, b: Westdale, c: Elmshire}")
    design = write_design(tmp_path, source)
    monkeypatch.delenv("EVALKIT_DB_NAME", raising=False)
    with pytest.raises(evalkit.EvalkitError, match="EVALKIT_DB_NAME, which is not set") as info:
        load(design)
    assert PG_PASSWORD not in info.value.message
    monkeypatch.setenv("EVALKIT_DB_NAME", "evalkit")
    assert_same_data(load(design), csv_reference)


@pytest.mark.parametrize("source, pattern", [
    ("  source: {pg}\n  table: spoc_episode", r"data.table: table 'spoc_episode' not found \(did you mean 'spoc_episodes'\?\)"),
    ("  source: {pg}\n  query: SELEKT * FROM spoc_episodes", r"data.query: the database refused the query \(syntax error"),
    ("  source: {pg}\n  query: SELECT * FROM spoc_episodes WHERE force = :force",
     r"the query has a placeholder :force with no value"),
    ("  source: {pg}\n  query: SELECT * FROM spoc_episodes\n  params: {{force: Elmshire}}",
     r"data.params: data.params gives 'force', but the query has no :force placeholder"),
    ("  source: {pg}\n  query: SELECT force, reported_at FROM spoc_episodes",
     r"column 'found_at' not found"),
    ("  source: {pg}\n  query: SELECT * FROM spoc_episodes WHERE force = 'nowhere'", r"the query returned no rows"),
])
def test_postgres_errors_are_one_line(postgres, pg_password, tmp_path, source, pattern):
    with pytest.raises(evalkit.EvalkitError, match=pattern) as info:
        load(write_design(tmp_path, source.format(pg=postgres)))
    assert info.value.message.startswith(postgres) and "\n" not in info.value.message


def test_unreachable_server_is_one_line(pg_password, tmp_path):
    design = write_design(tmp_path, "  source: postgresql://evalkit@127.0.0.1:9/evalkit\n  table: spoc_episodes")
    with pytest.raises(evalkit.EvalkitError, match=r"127.0.0.1:9/evalkit:data.source: cannot connect to the database"):
        load(design)


# ----------------------------------------------------------------------------- SQLite and DuckDB
def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    typed = frame.copy()
    typed["reported_at"] = pd.to_datetime(typed["reported_at"])
    typed["found_at"] = pd.to_datetime(typed["found_at"].replace("", None))
    return typed


def test_sqlite_file_is_read_read_only(tmp_path, spoc_frame, csv_reference):
    small = spoc_frame[spoc_frame["force"].isin(SMALL_FORCES)]
    database = tmp_path / "data" / "extract.db"
    database.parent.mkdir()
    with sqlite3.connect(database) as connection:  # timestamps as ISO text, as SQLite stores them
        small.replace("", None).to_sql("episodes", connection, index=False)
    before = database.read_bytes()
    assert_same_data(load(write_design(tmp_path, "  source: sqlite:///data/extract.db\n  table: episodes")),
                     csv_reference)
    query = "  source: sqlite:///data/extract.db\n  query: DELETE FROM episodes RETURNING *"
    with pytest.raises(evalkit.EvalkitError, match=r"refused the query \(attempt to write a readonly database\)"):
        load(write_design(tmp_path, query))
    assert database.read_bytes() == before


def test_missing_sqlite_file_is_not_created(tmp_path):
    with pytest.raises(evalkit.EvalkitError, match=r"database file not found \(nowhere.db\)"):
        load(write_design(tmp_path, "  source: sqlite:///nowhere.db\n  table: episodes"))
    assert not (tmp_path / "nowhere.db").exists()


def test_duckdb_file_is_read_read_only(tmp_path, spoc_frame, csv_reference):
    import duckdb

    small = _typed(spoc_frame[spoc_frame["force"].isin(SMALL_FORCES)])
    with duckdb.connect(str(tmp_path / "extract.duckdb")) as connection:
        connection.register("small", small)
        connection.execute("CREATE TABLE episodes AS SELECT * FROM small")
    source = ("  source: duckdb:///extract.duckdb\n"
              "  query: SELECT * FROM episodes WHERE reported_at < :until\n"
              "  params: {until: 2030-01-01}")
    assert_same_data(load(write_design(tmp_path, source)), csv_reference)
    escape = "  source: duckdb:///extract.duckdb\n  query: COPY (SELECT * FROM episodes) TO 'stolen.csv'"
    with pytest.raises(evalkit.EvalkitError, match="refused the query"):
        load(write_design(tmp_path, escape))
    assert not (tmp_path / "stolen.csv").exists() and not (ROOT / "stolen.csv").exists()


@pytest.mark.parametrize("source, pattern", [
    ("  source: nosuchdb://host/db\n  table: t", r"'nosuchdb' is not a database evalkit knows"),
    ("  source: 'sqlite:///:memory:'\n  table: t", r"in-memory database"),
    ("  source: episodes.csv\n  table: t", r"apply only when data.source is a database URL"),
    ("  source: sqlite:///x.db", r"needs exactly one of data.query .* or data.table"),
])
def test_source_errors(tmp_path, source, pattern):
    with pytest.raises(evalkit.EvalkitError, match=pattern) as info:
        load(write_design(tmp_path, source))
    assert "\n" not in info.value.message
