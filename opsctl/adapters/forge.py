"""GitHub's and GitLab's REST APIs, for one thing: the report's comment on a pull or merge request.

Plain ``urllib.request`` (no new dependency): proxies come from the environment as urllib reads them
(``https_proxy``, ``no_proxy``), every call has a timeout, bodies are JSON, and an answer is read at most
``MAX_RESPONSE`` bytes, so a hostile or broken server cannot exhaust memory. Pages are followed at most
``MAX_PAGES`` times. The token is sent only to the API's own origin: a redirect or a "next page" on another
host is refused, not followed. Errors become :class:`~opsctl.errors.ForgeError` (or its 401/403 and
"unreachable" kinds) with one line naming the variable or permission to fix; no message, repr or chained
exception holds the token.

- GitHub: a pull request's comments are issue comments. ``GET/POST {api}/repos/{owner}/{repo}/issues/{n}/comments``,
  ``PATCH {api}/repos/{owner}/{repo}/issues/comments/{id}``; pages through ``Link: <...>; rel="next"``.
- GitLab: a merge request's notes. ``GET/POST {api}/projects/{id}/merge_requests/{iid}/notes``,
  ``PUT .../notes/{note_id}``; pages through ``X-Next-Page``; system notes ("added 1 commit") are skipped.
"""

from __future__ import annotations

import http.client
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opsctl.errors import ForgeAuthError, ForgeError, ForgeUnavailableError
from opsctl.secrets import masker

MAX_RESPONSE = 8 * 1024 * 1024  # bytes of one answer; more is refused, not read
MAX_ERROR_BODY = 64 * 1024  # bytes of an error answer read for its message
MAX_PAGES = 20  # of 100 comments each
PER_PAGE = 100
TIMEOUT = 30.0  # seconds, for each connect and each read
_DETAIL_CHARS = 160  # of the API's own error message quoted in ours


@dataclass(frozen=True)
class Comment:
    """A comment (GitHub) or note (GitLab) on a pull or merge request."""

    id: int
    body: str
    url: str | None = None  # its web page, when the API gives one (GitHub's html_url)


@dataclass(frozen=True)
class Upserted:
    """What :func:`upsert` did: ``action`` is "created" or "updated"."""

    action: str
    comment: Comment


