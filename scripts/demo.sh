#!/usr/bin/env bash
# The main job on a fresh machine: venv + packages, then build the sample world into the embedded
# default store (SQLite, tactful.db) and print its summary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/tactful sample "$@"
