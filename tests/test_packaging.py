"""The wheel ships the templates as package data, and an installed opsctl finds them there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

from tests.conftest import REPO


def test_wheel_contains_templates_and_uses_them(tmp_path):
    build = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path / "dist")],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("opsctl-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for template in ("ml-pipeline", "data-pipeline", "minimal"):
        assert f"opsctl/templates/{template}/copier.yml" in names
        assert f"opsctl/templates/{template}/template.yml" in names
        # The CI files: dot-directories and dotfiles are package data too.
        assert f"opsctl/templates/{template}/project/.github/workflows/opsctl.yml.jinja" in names
        assert f"opsctl/templates/{template}/project/.gitlab-ci.yml.jinja" in names
    assert "opsctl/templates/ml-pipeline/project/data/raw/churn.csv" in names
    assert "opsctl/templates/ml-pipeline/project/dvc.yaml" in names
    assert not any(n.startswith("templates/") for n in names)
    assert "opsctl/assets/vega.js" in names  # `opsctl plots show --html` embeds it: no CDN

    # Unpacked first on sys.path, the wheel's own copy of the templates is the one found.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = {**os.environ, "PYTHONPATH": str(site)}
    listed = subprocess.run(
        [sys.executable, "-m", "opsctl", "template", "list", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert listed.returncode == 0, listed.stderr
    sources = [t["source"] for t in json.loads(listed.stdout)]
    assert all(s.startswith(str(site / "opsctl" / "templates")) for s in sources), sources
