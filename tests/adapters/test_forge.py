"""opsctl.adapters.forge against a real HTTP server on 127.0.0.1 that records every call (tests/forge_server.py):
the comment upsert, paging, the token's headers, refusals as one line, and a hostile or absent server."""

from __future__ import annotations

import socket
import traceback

import pytest

from opsctl.adapters import forge
from opsctl.errors import EXIT_ERROR, EXIT_UNAVAILABLE, ForgeAuthError, ForgeError, ForgeUnavailableError
from tests.forge_server import GITHUB_TOKEN, GITLAB_TOKEN, JOB_TOKEN, FakeForge

MARK = "<!-- opsctl-report -->"
REPO = "octo/pipe"


@pytest.fixture
def server():
    with FakeForge() as fake:
        yield fake


def github(server: FakeForge, token: str = GITHUB_TOKEN) -> forge.GitHub:
    return forge.GitHub(server.url, REPO, token, timeout=10)


def gitlab(server: FakeForge, **kwargs) -> forge.GitLab:
    kwargs.setdefault("token", GITLAB_TOKEN)
    return forge.GitLab(f"{server.url}/api/v4", "42", kwargs.pop("token"), timeout=10, **kwargs)


def calls(server: FakeForge) -> list[tuple[str, str, object]]:
    return [(c.method, c.path, c.body) for c in server.calls]


def test_github_comment_is_created_once_then_updated(server):
    client = github(server)
    first = forge.upsert(client, 7, f"{MARK}\nfirst", MARK)
    second = forge.upsert(client, 7, f"{MARK}\nsecond", MARK)

    assert (first.action, second.action) == ("created", "updated")
    assert first.comment.id == second.comment.id == 1000
    assert first.comment.url == "https://github.example/octo/pipe/pull/7#issuecomment-1000"
    assert calls(server) == [
        ("GET", "/repos/octo/pipe/issues/7/comments?per_page=100", None),
        ("POST", "/repos/octo/pipe/issues/7/comments", {"body": f"{MARK}\nfirst"}),
        ("GET", "/repos/octo/pipe/issues/7/comments?per_page=100", None),
        ("PATCH", "/repos/octo/pipe/issues/comments/1000", {"body": f"{MARK}\nsecond"}),
    ]
    assert server.bodies(REPO, 7) == [f"{MARK}\nsecond"]
    headers = server.calls[0].headers
    assert headers["Authorization"] == f"Bearer {GITHUB_TOKEN}"
    assert headers["Accept"] == "application/vnd.github+json"
    assert headers["X-GitHub-Api-Version"] == "2022-11-28"
    assert server.calls[1].headers["Content-Type"] == "application/json"


def test_github_marker_comment_on_the_second_page_is_found(server):
    for i in range(130):
        server.add(REPO, 7, f"a reviewer's comment {i}")
    mine = server.add(REPO, 7, f"{MARK}\nold report")

    done = forge.upsert(github(server), 7, f"{MARK}\nnew report", MARK)

    assert done.action == "updated" and done.comment.id == mine["id"]
    assert [(c.method, c.path) for c in server.calls] == [
        ("GET", "/repos/octo/pipe/issues/7/comments?per_page=100"),
        ("GET", "/repos/octo/pipe/issues/7/comments?per_page=100&page=2"),
        ("PATCH", f"/repos/octo/pipe/issues/comments/{mine['id']}"),
    ]
    assert server.bodies(REPO, 7)[-1] == f"{MARK}\nnew report"


def test_pages_are_followed_at_most_max_pages(server, monkeypatch):
    monkeypatch.setattr(forge, "PER_PAGE", 1)
    for i in range(forge.MAX_PAGES + 5):
        server.add(REPO, 7, f"comment {i}")
    found = github(server).list_comments(7)
    assert len(found) == forge.MAX_PAGES
    assert len(server.calls) == forge.MAX_PAGES


def test_another_projects_marker_and_a_quoted_marker_are_not_touched(server):
    mark = "<!-- opsctl-report:services/churn -->"
    other = server.add(REPO, 7, "<!-- opsctl-report:services/other -->\nits report")
    quoting = server.add(REPO, 7, f"a reviewer pasting the report's source:\n{mark}\nchurn")

    done = forge.upsert(github(server), 7, f"{mark}\nchurn", mark)

    assert done.action == "created"
    assert [c.method for c in server.calls] == ["GET", "POST"]
    assert server.bodies(REPO, 7) == [other["body"], quoting["body"], f"{mark}\nchurn"]


