"""Database URLs in a design file: what ``data.source`` may and may not say (no secrets).

Checked when the design is loaded (evalkit.design) and again before connecting
(evalkit.data.sql), so it sits below both: it only parses text, never connects. The
security model is in docs/data-sources.md ("What a design file may cause").
"""

from __future__ import annotations

import re
import urllib.parse

PASSWORD_ENV = "EVALKIT_DB_PASSWORD"
#: Hosts (``host`` or ``host:port``, comma-separated) a password from the environment may be sent to.
PASSWORD_HOSTS_ENV = "EVALKIT_DB_PASSWORD_HOSTS"
#: The only variables ``${NAME}`` may name: in the URL's database (a file path for SQLite and DuckDB), nowhere else.
DATABASE_VARIABLES = ("EVALKIT_DB_NAME", "PGDATABASE")
BACKENDS = ("sqlite", "duckdb", "postgresql")
#: Query keys that carry a credential (or point at one); any key containing these words counts too.
CREDENTIAL_KEYS = frozenset({
    "password", "passwd", "pwd", "pass", "passfile", "sslpassword", "sslkey", "sslcert", "sslcertmode",
    "service", "servicefile", "krbsrvname", "gsslib", "oauth_client_secret", "oauth_client_id",
})
_CREDENTIAL_WORDS = ("pass", "pwd", "secret", "token", "key", "cred", "auth")
#: The only query keys a PostgreSQL URL may carry: transport settings, nothing that names a host or a credential.
POSTGRES_QUERY_KEYS = frozenset({
    "sslmode", "sslrootcert", "sslcrl", "sslcrldir", "sslsni", "ssl_min_protocol_version", "ssl_max_protocol_version",
    "connect_timeout", "application_name", "target_session_attrs", "gssencmode", "channel_binding",
    "sslcompression", "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count",
    "tcp_user_timeout", "client_encoding",
})
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
PASSWORD_FIX = ("drop it from the URL and set EVALKIT_DB_PASSWORD (sent only to the hosts listed in "
                "EVALKIT_DB_PASSWORD_HOSTS) or use ~/.pgpass")


