"""The CI files every built-in template ships (.github/workflows/opsctl.yml, .gitlab-ci.yml): valid
against the official GitHub Actions and GitLab CI schemas (the copies check-jsonschema vendors), and
their commands, run in order in a fresh clone as a CI job runs them, pull the data from a real DVC
remote, run the pipeline and write the report."""

from __future__ import annotations

import copy
import functools
import json
import os
import shlex
import subprocess
import uuid
from importlib.resources import files
from pathlib import Path

import jsonschema
import pytest
import yaml
from ruamel.yaml import YAML

from opsctl import __version__
from tests.conftest import PYTHON, REPO, opsctl_inprocess, run
from tests.e2e.test_run_docker import PROJECT_LABEL, _remove_project_images, python_image  # noqa: F401

TEMPLATES = ("minimal", "data-pipeline", "ml-pipeline")
GITHUB = ".github/workflows/opsctl.yml"
GITLAB = ".gitlab-ci.yml"
REPORT = "opsctl-report.md"
# The gates each template's report step sets: only on what the template produces (metrics.json's
# accuracy, the checks: and drift: of its opsctl.yaml). The minimal template has none of them.
GATES = {
    "minimal": [],
    "data-pipeline": ["checks"],
    "ml-pipeline": ["metrics.accuracy.delta<-0.01", "checks", "drift"],
}
# A pull request's change per template: a param its pipeline reads, so `opsctl run` in CI re-runs
# stages. ml-pipeline's `train.C` is read only by logistic regression: the random forest retrains
# to the same model, so the accuracy gate holds.
PR_CHANGE = {
    "minimal": ("params.yaml", "message:", 'message: "Hello from CI!"'),
    "data-pipeline": ("params.yaml", "top_customers: 10", "top_customers: 5"),
    "ml-pipeline": ("params.yaml", "C: 1.0", "C: 2.0"),
}
PULLED = {"minimal": "output/result.txt", "data-pipeline": "data/raw/orders.csv", "ml-pipeline": "data/raw/churn.csv"}


def load(path: Path):
    # YAML 1.2, as GitHub and GitLab read it: PyYAML (YAML 1.1) would turn the workflow's `on:` into True.
    return YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))


@functools.cache
def schema(name: str) -> dict:
    vendor = files("check_jsonschema.builtin_schemas.vendor")
    return json.loads((vendor / f"{name}.json").read_text(encoding="utf-8"))


def schema_errors(doc, name: str) -> list[str]:
    return sorted(e.message for e in jsonschema.Draft7Validator(schema(name)).iter_errors(doc))


def best_matches(doc, name: str) -> list[str]:
    """What check-jsonschema reports as "Best Match" under each error of an invalid file."""
    errors = jsonschema.Draft7Validator(schema(name)).iter_errors(doc)
    return [(jsonschema.exceptions.best_match(e.context) if e.context else e).message for e in errors]


def render(parent: Path, template: str, *data: str) -> Path:
    args = [f"--data={d}" for d in data]
    opsctl_inprocess("init", template, "--template", template, "--defaults", *args, cwd=parent, check=True)
    return parent / template


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Each template rendered with each executor, as `opsctl init --defaults` renders it."""
    out = {}
    for executor in ("docker", "local"):
        parent = tmp_path_factory.mktemp(f"render-{executor}")
        for template in TEMPLATES:
            out[template, executor] = render(parent, template, f"executor={executor}")
    return out


def report_gates(command: str) -> list[str]:
    words = shlex.split(command)
    assert words[:2] == ["opsctl", "report"], command
    return [words[i + 1] for i, w in enumerate(words) if w == "--fail-on"]


def github_runs(job: dict) -> list[tuple[str, dict]]:
    """A job's `run:` steps in order, with their env; `uses:` steps (checkout, setup-python, cache,
    upload) are GitHub's own actions."""
    return [(step["run"], step.get("env") or {}) for step in job["steps"] if "run" in step]


