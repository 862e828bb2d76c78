#!/usr/bin/env bash
# A PostgreSQL server for tests/test_sql.py, from Debian's packages, on loopback only.
#
# Idempotent: installs postgresql if it is absent, creates a cluster in $EVALKIT_PG_DIR
# the first time, starts it if it is not running, creates the role and database, and
# loads the fixture (the shipped SPOC example's episodes) unless it is already loaded.
# Run as root (CI is root); the server runs as the postgres user.
#
#   bash .ci/postgres.sh            # start (or check) the server and the fixture
#   bash .ci/postgres.sh --reload   # load the fixture again
#   bash .ci/postgres.sh --stop     # stop the server
#
# Connection (tests/test_sql.py uses the same defaults):
#   host 127.0.0.1, port $EVALKIT_PG_PORT (54329), database evalkit, role evalkit,
#   password from EVALKIT_PG_TEST_PASSWORD (a throwaway test password by default).
set -euo pipefail

PORT="${EVALKIT_PG_PORT:-54329}"
DATA="${EVALKIT_PG_DIR:-/tmp/evalkit-postgres}"
ROLE=evalkit
DATABASE=evalkit
PASSWORD="${EVALKIT_PG_TEST_PASSWORD:-evalkit-ci-only-password}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
FIXTURE="$ROOT/examples/spoc/episodes.csv.gz"

log() { echo "postgres.sh: $*" >&2; }

find_bin() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

BIN="$(find_bin || true)"
if [ -z "$BIN" ] || [ ! -x "$BIN/pg_ctl" ]; then
  log "installing postgresql from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql >/dev/null
  BIN="$(find_bin)"
fi

as_postgres() {
  if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi
}

if [ "${1:-}" = "--stop" ]; then
  as_postgres "$BIN/pg_ctl" -D "$DATA" -m fast -w stop || true
  exit 0
fi

if [ ! -f "$DATA/PG_VERSION" ]; then
  log "creating a cluster in $DATA"
  mkdir -p "$DATA"
  chown postgres: "$DATA"
  chmod 700 "$DATA"
  as_postgres "$BIN/initdb" -D "$DATA" -U postgres --auth-local=peer --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 >/dev/null
fi

if ! as_postgres "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
  log "starting the server on 127.0.0.1:$PORT"
  as_postgres "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -t 60 start \
    -o "-c listen_addresses=127.0.0.1 -c port=$PORT -c unix_socket_directories=$DATA" >/dev/null
fi

psql_admin() {
  PGOPTIONS="-c client_min_messages=warning" \
    as_postgres "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$DATA" -p "$PORT" -U postgres "$@"
}

# the role and the database (passwords go to the server, never to the log)
psql_admin -d postgres -v role="$ROLE" -v password="$PASSWORD" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'role', :'password')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role') \gexec
SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', :'role', :'password') \gexec
SQL
if [ -z "$(psql_admin -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DATABASE'")" ]; then
  psql_admin -d postgres -c "CREATE DATABASE $DATABASE OWNER $ROLE"
fi

# the fixture: the shipped SPOC example's episodes, and a view with time-zone-aware times
# reloaded whenever the example's file changes (its SHA-256 is kept beside the table)
digest="$(sha256sum "$FIXTURE" | cut -d' ' -f1)"
loaded=""
if [ "$(psql_admin -d "$DATABASE" -tAc "SELECT to_regclass('public.fixture_version') IS NOT NULL")" = "t" ]; then
  loaded="$(psql_admin -d "$DATABASE" -tAc "SELECT max(sha256) FROM fixture_version")"
fi
if [ "$loaded" != "$digest" ] || [ "${1:-}" = "--reload" ]; then
  log "loading the fixture from $FIXTURE"
  psql_admin -d "$DATABASE" <<SQL
DROP VIEW IF EXISTS spoc_episodes_utc;
DROP TABLE IF EXISTS spoc_episodes;
CREATE TABLE spoc_episodes (
  episode_id text PRIMARY KEY,
  force text NOT NULL,
  child_id text,
  reported_at timestamp NOT NULL,
  found_at timestamp,
  age integer,
  sex text,
  looked_after boolean,
  risk text
);
ALTER TABLE spoc_episodes OWNER TO $ROLE;
SQL
  gzip -dc "$FIXTURE" | psql_admin -d "$DATABASE" \
    -c "\\copy spoc_episodes FROM STDIN WITH (FORMAT csv, HEADER true)"
  psql_admin -d "$DATABASE" <<SQL
CREATE VIEW spoc_episodes_utc AS
  SELECT episode_id, force, child_id, reported_at AT TIME ZONE 'UTC' AS reported_at,
         found_at AT TIME ZONE 'UTC' AS found_at
  FROM spoc_episodes;
ALTER VIEW spoc_episodes_utc OWNER TO $ROLE;
ANALYZE spoc_episodes;
DROP TABLE IF EXISTS fixture_version;
CREATE TABLE fixture_version (sha256 text NOT NULL);
INSERT INTO fixture_version VALUES ('$digest');
SQL
fi
# a write probe: a function that writes, to show that evalkit's transactions are read-only
psql_admin -d "$DATABASE" <<SQL
CREATE TABLE IF NOT EXISTS write_probe (written integer);
ALTER TABLE write_probe OWNER TO $ROLE;
CREATE OR REPLACE FUNCTION write_probe() RETURNS integer LANGUAGE sql VOLATILE
  AS 'INSERT INTO write_probe VALUES (1) RETURNING written';
ALTER FUNCTION write_probe() OWNER TO $ROLE;
SQL
log "ready: postgresql://$ROLE@127.0.0.1:$PORT/$DATABASE (password in EVALKIT_DB_PASSWORD)"
