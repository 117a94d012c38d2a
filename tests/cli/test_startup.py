"""`opsctl --help` stays fast: it must not import the heavy libraries (harlequin's import-hygiene test)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = [
    "dvc",
    "docker",
    "git",
    "textual",
    "copier",
    "sqlite3",
    "pandas",
    "pandera",
    "scipy",
    "dask",
    "plotext",
    "vl_convert",
    "dvc_render",
]

PROBE = """
import json, sys
from opsctl.cli.main import main_with_exit_code
code = main_with_exit_code({args!r})
print(json.dumps({{"code": code, "modules": sorted(sys.modules)}}), file=sys.stderr)
"""


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["--version"],
        ["init", "--help"],
        ["template", "--help"],
        ["ui", "--help"],
        ["plots", "show", "--help"],
    ],
)
def test_help_and_version_import_no_heavy_library(args):
    result = subprocess.run([sys.executable, "-c", PROBE.format(args=args)], capture_output=True, text=True)
    report = json.loads(result.stderr.strip().splitlines()[-1])
    assert report["code"] == 0
    loaded = {m.split(".")[0] for m in report["modules"]}
    assert not loaded & set(HEAVY), f"{args} imported {sorted(loaded & set(HEAVY))}"


def test_messages_off_a_terminal_do_not_import_rich(tmp_path):
    """Scripts and CI get plain lines: an error off a terminal loads no rich at all."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(args=["status"])], capture_output=True, text=True, cwd=tmp_path
    )
    report = json.loads(result.stderr.strip().splitlines()[-1])
    assert report["code"] == 3
    assert "error: not an opsctl project" in result.stderr
    assert not any(m == "rich" or m.startswith("rich.") for m in report["modules"])
