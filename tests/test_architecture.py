"""The layer contracts of docs/architecture.md ("Layers"), checked by import-linter (pyproject.toml
[tool.importlinter]), and the static checks of scripts/lint.sh (ruff, mypy, import-linter) that scripts/test.sh runs."""

from __future__ import annotations

import os
import subprocess

from tests.conftest import BIN, REPO


def test_layer_contracts_are_kept():
    result = subprocess.run([BIN / "lint-imports"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
    # Modules of one package never import each other in a circle (core/run.py and core/runs.py did).
    assert "no import cycles among the modules of any package KEPT" in result.stdout


def test_static_checks_pass():
    """ruff (lint and format), mypy over opsctl/ and import-linter: zero findings."""
    env = {**os.environ, "OPSCTL_VENV": str(BIN.parent)}
    result = subprocess.run(["bash", "scripts/lint.sh"], cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout
