"""`opsctl data pull` where some stages never ran: their outputs have no hash yet, so they are
"not produced yet", not missing data; data the lock file records and the remote lacks still fails."""

from __future__ import annotations

import json
import shutil

from tests.cli.test_run import make_project
from tests.conftest import opsctl_inprocess


def test_pull_in_a_fresh_project_says_what_is_not_produced_yet_and_succeeds(ml_project):
    result = opsctl_inprocess("data", "pull", cwd=ml_project)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stderr.splitlines()  # messages go to stderr (opsctl/cli/output.py)
    assert lines == [
        "✓ Nothing to pull: remote 'storage' and the workspace already agree.",
        "Not produced yet (run the pipeline: `opsctl run`): data/features, data/prepared, models/model.pkl",
    ]  # said once, in words: none of DVC's "No file hash info found" warnings

    as_json = opsctl_inprocess("data", "pull", "--json", cwd=ml_project)
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["not_produced"] == ["data/features", "data/prepared", "models/model.pkl"]


def test_recorded_data_the_remote_lacks_still_fails_and_is_named_alone(tmp_path):
    root = make_project(
        tmp_path / "p",
        {
            "made": {"cmd": "echo made > made.txt", "outs": ["made.txt"]},
            "later": {"cmd": "cp made.txt later.txt", "deps": ["made.txt"], "outs": ["later.txt"]},
        },
    )
    added = opsctl_inprocess("data", "remote", "add", "store", str(tmp_path / "remote"), "--default", cwd=root)
    assert added.returncode == 0, added.stderr
    ran = opsctl_inprocess("run", "--executor", "local", "made", cwd=root)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    # made.txt is recorded in dvc.lock but was never pushed: lose the local copies.
    (root / "made.txt").unlink()
    shutil.rmtree(root / ".dvc" / "cache")

    result = opsctl_inprocess("data", "pull", cwd=root)
    assert result.returncode == 1, result.stdout + result.stderr
    error = next(line for line in result.stderr.splitlines() if line.startswith("error:"))
    assert "1 output(s) recorded in the lock files are missing there: made.txt" in error
    assert "later.txt" not in error