@pytest.mark.parametrize("executor", ["docker", "local"])
@pytest.mark.parametrize("template", TEMPLATES)
def test_ci_files_are_valid_and_set_up_for_the_report(rendered, template, executor):
    root = rendered[template, executor]
    workflow, gitlab = load(root / GITHUB), load(root / GITLAB)
    assert schema_errors(workflow, "github-workflows") == []
    assert schema_errors(gitlab, "gitlab-ci") == []
    config = yaml.safe_load((root / "opsctl.yaml").read_text())
    install = f"pip install 'opsctl=={__version__}'"  # `opsctl init` offers its own version as the pin
    monitors = "drift" in config
    assert workflow["permissions"]["pull-requests"] == "write"

    # GitHub: full history, the DVC cache kept, the report commented, gated and uploaded.
    pipeline = workflow["jobs"]["pipeline"]
    steps = pipeline["steps"]
    assert steps[0]["uses"].startswith("actions/checkout@") and steps[0]["with"]["fetch-depth"] == 0
    cache = next(s for s in steps if str(s.get("uses", "")).startswith("actions/cache@"))
    assert cache["with"]["path"] == ".dvc/cache" and "hashFiles('dvc.lock', '**/*.dvc')" in cache["with"]["key"]
    runs = [cmd for cmd, _ in github_runs(pipeline)]
    assert runs[0] == install
    assert ("pip install -r requirements.txt" in runs) == (executor == "local")
    assert runs.index("opsctl data pull") < runs.index("opsctl run") < len(runs) - 1
    report_step = next(s for s in steps if str(s.get("run", "")).startswith("opsctl report"))
    assert report_step is steps[-2] and report_step["env"]["GITHUB_TOKEN"] == "${{ secrets.GITHUB_TOKEN }}"
    assert report_gates(report_step["run"]) == GATES[template]
    assert "--comment" in shlex.split(report_step["run"]) and f"-o {REPORT}" in report_step["run"]
    upload = steps[-1]
    assert upload["uses"].startswith("actions/upload-artifact@") and upload["if"] == "always()"

    # GitLab: the same commands; Docker through a dind service when the stages run in containers.
    job = gitlab["opsctl"]
    assert job["variables"]["GIT_DEPTH"] == "0"
    assert job["cache"][0]["key"]["files"] == ["dvc.lock"] and job["cache"][0]["paths"] == [".dvc/cache"]
    assert job["script"][0] == install and job["script"][1:] == runs[1:]
    assert ("services" in job) == (executor == "docker") == ("DOCKER_HOST" in job["variables"])
    assert job["artifacts"]["when"] == "always" and job["artifacts"]["paths"] == ["opsctl-report*"]

    # The gates only name what the template has.
    assert ("checks" in GATES[template]) == ("checks" in config)
    assert ("drift" in GATES[template]) == monitors

    # A scheduled drift check exactly where opsctl.yaml declares drift monitoring.
    assert ("schedule" in workflow["on"]) == monitors == ("drift" in workflow["jobs"]) == ("drift" in gitlab)
    if monitors:
        assert workflow["on"]["schedule"][0]["cron"]
        assert pipeline["if"] == "github.event_name != 'schedule'"
        assert workflow["jobs"]["drift"]["if"] == "github.event_name == 'schedule'"
        assert gitlab["drift"]["rules"] == [{"if": '$CI_PIPELINE_SOURCE == "schedule"'}]
        assert {"if": '$CI_PIPELINE_SOURCE == "schedule"', "when": "never"} in job["rules"]
        for script in ([cmd for cmd, _ in github_runs(workflow["jobs"]["drift"])], gitlab["drift"]["script"]):
            assert script[-1] == f"opsctl report --fail-on drift -o {REPORT}"
            assert any(
                cmd.startswith(f"opsctl monitor drift {dataset} ") for dataset in config["drift"] for cmd in script
            )


def test_broken_ci_files_are_rejected_by_the_schemas(rendered):
    """The validation can fail: a misspelt key in either file is caught."""
    root = rendered["ml-pipeline", "docker"]
    workflow = copy.deepcopy(load(root / GITHUB))
    workflow["jobs"]["pipeline"]["runs_on"] = workflow["jobs"]["pipeline"].pop("runs-on")
    assert best_matches(workflow, "github-workflows") == ["'runs-on' is a required property"]

    gitlab = copy.deepcopy(load(root / GITLAB))
    gitlab["opsctl"]["scripts"] = gitlab["opsctl"].pop("script")
    assert [m for m in best_matches(gitlab, "gitlab-ci") if "('scripts' was unexpected)" in m]

    # And read as YAML 1.1 (PyYAML), the valid workflow loses its `on:` key.
    assert "'on' is a required property" in schema_errors(
        yaml.safe_load((root / GITHUB).read_text()), "github-workflows"
    )


