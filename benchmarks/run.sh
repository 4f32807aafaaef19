#!/usr/bin/env bash
# Run the gcauth vs google-auth benchmarks and write BENCHMARKS.md.
#   bash benchmarks/run.sh [--quick] [--only NAME ...]
# Uses $PYTHON (default: .venv/bin/python), installing the `bench` extra (google-auth 2.62.2,
# requests, httpx) into that environment first when google-auth is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
if ! "$PYTHON" -c "import google.auth, requests, httpx" 2>/dev/null; then
    "$PYTHON" -m pip install --quiet -e '.[bench]'
fi
exec "$PYTHON" -m benchmarks "$@"
