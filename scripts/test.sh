#!/usr/bin/env bash
# The whole test suite from a fresh machine: system tools and Docker engine,
# the virtualenv, then pytest on all cores. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-machine.sh
bash scripts/bootstrap.sh
exec .venv/bin/python -m pytest -n "${OPSCTL_TEST_WORKERS:-auto}" "$@"