def test_the_install_line_is_the_opsctl_requirement_answer(tmp_path):
    requirement = "opsctl[s3] @ git+https://git.example.org/opsctl.git@v1"
    root = render(tmp_path, "minimal", f"opsctl_requirement={requirement}")
    assert load(root / GITHUB)["jobs"]["pipeline"]["steps"][2]["run"] == f"pip install '{requirement}'"
    assert load(root / GITLAB)["opsctl"]["script"][0] == f"pip install '{requirement}'"
    assert f"pip install '{requirement}'" in (root / "README.md").read_text()

    # A quote would end the shell word early: refused, nothing created.
    bad = opsctl_inprocess("init", "bad", "--template", "minimal", "--data", "opsctl_requirement=it's", cwd=tmp_path)
    assert bad.returncode == 1 and "opsctl_requirement" in bad.stderr
    assert not (tmp_path / "bad").exists()


# ---------------------------------------------------------------------------------------------------
# The commands, run as CI runs them


@pytest.fixture(scope="module")
def opsctl_shim(tmp_path_factory) -> Path:
    """A directory holding an `opsctl` that runs this checkout's opsctl: it stands in for the
    install step (opsctl is installed here already; CI installs it from the rendered requirement)."""
    bin_dir = tmp_path_factory.mktemp("shim")
    shim = bin_dir / "opsctl"
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(PYTHON)} -m opsctl "$@"\n')
    shim.chmod(0o755)
    return bin_dir


