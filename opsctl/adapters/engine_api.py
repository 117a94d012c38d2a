"""One question to the Docker engine without the docker SDK: a ``ref:`` image's id, for the
no-op fast path (core/plan_cache.py). Importing the SDK (requests, urllib3, paramiko checks)
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
    connection = _connection()
    if connection is None:
        from opsctl.adapters.docker import image_id

        return image_id(ref)
    try:
        connection.request("GET", f"/images/{quote(ref, safe='/:@')}/json")
        response = connection.getresponse()
        body = response.read(MAX_RESPONSE_BYTES)
        status = response.status
    except OSError:
        from opsctl.adapters.docker import image_id

        return image_id(ref)  # says why the engine can't be reached, as every other command does
    finally:
        connection.close()
    if status == 404:
        return None
    if status != 200:
        from opsctl.adapters.docker import image_id

        return image_id(ref)
    identity = json.loads(body).get("Id")
    return str(identity) if identity else None
