#!/usr/bin/env bash
# System packages the test suite needs beyond Python's: Chromium for the real-browser
# report test, PostgreSQL for the SQL-source tests (tests/test_sql.py starts a throwaway
# server on loopback through .ci/postgres.sh). Idempotent; needs root (CI runs as root) or sudo.
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