def ci_env(shim: Path, extra: dict) -> dict:
    """The job's environment: nothing from a CI this test may itself run in (no PR to comment on)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "GITLAB_", "CI_"))}
    env.update(CI="true", PYTHONPATH=str(REPO), PATH=f"{shim}{os.pathsep}{env['PATH']}")
    # The venv's pip may only confirm the pipeline's requirements are there, never download or change them.
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def origin(tmp_path_factory):
    """Per template, what CI clones: a Git origin whose main branch ran the pipeline and pushed its data
    to a shared DVC remote (a local directory, committed in .dvc/config as the README says), and a
    `feature` branch that changes a param, as a pull request does."""
    made: dict[tuple, Path] = {}

    def make(template: str, *data: str) -> Path:
        if (template, data) in made:
            return made[template, data]
        base = tmp_path_factory.mktemp(f"origin-{template}")
        seed = render(base, template, *(data or ["executor=local"]))
        remote = base / "dvc-remote"
        opsctl_inprocess("data", "remote", "add", "shared", str(remote), "--default", cwd=seed, check=True)
        opsctl_inprocess("run", "--executor", "local", cwd=seed, check=True)  # the developer's run, on the host
        opsctl_inprocess("data", "push", cwd=seed, check=True)
        run(["git", "add", "-A"], cwd=seed)
        run(["git", "commit", "-qm", "Shared remote; pipeline run"], cwd=seed)
        run(["git", "switch", "-qc", "feature"], cwd=seed)
        path, old, new = PR_CHANGE[template]
        text = (seed / path).read_text()
        line = next(line for line in text.splitlines() if line.strip().startswith(old))
        (seed / path).write_text(text.replace(line, line[: len(line) - len(line.lstrip())] + new, 1))
        run(["git", "commit", "-qam", "Change a param"], cwd=seed)
        bare = base / "origin.git"
        run(["git", "clone", "-q", "--bare", str(seed), str(bare)])
        made[template, data] = bare
        return bare

    return make


def checkout(origin_repo: Path, dest: Path, branch: str) -> Path:
    """The CI checkout: a fresh clone with its full history (fetch-depth: 0, GIT_DEPTH: "0")."""
    run(["git", "clone", "-q", "--branch", branch, str(origin_repo), str(dest)])
    assert not (dest / ".dvc" / "cache").exists()
    return dest


def run_in_order(root: Path, commands: list[tuple[str, dict]], template: str) -> None:
    """Each command, with its environment, as the job's shell runs it (`bash -e`); each one exits 0."""
    requirement = f"opsctl=={__version__}"
    for command, env in commands:
        if command == f"pip install '{requirement}'":
            continue  # the shim in PATH is this opsctl (see opsctl_shim)
        result = subprocess.run(
            ["bash", "-e", "-c", command], cwd=root, env=env, capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, f"`{command}` exited {result.returncode}\n{result.stdout}\n{result.stderr}"
        if command == "opsctl data pull":
            assert (root / PULLED[template]).exists()  # really pulled: the clone had no data and no cache
        if command == "opsctl run":
            metrics_named_by_gates(root, template)
        if command.startswith("opsctl report"):
            assert (root / REPORT).is_file()


def metrics_named_by_gates(root: Path, template: str) -> None:
    """A metric gate names a metric the pipeline just wrote."""
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    written: dict = {}
    for stage in stages.values():
        for entry in stage.get("metrics", []):
            name = next(iter(entry)) if isinstance(entry, dict) else entry
            written.update(json.loads((root / name).read_text()))
    for gate in GATES[template]:
        if gate.startswith("metrics."):
            assert gate.split(".")[1] in written, (gate, sorted(written))


def github_commands(job: dict, shim: Path) -> list[tuple[str, dict]]:
    # Secrets (`${{ secrets.… }}`) are GitHub's to give; outside a PR there is nothing to post anyway.
    return [
        (command, ci_env(shim, {k: str(v) for k, v in step_env.items() if "${{" not in str(v)}))
        for command, step_env in github_runs(job)
    ]


def gitlab_commands(job: dict, root: Path, shim: Path) -> list[tuple[str, dict]]:
    variables = {k: str(v).replace("$CI_PROJECT_DIR", str(root)) for k, v in (job.get("variables") or {}).items()}
    env = ci_env(shim, variables)
    return [(command, env) for command in job["script"]]


# ml-pipeline's GitHub workflow runs with its default executor, Docker, below; its GitLab job runs with
# the local one (so the requirements step runs too).
@pytest.mark.parametrize("template", [t for t in TEMPLATES if t != "ml-pipeline"])
def test_the_github_workflow_runs_in_order_on_a_pull_request(tmp_path, origin, opsctl_shim, template):
    root = checkout(origin(template), tmp_path / "ci", "feature")
    run_in_order(root, github_commands(load(root / GITHUB)["jobs"]["pipeline"], opsctl_shim), template)
    assert (root / REPORT).is_file()


def test_the_gitlab_job_runs_in_order_on_a_merge_request(tmp_path, origin, opsctl_shim):
    """ml-pipeline's job (all the steps: pull, run, drift, report with three gates) runs; the
    other templates' jobs run the same opsctl commands as their GitHub workflows, which run above
    (each full run costs a pipeline: the suite's time is kept for what differs)."""
    root = checkout(origin("ml-pipeline"), tmp_path / "ci", "feature")
    run_in_order(root, gitlab_commands(load(root / GITLAB)["opsctl"], root, opsctl_shim), "ml-pipeline")
    assert (root / REPORT).is_file()


@pytest.mark.parametrize("template", TEMPLATES)
def test_each_gitlab_job_runs_the_github_workflows_opsctl_commands(rendered, template):
    project = rendered[(template, "local")]
    github = [c for c, _ in github_runs(load(project / GITHUB)["jobs"]["pipeline"]) if c.startswith("opsctl ")]
    gitlab = [c for c in load(project / GITLAB)["opsctl"]["script"] if c.startswith("opsctl ")]
    assert gitlab == github and github


def test_the_scheduled_drift_jobs_run_in_order(tmp_path, origin, opsctl_shim):
    """ml-pipeline's scheduled jobs, on the default branch: the sample batch doesn't drift, so both pass."""
    repo = origin("ml-pipeline")
    github = checkout(repo, tmp_path / "github", "main")
    run_in_order(github, github_commands(load(github / GITHUB)["jobs"]["drift"], opsctl_shim), "ml-pipeline")
    gitlab = checkout(repo, tmp_path / "gitlab", "main")
    run_in_order(gitlab, gitlab_commands(load(gitlab / GITLAB)["drift"], gitlab, opsctl_shim), "ml-pipeline")
    for root in (github, gitlab):
        assert (root / REPORT).is_file()


def test_the_github_workflow_runs_the_stages_in_docker(tmp_path, origin, opsctl_shim, python_image, docker_engine):  # noqa: F811
    """The template's default executor, as on GitHub's ubuntu-latest (which has Docker): `opsctl run`
    builds the project's image (here FROM the local test image, which has the requirements) and runs
    the stages the pull request changed in it."""
    name = f"ci{uuid.uuid4().hex[:10]}"
    repo = origin("ml-pipeline", f"project_name={name}", f"base_image={python_image}", "install_requirements=false")
    try:
        root = checkout(repo, tmp_path / "ci", "feature")
        assert yaml.safe_load((root / "opsctl.yaml").read_text())["executor"] == "docker"
        run_in_order(root, github_commands(load(root / GITHUB)["jobs"]["pipeline"], opsctl_shim), "ml-pipeline")
        assert docker_engine.images.list(filters={"label": f"{PROJECT_LABEL}={name}"})
    finally:
        _remove_project_images(docker_engine, name)
