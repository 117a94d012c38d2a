"""`opsctl --help` from typer's recorded text (cli/help_cache.py): the same bytes as typer prints, on a
pipe, with a forced width and on terminals of several sizes and colour settings; every part of the key
misses; a broken entry or cache directory falls back to typer, silently; OPSCTL_NO_FAST_PATH=1 is typer."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import shutil
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from opsctl.cli import help_cache
from tests.conftest import REPO

# Runs `opsctl ARGS` as the console script does, then says on stderr which libraries got imported.
PROBE = """
import atexit, json, sys
atexit.register(lambda: print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})), file=sys.stderr))
sys.argv = ["opsctl", *ARGS]
from opsctl.__main__ import run
run()
"""

HELP_FORMS = [["--help"], ["-h"], []]


def _env(cache: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", help_cache.DISABLE_ENV)}
    return {**env, "XDG_CACHE_HOME": str(cache), **extra}


def _cmd(args: list[str]) -> list[str]:
    return [sys.executable, "-c", PROBE.replace("ARGS", repr(args))]


def _loaded(stderr: str) -> set[str]:
    return set(json.loads(stderr.strip().splitlines()[-1]))


def run_help(args: list[str], env: dict[str, str], cwd: Path | None = None) -> tuple[int, bytes, set[str], str]:
    """`opsctl ARGS` with stdout on a pipe: exit code, stdout's bytes, the top-level packages imported,
    and stderr without the probe's line."""
    result = subprocess.run(_cmd(args), env=env, cwd=cwd, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    stderr = result.stderr.decode()
    return result.returncode, result.stdout, _loaded(stderr), "".join(stderr.splitlines(True)[:-1])


def run_on_terminal(args: list[str], env: dict[str, str], columns: int) -> tuple[int, bytes, set[str]]:
    """`opsctl ARGS` with stdout on a pseudo-terminal ``columns`` wide (stderr on a pipe)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    with subprocess.Popen(_cmd(args), env=env, stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.PIPE) as proc:
        os.close(slave)
        output = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the terminal's last writer is gone
                break
            if not chunk:
                break
            output += chunk
        os.close(master)
        stderr = proc.stderr.read().decode() if proc.stderr else ""
        code = proc.wait(timeout=60)
    return code, output, _loaded(stderr)


def typer_text(args: list[str], env: dict[str, str], cwd: Path | None = None) -> bytes:
    code, out, loaded, _ = run_help(args, {**env, help_cache.DISABLE_ENV: "1"}, cwd)
    assert code == 0 and "typer" in loaded
    return out


def entries(cache: Path) -> list[Path]:
    return sorted((cache / "opsctl").glob("help-*.txt"))


@pytest.mark.parametrize("args", HELP_FORMS, ids=["--help", "-h", "none"])
def test_recorded_help_is_typers_on_a_pipe(tmp_path, args):
    env = _env(tmp_path / "cache")
    expected = typer_text(args, env)
    assert expected.startswith(b"Usage: opsctl [OPTIONS] COMMAND [ARGS]...")
    assert not entries(tmp_path / "cache")  # OPSCTL_NO_FAST_PATH=1 wrote nothing
    first = run_help(args, env)
    assert first[:2] == (0, expected) and "typer" in first[2]  # a miss: typer printed it, and it was kept
    assert len(entries(tmp_path / "cache")) == 1
    second = run_help(args, env)
    assert second[:2] == (0, expected)
    assert not second[2] & {"typer", "click", "rich"}  # a hit


def test_each_width_is_its_own_entry(tmp_path):
    cache = tmp_path / "cache"
    texts = {}
    for columns in ("60", "100", "30", "60"):
        env = _env(cache, COLUMNS=columns)
        expected = typer_text(["--help"], env)
        code, out, loaded, _ = run_help(["--help"], env)
        assert (code, out) == (0, expected)
        assert ("typer" in loaded) == (columns not in texts)  # a new width misses, a known one hits
        texts[columns] = out
    assert texts["60"] != texts["100"]  # the width matters: a shared entry would have been wrong
    assert len(entries(cache)) == 3


@pytest.mark.parametrize(
    ("columns", "extra"),
    [(100, {"TERM": "xterm-256color"}), (64, {"NO_COLOR": "1"}), (45, {"TERM": "dumb", "FORCE_COLOR": "1"})],
)
def test_recorded_help_is_typers_on_a_terminal(tmp_path, columns, extra):
    env = _env(tmp_path / "cache", **extra)
    reference = run_on_terminal(["--help"], {**env, help_cache.DISABLE_ENV: "1"}, columns)
    assert reference[0] == 0 and "typer" in reference[2]
    miss = run_on_terminal(["--help"], env, columns)
    hit = run_on_terminal(["--help"], env, columns)
    assert miss[:2] == hit[:2] == reference[:2]
    assert "typer" in miss[2] and "typer" not in hit[2]
    resized = run_on_terminal(["--help"], env, columns - 7)  # the terminal's size is part of the key
    assert "typer" in resized[2]
    assert resized[:2] == run_on_terminal(["--help"], {**env, help_cache.DISABLE_ENV: "1"}, columns - 7)[:2]
    pipe = run_help(["--help"], env)  # the same settings on a pipe: a different key (no terminal)
    assert "typer" in pipe[2]


def test_every_part_of_the_key_misses(monkeypatch, tmp_path):
    """The key changes with each thing the help's bytes may depend on."""
    for name in ("COLUMNS", "LINES", "XDG_CACHE_HOME", "OPSCTL_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    keys = {help_cache.cache_key(["--help"])}
    assert None not in keys  # (pytest's captured stdout is UTF-8 text)
    for name, value in [
        ("COLUMNS", "100"),
        ("LINES", "50"),
        ("NO_COLOR", "1"),
        ("FORCE_COLOR", "1"),
        ("PY_COLORS", "1"),
        ("TERM", "dumb-ish"),
        ("COLORTERM", "truecolor"),
        ("TERMINAL_WIDTH", "90"),
        ("GITHUB_ACTIONS", "true"),
        ("JUPYTER_COLUMNS", "70"),
        ("JUPYTER_LINES", "20"),
        ("TTY_COMPATIBLE", "1"),
        ("TTY_INTERACTIVE", "0"),
        ("DATABRICKS_RUNTIME_VERSION", "1"),
        ("TYPER_USE_RICH", "0"),
        ("_TYPER_FORCE_DISABLE_TERMINAL", "1"),
        ("OPSCTL_DEBUG", "1"),
        ("LANGUAGE", "fr"),
        ("LC_ALL", "fr_FR.UTF-8"),
        ("LC_MESSAGES", "de_DE.UTF-8"),
        ("LANG", "es_ES.UTF-8"),
    ]:
        with monkeypatch.context() as m:
            m.setenv(name, value if os.environ.get(name) != value else value + "x")
            keys.add(help_cache.cache_key(["--help"]))
    for args in (["-h"], []):
        keys.add(help_cache.cache_key(args))
    with monkeypatch.context() as m:
        m.setattr(help_cache, "__version__", "99.0")
        keys.add(help_cache.cache_key(["--help"]))
    assert len(keys) == 21 + 2 + 1 + 1

    # A package's files: an edit, a new file, a removed one (here a stand-in for typer on sys.path).
    package = tmp_path / "standin_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(help_cache, "_PACKAGES", (*help_cache._PACKAGES, "standin_pkg"))
    before = help_cache.cache_key(["--help"])
    os.utime(package / "__init__.py", ns=(1, 1))
    touched = help_cache.cache_key(["--help"])
    (package / "more.py").write_text("")
    added = help_cache.cache_key(["--help"])
    (package / "more.py").unlink()
    removed = help_cache.cache_key(["--help"])
    assert len({before, touched, added}) == 3
    assert removed == touched  # the same files, the same stat


def test_an_edited_opsctl_misses(tmp_path):
    """A copy of opsctl whose help text is then edited: the next `--help` shows the edit, as typer does."""
    shutil.copytree(REPO / "opsctl", tmp_path / "src" / "opsctl", ignore=shutil.ignore_patterns("__pycache__"))
    env = _env(tmp_path / "cache", PYTHONPATH=str(tmp_path / "src"))
    assert run_help(["--help"], env, tmp_path)[0] == 0
    code, _, loaded, _ = run_help(["--help"], env, tmp_path)
    assert code == 0 and "typer" not in loaded  # a hit, before the edit
    main = tmp_path / "src" / "opsctl" / "cli" / "main.py"
    main.write_text(main.read_text().replace("One command for the DataOps/MLOps loop", "One EDITED command"))
    code, out, loaded, _ = run_help(["--help"], env, tmp_path)
    assert code == 0 and "typer" in loaded
    assert b"One EDITED command" in out and out == typer_text(["--help"], env, tmp_path)


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[:-10],  # truncated
        lambda data: data[:-5] + bytes([data[-5] ^ 0x01]) + data[-4:],  # one bit of the text flipped
        lambda data: b"",
        lambda data: b"\xff\xfe garbage \x00" * 3,
        lambda data: data.replace(b"Usage", b"Us\xffge"),  # not UTF-8 (length and checksum recomputed below)
        lambda data: data + b"x" * (help_cache.MAX_BYTES + 1),  # oversized
    ],
    ids=["truncated", "bit-flip", "empty", "garbage", "not-utf8", "oversized"],
)
def test_a_broken_entry_falls_back_to_typer(tmp_path, damage):
    env = _env(tmp_path / "cache")
    expected = typer_text(["--help"], env)
    run_help(["--help"], env)
    [entry] = entries(tmp_path / "cache")
    broken = damage(entry.read_bytes())
    if b"Us\xffge" in broken:  # a well-formed entry whose text is not UTF-8
        header, key, body = broken.split(b"\n", 2)
        import zlib

        broken = b"%s %d %08x\n%s\n%s" % (help_cache.MAGIC, len(body), zlib.crc32(body), key, body)
    entry.write_bytes(broken)
    _falls_back_and_heals(env, expected)


