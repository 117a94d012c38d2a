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


@pytest.mark.parametrize("args", [["--help"], ["-h"], [], ["--version"]])
def test_recorded_help_and_version_import_no_typer(tmp_path, args):
    """From the second `opsctl --help` on (the first records typer's text, cli/help_cache.py), and for
    `--version` always: none of typer, click, rich nor the heavy libraries is imported."""
    from tests.cli.test_help_cache import _env, run_help

    env = _env(tmp_path / "cache")
    run_help(args, env)
    code, out, loaded, _ = run_help(args, env)
    assert code == 0 and out
    assert not loaded & {*HEAVY, "typer", "click", "rich", "yaml", "dataclasses"}, sorted(loaded)
