"""`opsctl --help`, `opsctl -h`, `opsctl` alone (the same help) and `opsctl --version`, without typer.

Where `opsctl --help` spent its ~0.22 s (2-core machine, `python -X importtime -m opsctl --help` and
timed steps; `dvc --help` takes ~0.28 s): the interpreter with site ~0.02 s; typer and the click it
vendors ~0.09 s; opsctl's command modules ~0.06 s (the top-level help lists every command with its
short help, so every one of them is imported); typer building click's command tree ~0.03 s; click
rendering the text ~0.002 s; rich nothing (the help is click's plain help, ``rich_markup_mode=None``).
Trimming imports cannot reach the target (0.6x `dvc --help`, ~0.17 s): typer's import and command
tree alone cost ~0.12 s above the interpreter, before one command module is loaded.

So the text is typer's own, recorded: the first `opsctl --help` runs typer as always, while a tee on
``sys.stdout`` keeps what typer printed; on exit code 0 it is written (atomically: a temporary file
renamed into place) to ``$XDG_CACHE_HOME/opsctl/`` (``~/.cache/opsctl/`` without it), under a key
made of everything the output depends on:

- the arguments (``--help``, ``-h`` or none), opsctl's version, the Python version;
- the stat (size, mtime, inode) of every file of the opsctl package that runs, of typer (and the click
  it vendors) and of rich, wherever the import system finds them: any edit, upgrade or other
  ``PYTHONPATH`` misses;
- what decides the width (``COLUMNS``, ``LINES`` and the size of the terminal on stdout, as
  ``shutil.get_terminal_size`` reads them), whether stdout is a terminal, its encoding and errors;
- the colour and markup switches click, typer and rich read (``NO_COLOR``, ``FORCE_COLOR``, ``TERM``,
  ``COLORTERM``, ... in ``_ENV_NAMES``; every ``TYPER_*``/``_TYPER_*`` and ``OPSCTL_*`` variable) and
  the locale (``LANGUAGE``, ``LC_ALL``, ``LC_MESSAGES``, ``LANG``: click's messages go through gettext).

Later runs with the same key print the recorded text: ~0.035 s, the interpreter and this module. A
missing, truncated, corrupt (checksum), oversized or unreadable entry (or no regular file: a FIFO must not
block), a stdout that is not UTF-8, or a cache directory that cannot be written all fall back silently to
typer. At most ``MAX_ENTRIES`` entries are kept (one per terminal width in use, typically).
``OPSCTL_NO_FAST_PATH=1`` always goes to typer and neither reads nor writes the cache. `opsctl --version`
prints the line the typer callback prints. Anything else (`opsctl -q --help`, `opsctl run --help`) is
typer's, as before.

tests/cli/test_help_cache.py checks the recorded text against typer's, byte for byte, on a pipe, with a
forced width and on a terminal of several sizes; that each part of the key misses; that a broken entry
or cache directory falls back; and that a hit imports none of typer, click or rich.
"""

from __future__ import annotations

import os
import sys
from stat import S_ISREG  # (imported by site already)

from opsctl import __version__

# Set to 1 to always go through typer: no help cache, no typer-free commands (cli/fastpath.py). Defined
# here, not in cli/fastpath.py, so that a cached `opsctl --help` does not pay for that module's imports.
DISABLE_ENV = "OPSCTL_NO_FAST_PATH"

HELP_ARGS: tuple[list[str], ...] = ([], ["--help"], ["-h"])  # `opsctl` alone prints the same help
VERSION_ARGS = ["--version"]
MAGIC = b"opsctl-help-cache 1"
MAX_BYTES = 256 * 1024  # the key lists ~200 files (~20 KB), the help ~2 KB: anything bigger is not ours
MAX_ENTRIES = 16
# What click, typer and rich read from the environment (rich only renders typer's rich help, off today;
# should cli/main.py turn it on, the edit itself misses and these keep later hits right).
_ENV_NAMES = (
    "COLUMNS LINES NO_COLOR FORCE_COLOR PY_COLORS TERM COLORTERM TERMINAL_WIDTH GITHUB_ACTIONS "
    "JUPYTER_COLUMNS JUPYTER_LINES TTY_COMPATIBLE TTY_INTERACTIVE DATABRICKS_RUNTIME_VERSION "
    "LANGUAGE LC_ALL LC_MESSAGES LANG"
).split()
_ENV_PREFIXES = ("TYPER_", "_TYPER_", "OPSCTL_")
_PACKAGES = ("opsctl", "typer", "rich")


def serve(args: list[str]) -> int | None:
    """Answer `opsctl --version` and the top-level help; the exit code, or None when the
    arguments are anything else (or the fast ways in are switched off)."""
    if os.environ.get(DISABLE_ENV) == "1":
        return None
    if args == VERSION_ARGS:
        sys.stdout.write(f"opsctl {__version__}\n")  # what cli/main.py's --version callback prints
        return 0
    if args not in HELP_ARGS:
        return None
    key = cache_key(args)
    if key is None:
        return _typer(args)
    text = read_entry(key)
    if text is None:
        return _record(args, key)
    sys.stdout.write(text)
    sys.stdout.flush()
    return 0


