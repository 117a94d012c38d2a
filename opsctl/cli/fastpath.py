"""A typer-free way in for the read-only commands that scripts and dashboards poll,
`opsctl runs list` and `opsctl runs show`, for `opsctl ui`, and for `opsctl status` and
`opsctl run` (the latter only when the pipeline is up to date: anything to do goes to typer).

Importing typer, and the click it vendors, takes ~0.12 s on a 2-core machine,
more than all the rest of `opsctl runs list --json` on a 100,000-run store
(bench/runs.py). So `opsctl` first looks at its arguments: when they are one of
these commands and every argument is an option this path knows, spelled in a
way it understands, it runs the same code the typer commands run
(cli/runs_view.py), with the same failure reporting (cli/failures.py).
Anything else (--help, a typo, a missing value, a repeated option, clustered
short flags) goes to typer, which owns parsing errors and help text.

tests/cli/test_fastpath.py checks that both ways in give the same output and exit
code, and that the options known here are exactly the typer commands' options.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import NamedTuple

from opsctl.cli.help_cache import DISABLE_ENV  # =1: always through typer (tests compare the two)


class Grammar(NamedTuple):
    """One command's arguments: flags (no value), value options (name -> parameter),
    which parameters repeat or are integers, and its positional parameters in order."""

    flags: dict[str, str]
    values: dict[str, str]
    repeatable: frozenset[str] = frozenset()
    integers: frozenset[str] = frozenset()
    floats: dict[str, float] = {}  # parameter -> its minimum (typer's min=)
    positionals: tuple[str, ...] = ()
    # Only some uses of the command are answered here (its other options, and its positionals,
    # go to typer, as does any use the handler declines): the grammar is a subset of typer's.
    partial: bool = False


# The root callback's options that may come before the command (cli/main.py).
GLOBAL_FLAGS = {"--quiet": "quiet", "-q": "quiet", "--traceback": "traceback"}

COMMANDS: dict[tuple[str, ...], Grammar] = {
    ("runs", "list"): Grammar(
        flags={"--json": "as_json"},
        values={
            "--limit": "limit",
            "-n": "limit",
            "--status": "status",
            "--where": "where",
            "-w": "where",
            "--sort": "sort",
        },
        repeatable=frozenset({"where"}),
        integers=frozenset({"limit"}),
    ),
    ("runs", "show"): Grammar(flags={"--json": "as_json"}, values={}, positionals=("run",)),
    # The dashboard: typer's import is an eighth of its start-up (bench/ui.py).
    ("ui",): Grammar(flags={}, values={"--refresh": "refresh"}, floats={"refresh": 0.2}),
    # The commands typed most, answered by the no-op fast path (core/plan_cache.py) when the
    # pipeline is unchanged: typer's import would be most of their time (bench/noop.py).
    ("status",): Grammar(flags={"--json": "as_json"}, values={}),
    ("run",): Grammar(
        flags={"--json": "as_json"},
        values={"--jobs": "jobs", "-j": "jobs", "--executor": "executor"},
        integers=frozenset({"jobs"}),
        partial=True,
    ),
}


def parse(args: list[str]) -> tuple[tuple[str, ...], dict[str, object], dict[str, bool]] | None:
    """(command, its parameters as given, the global flags given), or None when the
    arguments are anything but a plain use of a command above."""
    position = 0
    global_flags: dict[str, bool] = {}
    while position < len(args) and args[position] in GLOBAL_FLAGS:
        global_flags[GLOBAL_FLAGS[args[position]]] = True
        position += 1
    command = tuple(args[position : position + 2])
    grammar = COMMANDS.get(command)
    if grammar is None:  # a one-word command
        command = tuple(args[position : position + 1])
        grammar = COMMANDS.get(command)
    if grammar is None:
        return None
    params: dict[str, object] = {}
    positionals: list[str] = []
    rest = args[position + len(command) :]
    i = 0
    while i < len(rest):
        token = rest[i]
        i += 1
        if not token.startswith("-"):
            positionals.append(token)
            continue
        name, has_inline, inline = token.partition("=")
        if name in grammar.flags and not has_inline:
            params[grammar.flags[name]] = True
            continue
        param = grammar.values.get(name)
        if param is None:
            return None  # --help, an unknown option, "--", "-": typer decides
        if has_inline:
            text = inline
        elif i < len(rest) and not rest[i].startswith("-"):
            text = rest[i]
            i += 1
        else:
            return None
        value: object = text
        if param in grammar.integers:
            if not text.isdigit():
                return None
            value = int(text)
        elif param in grammar.floats:
            try:
                number = float(text)
            except ValueError:
                return None
            if not number >= grammar.floats[param]:  # also NaN: typer says why
                return None
            value = number
        if param in grammar.repeatable:
            repeated = params.setdefault(param, [])
            if isinstance(repeated, list):  # (always: only this line stores a repeatable one)
                repeated.append(value)
        elif param in params:
            return None
        else:
            params[param] = value
    if len(positionals) != len(grammar.positionals):
        return None
    params.update(zip(grammar.positionals, positionals))
    return command, params, global_flags


def _run_list(params: dict) -> None:
    from opsctl.cli.runs_view import print_run_list

    print_run_list(
        limit=params.get("limit", 20),
        status=params.get("status"),
        where=params.get("where", []),
        sort=params.get("sort"),
        as_json=params.get("as_json", False),
    )


def _run_show(params: dict) -> None:
    from opsctl.cli.runs_view import print_run

    print_run(params["run"], as_json=params.get("as_json", False))


def _run_ui(params: dict) -> int:
    from opsctl.tui.launch import start_dashboard

    return start_dashboard(refresh=params.get("refresh", 1.0))


class TyperNeeded(Exception):
    """A handler found it can't answer alone (``opsctl run`` with something to do): typer runs
    the command, from the start."""


def _status(params: dict) -> None:
    from opsctl.cli.status_view import print_status

    print_status(as_json=params.get("as_json", False))


def _run_if_up_to_date(params: dict) -> None:
    from opsctl.cli.run_view import answer_if_up_to_date

    if not answer_if_up_to_date(
        executor=params.get("executor"), jobs=params.get("jobs"), as_json=params.get("as_json", False)
    ):
        raise TyperNeeded


HANDLERS: dict[tuple[str, ...], Callable[[dict], int | None]] = {
    ("runs", "list"): _run_list,
    ("runs", "show"): _run_show,
    ("ui",): _run_ui,
    ("status",): _status,
    ("run",): _run_if_up_to_date,
}


def try_fast_path(args: list[str]) -> int | None:
    """Run the command and return its exit code, or None when typer should handle it."""
    if os.environ.get(DISABLE_ENV) == "1":
        return None
    parsed = parse(args)
    if parsed is None:
        return None
    command, params, global_flags = parsed
    from opsctl.cli.failures import report_failure, traceback_wanted
    from opsctl.cli.output import out

    out.quiet = global_flags.get("quiet", False)
    try:
        return HANDLERS[command](params) or 0
    except TyperNeeded:
        return None
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001
        return report_failure(exc, show_traceback=traceback_wanted(args))