def _falls_back_and_heals(env: dict[str, str], expected: bytes) -> None:
    code, out, loaded, stderr = run_help(["--help"], env)
    assert (code, out, stderr) == (0, expected, "") and "typer" in loaded
    code, out, loaded, _ = run_help(["--help"], env)  # the fall-back wrote a good entry again
    assert (code, out) == (0, expected) and "typer" not in loaded


@pytest.mark.parametrize("kind", ["fifo", "directory", "dangling-symlink"])
def test_an_entry_that_is_no_file_falls_back_to_typer(tmp_path, kind):
    """A FIFO (reading it must not block), a directory, a symlink to nothing where the entry would be."""
    env = _env(tmp_path / "cache")
    expected = typer_text(["--help"], env)
    run_help(["--help"], env)
    [entry] = entries(tmp_path / "cache")
    entry.unlink()
    if kind == "fifo":
        os.mkfifo(entry)
    elif kind == "directory":
        entry.mkdir()
    else:
        entry.symlink_to(tmp_path / "nowhere")
    if kind == "directory":  # stays in the way of a new entry: typer every time, silently
        for _ in range(2):
            code, out, loaded, stderr = run_help(["--help"], env)
            assert (code, out, stderr) == (0, expected, "") and "typer" in loaded
    else:
        _falls_back_and_heals(env, expected)


