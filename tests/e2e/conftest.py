"""Fixtures of the end-to-end tests: a moto S3 server on 127.0.0.1 (see moto_server.py)."""

from tests.e2e.moto_server import moto_s3, s3_bucket  # noqa: F401  (pytest finds fixtures here)
