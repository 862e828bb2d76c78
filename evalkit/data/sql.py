"""Reading episodes or a panel from an SQL database (SQLAlchemy 2), read-only and without leaks.

``data.source`` is a SQLAlchemy URL and ``data.query`` (with ``data.params``) or
``data.table`` says what to read. Three databases are supported, each read-only in fact
(the database itself refuses to write, not just evalkit's good manners):

* ``sqlite:///extract.db``: the file opened with ``mode=ro`` and ``query_only``, no
  attached databases (``ATTACH`` and ``VACUUM INTO`` would create files), temporary
  tables kept in memory, and an authorizer that allows reading and nothing else;
* ``duckdb:///extract.duckdb``: ``read_only``, external access (files, network,
  extensions) switched off, no stored secrets, no spilling to a temporary folder,
  configuration locked;
* ``postgresql://user@host:5432/db``: psycopg 3, every transaction read-only
  (``default_transaction_read_only``).

Embedded files resolve against the design file's folder like any other path. Every
backend gets exactly one statement (a ``;`` inside ``data.query`` is refused: a second
statement could end the read-only transaction) and every transaction is rolled back.

The security model (docs/data-sources.md, "What a design file may cause"):

* no password in the design file, in any form (``user:pw@``, ``?password=``,
  ``?sslkey=``, ...): :func:`check_source` refuses it when the design is loaded and names
  the form, never the value;
* ``${NAME}`` is expanded only in the database (from ``EVALKIT_DB_NAME`` or
  ``PGDATABASE``), never in the driver, user, host, port or query, and never from a
  variable that holds a secret (a URL without a user gets libpq's ``PGUSER`` or the login
  name, as with any libpq client);
* a password from the environment (``EVALKIT_DB_PASSWORD``, or libpq's ``PGPASSWORD``)
  is sent only to a host listed in ``EVALKIT_DB_PASSWORD_HOSTS``; libpq's ``~/.pgpass``
  binds its passwords to hosts itself and always applies;
* messages show the URL as the design wrote it; a driver's message has every expanded
  value replaced by the ``${NAME}`` it came from and every password by ``***``.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import ipaddress
import os
import re
import sqlite3
import urllib.parse
from pathlib import Path

import pandas as pd

from ..errors import EvalkitError, did_you_mean
from .progress import stage
from ..source_urls import (
    BACKENDS,
    ENV_REFERENCE,
    PASSWORD_ENV,
    PASSWORD_HOSTS_ENV,
    UnsafeSource,
    backend_of,
    check_source,
)
from .sources import SourceDigest, check_columns, check_field_lengths

_FETCH_ROWS = 100_000
CONNECT_FIX = (f"check the URL, that the server is running, and the credentials in the environment "
               f"({PASSWORD_ENV} with {PASSWORD_HOSTS_ENV}, or ~/.pgpass)")


def _unsafe(exc: UnsafeSource, where: str) -> EvalkitError:
    what, _, fix = exc.message.partition("; ")
    return EvalkitError(where, what.removeprefix("data.source "), fix or "check data.source", key="data.source")


class _Connection:
    """What connecting needs: the URL with values expanded, and how to mask them in messages."""

    def __init__(self, url, masks: list[tuple[str, str]], withheld: str | None, password_allowed: bool):
        self.url = url
        self.masks = masks  # (value, as shown), longest first
        self.withheld = withheld  # why no password was sent, for a failed connection
        self.password_allowed = password_allowed  # the host is listed in EVALKIT_DB_PASSWORD_HOSTS
        self.database_as_written = ""  # the URL's database before ${NAME} was expanded


def _expanded_url(design) -> _Connection:
    """The URL with ``${NAME}`` expanded in the database, and the password bound to its host."""
    source = design.data.source
    try:
        url = check_source(source)
    except UnsafeSource as exc:
        raise _unsafe(exc, design.where) from None
    masks: list[tuple[str, str]] = []
    for name in {design.data.person_key_env, "EVALKIT_PSEUDONYM_KEY", PASSWORD_ENV, "PGPASSWORD"}:
        if os.environ.get(name):
            masks.append((os.environ[name], "***"))

    def expand(value):
        if value is None:
            return None

        def replace(match):
            name = match.group(1)
            found = os.environ.get(name)
            if not found:
                raise EvalkitError(source, f"the URL names the environment variable {name}, which is not set",
                                   f"set {name} (or write the value into data.source)", key="data.source")
            masks.append((found, match.group(0)))
            return found

        return ENV_REFERENCE.sub(replace, value)

    written = url.database or ""
    url = url.set(database=expand(url.database))
    withheld = None
    allowed = _password_host_allowed(url)
    if backend_of(url) == "postgresql":
        password = os.environ.get(PASSWORD_ENV) or os.environ.get("PGPASSWORD")
        variable = PASSWORD_ENV if os.environ.get(PASSWORD_ENV) else "PGPASSWORD"
        if password and allowed:
            if os.environ.get(PASSWORD_ENV):
                url = url.set(password=os.environ[PASSWORD_ENV])  # else libpq sends PGPASSWORD
        elif password:
            place = f"{url.host}:{url.port or 5432}" if url.host else "a local socket"
            withheld = (f"{variable} was not sent to {place} (not listed in {PASSWORD_HOSTS_ENV}): "
                        f"list it there if that server should get the password")
    masks = sorted({(v, shown) for v, shown in masks if v}, key=lambda item: -len(item[0]))
    connection = _Connection(url, masks, withheld, allowed)
    connection.database_as_written = written
    return connection


def password_hosts() -> list[tuple[str, int | None]]:
    """``EVALKIT_DB_PASSWORD_HOSTS`` as (host, port or None) pairs, hosts in lower case."""
    entries = []
    for entry in os.environ.get(PASSWORD_HOSTS_ENV, "").split(","):
        entry = entry.strip()
        if not entry:
            continue
        host, port = entry, None
        bracketed = re.match(r"^\[([^\]]+)\](?::(\d+))?$", entry)
        if bracketed:
            host, port = bracketed.group(1), bracketed.group(2)
        elif entry.count(":") == 1:
            host, port = entry.split(":")
        entries.append((_normal_host(host), int(port) if port and port.isdigit() else None))
    return entries


def _normal_host(host: str) -> str:
    host = host.strip().lower().rstrip(".")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def _password_host_allowed(url) -> bool:
    if not url.host:
        return False  # a local socket: libpq's peer authentication or ~/.pgpass
    host, port = _normal_host(url.host), url.port or 5432
    return any(host == allowed and (allowed_port is None or allowed_port == port)
               for allowed, allowed_port in password_hosts())


def _engine(connection: _Connection, where: str, design):
    import sqlalchemy as sa

    url = connection.url
    backend = backend_of(url)
    if backend not in BACKENDS:
        raise EvalkitError(where, f"'{url.drivername}' is not a database evalkit knows",
                           "use sqlite:///, duckdb:/// or postgresql:// (the databases evalkit reads read-only)",
                           key="data.source")
    try:
        if backend == "sqlite":
            path = _database_file(url, where, design, connection)
            return sa.create_engine("sqlite://", creator=lambda: _sqlite_connect(path), poolclass=sa.pool.NullPool)
        if backend == "duckdb":
            path = _database_file(url, where, design, connection)
            config = {"enable_external_access": False, "autoinstall_known_extensions": False,
                      "autoload_known_extensions": False, "allow_persistent_secrets": False,
                      "temp_directory": "", "lock_configuration": True}
            return sa.create_engine(url.set(database=str(path)), poolclass=sa.pool.NullPool,
                                    connect_args={"read_only": True, "config": config})
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        connect_args = {"options": "-c default_transaction_read_only=on", "connect_timeout": 10,
                        "application_name": "evalkit"}
        if not connection.password_allowed:
            connect_args["password"] = ""  # libpq then skips PGPASSWORD (still reads ~/.pgpass)
        return sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args=connect_args)
    except sa.exc.NoSuchModuleError:
        raise EvalkitError(where, f"'{url.drivername}' is not a database evalkit knows",
                           "use sqlite:///, duckdb:/// or postgresql:// (or install the SQLAlchemy dialect)",
                           key="data.source") from None
    except ImportError as exc:
        module = getattr(exc, "name", None) or "its driver"
        raise EvalkitError(where, f"the driver for '{url.drivername}' is not installed ({module})",
                           f"install it (pip install {module})", key="data.source") from None


def _database_file(url, where: str, design, connection: _Connection) -> Path:
    database = url.database or ""
    written = connection.database_as_written
    if database in ("", ":memory:") or database.startswith(":memory:"):
        raise EvalkitError(where, "names an in-memory database, which holds no data",
                           "name the database file, e.g. sqlite:///extract.db", key="data.source")
    path = design.resolve(database)
    connection.masks = sorted(set(connection.masks) | {(str(path), written)}, key=lambda item: -len(item[0]))
    if not path.exists():
        raise EvalkitError(where, f"database file not found ({written})",
                           "check data.source (relative paths start at the design file's folder)", key="data.source")
    if path.is_dir():
        raise EvalkitError(where, "names a folder, not a database file", "check data.source", key="data.source")
    if not path.is_file():
        raise EvalkitError(where, "names something that is not a regular file (a pipe or a device)",
                           "export the database to a file and name that", key="data.source")
    return path


def _as_written(text: str, connection: _Connection) -> str:
    """Driver text with every expanded value shown as the ``${NAME}`` it came from, every password as ***."""
    for value, shown in connection.masks:
        if shown == "***" or len(value) >= 6:
            text = text.replace(value, shown)
        else:  # a short user or database name: whole words only, so it does not garble the text
            text = re.sub(r"(?<![\w])" + re.escape(value) + r"(?![\w])", _verbatim(shown), text)
    return text


def _verbatim(replacement: str):
    """A re.sub replacement that inserts ``replacement`` as it is (no backslash or group escapes)."""
    def replace(_match: re.Match[str]) -> str:
        return replacement
    return replace


# ----------------------------------------------------------------------------- SQLite, read-only in fact
_SQLITE_READ_ACTIONS = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
                                  sqlite3.SQLITE_RECURSIVE})
#: Informational pragmas SQLAlchemy's inspector runs; they read the schema and write nothing.
_SQLITE_READ_PRAGMAS = frozenset({"table_info", "table_xinfo", "table_list", "index_list", "index_info",
                                  "index_xinfo", "foreign_key_list"})
#: Settings SQLAlchemy reads when it connects (asked without a value, they change nothing).
_SQLITE_QUERY_PRAGMAS = frozenset({"read_uncommitted", "query_only", "foreign_keys", "encoding", "journal_mode",
                                   "user_version"})
_SQLITE_WRITE_ACTIONS = frozenset(getattr(sqlite3, name) for name in (
    "SQLITE_INSERT", "SQLITE_UPDATE", "SQLITE_DELETE", "SQLITE_CREATE_INDEX", "SQLITE_CREATE_TABLE",
    "SQLITE_CREATE_TEMP_INDEX", "SQLITE_CREATE_TEMP_TABLE", "SQLITE_CREATE_TEMP_TRIGGER", "SQLITE_CREATE_TEMP_VIEW",
    "SQLITE_CREATE_TRIGGER", "SQLITE_CREATE_VIEW", "SQLITE_DROP_INDEX", "SQLITE_DROP_TABLE", "SQLITE_DROP_TEMP_INDEX",
    "SQLITE_DROP_TEMP_TABLE", "SQLITE_DROP_TEMP_TRIGGER", "SQLITE_DROP_TEMP_VIEW", "SQLITE_DROP_TRIGGER",
    "SQLITE_DROP_VIEW", "SQLITE_ALTER_TABLE", "SQLITE_REINDEX", "SQLITE_ANALYZE", "SQLITE_CREATE_VTABLE",
    "SQLITE_DROP_VTABLE") if hasattr(sqlite3, name))


class _SQLiteReadOnly:
    """An authorizer that lets a statement read and nothing else, remembering what it refused."""

    def __init__(self):
        self.refused: str | None = None

    def __call__(self, action, arg1, arg2, database, trigger):
        if action in _SQLITE_READ_ACTIONS:
            if action == sqlite3.SQLITE_FUNCTION and str(arg2).lower() in ("load_extension", "readfile", "writefile",
                                                                           "edit", "fts3_tokenizer"):
                self.refused = f"the function {arg2}() is not allowed: evalkit only reads"
                return sqlite3.SQLITE_DENY
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_UPDATE and str(arg1).lower() in ("sqlite_master", "sqlite_schema"):
            # SQLite asks this while it declares a table-valued function (json_each, pragma_table_info)
            # for a SELECT; a statement that really changes the schema is denied by its own action first
            # (CREATE, DROP, ALTER, ANALYZE, ATTACH), and the file is read-only and query_only besides
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_PRAGMA and (str(arg1).lower() in _SQLITE_READ_PRAGMAS
                                                or (arg2 is None and str(arg1).lower() in _SQLITE_QUERY_PRAGMAS)):
            return sqlite3.SQLITE_OK
        if action in _SQLITE_WRITE_ACTIONS:
            self.refused = "attempt to write a readonly database"
        elif action == sqlite3.SQLITE_ATTACH:
            self.refused = "ATTACH and VACUUM INTO are not allowed: evalkit reads the one database file and writes none"
        elif action == sqlite3.SQLITE_PRAGMA:
            self.refused = f"PRAGMA {arg1} is not allowed: evalkit only reads"
        else:
            self.refused = "only reading is allowed: evalkit opens the database read-only"
        return sqlite3.SQLITE_DENY


class _GuardedSQLite(sqlite3.Connection):
    """A sqlite3 connection that carries its authorizer, so an error can say what was refused."""

    evalkit_guard: _SQLiteReadOnly | None = None


def _sqlite_connect(path: Path) -> sqlite3.Connection:
    """The file opened read-only, with no way for a statement to write it or any other file."""
    uri = f"file:{urllib.parse.quote(str(path))}?mode=ro"
    connection = sqlite3.connect(uri, uri=True, check_same_thread=False, factory=_GuardedSQLite)
    connection.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)  # ATTACH and VACUUM INTO would create files
    connection.execute("PRAGMA temp_store = MEMORY")  # sorts and temporary tables never reach the disk
    connection.execute("PRAGMA query_only = ON")
    connection.evalkit_guard = _SQLiteReadOnly()
    connection.set_authorizer(connection.evalkit_guard)
    return connection


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
    target = _expanded_url(design)
    engine = _engine(target, where, design)
    try:
        with stage("read database query"):
            try:
                connection = engine.connect()
            except Exception as exc:  # any driver: refused, unknown host, bad credentials, not a database
                raise _database_error(exc, where, target, connecting=True) from None
            try:
                statement = _statement(spec, connection, wanted, where)
                result = connection.execution_options(stream_results=True).execute(statement)
                names = [str(name) for name in result.keys()]
                check_columns(names, wanted, where, "data.source")
                rows = []
                with stage("fetch rows") as advance:
                    for part in result.partitions(_FETCH_ROWS):
                        rows.extend(part)
                        advance(len(part))
            except EvalkitError:
                raise
            except Exception as exc:  # SQLAlchemy wraps DBAPI errors; duckdb may raise its own
                raise _database_error(exc, where, target, connecting=False, raw=connection,
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
    utc_columns = []
    for name in wanted:
        plain = _plain_column(frame[name])
        if plain.attrs.get("utc"):
            utc_columns.append(name)
        frame[name] = plain
    frame.attrs["kind"] = "sql"
    frame.attrs["utc_columns"] = utc_columns
    check_field_lengths(frame, where, "sql")
    frame.attrs["digest"] = SourceDigest(where, _frame_sha256(frame))
    return frame


# ----------------------------------------------------------------------------- statement
def single_statement(query: str, where: str) -> str:
    """``data.query`` without its final ``;``; a ``;`` anywhere else is refused.

    A second statement could end the read-only transaction (``COMMIT; SET TRANSACTION
    READ WRITE; ...``) or change a setting, so every backend gets exactly one. The rule
    is deliberately plain (any ``;``, even inside a quoted value or a comment): a parser
    that disagreed with the database's about quoting would let a statement through.
    """
    text = query.strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    if ";" in text:
        raise EvalkitError(where, "data.query holds more than one statement (a ';' before its end)",
                           "give one SELECT; a ';' inside a quoted value or a comment counts too, so pass such values "
                           "as :name parameters", key="data.query")
    if not text:
        raise EvalkitError(where, "data.query is empty", "write one SELECT", key="data.query")
    return text


def _statement(spec, connection, wanted: list[str], where: str):
    import sqlalchemy as sa

    if spec.table is not None:
        schema, _, name = spec.table.rpartition(".")
        schema = schema or None
        inspector = sa.inspect(connection)
        if not inspector.has_table(name, schema=schema):
            tables = []
            try:  # only for the hint; some dialects cannot list views
                tables = inspector.get_table_names(schema=schema) + inspector.get_view_names(schema=schema)
            except Exception:  # the hint is a courtesy: a dialect that cannot list tables gets none
                connection.rollback()
            raise EvalkitError(where, f"table '{spec.table}' not found{did_you_mean(name, tables)}",
                               "check data.table (schema.table for another schema)", key="data.table")
        table = sa.table(name, schema=schema)
        # the columns from an empty SELECT, which every dialect answers (duckdb-engine's
        # inspector cannot list columns under recent DuckDB releases)
        probe = connection.execute(sa.select(sa.literal_column("*")).select_from(table).limit(0))
        present = [str(c) for c in probe.keys()]
        probe.close()
        check_columns(present, wanted, where, "data.source")
        table = sa.table(name, *[sa.column(c) for c in wanted], schema=schema)
        return sa.select(*[table.c[c] for c in wanted])
    text = single_statement(spec.query, where)
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
            instants = pd.to_datetime(values, utc=True).dt.tz_localize(None)
            instants.attrs["utc"] = True  # already UTC: data.timezone does not apply (episodes.validate_episodes)
            return instants
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


def _database_error(exc: Exception, where: str, target: _Connection, connecting: bool,
                    key: str = "data.query", raw=None) -> EvalkitError:
    """One line from a driver's error, naming only what the design wrote (no expanded value, no password)."""
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip() or type(original).__name__
    if text in ("not authorized", "authorization denied") and raw is not None:  # our SQLite authorizer
        try:
            guard = getattr(raw.connection.dbapi_connection, "evalkit_guard", None)
        except Exception:  # a closed connection: the plain text will do
            guard = None
        if guard is not None and guard.refused:
            text = guard.refused
    first = " ".join(_as_written(text, target).splitlines()[0].split())[:200]
    if connecting:
        fix = CONNECT_FIX if target.withheld is None else f"{target.withheld}; {CONNECT_FIX}"
        return EvalkitError(where, f"cannot connect to the database ({first})", fix, key="data.source")
    return EvalkitError(where, f"the database refused the query ({first})",
                        f"check {key} against the database", key=key)
