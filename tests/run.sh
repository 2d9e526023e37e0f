#!/usr/bin/env bash
# The whole suite: on SQLite (the embedded default), then the database paths again on PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
export MCPD_DATA_DIR=${MCPD_DATA_DIR:-$(mktemp -d)}
PYTEST=".venv/bin/python -m pytest"

# The browser test of the admin (tests/e2e) drives Debian's Chromium through chromedriver.
if ! { command -v chromium >/dev/null && command -v chromedriver >/dev/null; }; then
  echo "--> installing chromium and chromium-driver from Debian's packages"
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium chromium-driver
  else sudo apt-get update -qq && sudo apt-get install -y -qq chromium chromium-driver; fi
fi

# The coding agents and Node clients driven end to end (Claude Code, Codex, the AI SDK), from npm.
export MCPD_TEST_AGENTS_DIR=$(bash tests/agents.sh)

echo "--> on SQLite"
# loadgroup: the e2e tests (xdist_group "e2e") share one worker, hence one gunicorn server.
$PYTEST -n 2 --dist loadgroup -p no:cacheprovider -m "not solo" "$@"

echo "--> the load-sensitive tests, alone (1,000 simultaneous streams, 1,000 faulty calls)"
# With another test beside them on two cores they measure the machine, not mcpd. 5: none selected.
$PYTEST -p no:cacheprovider -m solo "$@" || [ $? -eq 5 ]

echo "--> on PostgreSQL (the database paths: API, commands, tokens, permissions, secrets, audit)"
PG_URL=$(bash tests/pg.sh)
trap 'bash tests/pg.sh stop' EXIT
# In-process tests open and drop test databases: a connection pool would keep connections to them
# open (the pool is the server's, tested in tests/e2e/test_scale.py on a PostgreSQL of its own).
DATABASE_URL=$PG_URL MCPD_DB_POOL_SIZE=0 $PYTEST -n 2 -p no:cacheprovider \
  tests/api tests/commands tests/unit/test_foundation_*.py "$@"

echo "--> limits and cool-downs counted in Redis (REDIS_URL), on PostgreSQL"
REDIS_URL=$(bash tests/redis.sh)
trap 'bash tests/pg.sh stop; bash tests/redis.sh stop' EXIT
DATABASE_URL=$PG_URL MCPD_DB_POOL_SIZE=0 REDIS_URL=$REDIS_URL $PYTEST -n 2 -p no:cacheprovider \
  tests/api/test_limits.py tests/api/test_limits_redis.py tests/api/test_routing.py "$@"
