"""`opsctl build` against a real engine: input-hash tags, no needless rebuilds, clear failures."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest
import yaml

from tests.conftest import REPO, opsctl_inprocess

pytestmark = pytest.mark.docker

DOCKERFILE = """ARG BASE_IMAGE=opsctl-test/busybox:latest
FROM ${BASE_IMAGE}
ARG FLAVOUR=plain
COPY app.txt /app.txt
RUN echo "$FLAVOUR" > /flavour.txt
"""


@pytest.fixture
def project(tmp_path, docker_engine):
    built = subprocess.run(
        ["bash", str(REPO / "scripts" / "build-test-images.sh"), "--only", "busybox"], capture_output=True, text=True
    )
    assert built.returncode == 0, built.stderr
    name = f"p{uuid.uuid4().hex[:8]}"  # its own image names: parallel tests never share a tag
    opsctl_inprocess("init", "p", "--template", "minimal", "--defaults", cwd=tmp_path, check=True)
    root = tmp_path / "p"
    (root / "Dockerfile").write_text(DOCKERFILE)
    (root / "app.txt").write_text("v1\n")
    (root / ".dockerignore").write_text("notes/\n")
    (root / "notes").mkdir()
    (root / "notes" / "todo.txt").write_text("ignored by the build\n")
    (root / "opsctl.yaml").write_text(
        f"project: {name}\nexecutor: docker\n"
        "images:\n  app: {dockerfile: Dockerfile, context: ., build_args: {BASE_IMAGE: 'opsctl-test/busybox:latest'}}\n"
        "  tools: {ref: 'opsctl-test/busybox:latest'}\n"
        "stages:\n  default: {image: app}\n"
    )
    yield root
    # Leave no images behind: everything this project built carries its label.
    for image in docker_engine.images.list(all=True, filters={"label": f"org.opsctl.project={name}"}):
        try:
            docker_engine.images.remove(image.id, force=True)
        except Exception:  # already gone with a parent
            pass


def build(root, *args):
    result = opsctl_inprocess("build", *args, "--json", cwd=root)
    assert result.returncode == 0, result.stderr
    return {r["name"]: r for r in json.loads(result.stdout)}


def test_tags_by_inputs_and_skips_unchanged(project, docker_engine):
    first = build(project)
    app = first["app"]
    name = yaml.safe_load((project / "opsctl.yaml").read_text())["project"]
    assert app["built"] is True and app["ref"] == f"opsctl/{name}-app:{app['inputs_hash'][:12]}"
    assert docker_engine.images.get(app["ref"]).id == app["image_id"]
    assert docker_engine.images.get(f"opsctl/{name}-app:latest").id == app["image_id"]
    assert docker_engine.images.get(app["ref"]).labels["org.opsctl.inputs"] == app["inputs_hash"]
    assert first["tools"]["inputs_hash"] is None and first["tools"]["image_id"].startswith("sha256:")
    recorded = json.loads((project / ".opsctl" / "images.json").read_text())
    assert recorded["app"]["image_id"] == app["image_id"]

    again = build(project)
    assert again["app"]["built"] is False and again["app"]["ref"] == app["ref"]

    (project / "notes" / "todo.txt").write_text("changed, but .dockerignore'd\n")
    assert build(project)["app"]["ref"] == app["ref"]

    (project / "app.txt").write_text("v2\n")
    changed = build(project)["app"]
    assert changed["built"] is True and changed["ref"] != app["ref"]

    text = (project / "opsctl.yaml").read_text().replace("build_args: {", "build_args: {FLAVOUR: spicy, ")
    (project / "opsctl.yaml").write_text(text)
    flavoured = build(project, "app")["app"]
    assert flavoured["ref"] not in (app["ref"], changed["ref"])
    out = docker_engine.containers.run(flavoured["ref"], ["cat", "/flavour.txt"], remove=True)
    assert out == b"spicy\n"

    forced = build(project, "app", "--no-cache")["app"]
    assert forced["built"] is True and forced["ref"] == flavoured["ref"]


def test_build_failures_are_clear(project):
    (project / "Dockerfile").write_text(DOCKERFILE + "RUN echo compiling && exit 3\n")
    failed = opsctl_inprocess("build", "app", cwd=project)
    assert failed.returncode == 1
    assert "image 'app' failed to build" in failed.stderr and "returned a non-zero code: 3" in failed.stderr
    assert "compiling" in failed.stderr  # the tail of the build log is shown

    unknown = opsctl_inprocess("build", "apq", cwd=project)
    assert unknown.returncode == 2 and "did you mean app" in unknown.stderr

    (project / "Dockerfile").unlink()
    missing = opsctl_inprocess("build", "app", cwd=project)
    assert missing.returncode == 1 and "images.app.dockerfile: no such file Dockerfile" in missing.stderr


def test_missing_ref_image_and_engine_down(project):
    (project / "opsctl.yaml").write_text("project: p\nimages:\n  tools: {ref: 'opsctl-test/not-here:1'}\n")
    missing = opsctl_inprocess("build", cwd=project)
    assert missing.returncode == 4 and "never pulls" in missing.stderr
    down = opsctl_inprocess("build", cwd=project, env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert down.returncode == 4 and "Docker engine not reachable" in down.stderr
