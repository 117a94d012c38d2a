"""opsctl.errors: exit codes are part of the public contract."""

from __future__ import annotations

import pytest

from opsctl import errors
from opsctl.errors import (
    ConfigError,
    DoctorFailedError,
    DvcError,
    EngineUnavailableError,
    GitError,
    InterruptedByUser,
    NotAProjectError,
    OpsctlError,
    ProjectExistsError,
    StageFailedError,
    TemplateError,
    TemplateNotFoundError,
    TemplateUnreachableError,
    ToolUnavailableError,
    UsageError,
)


@pytest.mark.parametrize(
    ("cls", "code"),
    [
        (OpsctlError, 1),
        (UsageError, 2),
        (NotAProjectError, 3),
        (ToolUnavailableError, 4),
        (EngineUnavailableError, 4),
        (TemplateUnreachableError, 4),
        (DoctorFailedError, 4),
        (StageFailedError, 5),
        (errors.DataCheckFailedError, 6),
        (InterruptedByUser, 130),
        (ConfigError, 1),
        (TemplateNotFoundError, 2),
        (TemplateError, 1),
        (ProjectExistsError, 1),
        (GitError, 1),
        (DvcError, 1),
    ],
)
def test_exit_codes(cls, code):
    assert cls.exit_code == code
    assert cls("x").exit_code == code
    assert issubclass(cls, OpsctlError)


def test_exit_code_constants():
    assert (
        errors.EXIT_OK,
        errors.EXIT_ERROR,
        errors.EXIT_USAGE,
        errors.EXIT_NOT_A_PROJECT,
        errors.EXIT_UNAVAILABLE,
        errors.EXIT_STAGE_FAILED,
        errors.EXIT_CHECK_FAILED,
        errors.EXIT_INTERRUPTED,
    ) == (0, 1, 2, 3, 4, 5, 6, 130)


@pytest.mark.parametrize("cls", [EngineUnavailableError, TemplateUnreachableError])
def test_unavailable_errors_inherit(cls):
    assert issubclass(cls, ToolUnavailableError)


def test_template_not_found_is_a_usage_error():
    assert issubclass(TemplateNotFoundError, UsageError)


def test_message_and_hint():
    err = StageFailedError("stage train failed", hint="see .opsctl/logs/train.log")
    assert str(err) == "stage train failed"
    assert err.message == "stage train failed"
    assert err.hint == "see .opsctl/logs/train.log"
    assert OpsctlError("m").hint is None
    with pytest.raises(OpsctlError, match="stage train failed"):
        raise err
