#!/usr/bin/env bash
# Install what is missing, then serve Course Studio on http://localhost:3000
# with its embedded defaults: SQLite in ./data, videos on local disk, no accounts needed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
source scripts/env.sh
exec reflex run --env prod --single-port "$@"
