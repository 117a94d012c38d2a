"""The layer contracts of docs/architecture.md ("Layers"), checked by import-linter (pyproject.toml [tool.importlinter])."""

from __future__ import annotations

import subprocess

from tests.conftest import BIN, REPO


def test_layer_contracts_are_kept():
    result = subprocess.run([BIN / "lint-imports"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
