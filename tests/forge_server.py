"""A recording fake of GitHub's issue-comments API and GitLab's merge-request-notes API: a real HTTP server on
127.0.0.1 (``ThreadingHTTPServer``) that keeps comments in memory, pages like the real ones, and records
every request. Point ``GITHUB_API_URL`` / ``CI_API_V4_URL`` at ``FakeForge.url`` (``github_env`` and
``gitlab_env`` build a pipeline's whole environment), e.g. in a CLI test::

    with FakeForge() as forge:
        env = forge.github_env(tmp_path, number=7)
        run_opsctl("report", "--comment", cwd=project, env=env)
        assert [c.method for c in forge.calls] == ["GET", "POST"]

``respond(...)`` scripts an answer for the next matching request (an error, a huge body) instead."""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_GH_THREAD = re.compile(r"^/repos/([^/]+/[^/]+)/issues/(\d+)/comments$")
_GH_COMMENT = re.compile(r"^/repos/([^/]+/[^/]+)/issues/comments/(\d+)$")
_GL_THREAD = re.compile(r"^/projects/([^/]+)/merge_requests/(\d+)/notes$")
_GL_NOTE = re.compile(r"^/projects/([^/]+)/merge_requests/(\d+)/notes/(\d+)$")

GITHUB_TOKEN = "ghs_FAKEgithubTOKEN0123456789"
GITLAB_TOKEN = "glpat-FAKEgitlabTOKEN012345"
JOB_TOKEN = "glcbt-FAKEjobTOKEN0123456"


@dataclass
class Call:
    method: str
    path: str  # with the query
    headers: Message  # names case-insensitive, as HTTP's are (urllib sends "Private-token")
    body: Any  # the decoded JSON body, None without one

    @property
    def route(self) -> str:
        return urllib.parse.urlsplit(self.path).path


@dataclass
class Scripted:
    status: int
    body: Any = None
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    method: str | None = None
    path: str | None = None  # a prefix of the request's path


