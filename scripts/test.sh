#!/usr/bin/env bash
# Install what is missing (test extras, Chromium), then run the whole test suite:
# everything against the app on SQLite, then the API, security and browser suites
# again against the production-mode app (course-app serve: PostgreSQL, Redis state
# and limits, two workers; see tests/conftest.py --production-app).
# Extra arguments go to one pytest run instead, e.g. scripts/test.sh tests/unit -x
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --for-tests
source scripts/env.sh
if [ $# -gt 0 ]; then
  exec python -m pytest "$@"
fi
status=0
python -m pytest || status=$?
python -m pytest --production-app tests/api tests/security tests/e2e || status=$?
exit $status
