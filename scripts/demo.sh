#!/usr/bin/env bash
# The main job on a fresh machine: venv + packages, build the sample world into the embedded default
# store (SQLite, tactful.db) and print its summary, then run the demo campaign over every customer
# (recommendations -> decisions -> messages at the allowed depth -> outbox -> files in campaign-runs/)
# and print the path of its HTML report.
# Re-running rebuilds the sample world, but only when tactful.db holds nothing but an earlier sample
# world: a store with imported data of your own is never replaced (sample refuses, and says so).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
args=()
if [ -f tactful.db ] && .venv/bin/python - <<'PY'
import sqlite3, sys
try:
    kinds = {k for (k,) in sqlite3.connect("tactful.db").execute("SELECT DISTINCT kind FROM imports")}
except sqlite3.Error:
    sys.exit(1)
sys.exit(0 if kinds == {"sample"} else 1)
PY
then
  args+=(--replace)
fi
.venv/bin/tactful sample "${args[@]}" "$@"
.venv/bin/tactful campaign run demo
