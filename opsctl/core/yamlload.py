"""Bounded YAML loading for the files opsctl itself reads: ``opsctl.yaml``, ``opsctl.lock``
and the params files ``-S`` edits.

Plain ``yaml.safe_load`` trusts its input: a few hundred bytes of nested aliases (a
"billion laughs") expand to billions of values as soon as anything walks or prints
them, and a 50 MB file takes seconds to parse. Here the file's size is checked before
it is read, the document is composed (aliases stay shared references, nothing expands)
and then measured: how many nodes its aliases would add if expanded, whether an alias
refers to a node containing it, and whether a mapping repeats a key — before any Python
value is built. Every refusal is a :class:`ConfigError` naming the file and the line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from opsctl.errors import ConfigError

MAX_CONFIG_BYTES = 1 << 20  # opsctl.yaml: a few KB in practice
MAX_DATA_BYTES = 8 << 20  # params files and opsctl.lock: they grow with the pipeline
MAX_ALIAS_NODES = 100_000  # nodes that alias uses may add to a document, expanded
QUOTE_CHARS = 80  # at most this much of a value is quoted in an error message

_MERGE_TAG = "tag:yaml.org,2002:merge"


def cut(text: str, limit: int = QUOTE_CHARS) -> str:
    """``text`` shortened to about ``limit`` characters, its length said when cut."""
    if len(text) <= limit:
        return text
    return f"{text[: limit - 1]}… ({len(text)} characters)"


def quote(value: Any, limit: int = QUOTE_CHARS) -> str:
    """A value as an error message quotes it: its repr, never more than about ``limit``
    characters, and never built in full (a nested value may be enormous)."""
    import reprlib

    shortener = reprlib.Repr()
    shortener.maxstring = shortener.maxother = limit
    shortener.maxlevel = 3
    return cut(shortener.repr(value), limit)


def load_yaml_file(path: Path, *, max_bytes: int = MAX_CONFIG_BYTES, source: str | None = None) -> Any:
    """The YAML document in ``path`` (None when empty); ConfigError when the file is over
    ``max_bytes``, not UTF-8, not valid YAML, or refused by :func:`load_yaml_text`."""
    source = source or str(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ConfigError(_too_big(source, size, max_bytes), hint="is it the right file?")
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)  # the size may change, or the path be a device
    except OSError as exc:
        raise ConfigError(f"{source}: cannot be read ({exc.strerror or exc})") from None
    if len(data) > max_bytes:
        raise ConfigError(_too_big(source, len(data), max_bytes), hint="is it the right file?")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 text (byte {exc.start})") from None
    return load_yaml_text(text, source=source)


def load_yaml_text(text: str, *, source: str, max_alias_nodes: int = MAX_ALIAS_NODES) -> Any:
    """``yaml.safe_load(text)``, refusing alias expansions over ``max_alias_nodes``, an alias
    inside the node it names, and duplicate keys (YAML forbids them; PyYAML keeps the last)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _Measure(source, max_alias_nodes).size(node, "")
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{source}{where}: not valid YAML ({cut(problem)})") from None
    except RecursionError:
        raise ConfigError(f"{source}: not valid YAML (nested too deeply)") from None
    finally:
        loader.dispose()


def _too_big(source: str, size: int, limit: int) -> str:
    return f"{source}: {_mib(size)} is too big for this file (opsctl reads at most {_mib(limit)})"


def _mib(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB" if size >= 1 << 20 else f"{size} bytes"


class _Measure:
    """One walk over a composed document: the expanded size of each node (memoised, so a
    node shared by aliases is measured once), counting what every alias use adds."""

    def __init__(self, source: str, limit: int) -> None:
        self.source = source
        self.limit = limit
        self.sizes: dict[int, int] = {}
        self.active: set[int] = set()
        self.added = 0

    def size(self, node: Any, path: str) -> int:
        import yaml

        key = id(node)
        if key in self.sizes:  # a second parent: only an alias gives a node one
            self.added += self.sizes[key]
            if self.added > self.limit:
                raise ConfigError(
                    f"{self._where(node)}: {path or '(top level)'}: YAML aliases expand to more than "
                    f"{self.limit} values (a 'billion laughs'?); refusing to load it"
                )
            return self.sizes[key]
        if key in self.active:
            raise ConfigError(f"{self._where(node)}: {path or '(top level)'}: a YAML alias refers to a node holding it")
        self.active.add(key)
        total = 1
        if isinstance(node, yaml.MappingNode):
            seen: set[tuple[str, str]] = set()
            for key_node, value_node in node.value:
                name = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _MERGE_TAG:
                    if (key_node.tag, name) in seen:
                        raise ConfigError(
                            f"{self._where(key_node)}: {_join(path, name)}: duplicate key "
                            "(YAML allows each key once in a mapping)"
                        )
                    seen.add((key_node.tag, name))
                total += self.size(key_node, path) + self.size(value_node, _join(path, name))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                total += self.size(item, f"{path}[{index}]")
        self.active.discard(key)
        self.sizes[key] = total
        return total

    def _where(self, node: Any) -> str:
        mark = getattr(node, "start_mark", None)
        return f"{self.source}:{mark.line + 1}" if mark is not None else self.source


def _join(path: str, name: str) -> str:
    return cut(f"{path}.{name}" if path else name)