def _origin(url: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme.lower(), parts.netloc.rsplit("@", 1)[-1].lower()


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only within the API's origin: urllib would otherwise resend the token to any
    host a server names. A refused redirect surfaces as the 3xx answer (an ``HTTPError``)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if _origin(newurl) != _origin(req.full_url):
            return None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class Forge:
    """One forge's API with one token. Subclasses say where comments live and what a refusal means."""

    name = "forge"
    thread = "request"  # what a comment is on, in messages
    url_variable = "the API URL"  # where the API's URL comes from, in messages

    def __init__(self, api_url: str, token: str, *, token_name: str, timeout: float = TIMEOUT) -> None:
        api_url = api_url.rstrip("/")
        if urllib.parse.urlsplit(api_url).scheme.lower() not in ("http", "https") or not _origin(api_url)[1]:
            raise ForgeError(f"{self.url_variable} is not an http(s) URL: {masker({})(api_url)!r}")
        self.api_url = api_url
        self.token_name = token_name
        self.timeout = timeout
        self._token = token
        self._mask = masker({"TOKEN": token})
        self._opener = urllib.request.build_opener(_SameOriginRedirects())  # keeps urllib's ProxyHandler

    def __repr__(self) -> str:
        return f"{type(self).__name__}(api_url={self._mask(self.api_url)!r}, token_name={self.token_name!r})"

    # -- what subclasses provide -----------------------------------------------------------

    def auth_headers(self) -> dict[str, str]:
        raise NotImplementedError

    def first_page(self, number: int) -> str:
        """The URL of the first page of comments on ``number``."""
        raise NotImplementedError

    def next_page(self, url: str, first: str, headers: Mapping[str, str]) -> str | None:
        """The next page's URL from a page's answer (None: that was the last)."""
        raise NotImplementedError

    def kept(self, item: Mapping[str, Any]) -> bool:
        """Whether a listed item is a comment someone wrote (not the forge's own)."""
        return True

    def list_comments(self, number: int) -> list[Comment]:
        """Every comment on ``number``, oldest first, paging at most MAX_PAGES times."""
        first = self.first_page(number)
        url: str | None = first
        found: list[Comment] = []
        for _ in range(MAX_PAGES):
            if url is None:
                break
            action = self._action("GET", url)
            data, headers = self.call("GET", url)
            found += [_comment(item, self, action) for item in _comments(data, self, action) if self.kept(item)]
            url = self.next_page(url, first, headers)
        return found

    def create_comment(self, number: int, body: str) -> Comment:
        raise NotImplementedError

    def update_comment(self, number: int, comment_id: int, body: str) -> Comment:
        raise NotImplementedError

    def refused(self, status: int, action: str, detail: str) -> ForgeAuthError:
        raise NotImplementedError

    # -- the one way a request is made --------------------------------------------------------

    def call(self, method: str, url: str, payload: Mapping[str, Any] | None = None) -> tuple[Any, Mapping[str, str]]:
        """``method url`` with a JSON ``payload``: the decoded JSON answer and the answer's headers."""
        action = self._action(method, url)
        if _origin(url) != _origin(self.api_url):
            raise ForgeError(
                f"{self.name}'s API pointed {action} at another host ({self._mask(url)}); not followed, "
                f"so {self.token_name} is only ever sent to {self._mask(self.api_url)}"
            )
        headers = {"User-Agent": "opsctl", **self.auth_headers()}
        data = None
        if payload is not None:
            data = json.dumps(payload).encode("utf-8")
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                raw = response.read(MAX_RESPONSE + 1)
                answer_headers = response.headers
        except urllib.error.HTTPError as exc:
            raise self._http_error(exc, action) from None
        except urllib.error.URLError as exc:
            raise self._unreachable(action, exc.reason) from None
        except (OSError, http.client.HTTPException) as exc:  # a timeout, a reset, a malformed status line
            raise self._unreachable(action, exc) from None
        if len(raw) > MAX_RESPONSE:
            raise ForgeError(f"{self.name} answered {action} with more than {MAX_RESPONSE // 2**20} MiB; not read")
        try:
            return (json.loads(raw) if raw.strip() else None), answer_headers
        except ValueError:
            raise ForgeError(f"{self.name} answered {action} with something that is not JSON") from None

    def _write(self, method: str, url: str, body: str) -> Comment:
        """Create or update one comment (``{"body": ...}``), as the API answers it."""
        data, _ = self.call(method, url, {"body": body})
        return _comment(data, self, self._action(method, url))

    def _action(self, method: str, url: str) -> str:
        path = urllib.parse.urlsplit(url).path
        return f"{method} {self._mask(path)}"

    def _unreachable(self, action: str, reason: object) -> ForgeUnavailableError:
        return ForgeUnavailableError(
            f"{self.name}'s API at {self._mask(self.api_url)} can't be reached ({action}): {self._detail(reason)}",
            hint="check the API URL, the network and the proxy settings (https_proxy, no_proxy)",
        )

    def _detail(self, text: object) -> str:
        line = " ".join(str(text).split())
        if len(line) > _DETAIL_CHARS:
            line = line[: _DETAIL_CHARS - 1] + "…"
        return self._mask(line)

    def _http_error(self, exc: urllib.error.HTTPError, action: str) -> ForgeError:
        status = exc.code
        try:
            raw = exc.read(MAX_ERROR_BODY)
        except (OSError, http.client.HTTPException):
            raw = b""
        detail = _api_message(raw) or str(exc.reason or "")
        said = f"{status} {self._detail(detail)}".strip()

        def header(name: str) -> str:
            return (exc.headers.get(name) if exc.headers is not None else None) or ""

        if status in (403, 429) and (header("X-RateLimit-Remaining") == "0" or status == 429):
            return ForgeUnavailableError(
                f"{self.name}'s API rate limit is used up ({action}: {said})", hint="run the job again later"
            )
        if status in (401, 403):
            return self.refused(status, action, said)
        if 300 <= status < 400:
            return ForgeError(
                f"{self.name} redirected {action} to another host ({self._mask(header('Location') or '?')}); "
                f"not followed, so {self.token_name} is only ever sent to {self._mask(self.api_url)}"
            )
        if status == 404:
            return ForgeError(
                f"{self.name} answered {action} with 404: no such repository or {self.thread}, "
                f"or {self.token_name} can't see it"
            )
        if status >= 500:
            return ForgeUnavailableError(f"{self.name}'s API failed {action}: {said}", hint="run the job again later")
        return ForgeError(f"{self.name} refused {action}: {said}")


def _api_message(raw: bytes) -> str:
    """The human part of an API's error answer: GitHub's and GitLab's ``message`` (GitLab's may be a
    dict of field errors) or GitLab's ``error``; else the start of the text."""
    text = raw.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if isinstance(data, dict):
        for key in ("message", "error", "error_description"):
            if data.get(key):
                value = data[key]
                return value if isinstance(value, str) else json.dumps(value)
    return text


def _comment(data: Any, forge: Forge, action: str) -> Comment:
    if not isinstance(data, dict) or not isinstance(data.get("id"), int) or not isinstance(data.get("body"), str):
        raise ForgeError(f"{forge.name} answered {action} with something that is not a comment")
    url = data.get("html_url")
    return Comment(id=data["id"], body=data["body"], url=url if isinstance(url, str) else None)


def _comments(data: Any, forge: Forge, action: str) -> list[dict[str, Any]]:
    if not isinstance(data, list):
        raise ForgeError(f"{forge.name} answered {action} with something that is not a list of comments")
    return data


_NEXT_LINK = re.compile(r'<([^>]*)>\s*;[^,]*\brel="?next"?', re.IGNORECASE)


class GitHub(Forge):
    """GitHub's REST API (``GITHUB_API_URL``: api.github.com, or a GitHub Enterprise Server's)."""

    name = "GitHub"
    thread = "pull request"
    url_variable = "GITHUB_API_URL"

    def __init__(
        self, api_url: str, repository: str, token: str, *, token_name: str = "GITHUB_TOKEN", timeout: float = TIMEOUT
    ) -> None:
        super().__init__(api_url, token, token_name=token_name, timeout=timeout)
        owner, _, repo = repository.partition("/")
        if not owner or not repo or "/" in repo or ".." in (owner, repo):
            raise ForgeError(f"GITHUB_REPOSITORY is not OWNER/REPO: {repository!r}")
        self.repository = repository
        self._repo_url = (
            f"{self.api_url}/repos/{urllib.parse.quote(owner, safe='')}/{urllib.parse.quote(repo, safe='')}"
        )

    def auth_headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }

    def first_page(self, number: int) -> str:
        return f"{self._repo_url}/issues/{number}/comments?per_page={PER_PAGE}"

    def next_page(self, url: str, first: str, headers: Mapping[str, str]) -> str | None:
        link = _NEXT_LINK.search(headers.get("Link") or "")
        return urllib.parse.urljoin(url, link.group(1)) if link else None

    def create_comment(self, number: int, body: str) -> Comment:
        return self._write("POST", f"{self._repo_url}/issues/{number}/comments", body)

    def update_comment(self, number: int, comment_id: int, body: str) -> Comment:
        return self._write("PATCH", f"{self._repo_url}/issues/comments/{comment_id}", body)

    def refused(self, status: int, action: str, detail: str) -> ForgeAuthError:
        if status == 401:
            return ForgeAuthError(
                f"GitHub refused {self.token_name} ({detail}): the token is invalid or expired",
                hint=f"pass the job's token: env: {self.token_name}: ${{{{ secrets.GITHUB_TOKEN }}}}",
            )
        return ForgeAuthError(
            f"GitHub refused {action} with {self.token_name} ({detail}): "
            "the workflow needs `permissions: pull-requests: write`",
            hint="a pull request from a fork gets a read-only token: its report is in the job's step summary",
        )


