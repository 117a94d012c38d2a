"""The report in CI: where a pipeline runs (GitHub Actions, GitLab CI), the job's step summary, and the
report's own comment on the pull or merge request, updated on every push instead of added again.

Read from the environment only (``detect(os.environ)``), so a test or another front end passes any
mapping. What the forges' APIs want is in :mod:`opsctl.adapters.forge`; this module decides what to post
and when nothing should be posted. No PR/MR in this pipeline (a push, a schedule, outside CI) is not an
error: :func:`post_comment` says so in ``CommentOutcome.note`` and calls nothing.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from opsctl.errors import ForgeAuthError, ForgeError, OpsctlError

GITHUB_API = "https://api.github.com"
GITHUB_COMMENT_LIMIT = 65_536  # characters of an issue comment's body (GitHub refuses longer with 422)
GITLAB_NOTE_LIMIT = 1_000_000  # characters of a note's body
STEP_SUMMARY_LIMIT = 1024 * 1024  # bytes of one step's summary file; GitHub drops a larger one whole
MAX_EVENT_FILE = 16 * 1024 * 1024  # bytes of GITHUB_EVENT_PATH read
MARKER = "<!-- opsctl-report -->"
_PR_EVENTS = ("pull_request", "pull_request_target")
_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")


@dataclass(frozen=True)
class CiContext:
    """The pipeline this process runs in, as its environment says."""

    provider: str | None  # "github", "gitlab", or None outside both
    event: str | None  # GITHUB_EVENT_NAME, or GitLab's CI_PIPELINE_SOURCE ("merge_request_event", "push", ...)
    number: int | None  # the pull request's number / the merge request's iid; None when the pipeline has none
    repository: str | None  # GitHub "owner/repo"; GitLab's project id (CI_PROJECT_ID)
    api_url: str | None  # GITHUB_API_URL (default https://api.github.com) or CI_API_V4_URL
    base_rev: str | None  # a suggested default --base: the PR's base commit, else its base branch on origin
    base_branch: str | None  # the branch the PR/MR merges into (GITHUB_BASE_REF, CI_MERGE_REQUEST_TARGET_BRANCH_NAME)
    web_url: str | None = None  # GitLab: the MR's page (a note's link is built from it); GitHub gives html_url
    problem: str | None = None  # why a PR event has no number (an unreadable event file)
    from_fork: bool = False  # a GitHub `pull_request` from another repository: its GITHUB_TOKEN is read-only

    @property
    def variable(self) -> str:
        """The variable that says which kind of pipeline this is, for messages."""
        return "GITHUB_EVENT_NAME" if self.provider == "github" else "CI_PIPELINE_SOURCE"


@dataclass(frozen=True)
class CommentOutcome:
    """What ``post_comment`` did. ``action``: "created", "updated", or "skipped" (no PR/MR: ``note`` says
    why, a warning to print). ``truncated``: the report was cut to the forge's comment limit (``note`` says
    so too)."""

    action: str
    provider: str | None = None
    number: int | None = None
    comment_id: int | None = None
    url: str | None = None
    truncated: bool = False
    note: str | None = None

    @property
    def summary(self) -> str:
        """One line for the user: "report comment created on pull request #7: https://..."."""
        if self.action == "skipped":
            return self.note or "--comment: nothing posted"
        thread = "pull request" if self.provider == "github" else "merge request"
        sign = "#" if self.provider == "github" else "!"
        where = f": {self.url}" if self.url else f" (comment {self.comment_id})"
        return f"report comment {self.action} on {thread} {sign}{self.number}{where}"


def marker_for(project_subdir: str | None) -> str:
    """The hidden first line of the report's comment. A project below the repository's root (a monorepo)
    gets its own, so each project keeps its own comment: ``<!-- opsctl-report:services/churn -->``."""
    subdir = posixpath.normpath((project_subdir or ".").replace("\\", "/")).strip("/")
    if subdir in ("", "."):
        return MARKER
    subdir = subdir.replace("--", "-%2D").replace(">", "%3E")  # nothing in it may end the HTML comment
    return f"<!-- opsctl-report:{subdir} -->"


def detect(env: Mapping[str, str]) -> CiContext:
    """The CI pipeline ``env`` describes: GitHub Actions (``GITHUB_ACTIONS=true``), GitLab CI
    (``GITLAB_CI=true``), or neither (every field None)."""
    if env.get("GITHUB_ACTIONS") == "true":
        return _github(env)
    if env.get("GITLAB_CI") == "true":
        return _gitlab(env)
    return CiContext(None, None, None, None, None, None, None)


def _github(env: Mapping[str, str]) -> CiContext:
    event_name = env.get("GITHUB_EVENT_NAME") or None
    base_branch = env.get("GITHUB_BASE_REF") or None
    number = base_sha = problem = None
    from_fork = False
    if event_name in _PR_EVENTS:
        try:
            event = _read_event(env.get("GITHUB_EVENT_PATH") or "")
        except OpsctlError as exc:
            problem = str(exc)
        else:
            found = event.get("pull_request")
            pull: dict = found if isinstance(found, dict) else {}
            candidate = pull.get("number", event.get("number"))
            number = candidate if isinstance(candidate, int) and not isinstance(candidate, bool) else None
            base = pull.get("base")
            sha = base.get("sha") if isinstance(base, dict) else None
            base_sha = sha if isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", sha) else None
            from_fork = event_name == "pull_request" and _repo_of(pull, "head") != _repo_of(pull, "base")
            if number is None:
                problem = f"the event file (GITHUB_EVENT_PATH) of this {event_name} event names no pull request number"
    return CiContext(
        provider="github",
        event=event_name,
        number=number,
        repository=env.get("GITHUB_REPOSITORY") or None,
        api_url=(env.get("GITHUB_API_URL") or GITHUB_API).rstrip("/"),
        base_rev=base_sha or (f"origin/{base_branch}" if base_branch else None),
        base_branch=base_branch,
        problem=problem,
        from_fork=from_fork,
    )


def _repo_of(pull: dict, side: str) -> object:
    """``owner/repo`` of a pull request's head or base, as the event names it (None: a deleted fork)."""
    ref = pull.get(side)
    repo = ref.get("repo") if isinstance(ref, dict) else None
    return repo.get("full_name") if isinstance(repo, dict) else None


