#!/usr/bin/env bash
# Checks `ember export --format parquet` with pyarrow and DuckDB, installed
# from PyPI into a private virtual environment (scripts/check_parquet.py).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${PARQUET_CHECK_VENV:-target/parquet-check-venv}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check pyarrow duckdb
fi
cargo build --release -p ember
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$venv/bin/python" scripts/check_parquet.py target/release/ember "$work"
