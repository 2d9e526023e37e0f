#!/usr/bin/env bash
# Start a throwaway PostgreSQL server for the tests (Debian's packages; installed when missing).
# Prints the DATABASE_URL to stdout; the server lives in $PGROOT until `tests/pg.sh stop`.
set -euo pipefail
PGROOT=${MCPD_TEST_PG_ROOT:-/tmp/mcpd-test-pg}
# Below the kernel's ephemeral range (32768-60999): a client's port there can keep the server from binding.
PGPORT=${MCPD_TEST_PG_PORT:-25432}
PGMAXCONN=${MCPD_TEST_PG_MAX_CONNECTIONS:-100}

find_bin() {
  local dir
  for dir in /usr/lib/postgresql/*/bin; do [ -x "$dir/initdb" ] && { echo "$dir"; return 0; }; done
  return 1
}

as_pg() {  # PostgreSQL refuses to run as root: run its programs as the postgres system user then.
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [ "${1:-start}" = stop ]; then
  bin=$(find_bin) && [ -f "$PGROOT/data/postmaster.pid" ] && as_pg "$bin/pg_ctl" -D "$PGROOT/data" -m fast stop >/dev/null
  exit 0
fi

if ! bin=$(find_bin); then
  echo "installing PostgreSQL from Debian's packages" >&2
  if [ "$(id -u)" = 0 ]; then apt-get update -qq >&2 && apt-get install -y -qq postgresql >&2
  else sudo apt-get update -qq >&2 && sudo apt-get install -y -qq postgresql >&2; fi
  bin=$(find_bin)
fi

if [ -f "$PGROOT/data/postmaster.pid" ] && as_pg "$bin/pg_ctl" -D "$PGROOT/data" status >/dev/null 2>&1; then
  :
else
  rm -rf "$PGROOT"; mkdir -p "$PGROOT"
  [ "$(id -u)" = 0 ] && chown postgres "$PGROOT"
  as_pg "$bin/initdb" -D "$PGROOT/data" -U mcpd --auth=trust -E UTF8 >/dev/null
  as_pg "$bin/pg_ctl" -D "$PGROOT/data" -l "$PGROOT/log" -w \
    -o "-p $PGPORT -k $PGROOT -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=$PGMAXCONN" \
    start >/dev/null
fi
echo "postgres://mcpd@127.0.0.1:$PGPORT/mcpd"
