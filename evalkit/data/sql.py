"""Reading episodes or a panel from an SQL database (SQLAlchemy 2).

``data.source`` is a SQLAlchemy URL and ``data.query`` (with ``data.params``) or
``data.table`` says what to read:

* ``sqlite:///extract.db`` and ``duckdb:///extract.duckdb``: embedded database files,
  resolved against the design file's folder like any other path, opened read-only
  (SQLite ``mode=ro``; DuckDB ``read_only`` with external file access switched off);
* ``postgresql://user@host:5432/db``: PostgreSQL through psycopg 3, every transaction
  read-only (``default_transaction_read_only``);
* any other SQLAlchemy URL whose driver is installed: read inside a transaction that is
  rolled back, never committed.

Safety rules:

* parameters are bound (``:name`` placeholders in ``data.query``, values in
  ``data.params``), never formatted into SQL text; a ``table`` name is quoted as an
  identifier by SQLAlchemy;
* credentials come from the environment, never from the design file: a URL holding a
  password is refused when the design is loaded; the password is read from
  ``EVALKIT_DB_PASSWORD`` (or, for PostgreSQL, libpq's own ``PGPASSWORD`` or
  ``~/.pgpass``), and ``${NAME}`` in the URL is replaced by the environment variable
  NAME (for a user or host kept out of the design file);
* messages name the URL as the design wrote it (no expanded variables, no password) and
  the first line of the database's own error.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import os
import re
import sqlite3
import urllib.parse
from pathlib import Path

import pandas as pd

from ..errors import EvalkitError, did_you_mean
from .progress import stage
from .sources import SourceDigest, _check_columns, _check_field_lengths

PASSWORD_ENV = "EVALKIT_DB_PASSWORD"
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_FETCH_ROWS = 100_000
CONNECT_FIX = (f"check the URL, that the server is running, and the credentials in the environment "
               f"({PASSWORD_ENV} or PGPASSWORD)")


def read_database(design, columns: list[str]) -> pd.DataFrame:
    """Read the needed columns of ``data.query`` or ``data.table`` from ``data.source``.

    Returns
    -------
    DataFrame
        Values as the driver returns them (timestamps as datetime64, text as str);
        ``attrs["kind"] = "sql"`` (row 1 = the first row of the result) and
        ``attrs["digest"]`` a :class:`SourceDigest` of the rows read.
    """
    spec = design.data
    where = spec.source
    wanted = list(dict.fromkeys(columns))
    url, secrets_ = _expanded_url(design)
    engine = _engine(url, where, design)
    try:
        with stage("read database query"):
            try:
                connection = engine.connect()
            except Exception as exc:  # any driver: refused, unknown host, bad credentials, not a database
                raise _database_error(exc, where, secrets_, connecting=True) from None
            try:
                statement = _statement(spec, connection, wanted, where)
                result = connection.execution_options(stream_results=True).execute(statement)
                names = [str(name) for name in result.keys()]
                _check_columns(names, wanted, where, "data.source")
                rows = []
                with stage("fetch rows") as advance:
                    for part in result.partitions(_FETCH_ROWS):
                        rows.extend(part)
                        advance(len(part))
            except EvalkitError:
                raise
            except Exception as exc:  # SQLAlchemy wraps DBAPI errors; duckdb may raise its own
                raise _database_error(exc, where, secrets_, connecting=False,
                                      key="data.table" if spec.table is not None else "data.query") from None
            finally:
                try:
                    connection.rollback()  # nothing a query did is ever committed
                    connection.close()
                except Exception:  # the connection may already be broken; nothing to keep
                    pass
    finally:
        engine.dispose()
    if not rows:
        raise EvalkitError(where, "the query returned no rows", "check data.query or data.table (and data.params)")
    frame = pd.DataFrame.from_records(rows, columns=names)
    del rows
    frame = frame.loc[:, ~frame.columns.duplicated()][wanted]
    for name in wanted:
        frame[name] = _plain_column(frame[name])
    frame.attrs["kind"] = "sql"
    _check_field_lengths(frame, where, "sql")
    frame.attrs["digest"] = SourceDigest(where, _frame_sha256(frame))
    return frame


# ----------------------------------------------------------------------------- URL and engine
def _expanded_url(design):
    """The URL with ``${NAME}`` replaced from the environment and the password attached."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    source = design.data.source
    secrets_ = []

    def replace(match):
        name = match.group(1)
        value = os.environ.get(name)
        if value is None:
            raise EvalkitError(source, f"the URL names the environment variable {name}, which is not set",
                               f"set {name} (or write the value into data.source if it is not a secret)", key="data.source")
        secrets_.append(value)
        return value

    text = _ENV_REFERENCE.sub(replace, source)
    try:
        url = make_url(text)
    except ArgumentError:
        raise EvalkitError(source, "is not a valid database URL",
                           "write it like sqlite:///extract.db, duckdb:///extract.duckdb or postgresql://user@host:5432/db",
                           key="data.source") from None
    password = os.environ.get(PASSWORD_ENV)
    if password and url.password is None and not url.drivername.startswith(("sqlite", "duckdb")):
        url = url.set(password=password)
    if url.password is not None:
        secrets_.append(str(url.password))
    return url, [s for s in secrets_ if s]


