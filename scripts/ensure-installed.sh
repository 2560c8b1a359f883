#!/usr/bin/env bash
# Installs the npm dependencies on a fresh clone, so that `npm start` and `npm test` are the only
# commands a new user needs.
set -eu
cd "$(dirname "$0")/.."
if [ ! -x node_modules/.bin/tsc ]; then
  echo "installing npm dependencies (first run)" >&2
  npm ci --no-audit --no-fund >&2 || npm install --no-audit --no-fund >&2
fi
