"""Copier, the template engine behind ``opsctl init``."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from opsctl.errors import TemplateError, TemplateUnreachableError, TrustRequiredError


def render(
    src: str,
    dst: Path,
    *,
    data: dict[str, Any],
    user_defaults: dict[str, Any] | None = None,
    defaults: bool,
    trust: bool,
    is_remote: bool,
    vcs_ref: str | None = None,
) -> None:
    """Render template ``src`` into ``dst`` (which should be empty or missing).

    ``data`` answers questions outright; ``user_defaults`` only changes the
    default offered (and taken with ``defaults``). Template tasks and migrations run only when ``trust`` is set: Copier refuses
    an unsafe template otherwise, and we turn that into a clear usage error.
    """
    import copier
    from copier.errors import CopierAnswersInterrupt, CopierError, UnsafeTemplateError
    from plumbum import ProcessExecutionError

    # A template URL must never stop to ask for credentials on a terminal.
    os.environ.setdefault("GIT_TERMINAL_PROMPT", "0")
    try:
        with warnings.catch_warnings():
            # Copier warns about dirty local templates and old copier versions;
            # neither is actionable for someone scaffolding a project.
            warnings.simplefilter("ignore")
            copier.run_copy(
                src,
                dst,
                data=data,
                user_defaults=user_defaults or {},
                vcs_ref=vcs_ref,
                defaults=defaults,
                overwrite=True,
                quiet=True,
                unsafe=trust,
                cleanup_on_error=False,  # the caller rolls back everything it created
            )
    except CopierAnswersInterrupt:
        raise KeyboardInterrupt from None
    except UnsafeTemplateError as exc:
        raise TrustRequiredError(
            f"template {src} runs its own code ({_one_line(exc)})",
            hint="review the template, then pass --trust to allow its tasks and migrations",
        ) from None
    except ProcessExecutionError as exc:
        detail = _one_line(exc.stderr or str(exc))
        if is_remote:
            raise TemplateUnreachableError(
                f"cannot fetch template {src}: {detail}",
                hint="check the URL and your network, or use a local path or a built-in template (`opsctl template list`)",
            ) from None
        raise TemplateError(f"template {src} failed: {detail}") from None
    except (CopierError, ValueError) as exc:
        raise TemplateError(f"template {src}: {_one_line(exc)}") from None


def _one_line(value: object) -> str:
    lines = [ln.strip() for ln in str(value).strip().splitlines() if ln.strip()]
    fatal = [ln for ln in lines if ln.lower().startswith(("fatal:", "error:"))]
    return (fatal or lines or [type(value).__name__])[-1]
