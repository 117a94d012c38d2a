"""A real S3 endpoint for tests: moto's server in a subprocess on 127.0.0.1.

Use the ``moto_s3`` fixture (import it into a test module) for a running server,
and ``s3_bucket`` for a fresh, empty bucket on it. ``server.env`` holds the
environment every AWS client of a test needs (dummy credentials, a region, and no
real AWS config files), for ``run_opsctl(..., env=server.env)`` and ``run(...)``.
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HOST = "127.0.0.1"
REGION = "us-east-1"
START_TIMEOUT = 30.0

# Variables that would send the clients elsewhere than our server (a profile, a
# proxy, a global endpoint override, an instance-metadata lookup).
_UNSET = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def aws_env(tmp: Path) -> dict[str, str]:
    """Dummy credentials and a region; config and credential files that do not exist."""
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_CONFIG_FILE": str(tmp / "no-such-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "no-such-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "NO_PROXY": f"{HOST},localhost",
        "no_proxy": f"{HOST},localhost",
    }


@dataclass
class MotoServer:
    """``python -m moto.server`` on a free port of 127.0.0.1."""

    tmp: Path
    port: int = 0
    proc: subprocess.Popen | None = None
    env: dict[str, str] = field(default_factory=dict)
    _names: itertools.count = field(default_factory=itertools.count)

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, attempts: int = 5) -> MotoServer:
        self.env = aws_env(self.tmp)
        last_log = ""
        for attempt in range(attempts):  # another process may grab the port between bind and listen
            self.port = free_port()
            log = self.tmp / f"moto-{attempt}.log"
            with log.open("wb") as sink:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(self.port)],
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env={**_clean_environ(), **self.env},
                )
            if self._wait_ready():
                return self
            self.stop()
            last_log = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"moto server did not start in {attempts} attempts; last log:\n{last_log}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                self.client().list_buckets()
                return True
            except Exception:  # not listening yet
                time.sleep(0.1)
        return False

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.session.Session(
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name=REGION,
        ).client(
            "s3",
            endpoint_url=self.endpoint,
            config=Config(connect_timeout=2, read_timeout=30, retries={"max_attempts": 1}),
        )

    def create_bucket(self, prefix: str = "opsctl-test") -> str:
        name = f"{prefix}-{os.getpid()}-{next(self._names)}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> set[str]:
        keys: set[str] = set()
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.update(obj["Key"] for obj in page.get("Contents", []))
        return keys


def _clean_environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in _UNSET}


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory):
    """A running moto S3 server for the whole session; always stopped at the end.
    The test process's own environment is pointed at it too (dummy credentials,
    no real AWS config), so ``run_opsctl`` and ``run`` subprocesses inherit that."""
    tmp = tmp_path_factory.mktemp("moto")
    server = MotoServer(tmp)
    mp = pytest.MonkeyPatch()
    try:
        for name in _UNSET:
            mp.delenv(name, raising=False)
        server.start()
        for name, value in server.env.items():
            mp.setenv(name, value)
        yield server
    finally:
        server.stop()
        mp.undo()


@pytest.fixture
def s3_bucket(moto_s3) -> str:
    """A fresh, empty bucket for one test."""
    return moto_s3.create_bucket()
