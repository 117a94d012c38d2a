"""One question to the Docker engine without the docker SDK: a ``ref:`` image's id, for the
no-op fast path (core/plan_cache.py), or whether an image is there at all (core/run.py opens a
run's executor early with one). Importing the SDK (requests, urllib3, paramiko checks)
costs ~0.15 s; this is one HTTP request on the engine's Unix socket with the standard library.

Only the engines the SDK would reach the same way are asked here: ``DOCKER_HOST`` unset (the
default socket) or ``unix://``, or a plain ``tcp://`` without TLS. Anything else (TLS, ssh://)
goes through the SDK (adapters/docker.py, ``image_id``), as does every failure to get a clear
answer, so the two never disagree about which engine is meant.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from urllib.parse import quote, urlsplit

DEFAULT_SOCKET = "/var/run/docker.sock"
TIMEOUT = 5.0
MAX_RESPONSE_BYTES = 4 << 20  # an image's inspect document is a few KiB


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=TIMEOUT)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(TIMEOUT)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def _connection() -> http.client.HTTPConnection | None:
    host = os.environ.get("DOCKER_HOST", "")
    if not host:
        return _UnixConnection(DEFAULT_SOCKET)
    if host.startswith("unix://"):
        return _UnixConnection(host[len("unix://") :])
    if host.startswith("tcp://") and not os.environ.get("DOCKER_TLS_VERIFY") and not os.environ.get("DOCKER_CERT_PATH"):
        parts = urlsplit(host)
        if parts.hostname and parts.port:
            return http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)
    return None


def image_id_quickly(ref: str) -> str | None:
    """The local id (``sha256:...``) of image ``ref``, None when the engine doesn't have it; never
    pulls. Asks through the SDK when this engine can't be asked directly."""
    answer = _inspect_image(ref)
    if answer is None or answer[0] not in (200, 404):
        from opsctl.adapters.docker import image_id

        return image_id(ref)  # says why the engine can't be reached, as every other command does
    status, body = answer
    if status == 404:
        return None
    identity = json.loads(body).get("Id")
    return str(identity) if identity else None


def image_here(ref: str) -> bool | None:
    """Whether the engine, asked directly, has image ``ref``: True or False as it answers, None
    when it can't be asked this way or gives no clear answer. For callers that get ready early
    only when they can, and otherwise leave the asking (and the reporting) to the normal path."""
    answer = _inspect_image(ref)
    if answer is None or answer[0] not in (200, 404):
        return None
    return answer[0] == 200


def _inspect_image(ref: str) -> tuple[int, bytes] | None:
    """The engine's answer (status, body) to inspecting ``ref``; None when it can't be asked directly."""
    connection = _connection()
    if connection is None:
        return None
    try:
        connection.request("GET", f"/images/{quote(ref, safe='/:@')}/json")
        response = connection.getresponse()
        return response.status, response.read(MAX_RESPONSE_BYTES)
    except (OSError, http.client.HTTPException):  # no engine there, or something else than an engine
        return None
    finally:
        connection.close()
