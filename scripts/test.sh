#!/usr/bin/env bash
# The whole test suite from a fresh machine: system tools and Docker engine,
# the virtualenv, the static checks (scripts/lint.sh), then pytest on all cores.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-machine.sh
bash scripts/bootstrap.sh
bash scripts/lint.sh
# The Docker tests' images (busybox; Debian with python3, pandas, scikit-learn), built once per machine.
if docker info >/dev/null 2>&1; then bash scripts/build-test-images.sh; fi
# worksteal: a worker that runs out of tests takes half of another's queue, so the suite does not end
# with one worker alone on a long tail (tests/conftest.py starts the longest first).
# One worker more than cores: the tests wait on git, DVC and Docker subprocesses a quarter of the time
# (measured: 23 CPU-minutes in 15.4 minutes on 2 cores with 2 workers), which a third worker fills.
workers=${OPSCTL_TEST_WORKERS:-$(( $(nproc) + 1 ))}
exec .venv/bin/python -m pytest -n "$workers" --dist worksteal "$@"
