#!/usr/bin/env bash
# Start a throwaway Redis server for the tests (Debian's redis-server; installed when missing), on
# loopback, keeping nothing on disk. Prints the REDIS_URL to stdout; `tests/redis.sh stop` stops it.
# MCPD_TEST_REDIS_PORT and MCPD_TEST_REDIS_ROOT give a second server of its own (tests/api/test_limits_redis.py).
set -euo pipefail
ROOT=${MCPD_TEST_REDIS_ROOT:-/tmp/mcpd-test-redis}
# Below the kernel's ephemeral range (32768-60999): a client's port there can keep the server from binding.
PORT=${MCPD_TEST_REDIS_PORT:-26379}

answers() { redis-cli -h 127.0.0.1 -p "$PORT" ping 2>/dev/null | grep -q PONG; }

if [ "${1:-start}" = stop ]; then
  if [ -f "$ROOT/redis.pid" ] && pid=$(cat "$ROOT/redis.pid") && kill -0 "$pid" 2>/dev/null; then
    kill "$pid"  # SIGTERM: redis-server exits at once (nothing to save)
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$ROOT/redis.pid"
  exit 0
fi

if ! command -v redis-server >/dev/null; then
  echo "installing Redis from Debian's packages" >&2
  if [ "$(id -u)" = 0 ]; then apt-get update -qq >&2 && apt-get install -y -qq redis-server >&2
  else sudo apt-get update -qq >&2 && sudo apt-get install -y -qq redis-server >&2; fi
fi

if ! { [ -f "$ROOT/redis.pid" ] && kill -0 "$(cat "$ROOT/redis.pid")" 2>/dev/null && answers; }; then
  rm -rf "$ROOT"; mkdir -p -m 700 "$ROOT"
  # No RDB snapshots, no append-only file: a restart starts empty, as the tests expect.
  redis-server --bind 127.0.0.1 --port "$PORT" --save '' --appendonly no --dir "$ROOT" \
    --daemonize yes --pidfile "$ROOT/redis.pid" --logfile "$ROOT/log" >&2
  for _ in $(seq 100); do answers && break; sleep 0.05; done
  answers || { echo "redis-server did not start on port $PORT; see $ROOT/log" >&2; exit 1; }
fi
echo "redis://127.0.0.1:$PORT/0"
