#!/usr/bin/env bash
# The whole suite: on SQLite (the embedded default), then the database paths again on PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
export MCPD_DATA_DIR=${MCPD_DATA_DIR:-$(mktemp -d)}
PYTEST=".venv/bin/python -m pytest"

echo "--> on SQLite"
$PYTEST -n 2 -p no:cacheprovider "$@"

echo "--> on PostgreSQL (database paths: API, commands, audit)"
PG_URL=$(bash tests/pg.sh)
trap 'bash tests/pg.sh stop' EXIT
DATABASE_URL=$PG_URL $PYTEST -n 2 -p no:cacheprovider -m "not sqlite_only" tests/api tests/commands "$@"
