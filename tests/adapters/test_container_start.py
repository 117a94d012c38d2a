"""A container start that fails only because dvc.lock was replaced as the engine mounted it
(a parallel stage's lock write) is tried again; any other start failure is not."""

from __future__ import annotations

import pytest
from docker.errors import APIError

from opsctl.adapters.docker import _START_TRIES, start_container

# The engine's words, as a CI run hit them (runc mounting a dvc.lock replaced by rename meanwhile).
RACE = (
    'failed to create shim task: OCI runtime create failed: runc create failed: unable to start container '
    'process: error during container init: error mounting "/tmp/p0/dvc.lock" to rootfs at "/workspace/dvc.lock": '
    "mount /tmp/p0/dvc.lock:/workspace/dvc.lock (via /proc/self/fd/6), flags: 0x5001: no such file or directory"
)


class Starts:
    """The engine's start, failing with ``errors`` in turn, then starting."""

    def __init__(self, *errors: str) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1
        if self.errors:
            raise APIError("400 Client Error: Bad Request", explanation=self.errors.pop(0))


def test_a_start_racing_a_lock_write_is_tried_again():
    start = Starts(RACE, RACE)
    start_container(start)
    assert start.calls == 3


def test_other_start_failures_are_raised_at_once():
    other = 'error mounting "/data" to rootfs at "/data": no such file or directory'  # not a pipeline file
    for error in (other, "OCI runtime create failed: unable to apply cgroup configuration"):
        start = Starts(error)
        with pytest.raises(APIError):
            start_container(start)
        assert start.calls == 1


def test_a_race_that_never_ends_is_raised_after_a_few_tries():
    start = Starts(*[RACE] * (_START_TRIES + 1))
    with pytest.raises(APIError, match="dvc.lock"):
        start_container(start)
    assert start.calls == _START_TRIES