class FakeForge:
    """The fake server. ``threads[(repo_or_project, number)]`` holds each PR/MR's comments in order."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.threads: dict[tuple[str, int], list[dict[str, Any]]] = {}
        self.scripted: list[Scripted] = []
        self._next_id = 1000
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> FakeForge:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- set-up -------------------------------------------------------------------------

    def add(self, key: str, number: int, body: str, **extra: Any) -> dict[str, Any]:
        """An existing comment on ``key`` (GitHub "owner/repo" or GitLab project id) #``number``."""
        with self._lock:
            comment = {"id": self._next_id, "body": body, **extra}
            self._next_id += 1
            self.threads.setdefault((key, number), []).append(comment)
            return comment

    def respond(self, status: int, body: Any = None, *, raw: bytes | None = None, **match: Any) -> None:
        """Answer the next request matching ``method=``/``path=`` (a prefix) with this, once."""
        headers = match.pop("headers", {})
        self.scripted.append(Scripted(status, body, raw, headers, **match))

    def bodies(self, key: str, number: int) -> list[str]:
        return [c["body"] for c in self.threads.get((key, number), [])]

    # -- environments of a pipeline run -------------------------------------------------------

    def github_env(
        self,
        directory: Path,
        *,
        repo: str = "octo/pipe",
        number: int | None = 7,
        event: str = "pull_request",
        token: str | None = GITHUB_TOKEN,
        base_sha: str = "a" * 40,
        fork: bool = False,
        summary: bool = True,
    ) -> dict[str, str]:
        """GitHub Actions' variables for a ``event`` run: the event file (and with ``summary`` the step summary,
        ``step_summary.md``) in ``directory``; ``fork``: the pull request comes from another repository."""
        payload: dict[str, Any] = {}
        if number is not None:
            head = f"contributor/{repo.split('/')[-1]}" if fork else repo
            pull = {
                "number": number,
                "base": {"sha": base_sha, "ref": "main", "repo": {"full_name": repo}},
                "head": {"sha": "d" * 40, "ref": "feature", "repo": {"full_name": head}},
            }
            payload = {"number": number, "pull_request": pull}
        event_file = Path(directory) / "github-event.json"
        event_file.write_text(json.dumps(payload))
        env = {
            "GITHUB_ACTIONS": "true",
            "GITHUB_API_URL": self.url,
            "GITHUB_REPOSITORY": repo,
            "GITHUB_EVENT_NAME": event,
            "GITHUB_EVENT_PATH": str(event_file),
            "no_proxy": "127.0.0.1",
            "NO_PROXY": "127.0.0.1",
        }
        if summary:
            env["GITHUB_STEP_SUMMARY"] = str(Path(directory) / "step_summary.md")
        if event in ("pull_request", "pull_request_target"):
            env["GITHUB_BASE_REF"] = "main"
        if token is not None:
            env["GITHUB_TOKEN"] = token
        return env

    def gitlab_env(
        self,
        *,
        project: str = "42",
        iid: int | None = 5,
        token: str | None = GITLAB_TOKEN,
        job_token: str | None = None,
    ) -> dict[str, str]:
        """GitLab CI's variables for a merge-request pipeline (``iid`` None: a branch pipeline)."""
        env = {
            "GITLAB_CI": "true",
            "CI_API_V4_URL": f"{self.url}/api/v4",
            "CI_PROJECT_ID": project,
            "CI_PROJECT_URL": "https://gitlab.example/group/pipe",
            "CI_PIPELINE_SOURCE": "merge_request_event" if iid is not None else "push",
            "no_proxy": "127.0.0.1",
            "NO_PROXY": "127.0.0.1",
        }
        if iid is not None:
            env |= {
                "CI_MERGE_REQUEST_IID": str(iid),
                "CI_MERGE_REQUEST_DIFF_BASE_SHA": "b" * 40,
                "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
            }
        if token is not None:
            env["GITLAB_TOKEN"] = token
        if job_token is not None:
            env["CI_JOB_TOKEN"] = job_token
        return env

    # -- serving ---------------------------------------------------------------------------

    def _scripted(self, method: str, path: str) -> Scripted | None:
        with self._lock:
            for i, item in enumerate(self.scripted):
                if (item.method in (None, method)) and path.startswith(item.path or ""):
                    return self.scripted.pop(i)
        return None

    def _serve(self, method: str, path: str, payload: Any) -> tuple[int, Any, dict[str, str]]:
        parts = urllib.parse.urlsplit(path)
        route = parts.path.removeprefix("/api/v4")
        query = dict(urllib.parse.parse_qsl(parts.query))
        per_page = int(query.get("per_page", "30"))
        page = int(query.get("page", "1"))
        with self._lock:
            if (m := _GH_THREAD.match(route)) or (m := _GL_THREAD.match(route)):
                thread = self.threads.setdefault((urllib.parse.unquote(m[1]), int(m[2])), [])
                if method == "GET":
                    chunk = thread[(page - 1) * per_page : page * per_page]
                    headers = {}
                    if page * per_page < len(thread):
                        if route.startswith("/repos/"):
                            following = urllib.parse.urlencode({**query, "page": page + 1})
                            headers["Link"] = f'<{self.url}{parts.path}?{following}>; rel="next"'
                        else:
                            headers["X-Next-Page"] = str(page + 1)
                    elif not route.startswith("/repos/"):
                        headers["X-Next-Page"] = ""
                    return 200, chunk, headers
                if method == "POST":
                    comment = {"id": self._next_id, "body": payload["body"], "system": False}
                    if route.startswith("/repos/"):
                        comment = {"id": self._next_id, "body": payload["body"]}
                        comment["html_url"] = f"https://github.example/{m[1]}/pull/{m[2]}#issuecomment-{self._next_id}"
                    self._next_id += 1
                    thread.append(comment)
                    return 201, comment, {}
            for pattern, verb in ((_GH_COMMENT, "PATCH"), (_GL_NOTE, "PUT")):
                if (m := pattern.match(route)) and method == verb:
                    wanted = int(m.lastindex and m[m.lastindex])
                    for (key, _), thread in self.threads.items():
                        for comment in thread:
                            if comment["id"] == wanted and key == urllib.parse.unquote(m[1]):
                                comment["body"] = payload["body"]
                                return 200, comment, {}
        return 404, {"message": "Not Found"}, {}


def _handler(forge: FakeForge) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            payload = json.loads(raw) if raw else None
            with forge._lock:
                forge.calls.append(Call(self.command, self.path, self.headers, payload))
            scripted = forge._scripted(self.command, self.path)
            if scripted is not None:
                status, body, headers = scripted.status, scripted.body, scripted.headers
                data = scripted.raw if scripted.raw is not None else json.dumps(body).encode()
            else:
                status, body, headers = forge._serve(self.command, self.path, payload)
                data = json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client stopped reading (a bounded read of a huge answer)

        do_GET = do_POST = do_PATCH = do_PUT = _handle

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 — the base class's name
            pass

    return Handler
