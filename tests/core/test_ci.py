"""opsctl.core.ci: which pipeline this is, the step summary, and the report's comment upserted on a real local HTTP
server standing in for GitHub's and GitLab's APIs (tests/forge_server.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from opsctl.core import ci
from opsctl.errors import ForgeAuthError, ForgeError, ForgeUnavailableError
from tests.forge_server import GITHUB_TOKEN, GITLAB_TOKEN, JOB_TOKEN, FakeForge

REPO = "octo/pipe"
MARK = ci.MARKER


@pytest.fixture
def server():
    with FakeForge() as fake:
        yield fake


# -- detect -----------------------------------------------------------------------------


def test_detect_a_github_pull_request(server, tmp_path):
    env = server.github_env(tmp_path, number=12, base_sha="c" * 40)
    ctx = ci.detect(env)
    assert ctx == ci.CiContext(
        provider="github",
        event="pull_request",
        number=12,
        repository=REPO,
        api_url=server.url,
        base_rev="c" * 40,
        base_branch="main",
    )


def test_detect_github_defaults_and_the_number_from_the_event_top_level(tmp_path):
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"number": 3, "pull_request": {"base": {"sha": "not a sha"}}}))
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "pull_request_target",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_BASE_REF": "develop",
        "GITHUB_REPOSITORY": REPO,
    }
    ctx = ci.detect(env)
    assert (ctx.number, ctx.api_url, ctx.base_rev, ctx.problem) == (3, "https://api.github.com", "origin/develop", None)


def test_detect_a_github_push_has_no_number_and_reads_no_event_file(tmp_path):
    env = {"GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": "push", "GITHUB_EVENT_PATH": str(tmp_path / "missing")}
    ctx = ci.detect(env)
    assert (ctx.provider, ctx.event, ctx.number, ctx.base_rev, ctx.problem) == ("github", "push", None, None, None)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "can't read the event file"),
        (b"{not json", "is not JSON"),
        (b"[1]", "is not a JSON object"),
        (b'{"pull_request": {}}', "names no pull request number"),
    ],
)
def test_detect_a_broken_event_file_is_a_problem_not_a_crash(tmp_path, content, problem):
    event = tmp_path / "event.json"
    if content is not None:
        event.write_bytes(content)
    ctx = ci.detect({"GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": str(event)})
    assert ctx.number is None and problem in (ctx.problem or "")
    with pytest.raises(ForgeError, match=f"^--comment: .*{problem}"):
        ci.post_comment(
            "report",
            {"GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": str(event)},
            marker=MARK,
        )


def test_detect_reads_the_event_file_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(ci, "MAX_EVENT_FILE", 100)
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"number": 1, "pull_request": {"body": "x" * 200}}))
    ctx = ci.detect({"GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": str(event)})
    assert ctx.number is None and "larger than" in (ctx.problem or "")


def test_detect_a_gitlab_merge_request(server):
    ctx = ci.detect(server.gitlab_env(iid=5))
    assert ctx == ci.CiContext(
        provider="gitlab",
        event="merge_request_event",
        number=5,
        repository="42",
        api_url=f"{server.url}/api/v4",
        base_rev="b" * 40,
        base_branch="main",
        web_url="https://gitlab.example/group/pipe/-/merge_requests/5",
    )
    branch = ci.detect(server.gitlab_env(iid=None))
    assert (branch.provider, branch.event, branch.number, branch.base_rev) == ("gitlab", "push", None, None)


def test_detect_outside_ci():
    assert ci.detect({"GITHUB_TOKEN": "x", "CI": "true"}) == ci.CiContext(None, None, None, None, None, None, None)


def test_marker_for():
    assert ci.marker_for(None) == ci.marker_for("") == ci.marker_for(".") == "<!-- opsctl-report -->"
    assert ci.marker_for("services/churn/") == "<!-- opsctl-report:services/churn -->"
    assert ci.marker_for("a\\b") == "<!-- opsctl-report:a/b -->"
    assert ci.marker_for("./services//churn") == "<!-- opsctl-report:services/churn -->"
    hostile = ci.marker_for("x-->y")
    assert hostile.count("-->") == 1 and hostile.endswith(" -->")


# -- post_comment -------------------------------------------------------------------------


def test_github_comment_created_once_then_updated(server, tmp_path):
    env = server.github_env(tmp_path, number=7)
    first = ci.post_comment("## Report\nfirst", env, marker=MARK)
    second = ci.post_comment("## Report\nsecond", env, marker=MARK)

    assert first == ci.CommentOutcome(
        "created",
        provider="github",
        number=7,
        comment_id=1000,
        url="https://github.example/octo/pipe/pull/7#issuecomment-1000",
    )
    assert (second.action, second.comment_id) == ("updated", 1000)
    assert (
        first.summary
        == "report comment created on pull request #7: https://github.example/octo/pipe/pull/7#issuecomment-1000"
    )
    assert [(c.method, c.path, c.body) for c in server.calls] == [
        ("GET", "/repos/octo/pipe/issues/7/comments?per_page=100", None),
        ("POST", "/repos/octo/pipe/issues/7/comments", {"body": f"{MARK}\n## Report\nfirst"}),
        ("GET", "/repos/octo/pipe/issues/7/comments?per_page=100", None),
        ("PATCH", "/repos/octo/pipe/issues/comments/1000", {"body": f"{MARK}\n## Report\nsecond"}),
    ]


def test_each_project_of_a_monorepo_keeps_its_own_comment(server, tmp_path):
    env = server.github_env(tmp_path)
    ci.post_comment("root", env, marker=ci.marker_for(None))
    ci.post_comment("churn", env, marker=ci.marker_for("services/churn"))
    ci.post_comment("churn again", env, marker=ci.marker_for("services/churn"))
    assert server.bodies(REPO, 7) == [
        "<!-- opsctl-report -->\nroot",
        "<!-- opsctl-report:services/churn -->\nchurn again",
    ]


@pytest.mark.parametrize("event", ["push", "schedule", "workflow_dispatch"])
def test_no_pull_request_is_a_note_and_no_call(server, tmp_path, event):
    env = server.github_env(tmp_path, number=None, event=event)
    outcome = ci.post_comment("report", env, marker=MARK)
    assert outcome == ci.CommentOutcome(
        "skipped", provider="github", note=f"--comment: not a pull request (GITHUB_EVENT_NAME={event}); nothing posted"
    )
    assert outcome.summary == outcome.note
    assert server.calls == []


def test_a_pull_request_from_a_fork_is_a_note_and_no_call(server, tmp_path):
    outcome = ci.post_comment("report", server.github_env(tmp_path, number=9, fork=True), marker=MARK)
    assert outcome == ci.CommentOutcome(
        "skipped",
        provider="github",
        number=9,
        note="--comment: pull request #9 comes from a fork, whose GITHUB_TOKEN can't write comments; "
        "nothing posted (the report is in the job's summary)",
    )
    assert server.calls == []
    # pull_request_target runs with the base repository's token, which can write.
    target = ci.post_comment("report", server.github_env(tmp_path, event="pull_request_target", fork=True), marker=MARK)
    assert target.action == "created"


def test_no_merge_request_and_outside_ci_are_notes(server):
    outcome = ci.post_comment("report", server.gitlab_env(iid=None), marker=MARK)
    assert outcome.note == "--comment: not a merge request (CI_PIPELINE_SOURCE=push); nothing posted"
    outside = ci.post_comment("report", {}, marker=MARK)
    assert outside.action == "skipped"
    assert outside.note == "--comment: not in a GitHub Actions or GitLab CI pipeline; nothing posted"
    assert server.calls == []


def test_missing_token_names_the_variable(server, tmp_path):
    with pytest.raises(ForgeAuthError, match=r"^--comment needs GITHUB_TOKEN to post on the pull request") as info:
        ci.post_comment("report", server.github_env(tmp_path, token=None), marker=MARK)
    assert "secrets.GITHUB_TOKEN" in info.value.hint
    with pytest.raises(ForgeAuthError, match=r"^--comment needs GITLAB_TOKEN \(an access token with the `api` scope\)"):
        ci.post_comment("report", server.gitlab_env(token=None), marker=MARK)
    assert server.calls == []


@pytest.mark.parametrize(
    ("provider", "drop", "message"),
    [
        ("github", "GITHUB_REPOSITORY", "GITHUB_REPOSITORY is not set"),
        ("gitlab", "CI_API_V4_URL", "CI_API_V4_URL or CI_PROJECT_ID is not set"),
        ("gitlab", "CI_PROJECT_ID", "CI_API_V4_URL or CI_PROJECT_ID is not set"),
    ],
)
def test_missing_pipeline_variables_are_named(server, tmp_path, provider, drop, message):
    env = server.github_env(tmp_path) if provider == "github" else server.gitlab_env()
    del env[drop]
    with pytest.raises(ForgeError, match=f"^--comment: {message}"):
        ci.post_comment("report", env, marker=MARK)
    assert server.calls == []


def test_gitlab_prefers_gitlab_token_and_falls_back_to_the_job_token(server):
    both = ci.post_comment("one", server.gitlab_env(job_token=JOB_TOKEN), marker=MARK)
    assert both.url == "https://gitlab.example/group/pipe/-/merge_requests/5#note_1000"
    assert both.summary == "report comment created on merge request !5: " + both.url
    job_only = ci.post_comment("two", server.gitlab_env(token=None, job_token=JOB_TOKEN), marker=MARK)
    assert job_only.action == "updated"
    assert server.calls[0].headers["PRIVATE-TOKEN"] == GITLAB_TOKEN and "JOB-TOKEN" not in server.calls[0].headers
    assert server.calls[2].headers["JOB-TOKEN"] == JOB_TOKEN and "PRIVATE-TOKEN" not in server.calls[2].headers


def test_forbidden_is_one_line_and_never_shows_the_token(server, tmp_path):
    server.respond(403, {"message": f"Resource not accessible by integration ({GITHUB_TOKEN})"}, method="POST")
    with pytest.raises(ForgeAuthError) as info:
        ci.post_comment("report", server.github_env(tmp_path), marker=MARK)
    assert "`permissions: pull-requests: write`" in str(info.value) and "\n" not in str(info.value)
    assert GITHUB_TOKEN not in str(info.value) + repr(info.value) + (info.value.hint or "")


def test_unreachable_api_is_exit_4(server, tmp_path):
    env = server.github_env(tmp_path)
    server.__exit__()  # the port is closed now
    with pytest.raises(ForgeUnavailableError) as info:
        ci.post_comment("report", env, marker=MARK)
    assert info.value.exit_code == 4


def test_a_report_over_githubs_limit_is_truncated_keeping_the_marker(server, tmp_path):
    env = server.github_env(tmp_path)
    markdown = "## Report\n" + "".join(f"| row {i} | {'x' * 50} |\n" for i in range(3000))
    first = ci.post_comment(markdown, env, marker=MARK)
    body = server.bodies(REPO, 7)[0]
    assert first.truncated and "truncated" in (first.note or "")
    assert len(body) <= ci.GITHUB_COMMENT_LIMIT
    assert body.startswith(f"{MARK}\n## Report\n| row 0 |")
    assert body.rstrip().endswith(
        "**The report was truncated to fit GitHub's comment limit (65,536 characters): "
        "see the job's summary or its artifact for the rest.**"
    )
    again = ci.post_comment(markdown, env, marker=MARK)  # found again by its marker
    assert again.action == "updated" and len(server.bodies(REPO, 7)) == 1


def test_gitlab_limit_is_a_million(server):
    markdown = "x\n" * 400_000  # 800,000 characters: over GitHub's limit, under GitLab's
    outcome = ci.post_comment(markdown, server.gitlab_env(), marker=MARK)
    assert not outcome.truncated and server.bodies("42", 5) == [f"{MARK}\n{markdown}"]


def test_a_report_that_already_starts_with_the_marker_gets_it_once(server, tmp_path):
    ci.post_comment(f"{MARK}\nbody", server.github_env(tmp_path), marker=MARK)
    assert server.bodies(REPO, 7) == [f"{MARK}\nbody"]


# -- shorten ---------------------------------------------------------------------------


def test_shorten_closes_an_open_code_fence_and_details():
    markdown = "# R\n<details><summary>s</summary>\n\n```mermaid\n" + "line 1\n" * 100 + "```\n</details>\n"
    text, cut = ci.shorten(markdown, 200, "NOTE")
    assert cut and len(text) <= 200
    assert text.endswith("\n```\n</details>\n\nNOTE\n")
    assert text.count("```") == 2


def test_shorten_leaves_a_short_text_and_gives_nothing_when_even_the_note_does_not_fit():
    assert ci.shorten("short", 100, "NOTE") == ("short", False)
    assert ci.shorten("x" * 50, 3, "NOTE") == ("", True)


def test_shorten_counts_bytes_when_asked():
    text, cut = ci.shorten("é\n" * 100, 101, "N", size=lambda s: len(s.encode()))
    assert cut and len(text.encode()) <= 101 and text.endswith("\nN\n")


# -- step summary ---------------------------------------------------------------------------


def test_step_summary_is_appended_each_time(tmp_path):
    summary = tmp_path / "step_summary.md"
    env = {"GITHUB_STEP_SUMMARY": str(summary)}
    assert ci.append_step_summary("# first report", env) == summary
    assert ci.append_step_summary("# second report\n", env) == summary
    assert summary.read_text() == "\n# first report\n\n# second report\n"


def test_no_step_summary_outside_github_actions(tmp_path):
    assert ci.append_step_summary("# report", {}) is None
    assert list(tmp_path.iterdir()) == []


def test_step_summary_is_cut_to_the_room_left_in_1_mib(tmp_path):
    summary = tmp_path / "step_summary.md"
    summary.write_text("earlier step output\n" * 1000)
    big = "".join(f"| ü {i} |\n" for i in range(100_000))  # ~1.1 MB, multi-byte characters
    ci.append_step_summary(big, {"GITHUB_STEP_SUMMARY": str(summary)})
    data = summary.read_bytes()
    assert len(data) <= ci.STEP_SUMMARY_LIMIT
    text = data.decode("utf-8")
    assert text.startswith("earlier step output\n") and "| ü 0 |\n" in text
    assert text.endswith(
        "**The report was cut to fit the job summary's 1 MiB; the full report is in the job's artifact.**\n"
    )


def test_step_summary_that_cannot_be_written_is_one_error(tmp_path):
    with pytest.raises(ci.OpsctlError, match="^can't append the report to GITHUB_STEP_SUMMARY="):
        ci.append_step_summary("# r", {"GITHUB_STEP_SUMMARY": str(tmp_path / "no" / "such" / "dir" / "f")})


# -- import weight ---------------------------------------------------------------------------


def test_core_ci_imports_nothing_heavy():
    heavy = ("typer", "rich", "textual", "dvc", "git", "docker", "pandas", "opsctl.adapters.forge")
    code = f"import sys, opsctl.core.ci; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
