"""The README's command reference matches the CLI: every command has a section, every option is named."""

from __future__ import annotations

import re

import typer

from opsctl.cli.main import app
from tests.conftest import REPO


def _commands(command, path=""):
    sub = getattr(command, "commands", None) or {}
    if not sub:
        yield path, command
    for name, child in sub.items():
        yield from _commands(child, f"{path} {name}".strip())


def test_command_reference_covers_every_command_and_option():
    readme = (REPO / "README.md").read_text()
    reference = readme.split("## Command reference", 1)[1].split("\n## ", 1)[0]
    headings = []
    for title in re.findall(r"^### `opsctl ([^`]+)`", reference, flags=re.M):
        words = []
        for word in title.split():  # the command's words come before its arguments (NAME, [DIR], ...)
            if not re.fullmatch(r"[a-z][a-z-]*", word):
                break
            words.append(word)
        headings.append(" ".join(words))
    commands = dict(_commands(typer.main.get_command(app)))
    assert sorted(headings) == sorted(commands)
    for path, command in commands.items():
        for param in command.params:
            for opt in param.opts if param.param_type_name == "option" else ():
                assert f"`{opt}" in reference, f"README reference lacks {opt} of opsctl {path}"
    for opt in ("--version", "--traceback", "--quiet", "-q"):
        assert f"`{opt}`" in reference
