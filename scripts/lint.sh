#!/usr/bin/env bash
# The static checks, configured in pyproject.toml: ruff (lint, and the formatter's check), mypy over
# opsctl/, and import-linter's contracts (layers, forbidden imports, no import cycles). Any finding
# fails. scripts/test.sh runs this before pytest. The tools come from the virtualenv: .venv, or
# OPSCTL_VENV=DIR for another one.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${OPSCTL_VENV:-.venv}/bin
for tool in ruff mypy lint-imports; do
    if [ ! -x "$bin/$tool" ]; then
        echo "lint: $bin/$tool is missing; install the dev extra (scripts/bootstrap.sh does)" >&2
        exit 4
    fi
done
status=0
step() {
    echo "lint: $*" >&2
    "$@" || status=1
}
step "$bin/ruff" check --quiet opsctl
step "$bin/ruff" format --check --quiet opsctl tests bench scripts
step "$bin/mypy" opsctl
step "$bin/lint-imports" --no-cache --no-logo
exit $status
