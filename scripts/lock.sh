#!/usr/bin/env bash
# Regenerate requirements.lock from pyproject.toml (with the test extras) in a fresh venv.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
python3.11 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install --quiet --disable-pip-version-check -e ".[test]"
"$tmp/venv/bin/pip" freeze --exclude-editable | grep -v '^course-studio' > requirements.lock
rm -rf "$tmp"
echo "requirements.lock: $(wc -l < requirements.lock) packages"
