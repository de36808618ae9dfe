#!/usr/bin/env bash
# Install what is missing, then serve Course Studio on http://localhost:3000
# with its embedded defaults: SQLite in ./data, videos on local disk, no accounts needed.
# The app starts its own video processing worker (a `course-app worker` process
# reading the SQLite job queue in ./data); COURSE_EMBEDDED_WORKERS=0 turns it off.
#   scripts/run.sh --prod [--port N] [--workers N]   the production server (`course-app serve`),
#   configured by COURSE_* settings (see docs/deploy.md)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
source scripts/env.sh
if [ "${1:-}" = "--prod" ]; then
  shift
  exec course-app serve "$@"
fi
exec reflex run --env prod --single-port "$@"