def test_github_403_is_one_line_naming_the_permission(server):
    server.respond(403, {"message": "Resource not accessible by integration"}, method="POST")
    with pytest.raises(ForgeAuthError) as info:
        forge.upsert(github(server), 7, f"{MARK}\nx", MARK)
    message = str(info.value)
    assert "\n" not in message
    assert message == (
        "GitHub refused POST /repos/octo/pipe/issues/7/comments with GITHUB_TOKEN (403 Resource not accessible by "
        "integration): the workflow needs `permissions: pull-requests: write`"
    )
    assert "fork" in info.value.hint
    assert info.value.exit_code == EXIT_ERROR


def test_github_401_says_the_token_is_invalid(server):
    server.respond(401, {"message": "Bad credentials"})
    with pytest.raises(ForgeAuthError, match=r"^GitHub refused GITHUB_TOKEN \(401 Bad credentials\): the token is"):
        github(server).list_comments(7)


def test_the_token_never_appears_in_an_error_or_a_repr(server):
    # A hostile server echoing the token back in its error message.
    server.respond(403, {"message": f"token {GITHUB_TOKEN} is not allowed"})
    client = github(server)
    with pytest.raises(ForgeError) as info:
        client.list_comments(7)
    server.respond(422, {"message": f"Authorization: Bearer {GITHUB_TOKEN}"})
    with pytest.raises(ForgeError) as other:
        client.create_comment(7, "x")
    texts = [repr(client), str(client.__dict__.get("api_url"))]
    for exc in (info.value, other.value):
        texts += [str(exc), repr(exc), exc.hint or "", "".join(traceback.format_exception(exc))]
    assert "is not allowed" in texts[2] and "***" in texts[2]
    assert not [t for t in texts if GITHUB_TOKEN in t]
    assert repr(client) == f"GitHub(api_url='{server.url}', token_name='GITHUB_TOKEN')"


def test_gitlab_sends_private_token_or_job_token(server):
    forge.upsert(gitlab(server), 5, f"{MARK}\nby token", MARK)
    forge.upsert(gitlab(server, token=JOB_TOKEN, job_token=True), 5, f"{MARK}\nby job", MARK)

    assert [(c.method, c.path) for c in server.calls] == [
        ("GET", "/api/v4/projects/42/merge_requests/5/notes?per_page=100&sort=asc"),
        ("POST", "/api/v4/projects/42/merge_requests/5/notes"),
        ("GET", "/api/v4/projects/42/merge_requests/5/notes?per_page=100&sort=asc"),
        ("PUT", "/api/v4/projects/42/merge_requests/5/notes/1000"),
    ]
    private, job = server.calls[0].headers, server.calls[2].headers
    assert private.get("PRIVATE-TOKEN") == GITLAB_TOKEN and "JOB-TOKEN" not in private
    assert job.get("JOB-TOKEN") == JOB_TOKEN and "PRIVATE-TOKEN" not in job
    assert "Authorization" not in private and "Authorization" not in job
    assert server.bodies("42", 5) == [f"{MARK}\nby job"]


def test_gitlab_skips_system_notes_and_pages_by_x_next_page(server, monkeypatch):
    monkeypatch.setattr(forge, "PER_PAGE", 2)
    server.add("42", 5, f"{MARK}\nlooks like ours, but GitLab wrote it", system=True)
    server.add("42", 5, "added 1 commit", system=True)
    server.add("42", 5, "a reviewer", system=False)
    mine = server.add("42", 5, f"{MARK}\nold", system=False)

    done = forge.upsert(gitlab(server), 5, f"{MARK}\nnew", MARK)

    assert done.action == "updated" and done.comment.id == mine["id"]
    assert [c.path for c in server.calls] == [
        "/api/v4/projects/42/merge_requests/5/notes?per_page=2&sort=asc",
        "/api/v4/projects/42/merge_requests/5/notes?per_page=2&sort=asc&page=2",
        f"/api/v4/projects/42/merge_requests/5/notes/{mine['id']}",
    ]
    assert server.bodies("42", 5)[0].endswith("GitLab wrote it")


def test_gitlab_job_token_refused_says_gitlab_token_with_api_scope_is_needed(server):
    server.respond(403, {"message": "403 Forbidden"}, method="POST")
    with pytest.raises(ForgeAuthError) as info:
        forge.upsert(gitlab(server, token=JOB_TOKEN, job_token=True), 5, f"{MARK}\nx", MARK)
    assert str(info.value) == (
        "GitLab refused POST /api/v4/projects/42/merge_requests/5/notes with CI_JOB_TOKEN (403 403 Forbidden): "
        "a job token can't write merge request notes; set GITLAB_TOKEN to a project access token with the `api` scope"
    )


