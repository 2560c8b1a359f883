#!/usr/bin/env bash
# Installs the npm dependencies on a fresh clone, so that `npm start` and `npm test` are the only
# commands a new user needs.
set -eu
cd "$(dirname "$0")/.."
# The compiler and the linters `npm test` runs first (a checkout that gained a dependency needs it too).
if [ ! -x node_modules/.bin/tsc ] || [ ! -x node_modules/.bin/eslint ] || [ ! -x node_modules/.bin/depcruise ] || [ ! -x node_modules/.bin/knip ]; then
  echo "installing npm dependencies (first run)" >&2
  npm ci --no-audit --no-fund >&2 || npm install --no-audit --no-fund >&2
fi
# Started as root, tsubame runs as the service user (etc/option.dat SERVER_USER, default tsubame):
# create the default one when it is missing (a system user with no login and no home).
if [ "$(id -u)" = 0 ] && ! getent passwd tsubame >/dev/null 2>&1; then
  user=$(sed -n 's/^[[:space:]]*SERVER_USER[[:space:]]*=[[:space:]]*//p' "${IMTA_ROOT:-.}/etc/option.dat" 2>/dev/null | tail -n 1)
  if [ -z "$user" ] || [ "$user" = tsubame ]; then
    echo "creating the system user tsubame (the service user tsubame runs as when started as root)" >&2
    useradd --system --user-group --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin tsubame >&2
  fi
fi
