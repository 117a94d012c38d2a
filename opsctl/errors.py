"""The one exception hierarchy of opsctl.

Services raise these; the CLI's single handler (``opsctl.cli.main``) prints
``str(error)`` as one line on stderr, the hint (if any) on the next, and exits
with the class's ``exit_code``. Exit codes are part of the public contract
(docs/architecture.md, "Errors and exit codes"): 0 ok, 1 error, 2 usage, 3 not an opsctl project, 4 an external
tool or engine is unavailable, 5 a stage failed, 6 a data check failed, 130 interrupted.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_A_PROJECT = 3
EXIT_UNAVAILABLE = 4
EXIT_STAGE_FAILED = 5
EXIT_CHECK_FAILED = 6
EXIT_INTERRUPTED = 130


class OpsctlError(Exception):
    """Base class. ``message`` is one line; ``hint`` says what to do about it."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(OpsctlError):
    """The user asked for something that cannot mean anything (bad option value, unknown name)."""

    exit_code = EXIT_USAGE


class NotAProjectError(OpsctlError):
    exit_code = EXIT_NOT_A_PROJECT


class ToolUnavailableError(OpsctlError):
    """Git, DVC, the Docker engine, a remote or a template URL cannot be reached."""

    exit_code = EXIT_UNAVAILABLE


class StageFailedError(OpsctlError):
    exit_code = EXIT_STAGE_FAILED


class DataCheckFailedError(OpsctlError):
    """A data check (``opsctl data validate``), a drift gate or a report gate failed."""

    exit_code = EXIT_CHECK_FAILED


class DataParseError(OpsctlError):
    """A dataset's file can't be read as its format (named with its line and column where known)."""


class InterruptedByUser(OpsctlError):
    exit_code = EXIT_INTERRUPTED


# -- more specific errors; each keeps its parent's exit code -----------------


class ConfigError(OpsctlError):
    """``opsctl.yaml`` (or another project file) is malformed."""


class TemplateNotFoundError(UsageError):
    pass


class TemplateUnreachableError(ToolUnavailableError):
    pass


class TemplateError(OpsctlError):
    """Copier could not render a template (bad answers, broken template)."""


class ProjectExistsError(OpsctlError):
    pass


class GitError(OpsctlError):
    pass


class DvcError(OpsctlError):
    pass


class EngineUnavailableError(ToolUnavailableError):
    pass


class SchedulerUnavailableError(ToolUnavailableError):
    """A remote executor's scheduler (e.g. Dask's) does not answer."""


class DoctorFailedError(ToolUnavailableError):
    pass


class DvcVersionError(ToolUnavailableError):
    """The installed DVC is outside the versions opsctl's DVC internals were checked against
    (``opsctl.adapters.dvc_compat.SUPPORTED_DVC``)."""


class TrustRequiredError(UsageError):
    """A third-party template wants to run its own code and --trust was not given."""


class RepoLockedError(DvcError):
    """Another DVC or opsctl process holds the project's lock (``.dvc/tmp/lock``)."""


class ProjectBusyError(RepoLockedError):
    """Another run (``opsctl run``, ``dvc repro``) holds the project's lock: refused at once,
    naming it, rather than waited for (it holds the lock for as long as its stages take)."""


class RemoteUnavailableError(ToolUnavailableError):
    pass


class AlreadyInGitError(DvcError):
    pass


class ForgeError(OpsctlError):
    """GitHub's or GitLab's API refused or failed a request (``opsctl report --comment``): a missing or
    refused token, no such repository or pull request, a malformed answer. Never holds a token."""


class ForgeAuthError(ForgeError):
    """The token is missing, or the API refused it (401/403): the message names the variable and the
    permission the pipeline must grant."""


class ForgeUnavailableError(ForgeError, ToolUnavailableError):
    """GitHub's or GitLab's API cannot be reached (connection refused, timeout, name lookup) or answers
    5xx. A ``ForgeError`` too, so one ``except ForgeError`` catches every comment failure."""

    exit_code = EXIT_UNAVAILABLE


class BuildFailedError(OpsctlError):
    """A Docker build failed; ``log_tail`` holds the last lines of its log."""

    def __init__(self, message: str, log_tail: list[str]) -> None:
        super().__init__(message, hint="the last lines of the build log are above")
        self.log_tail = log_tail


# -- the run store (opsctl.store) ----------------------------------------------------


class StoreError(OpsctlError):
    """The run store (``.opsctl/opsctl.db``) cannot be read or written: not a database,
    damaged, or locked by another process for longer than the busy timeout."""


class StoreDamagedError(StoreError):
    """The run store's file is damaged (SQLite: "database disk image is malformed"); what is
    still readable is kept by ``opsctl runs repair``."""


class StoreVersionError(StoreError):
    """The run store was written by a newer opsctl (a schema version this one does not know)."""


class RunNotFoundError(UsageError):
    """No run has this id or id prefix."""


class AmbiguousRunError(UsageError):
    """A run id prefix matches more than one run; ``candidates`` holds some of them."""

    def __init__(self, message: str, candidates: list[str], *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.candidates = candidates
