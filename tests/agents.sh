#!/usr/bin/env bash
# The coding agents the end-to-end tests drive (tests/e2e/test_agents.py), from the npm registry, with
# their native binaries, into a cache outside the checkout; reused once there. Prints the directory.
set -euo pipefail
DIR=${MCPD_TEST_AGENTS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mcpd-test-agents}
CLAUDE_CODE=@anthropic-ai/claude-code@2.1.197
if [ ! -x "$DIR/node_modules/.bin/claude" ]; then
  if ! command -v npm >/dev/null; then
    echo "installing Node.js and npm from Debian's packages" >&2
    if [ "$(id -u)" = 0 ]; then apt-get update -qq >&2 && apt-get install -y -qq nodejs npm >&2
    else sudo apt-get update -qq >&2 && sudo apt-get install -y -qq nodejs npm >&2; fi
  fi
  echo "installing $CLAUDE_CODE into $DIR" >&2
  mkdir -p "$DIR"
  npm install --prefix "$DIR" --no-audit --no-fund --loglevel=error "$CLAUDE_CODE" >&2
fi
echo "$DIR"
