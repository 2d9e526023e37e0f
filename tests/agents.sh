#!/usr/bin/env bash
# The coding agents and Node clients the end-to-end tests drive (tests/e2e/test_agents.py), from the npm
# registry, with their native binaries, into a cache outside the checkout; reused once there. Prints the
# directory.
set -euo pipefail
DIR=${MCPD_TEST_AGENTS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mcpd-test-agents}
CLAUDE_CODE=@anthropic-ai/claude-code@2.1.197
CODEX=@openai/codex@0.171.0
AI_SDK=(ai@6.0.326 @ai-sdk/openai@3.0.141)  # the Vercel AI SDK and its OpenAI provider
missing=()
[ -x "$DIR/node_modules/.bin/claude" ] && "$DIR/node_modules/.bin/claude" --version 2>/dev/null | grep -q "^${CLAUDE_CODE##*@} " \
  || missing+=("$CLAUDE_CODE")
[ -x "$DIR/node_modules/.bin/codex" ] && "$DIR/node_modules/.bin/codex" --version 2>/dev/null | grep -q " ${CODEX##*@}$" \
  || missing+=("$CODEX")
for package in "${AI_SDK[@]}"; do
  name=${package%@*}
  grep -qs "\"version\": \"${package##*@}\"" "$DIR/node_modules/$name/package.json" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  if ! command -v npm >/dev/null; then
    echo "installing Node.js and npm from Debian's packages" >&2
    if [ "$(id -u)" = 0 ]; then apt-get update -qq >&2 && apt-get install -y -qq nodejs npm >&2
    else sudo apt-get update -qq >&2 && sudo apt-get install -y -qq nodejs npm >&2; fi
  fi
  echo "installing ${missing[*]} into $DIR" >&2
  mkdir -p "$DIR"
  npm install --prefix "$DIR" --no-audit --no-fund --loglevel=error "$CLAUDE_CODE" "$CODEX" "${AI_SDK[@]}" >&2
fi
echo "$DIR"
