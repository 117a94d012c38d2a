"""Fixtures of the end-to-end tests: a moto S3 server on 127.0.0.1 (see moto_server.py), and the
parts of a cluster: Dask scheduler and workers, a second Docker engine, an image registry
(see cluster_parts.py)."""

from tests.e2e.cluster_parts import dask_cluster, image_registry, second_engine  # noqa: F401
from tests.e2e.moto_server import moto_s3, s3_bucket  # noqa: F401  (pytest finds fixtures here)
