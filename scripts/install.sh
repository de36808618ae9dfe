#!/usr/bin/env bash
# Installs what Course Studio needs, skipping what is already there.
#   scripts/install.sh              Python packages (.venv, from requirements.lock) and bun
#   scripts/install.sh --for-tests  also Debian's Chromium for the browser tests
set -euo pipefail
cd "$(dirname "$0")/.."

FOR_TESTS=0
[ "${1:-}" = "--for-tests" ] && FOR_TESTS=1
BUN_VERSION=1.4.5
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# Python environment ------------------------------------------------------------
if [ ! -x .venv/bin/python ]; then
  say "Creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
# The locked set (requirements.lock: every package and version, test tools included)
# then the project itself. Regenerate the lock with scripts/lock.sh.
stamp=".venv/.installed"
want="$(cat pyproject.toml requirements.lock | sha1sum | cut -c1-40)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "Installing Python packages from requirements.lock"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
  echo "$want" > "$stamp"
fi

# bun, from the npm registry (Reflex's own installer downloads from elsewhere) ----
if [ "$(.tools/node_modules/.bin/bun --version 2>/dev/null)" != "$BUN_VERSION" ]; then
  say "Installing bun $BUN_VERSION from the npm registry"
  mkdir -p .tools
  npm install --silent --no-audit --no-fund --prefix .tools "bun@$BUN_VERSION"
fi

# Chromium for the browser tests (Playwright cannot download its own here) ---------
if [ "$FOR_TESTS" = 1 ] && [ ! -x /usr/bin/chromium ]; then
  say "Installing Debian's Chromium"
  SUDO=""; [ "$(id -u)" != 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
