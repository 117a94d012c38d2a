#!/usr/bin/env bash
# Create .venv/ and install opsctl into it (editable, with the dev and s3 extras).
# Re-installs only when pyproject.toml changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    echo "bootstrap: opsctl needs Python 3.10 or newer ($python is $("$python" --version 2>&1))" >&2
    exit 1
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv

stamp=.venv/.opsctl-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "bootstrap: installing opsctl and its dependencies into .venv (a minute or two the first time)" >&2
    # (grep drops pip's notes about unreadable find-links folders in some machines' pip config)
    .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip 2>&1 | { grep -v 'is ignored: it is neither' || true; }
    .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev,s3]' 2>&1 | { grep -v 'is ignored: it is neither' || true; }
    echo "$want" > "$stamp"
fi
# Bytecode for opsctl's own modules, as pip writes it for a regular install: an editable install has
# none until Python writes it at the first start, and never with PYTHONDONTWRITEBYTECODE set, which
# would compile opsctl from source at every start (~0.1 s of each `opsctl status`). Only stale or
# missing files are written; Python still checks each against its source when importing.
.venv/bin/python -m compileall -q -j 0 opsctl >/dev/null