def test_an_entry_for_another_key_is_not_served(tmp_path):
    """Two keys sharing a file name (a checksum collision): the key stored in the entry decides."""
    env = _env(tmp_path / "cache")
    run_help(["--help"], env)
    [entry] = entries(tmp_path / "cache")
    data = entry.read_bytes()
    header, key, body = data.split(b"\n", 2)
    entry.write_bytes(b"\n".join([header, key.replace(b"'--help'", b"'--hel_'"), body]))
    code, out, loaded, _ = run_help(["--help"], env)
    assert (code, out) == (0, typer_text(["--help"], env)) and "typer" in loaded


def test_an_unwritable_cache_falls_back_silently(tmp_path):
    not_a_dir = tmp_path / "cache"
    not_a_dir.write_text("a file where the cache directory would be")
    env = _env(not_a_dir)
    expected = typer_text(["--help"], env)
    for _ in range(2):
        code, out, loaded, stderr = run_help(["--help"], env)
        assert (code, out, stderr) == (0, expected, "") and "typer" in loaded


def test_entries_are_bounded(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    for n in range(help_cache.MAX_ENTRIES + 3):
        help_cache.write_entry(f"key {n}", f"text {n}\n")
        os.utime(help_cache._entry_path(f"key {n}"), ns=(n * 10**9, n * 10**9))  # distinct ages, oldest first
    assert len(entries(cache)) == help_cache.MAX_ENTRIES
    assert help_cache.read_entry("key 0") is None and help_cache.read_entry("key 2") is None
    assert not list((cache / "opsctl").glob(".help-*"))  # no temporary file left behind
    assert help_cache.read_entry(f"key {help_cache.MAX_ENTRIES + 2}") == f"text {help_cache.MAX_ENTRIES + 2}\n"


def test_a_killed_writers_leftovers_go(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    directory = tmp_path / "cache" / "opsctl"
    directory.mkdir(parents=True)
    old, recent = directory / ".help-old.partial", directory / ".help-recent.partial"
    for partial in (old, recent):
        partial.write_bytes(b"half an entry")
    os.utime(old, (1, 1))
    help_cache.write_entry("key", "text\n")
    assert not old.exists() and recent.exists()  # (another writer may still be busy with a recent one)
    assert help_cache.read_entry("key") == "text\n"


def test_no_fast_path_means_typer(tmp_path):
    env = {**_env(tmp_path / "cache"), help_cache.DISABLE_ENV: "1"}
    for args in (["--help"], ["--version"]):
        for _ in range(2):
            code, _, loaded, _ = run_help(args, env)
            assert code == 0 and "typer" in loaded
    assert not (tmp_path / "cache").exists()


def test_version_is_typers_line_without_typer(tmp_path):
    env = _env(tmp_path / "cache")
    code, out, loaded, _ = run_help(["--version"], env)
    assert (code, out) == (0, typer_text(["--version"], env))
    assert out.decode().startswith("opsctl ") and not loaded & {"typer", "click", "rich"}
