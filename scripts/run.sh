#!/usr/bin/env bash
# Install what is missing, then serve Course Studio on http://localhost:3000
# with its embedded defaults: SQLite in ./data, videos on local disk, no accounts needed.
# The app starts its own video processing worker (a `course-app worker` process
# reading the SQLite job queue in ./data); COURSE_EMBEDDED_WORKERS=0 turns it off.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
source scripts/env.sh
exec reflex run --env prod --single-port "$@"