def cache_dir() -> str:
    """``$XDG_CACHE_HOME/opsctl``, or ``~/.cache/opsctl`` (the XDG spec ignores a relative value)."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "opsctl")


def cache_key(args: list[str]) -> str | None:
    """Everything the help's bytes depend on, as one line; None when it cannot be served from a
    cache (stdout is not UTF-8: click then rewraps the stream, past the recording tee)."""
    stdout = sys.stdout
    encoding = getattr(stdout, "encoding", None) or ""
    if encoding.lower().replace("-", "").replace("_", "") != "utf8":
        return None
    size: object = None  # shutil falls back to 80x24
    if sys.__stdout__ is not None:
        try:
            size = tuple(os.get_terminal_size(sys.__stdout__.fileno()))
        except (AttributeError, ValueError, OSError):
            pass
    try:
        tty = stdout.isatty()
    except (AttributeError, ValueError):
        tty = None
    env = sorted(
        (name, value) for name, value in os.environ.items() if name in _ENV_NAMES or name.startswith(_ENV_PREFIXES)
    )
    parts = [
        args,
        __version__,
        sys.version,
        size,
        tty,
        encoding,
        getattr(stdout, "errors", None),
        env,
    ]
    try:
        parts.append([_tree_stat(name) for name in _PACKAGES])
    except OSError:  # an unreadable install: typer will say what is wrong, if anything
        return None
    return repr(parts).replace("\n", "\\n")


def _tree_stat(package: str) -> object:
    """Where ``package`` is (imported, or where an import would find it) and the size, mtime and
    inode of each of its files (``__pycache__`` aside); None when it is not installed."""
    module = sys.modules.get(package)
    origin = getattr(module, "__file__", None)
    if module is None:
        for finder in sys.meta_path:  # what importlib.util.find_spec asks, without importing it (~8 ms)
            find_spec = getattr(finder, "find_spec", None)
            spec = find_spec(package, None) if find_spec is not None else None
            if spec is not None:
                origin = spec.origin
                break
    if not origin:
        return None
    root = os.path.dirname(origin)
    files = []
    pending = [root]
    while pending:
        directory = pending.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name != "__pycache__":
                        pending.append(entry.path)
                    continue
                st = entry.stat()
                files.append((entry.path[len(root) :], st.st_size, st.st_mtime_ns, st.st_ino))
    files.sort()
    return root, files


def _entry_path(key: str) -> str:
    import zlib

    return os.path.join(cache_dir(), f"help-{zlib.crc32(key.encode()):08x}.txt")


def read_entry(key: str) -> str | None:
    """The text recorded under ``key``, or None: no entry, another key's, or anything wrong with it."""
    import zlib

    try:
        fd = os.open(_entry_path(key), os.O_RDONLY | os.O_NONBLOCK)  # a FIFO put there must not block
        with open(fd, "rb") as f:
            if not S_ISREG(os.fstat(fd).st_mode):
                return None
            data = f.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            return None
        header, key_line, body = data.split(b"\n", 2)
        magic, length, checksum = header.rsplit(b" ", 2)
        if magic != MAGIC or key_line != key.encode() or int(length) != len(body):
            return None
        if int(checksum, 16) != zlib.crc32(body):
            return None
        return body.decode("utf-8")
    except (OSError, ValueError):  # (UnicodeDecodeError is a ValueError)
        return None


def write_entry(key: str, text: str) -> None:
    """Store ``text`` under ``key``: a temporary file renamed into place, so a reader sees a whole
    entry or none; the oldest entries beyond ``MAX_ENTRIES`` go. Any failure is silent."""
    import tempfile
    import zlib

    body = text.encode("utf-8")
    data = b"%s %d %08x\n%s\n%s" % (MAGIC, len(body), zlib.crc32(body), key.encode(), body)
    path = _entry_path(key)
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd, partial = tempfile.mkstemp(prefix=".help-", suffix=".partial", dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(partial, path)
        except BaseException:
            os.unlink(partial)
            raise
        _prune(directory)
    except OSError:
        pass


def _prune(directory: str) -> None:
    """Keep the newest ``MAX_ENTRIES`` entries; remove temporary files an hour old (a writer killed)."""
    import time

    entries = []
    stale = []
    with os.scandir(directory) as found:
        for entry in found:
            try:
                mtime = entry.stat(follow_symlinks=False).st_mtime_ns
            except OSError:
                continue
            if entry.name.startswith("help-") and entry.name.endswith(".txt"):
                entries.append((mtime, entry.path))
            elif entry.name.startswith(".help-") and mtime < (time.time() - 3600) * 1e9:
                stale.append((mtime, entry.path))
    for _, path in sorted(entries, reverse=True)[MAX_ENTRIES:] + stale:
        try:
            os.unlink(path)
        except OSError:
            pass


class _Tee:
    """sys.stdout as click sees it (same encoding, errors, tty-ness, so it writes here
    unchanged), keeping a copy of the text written."""

    def __init__(self, stream) -> None:
        self._stream = stream
        self.encoding = stream.encoding
        self.errors = stream.errors
        self.written: list[str] = []

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError("write() argument must be str")  # click probes for a binary stream with b""
        self.written.append(text)
        return self._stream.write(text)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def _typer(args: list[str]) -> int:
    from opsctl.cli.main import main_with_exit_code

    return main_with_exit_code(args)


def _record(args: list[str], key: str) -> int:
    """Run typer with a tee on stdout; keep what it printed when it succeeded and nothing
    the key depends on changed meanwhile."""
    real = sys.stdout
    tee = _Tee(real)
    sys.stdout = tee  # a TextIO for every use click and opsctl make of it
    try:
        code = _typer(args)
    finally:
        sys.stdout = real
    text = "".join(tee.written)
    if code == 0 and text and cache_key(args) == key:
        write_entry(key, text)
    return code