def _read_event(path: str) -> dict:
    if not path:
        raise OpsctlError("GITHUB_EVENT_PATH is not set: the pull request's number is unknown")
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_EVENT_FILE + 1)
    except OSError as exc:
        raise OpsctlError(f"can't read the event file GITHUB_EVENT_PATH={path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_EVENT_FILE:
        raise OpsctlError(f"the event file GITHUB_EVENT_PATH={path} is larger than {MAX_EVENT_FILE // 2**20} MiB")
    try:
        event = json.loads(raw)
    except ValueError:
        raise OpsctlError(f"the event file GITHUB_EVENT_PATH={path} is not JSON") from None
    if not isinstance(event, dict):
        raise OpsctlError(f"the event file GITHUB_EVENT_PATH={path} is not a JSON object")
    return event


def _gitlab(env: Mapping[str, str]) -> CiContext:
    iid = (env.get("CI_MERGE_REQUEST_IID") or "").strip()
    base_branch = env.get("CI_MERGE_REQUEST_TARGET_BRANCH_NAME") or None
    number = int(iid) if iid.isdigit() else None
    web = env.get("CI_MERGE_REQUEST_PROJECT_URL") or env.get("CI_PROJECT_URL")
    return CiContext(
        provider="gitlab",
        event=env.get("CI_PIPELINE_SOURCE") or None,
        number=number,
        repository=env.get("CI_MERGE_REQUEST_PROJECT_ID") or env.get("CI_PROJECT_ID") or None,
        api_url=(env.get("CI_API_V4_URL") or "").rstrip("/") or None,
        base_rev=env.get("CI_MERGE_REQUEST_DIFF_BASE_SHA") or (f"origin/{base_branch}" if base_branch else None),
        base_branch=base_branch,
        web_url=f"{web.rstrip('/')}/-/merge_requests/{number}" if web and number is not None else None,
    )


def shorten(markdown: str, limit: int, note: str, *, size: Callable[[str], int] = len) -> tuple[str, bool]:
    """``markdown`` cut to at most ``limit`` (as ``size`` measures: characters, or bytes) at a line's end,
    with an open code fence and open ``<details>`` closed and ``note`` last, so what is shown still renders
    and says it was cut. Returns the text and whether it was cut; "" when even the note has no room."""
    if size(markdown) <= limit:
        return markdown, False
    kept: list[str] = []
    used = 0
    fence: str | None = None  # the open code fence's opening run (``` or ~~~~), None outside one
    details = 0  # <details> opened and not closed, outside code
    tail = f"\n{note}\n"
    for line in markdown.splitlines(keepends=True):
        line = line if line.endswith("\n") else line + "\n"
        new_fence, new_details = _after(line, fence, details)
        closing = "".join(f"{part}\n" for part in ([new_fence] if new_fence else []) + ["</details>"] * new_details)
        new_tail = f"\n{closing}\n{note}\n" if closing else f"\n{note}\n"
        if used + size(line) + size(new_tail) > limit:
            break
        kept.append(line)
        used += size(line)
        fence, details, tail = new_fence, new_details, new_tail
    text = "".join(kept) + tail
    return (text if size(text) <= limit else ""), True


def _after(line: str, fence: str | None, details: int) -> tuple[str | None, int]:
    """The open fence and the count of open ``<details>`` after ``line``."""
    stripped = line.strip()
    if fence is not None:
        closes = stripped and set(stripped) == {fence[0]} and len(stripped) >= len(fence)
        return (None if closes else fence), details
    opened = _FENCE.match(line)
    if opened:
        return opened.group(1), details
    return None, max(details + line.count("<details") - line.count("</details>"), 0)


def _utf8_size(text: str) -> int:
    return len(text.encode("utf-8"))


def append_step_summary(markdown: str, env: Mapping[str, str]) -> Path | None:
    """Append the report to the job's summary, the file ``GITHUB_STEP_SUMMARY`` names (no token needed);
    None when it is not set. GitHub drops a step's summary over 1 MiB whole, so the report is cut to what
    the file has room for, with a note saying so (two reports in one step share the room)."""
    name = env.get("GITHUB_STEP_SUMMARY")
    if not name:
        return None
    path = Path(name)
    try:
        room = STEP_SUMMARY_LIMIT - (path.stat().st_size if path.exists() else 0)
        text, _ = shorten(
            markdown.rstrip("\n") + "\n",
            max(room - 1, 0),  # the newline that keeps it apart from what came before
            "**The report was cut to fit the job summary's 1 MiB; the full report is in the job's artifact.**",
            size=_utf8_size,
        )
        if text:
            with path.open("a", encoding="utf-8") as handle:
                handle.write("\n" + text)
    except OSError as exc:
        raise OpsctlError(f"can't append the report to GITHUB_STEP_SUMMARY={name}: {exc.strerror or exc}") from None
    return path


def comment_body(markdown: str, marker: str, limit: int, forge_name: str) -> tuple[str, bool]:
    """The comment: ``marker`` first (so the next run finds it), then the report, cut to ``limit``
    characters with a line saying where the rest is."""
    text = markdown.lstrip("\n")
    if text.startswith(marker):
        text = text[len(marker) :].lstrip("\n")
    note = (
        f"**The report was truncated to fit {forge_name}'s comment limit ({limit:,} characters): "
        "see the job's summary or its artifact for the rest.**"
    )
    head = f"{marker}\n"
    body, truncated = shorten(text, limit - len(head), note)
    return head + body, truncated


def post_comment(markdown: str, env: Mapping[str, str], *, marker: str) -> CommentOutcome:
    """Post the report on this pipeline's pull/merge request, updating the comment an earlier run made
    (found by ``marker``, see :func:`marker_for`) rather than adding another. No PR/MR here: action
    "skipped" and a note, nothing called. Raises :class:`ForgeError` (a missing or refused token names the
    variable and the permission; an unreachable API is a ``ForgeUnavailableError``, exit 4)."""
    from opsctl.adapters import forge

    ctx = detect(env)
    if ctx.provider is None:
        return CommentOutcome(
            "skipped", note="--comment: not in a GitHub Actions or GitLab CI pipeline; nothing posted"
        )
    if ctx.number is None:
        if ctx.problem:
            raise ForgeError(f"--comment: {ctx.problem}")
        thread = "pull request" if ctx.provider == "github" else "merge request"
        return CommentOutcome(
            "skipped",
            provider=ctx.provider,
            note=f"--comment: not a {thread} ({ctx.variable}={ctx.event or ''}); nothing posted",
        )
    if ctx.from_fork:
        return CommentOutcome(
            "skipped",
            provider=ctx.provider,
            number=ctx.number,
            note=f"--comment: pull request #{ctx.number} comes from a fork, whose GITHUB_TOKEN can't write comments; "
            "nothing posted (the report is in the job's summary)",
        )
    client: forge.Forge
    if ctx.provider == "github":
        token = env.get("GITHUB_TOKEN")
        if not token:
            raise ForgeAuthError(
                "--comment needs GITHUB_TOKEN to post on the pull request, and it is not set",
                hint="in the workflow step: env: GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}",
            )
        if not ctx.repository:
            raise ForgeError("--comment: GITHUB_REPOSITORY is not set: no repository to comment on")
        client = forge.GitHub(ctx.api_url or GITHUB_API, ctx.repository, token)
        limit = GITHUB_COMMENT_LIMIT
    else:
        token, job_token = env.get("GITLAB_TOKEN"), False
        if not token and env.get("CI_JOB_TOKEN"):
            token, job_token = env["CI_JOB_TOKEN"], True
        if not token:
            raise ForgeAuthError(
                "--comment needs GITLAB_TOKEN (an access token with the `api` scope) to post on the merge request, "
                "and it is not set",
                hint="add it as a masked CI/CD variable (Settings > CI/CD > Variables)",
            )
        if not ctx.api_url or not ctx.repository:
            raise ForgeError("--comment: CI_API_V4_URL or CI_PROJECT_ID is not set: no GitLab project to comment on")
        client = forge.GitLab(ctx.api_url, ctx.repository, token, job_token=job_token)
        limit = GITLAB_NOTE_LIMIT
    body, truncated = comment_body(markdown, marker, limit, client.name)
    done = forge.upsert(client, ctx.number, body, marker)
    url = done.comment.url
    if url is None and ctx.web_url:
        url = f"{ctx.web_url}#note_{done.comment.id}"
    return CommentOutcome(
        done.action,
        provider=ctx.provider,
        number=ctx.number,
        comment_id=done.comment.id,
        url=url,
        truncated=truncated,
        note=f"the report was longer than {client.name}'s comment limit: the comment is truncated"
        if truncated
        else None,
    )