class UnsafeSource(ValueError):
    """A database URL the design may not use; ``code`` names the rule, the text never quotes a value."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


# ----------------------------------------------------------------------------- the URL as written
def check_source(source: str):
    """Refuse a ``data.source`` URL that carries a credential or expands a variable where none may go.

    Called when the design is loaded (``DataSpec`` validation) and again before connecting.
    Two parsers (SQLAlchemy's ``make_url`` and ``urllib.parse``) and a plain rule (a ``:``
    before the ``@`` of the user part) must all agree that there is no password: where they
    differ, the URL is refused.

    Returns
    -------
    URL or None
        The parsed URL (``${NAME}`` not expanded), or None when ``source`` is not a URL.

    Raises
    ------
    UnsafeSource
        The message names the rule and the key or variable, never a value from the URL.
    """
    text = str(source)
    stripped = text.strip()
    if not URL_SCHEME.match(stripped):
        if re.match(r"^[A-Za-z][A-Za-z0-9+.\-]+:[^\\]*@", stripped):
            raise UnsafeSource("url_malformed", "data.source looks like a database URL with a user or password but "
                                                "is not one (a URL starts with scheme://); write it like "
                                                "postgresql://user@host:5432/db, with no password")
        return None
    from sqlalchemy.engine import make_url

    _refuse_userinfo_password(stripped)
    try:
        url = make_url(stripped)
    except Exception:  # ArgumentError, or ValueError for a port that is not a number
        hint = " (${NAME} is expanded only in the database)" if "${" in stripped else ""
        raise UnsafeSource("url_invalid", f"data.source is not a valid database URL{hint}; write it like "
                                          "sqlite:///extract.db, duckdb:///extract.duckdb or "
                                          "postgresql://user@host:5432/db") from None
    if url.password is not None:
        raise UnsafeSource("url_password", "data.source holds a password, which belongs in the environment, not "
                                           f"the design file: {PASSWORD_FIX}")
    keys = _query_keys(stripped, url)
    for key in keys:
        lowered = key.lower()
        if lowered in CREDENTIAL_KEYS or any(word in lowered for word in _CREDENTIAL_WORDS):
            raise UnsafeSource("url_password", f"data.source holds a credential in its query ('{shown_key(key)}'), "
                                               f"which belongs in the environment, not the design file: {PASSWORD_FIX}")
    if text != stripped:
        raise UnsafeSource("url_spaces", "data.source has spaces or line breaks around the database URL; remove them")
    backend = backend_of(url)
    if keys and backend in ("sqlite", "duckdb"):
        raise UnsafeSource("url_query", f"data.source has a query ('?{shown_key(keys[0])}=...'), which {backend} "
                                        "URLs do not take; remove it (evalkit opens the file read-only itself)")
    if backend == "postgresql":
        for key in keys:
            if key.lower() not in POSTGRES_QUERY_KEYS:
                raise UnsafeSource("url_query", f"data.source's query key '{shown_key(key)}' is not allowed (it could "
                                                "name another host, user or setting); allowed: "
                                                + ", ".join(sorted(POSTGRES_QUERY_KEYS)))
    if url.host and "," in url.host:
        raise UnsafeSource("url_hosts", "data.source names more than one host (a ',' in the host); name one host, "
                                        "so that a password can be bound to it")
    for part, value in (("driver", url.drivername), ("user name", url.username), ("host", url.host),
                        ("port", url.port), ("query", stripped.partition("?")[2])):
        if value is not None and "${" in str(value):
            extra = (" (leave the user out of the URL and libpq uses PGUSER or your login name)"
                     if part == "user name" else "")
            raise UnsafeSource("url_variable", f"data.source has ${{NAME}} in its {part}, where no variable is "
                                               f"expanded{extra}; write the value (${{NAME}} is expanded only in "
                                               "the database, from ${EVALKIT_DB_NAME} or ${PGDATABASE})")
    for name in ENV_REFERENCE.findall(url.database or ""):
        if name not in DATABASE_VARIABLES:
            raise UnsafeSource("url_variable", f"data.source names ${{{name}}} in its database, but the database may "
                                               "only use " + " or ".join(f"${{{a}}}" for a in DATABASE_VARIABLES)
                                               + " (no other variable is read, so no secret can be sent or shown)")
    return url


def backend_of(url) -> str:
    """The database a URL names (``postgres`` is an old spelling of ``postgresql``)."""
    backend = url.get_backend_name()
    return "postgresql" if backend == "postgres" else backend


def _refuse_userinfo_password(text: str) -> None:
    """A ``:`` in the part before the last ``@`` of the authority is a password, whatever a parser thinks."""
    rest = text.split("://", 1)[1]
    head = rest.split("?", 1)[0]
    try:
        password = urllib.parse.urlsplit(text).password
    except ValueError:
        password = None
    if password is not None or ("@" in head and ":" in head[:head.rfind("@")]):
        raise UnsafeSource("url_password", "data.source holds a password (a ':' in the user part before '@'), "
                                           f"which belongs in the environment, not the design file: {PASSWORD_FIX}")


def _query_keys(text: str, url) -> list[str]:
    """Every query key, by both parsers (``&`` and ``;`` separated, percent-decoded)."""
    keys = [str(key) for key in url.query]
    query = text.partition("?")[2]
    for part in re.split(r"[&;]", query):
        key = urllib.parse.unquote_plus(part.partition("=")[0]).strip()
        if key and key not in keys:
            keys.append(key)
    return keys


def shown_key(key: str) -> str:
    """A query key as messages show it: short, printable."""
    key = "".join(c if c.isprintable() else "?" for c in key)
    return key if len(key) <= 40 else key[:40] + "..."