class GitLab(Forge):
    """GitLab's REST API v4 (``CI_API_V4_URL``). ``job_token``: the token is ``CI_JOB_TOKEN`` (sent as
    ``JOB-TOKEN``), else a personal, project or group access token (sent as ``PRIVATE-TOKEN``)."""

    name = "GitLab"
    thread = "merge request"
    url_variable = "CI_API_V4_URL"

    def __init__(
        self,
        api_url: str,
        project: str,
        token: str,
        *,
        job_token: bool = False,
        token_name: str | None = None,
        timeout: float = TIMEOUT,
    ) -> None:
        name = token_name or ("CI_JOB_TOKEN" if job_token else "GITLAB_TOKEN")
        super().__init__(api_url, token, token_name=name, timeout=timeout)
        if not project:
            raise ForgeError("CI_PROJECT_ID is empty: no GitLab project to comment on")
        self.project = project
        self.job_token = job_token
        self._project_url = f"{self.api_url}/projects/{urllib.parse.quote(project, safe='')}"

    def auth_headers(self) -> dict[str, str]:
        return {"JOB-TOKEN" if self.job_token else "PRIVATE-TOKEN": self._token, "Accept": "application/json"}

    def _notes_url(self, number: int) -> str:
        return f"{self._project_url}/merge_requests/{number}/notes"

    def first_page(self, number: int) -> str:
        return f"{self._notes_url(number)}?per_page={PER_PAGE}&sort=asc"

    def next_page(self, url: str, first: str, headers: Mapping[str, str]) -> str | None:
        following = (headers.get("X-Next-Page") or "").strip()
        return f"{first}&page={following}" if following.isdigit() else None

    def kept(self, item: Mapping[str, Any]) -> bool:
        return not item.get("system")  # GitLab's own notes ("added 1 commit")

    def create_comment(self, number: int, body: str) -> Comment:
        return self._write("POST", self._notes_url(number), body)

    def update_comment(self, number: int, comment_id: int, body: str) -> Comment:
        return self._write("PUT", f"{self._notes_url(number)}/{comment_id}", body)

    def refused(self, status: int, action: str, detail: str) -> ForgeAuthError:
        hint = "add it as a masked CI/CD variable (Settings > CI/CD > Variables)"
        if self.job_token:
            return ForgeAuthError(
                f"GitLab refused {action} with CI_JOB_TOKEN ({detail}): a job token can't write merge request "
                "notes; set GITLAB_TOKEN to a project access token with the `api` scope",
                hint=hint,
            )
        if status == 401:
            return ForgeAuthError(
                f"GitLab refused {self.token_name} ({detail}): the token is invalid, expired or revoked", hint=hint
            )
        return ForgeAuthError(
            f"GitLab refused {action} with {self.token_name} ({detail}): the token needs the `api` scope "
            "and at least the Reporter role in the project",
            hint=hint,
        )


def has_marker(body: str, marker: str) -> bool:
    """Whether a comment is the one ``marker`` names: its body starts with it (a comment merely quoting the
    marker further down is someone else's)."""
    return body.lstrip().startswith(marker)


def upsert(forge: Forge, number: int, body: str, marker: str) -> Upserted:
    """Update the comment on pull/merge request ``number`` that starts with ``marker`` (the latest, if a
    race made several), else create one. ``body`` should start with the marker, so the next run finds it."""
    mine = [comment for comment in forge.list_comments(number) if has_marker(comment.body, marker)]
    if mine:
        return Upserted("updated", forge.update_comment(number, mine[-1].id, body))
    return Upserted("created", forge.create_comment(number, body))