def _engine(url, where: str, design):
    import sqlalchemy as sa

    backend = url.get_backend_name()
    try:
        if backend == "sqlite":
            path = _database_file(url, where, design)

            def connect():
                uri = f"file:{urllib.parse.quote(str(path))}?mode=ro"
                return sqlite3.connect(uri, uri=True, check_same_thread=False)

            return sa.create_engine("sqlite://", creator=connect, poolclass=sa.pool.NullPool)
        if backend == "duckdb":
            path = _database_file(url, where, design)
            return sa.create_engine(
                url.set(database=str(path)), poolclass=sa.pool.NullPool,
                connect_args={"read_only": True, "config": {"enable_external_access": False}},
            )
        if backend == "postgresql":
            if url.drivername in ("postgresql", "postgres"):
                url = url.set(drivername="postgresql+psycopg")
            return sa.create_engine(
                url, poolclass=sa.pool.NullPool,
                connect_args={"options": "-c default_transaction_read_only=on", "connect_timeout": 10,
                              "application_name": "evalkit"},
            )
        return sa.create_engine(url, poolclass=sa.pool.NullPool)
    except sa.exc.NoSuchModuleError:
        raise EvalkitError(where, f"'{url.drivername}' is not a database evalkit knows",
                           "use sqlite:///, duckdb:/// or postgresql:// (or install the SQLAlchemy dialect)",
                           key="data.source") from None
    except ImportError as exc:
        module = getattr(exc, "name", None) or "its driver"
        raise EvalkitError(where, f"the driver for '{url.drivername}' is not installed ({module})",
                           f"install it (pip install {module})", key="data.source") from None


def _database_file(url, where: str, design) -> Path:
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith(":memory:"):
        raise EvalkitError(where, "names an in-memory database, which holds no data",
                           "name the database file, e.g. sqlite:///extract.db", key="data.source")
    path = design.resolve(database)
    if not path.exists():
        raise EvalkitError(where, f"database file not found ({database})",
                           "check data.source (relative paths start at the design file's folder)", key="data.source")
    if path.is_dir():
        raise EvalkitError(where, "names a folder, not a database file", "check data.source", key="data.source")
    return path


# ----------------------------------------------------------------------------- statement
def _statement(spec, connection, wanted: list[str], where: str):
    import sqlalchemy as sa

    if spec.table is not None:
        schema, _, name = spec.table.rpartition(".")
        schema = schema or None
        inspector = sa.inspect(connection)
        if not inspector.has_table(name, schema=schema):
            tables = inspector.get_table_names(schema=schema) + inspector.get_view_names(schema=schema)
            raise EvalkitError(where, f"table '{spec.table}' not found{did_you_mean(name, tables)}",
                               "check data.table (schema.table for another schema)", key="data.table")
        present = [str(c["name"]) for c in inspector.get_columns(name, schema=schema)]
        _check_columns(present, wanted, where, "data.source")
        table = sa.table(name, *[sa.column(c) for c in wanted], schema=schema)
        return sa.select(*[table.c[c] for c in wanted])
    text = spec.query.strip().rstrip(";").strip()
    statement = sa.text(text)
    declared = set(statement.compile().params)
    params = dict(spec.params or {})
    unknown = sorted(set(params) - declared)
    if unknown:
        raise EvalkitError(where, f"data.params gives '{unknown[0]}', but the query has no :{unknown[0]} placeholder",
                           f"write :{unknown[0]} in data.query where the value goes, or remove it from data.params",
                           key="data.params")
    missing = sorted(declared - set(params))
    if missing:
        raise EvalkitError(where, f"the query has a placeholder :{missing[0]} with no value",
                           f"give it under data.params (a colon in SQL starts a placeholder; write \\:{missing[0]} "
                           "for a literal colon)", key="data.query")
    return statement.bindparams(**params) if params else statement


# ----------------------------------------------------------------------------- values
def _plain_column(values: pd.Series) -> pd.Series:
    """Driver values as plain pandas: dates and decimals are not left as Python objects."""
    if values.dtype != object:
        return values
    sample = values.dropna()
    if sample.empty:
        return values
    first = sample.iloc[0]
    if isinstance(first, decimal.Decimal):
        return pd.to_numeric(values.map(lambda v: None if v is None else float(v)), errors="coerce")
    if isinstance(first, (dt.datetime, dt.date)) and sample.map(lambda v: isinstance(v, (dt.datetime, dt.date))).all():
        aware = sample.map(lambda v: isinstance(v, dt.datetime) and v.tzinfo is not None)
        if aware.all():
            return pd.to_datetime(values, utc=True).dt.tz_localize(None)
        if not aware.any():
            return pd.to_datetime(values)
    if isinstance(first, (bytes, bytearray, memoryview)):
        return values.map(lambda v: v if v is None else f"<{len(v)} bytes>")
    return values


def _frame_sha256(frame: pd.DataFrame) -> str:
    """SHA-256 of the rows read, written as CSV (the data's fingerprint for results.json)."""
    digest = hashlib.sha256()
    step = 200_000
    for start in range(0, len(frame), step):
        part = frame.iloc[start:start + step]
        digest.update(part.to_csv(index=False, header=start == 0, lineterminator="\n",
                                  date_format="%Y-%m-%dT%H:%M:%S.%f").encode("utf-8"))
    return digest.hexdigest()


def _database_error(exc: Exception, where: str, secrets_: list[str], connecting: bool,
                    key: str = "data.query") -> EvalkitError:
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip() or type(original).__name__
    for secret in secrets_:
        text = text.replace(secret, "***")
    first = " ".join(text.splitlines()[0].split())[:200]
    if connecting:
        return EvalkitError(where, f"cannot connect to the database ({first})", CONNECT_FIX, key="data.source")
    return EvalkitError(where, f"the database refused the query ({first})",
                        f"check {key} against the database", key=key)