def test_gitlab_token_without_scope_is_named(server):
    server.respond(403, {"message": "403 Forbidden - insufficient_scope"})
    with pytest.raises(ForgeAuthError, match=r"with GITLAB_TOKEN .*needs the `api` scope"):
        gitlab(server).list_comments(5)


def test_an_oversized_answer_is_refused_without_reading_it_whole(server):
    server.respond(200, raw=b"[" + b" " * (forge.MAX_RESPONSE + 1024) + b"]")
    with pytest.raises(
        ForgeError, match=r"^GitHub answered GET /repos/octo/pipe/issues/7/comments with more than 8 MiB"
    ):
        github(server).list_comments(7)


def test_not_json_and_not_a_comment_are_errors(server):
    server.respond(200, raw=b"<html>proxy login</html>")
    with pytest.raises(ForgeError, match="with something that is not JSON"):
        github(server).list_comments(7)
    server.respond(201, {"unexpected": True})
    with pytest.raises(ForgeError, match="with something that is not a comment"):
        github(server).create_comment(7, "x")


def test_unreachable_api_is_tool_unavailable():
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = forge.GitHub(f"http://127.0.0.1:{port}", REPO, GITHUB_TOKEN, timeout=5)
    with pytest.raises(ForgeUnavailableError) as info:
        client.list_comments(7)
    assert info.value.exit_code == EXIT_UNAVAILABLE
    assert isinstance(info.value, ForgeError)
    assert str(info.value).startswith(f"GitHub's API at http://127.0.0.1:{port} can't be reached (GET /repos/")
    assert "refused" in str(info.value).lower()


def test_a_server_that_never_answers_times_out_as_unavailable():
    with socket.socket() as sock:  # listens, never accepts: the connection waits in the backlog unanswered
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        client = forge.GitLab(f"http://127.0.0.1:{sock.getsockname()[1]}/api/v4", "42", GITLAB_TOKEN, timeout=0.3)
        with pytest.raises(ForgeUnavailableError, match="can't be reached .*timed out"):
            client.list_comments(5)


def test_server_errors_and_rate_limits_are_unavailable(server):
    server.respond(502, {"message": "Bad Gateway"})
    with pytest.raises(ForgeUnavailableError, match=r"^GitHub's API failed GET .*: 502 Bad Gateway"):
        github(server).list_comments(7)
    server.respond(403, {"message": "API rate limit exceeded"}, headers={"X-RateLimit-Remaining": "0"})
    with pytest.raises(ForgeUnavailableError, match="rate limit is used up"):
        github(server).list_comments(7)


def test_404_names_what_may_be_missing(server):
    server.respond(404, {"message": "Not Found"})
    with pytest.raises(ForgeError, match="404: no such repository or pull request, or GITHUB_TOKEN can't see it"):
        github(server).list_comments(7)


def test_the_token_is_never_sent_to_another_host():
    with FakeForge() as api, FakeForge() as elsewhere:
        api.respond(302, headers={"Location": f"{elsewhere.url}/steal"})
        with pytest.raises(ForgeError, match="redirected GET .* to another host .*not followed"):
            github(api).list_comments(7)
        api.respond(
            200, [], headers={"Link": f'<{elsewhere.url}/repos/octo/pipe/issues/7/comments?page=2>; rel="next"'}
        )
        with pytest.raises(ForgeError, match="pointed GET .* at another host"):
            github(api).list_comments(7)
        assert elsewhere.calls == []


def test_a_redirect_within_the_api_is_followed_with_the_token(server):
    server.respond(301, headers={"Location": f"{server.url}/repos/octo/renamed/issues/7/comments?per_page=100"})
    assert github(server).list_comments(7) == []
    assert [c.path for c in server.calls][-1] == "/repos/octo/renamed/issues/7/comments?per_page=100"
    assert server.calls[-1].headers["Authorization"] == f"Bearer {GITHUB_TOKEN}"


def test_bad_settings_are_refused_before_any_call():
    with pytest.raises(ForgeError, match="^GITHUB_API_URL is not an http"):
        forge.GitHub("file:///etc", REPO, GITHUB_TOKEN)
    with pytest.raises(ForgeError, match=r"^CI_API_V4_URL is not an http\(s\) URL: 'ftp://gitlab.example/api/v4'"):
        forge.GitLab("ftp://gitlab.example/api/v4", "42", GITLAB_TOKEN)
    with pytest.raises(ForgeError, match="not OWNER/REPO"):
        forge.GitHub("https://api.github.com", "octo/pipe/../x", GITHUB_TOKEN)
