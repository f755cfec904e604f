#!/usr/bin/env bash
# The whole test suite on a fresh machine: venv + packages, system packages, lint, types, tests.
# Starts a throwaway PostgreSQL on 127.0.0.1 for the PostgreSQL tests and stops it afterwards.
# Extra arguments go to pytest (e.g. scripts/test.sh -k store).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/system-deps.sh
echo "==> ruff"
.venv/bin/ruff check .
echo "==> mypy"
.venv/bin/mypy
pgdir=$(mktemp -d /tmp/tactful-test-pg.XXXXXX)
cleanup() { .venv/bin/python -m tactful.testing.postgres stop "$pgdir" || true; }
trap cleanup EXIT
echo "==> starting a throwaway PostgreSQL on 127.0.0.1"
TACTFUL_TEST_PG_URL=$(.venv/bin/python -m tactful.testing.postgres start "$pgdir")
export TACTFUL_TEST_PG_URL
echo "==> pytest"
.venv/bin/python -m pytest -n 2 -p no:cacheprovider "$@"
