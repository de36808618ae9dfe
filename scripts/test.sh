#!/usr/bin/env bash
# Install what is missing (test extras, Chromium), then run the whole test suite.
# Extra arguments go to pytest, e.g. scripts/test.sh tests/unit -x
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --for-tests
source scripts/env.sh
exec python -m pytest "$@"
