"""The values of ``opsctl exp run -S KEY=VALUES``: a sweep written as Hydra's basic sweeper writes it.

One ``-S`` item names a key and its values:

- ``a=1,2,3``: a comma list; each item is kept as written (whitespace around it trimmed) and
  read as YAML later, so ``1`` is an int, ``2.5`` a float, ``abc`` a string, ``true`` a bool.
- ``a='x,y'`` / ``a="x,y"``: a quoted string keeps its commas (Hydra's backslash escapes apply
  inside it; ``a=x\\,y`` escapes one comma outside quotes).
- ``a=[1,2]`` / ``a={k: 1}``: a list or a dict is ONE value, not a sweep; ``a=[1,2],[3]`` is two.
- ``a=range(stop)``, ``range(start, stop)``, ``range(start, stop, step)`` (also ``start=``,
  ``stop=``, ``step=``): ints when every argument is an int, else floats computed exactly
  (``start + i * step`` in decimal, so 0.1 steps give 0.1, 0.2, 0.3).
- ``a=choice(x, y, z)``: the same as ``a=x,y,z``.
- ``a=``: one value, the empty string (as ``opsctl run -S a=``).

Each value comes out as YAML text, so ``opsctl.core.run.parse_overrides`` reads ``KEY=VALUE``
exactly as it reads an ``opsctl run -S``. Sizes are checked before anything is built: a range
is counted arithmetically, so ``range(100000000)`` is refused at once, without a list of its
values ever existing.
"""

from __future__ import annotations

import decimal
import itertools
import math
import posixpath
import re
from dataclasses import dataclass

from opsctl.core.yamlload import cut
from opsctl.errors import UsageError

MAX_EXPERIMENTS = 1000
MAX_ITEM_CHARS = 64 * 1024  # one -S item's text
MAX_DEPTH = 100  # brackets inside brackets: YAML's reader recurses into each
MAX_NUMBER_CHARS = 60  # a range argument's text; the decimal arithmetic below keeps 100 digits

SUPPORTED = "comma lists (a=1,2,3), range(start, stop[, step]) and choice(a, b, ...)"
# Hydra's other override functions: named as Hydra's, refused with what opsctl supports.
_HYDRA_FUNCTIONS = {
    "interval",
    "glob",
    "sort",
    "shuffle",
    "tag",
    "int",
    "float",
    "str",
    "bool",
    "json_str",
    "extend_list",
}

_OPEN = {"[": "]", "{": "}", "(": ")"}
_ESCAPABLE = frozenset("\\()[]{}:=, \t")  # Hydra: a backslash makes these plain characters
_QUOTE_AFTER = frozenset("[{(,:")  # a quote opens a string at an item's start or after one of these
_CALL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*\((.*)\)", re.S)
_NAMED_ARG = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)", re.S)
_INT = re.compile(r"[+-]?\d+(?:_\d+)*", re.ASCII)
_NUMBER = re.compile(r"[+-]?(?:\d+(?:_\d+)*(?:\.(?:\d+(?:_\d+)*)?)?|\.\d+(?:_\d+)*)(?:[eE][+-]?\d+)?", re.ASCII)
_DECIMAL = decimal.Context(
    prec=100,
    Emax=decimal.MAX_EMAX,
    Emin=decimal.MIN_EMIN,
    traps=[decimal.InvalidOperation, decimal.Overflow, decimal.DivisionByZero],
)


@dataclass(frozen=True)
class SweepParam:
    key: str  # as written before '=': "[FILE:]KEY", e.g. "train.n_estimators" or "params.yaml:train.C"
    values: tuple[str, ...]  # each value as YAML text


def parse_sweep(item: str, *, limit: int = MAX_EXPERIMENTS) -> SweepParam:
    """One ``-S`` item -> its key and values; UsageError when malformed or over ``limit`` values."""
    if len(item) > MAX_ITEM_CHARS:
        raise UsageError(f"-S {cut(item)}: longer than {MAX_ITEM_CHARS // 1024} KiB", hint="is it the right value?")
    key, sep, raw = item.partition("=")
    _file, _colon, name = key.rpartition(":")
    if not sep or not name or any(not part for part in name.split(".")):
        raise UsageError(f"-S {cut(item)}: expected KEY=VALUES or FILE:KEY=VALUES (e.g. -S train.C=0.1,1,10)")
    if not raw.strip():
        return SweepParam(key, ("",))
    parts = _split(raw, item)
    call = _call(parts[0]) if len(parts) == 1 else None
    if call is not None:
        function, args = call
        values = _function(function, args, item, limit)
    else:
        values = _items(parts, item, limit, "the comma list")
    return SweepParam(key, values)


def expand(items: list[str], *, zip_mode: bool = False, limit: int = MAX_EXPERIMENTS) -> list[list[str]]:
    """The experiments of a sweep, each a list of ``KEY=VALUE`` overrides in the order of ``items``:
    their cartesian product (the first item varying slowest), or with ``zip_mode`` the n-th value
    of every item together. UsageError on a malformed item, a key given twice, lengths that can't
    be zipped, or more than ``limit`` experiments (counted before any is built)."""
    params = [parse_sweep(item, limit=limit) for item in items]
    seen: dict[tuple[str, str], str] = {}
    for param, item in zip(params, items, strict=True):
        file, colon, name = param.key.rpartition(":")
        where = (posixpath.normpath(file) if colon and file else "params.yaml", name)
        if where in seen:
            raise UsageError(
                f"-S {cut(name)} is given twice (-S {cut(seen[where], 40)} and -S {cut(item, 40)})",
                hint="give each key once, with all its values: -S KEY=V1,V2,...",
            )
        seen[where] = item
    counts = [len(param.values) for param in params]
    if zip_mode:
        several = {param.key: len(param.values) for param in params if len(param.values) > 1}
        if len(set(several.values())) > 1:
            listed = ", ".join(f"{cut(key, 40)} has {count}" for key, count in several.items())
            raise UsageError(
                f"--zip pairs the n-th values of every -S, so they need as many values each: {listed}",
                hint="give every swept key the same number of values, or drop --zip for every combination",
            )
        total = max(counts, default=1)
    else:
        total = math.prod(counts)
    if total > limit:
        sizes = " x ".join(str(count) for count in counts)
        raise UsageError(
            f"the -S values make {total} experiments ({sizes}), more than the limit of {limit}",
            hint="narrow the values, or run the sweep in parts",
        )
    if zip_mode:
        rows = [[p.values[i] if len(p.values) > 1 else p.values[0] for p in params] for i in range(total)]
    else:
        rows = [list(row) for row in itertools.product(*(p.values for p in params))]
    return [[f"{param.key}={value}" for param, value in zip(params, row, strict=True)] for row in rows]


def varying(experiments: list[list[str]]) -> list[str]:
    """The keys whose values differ between ``experiments`` (a key missing from some counts as
    differing), in the order they first appear."""
    tables = [dict(_key_value(override) for override in experiment) for experiment in experiments]
    keys = list(dict.fromkeys(key for table in tables for key in table))
    return [key for key in keys if len({table.get(key) for table in tables}) > 1]


def _key_value(override: str) -> tuple[str, str]:
    key, _sep, value = override.partition("=")
    return key, value


# -- reading the values ----------------------------------------------------------------------------


def _split(text: str, item: str) -> list[str]:
    """``text``'s comma-separated parts, untrimmed. A comma inside quotes, brackets, braces or
    parentheses, or after a backslash, does not split; an unclosed one is a UsageError."""
    parts: list[str] = []
    closers: list[str] = []
    start = i = 0
    prev = ""  # the last non-space character outside quotes; "" at the start of a part
    while i < len(text):
        ch = text[i]
        if ch in "'\"" and (not prev or prev in _QUOTE_AFTER):
            i = _quote_end(text, i, item)
            prev = ch
            continue
        if ch == "\\" and text[i + 1 : i + 2] in _ESCAPABLE:
            i += 2
            prev = "\\"
            continue
        if ch in _OPEN:
            closers.append(_OPEN[ch])
            if len(closers) > MAX_DEPTH:
                raise UsageError(f"-S {cut(item)}: brackets nested more than {MAX_DEPTH} deep")
        elif ch in ")]}":
            if not closers or closers.pop() != ch:
                raise UsageError(f"-S {cut(item)}: '{ch}' closes nothing (brackets must pair up)")
        elif ch == "," and not closers:
            parts.append(text[start:i])
            start, prev, i = i + 1, "", i + 1
            continue
        if not ch.isspace():
            prev = ch
        i += 1
    if closers:
        raise UsageError(f"-S {cut(item)}: '{closers[-1]}' missing (a bracket is never closed)")
    parts.append(text[start:])
    return parts


def _quote_end(text: str, start: int, item: str) -> int:
    """The index after the quote that closes the one at ``start``. A backslash escapes the next
    character (Hydra); in single quotes '' is a quote (YAML)."""
    quote = text[start]
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == quote:
            if quote == "'" and text[i + 1 : i + 2] == "'":
                i += 2
                continue
            return i + 1
        i += 1
    raise UsageError(f"-S {cut(item)}: a {quote} quote is never closed", hint="close it, or escape it with \\")


def _call(part: str) -> tuple[str, str] | None:
    """(function, its arguments' text) when ``part`` is one call ``name(...)``, else None."""
    match = _CALL.fullmatch(part.strip())
    if match is None:
        return None
    try:
        _split(match[2], match[2])  # f(1)g(2) is not one call: its "arguments" don't pair up
    except UsageError:
        return None
    return match[1], match[2]


def _items(parts: list[str], item: str, limit: int, what: str) -> tuple[str, ...]:
    if len(parts) > limit:
        raise UsageError(f"-S {cut(item)}: {len(parts)} values, more than the limit of {limit} experiments")
    values = []
    for part in parts:
        call = _call(part)
        if call is not None:
            raise UsageError(
                f"-S {cut(item)}: {call[0]}(...) can't be one item of {what}; a sweep function is the whole value",
                hint="e.g. -S a=range(1, 4) or -S a=1,2,3",
            )
        value = _value(part, item)
        if value is None:
            raise UsageError(
                f"-S {cut(item)}: an empty item in {what}", hint="to sweep over an empty string, quote it: ''"
            )
        values.append(value)
    return tuple(values)


def _value(part: str, item: str) -> str | None:
    """One item as YAML text: as written (trimmed) when YAML reads it as Hydra means it, else
    re-quoted; None when empty."""
    text = part.strip()
    if not text:
        return None
    if text[0] in "[{":
        return text  # a list or a dict: YAML's flow syntax
    if text[0] in "'\"":
        if _quote_end(text, 0, item) != len(text):
            raise UsageError(f"-S {cut(item)}: text after a closing quote", hint="quote the whole value")
        content = _unquote(text)
        plain = "\\" not in text and all(ch.isprintable() for ch in content)
        return text if plain else _yaml_quoted(content)
    chars: list[tuple[str, bool]] = []  # (character, escaped)
    i = 0
    while i < len(part):
        if part[i] == "\\" and part[i + 1 : i + 2] in _ESCAPABLE:
            chars.append((part[i + 1], True))
            i += 2
        else:
            chars.append((part[i], False))
            i += 1
    kept = [i for i, (ch, escaped) in enumerate(chars) if escaped or not ch.isspace()]
    chars = chars[kept[0] : kept[-1] + 1]  # whitespace around the item trimmed, an escaped space kept
    if not any(escaped for _ch, escaped in chars):
        return text
    return _yaml_quoted("".join(ch for ch, _escaped in chars))


def _unquote(text: str) -> str:
    """A quoted string's content, by Hydra's rules: backslashes are plain characters except
    before a quote (``\\'`` is a quote; ``\\\\`` before a quote is one backslash); '' in single
    quotes is one quote, as in YAML."""
    quote, body = text[0], text[1:-1]
    out = []
    i = 0
    while i < len(body):
        if body[i] == "\\":
            end = i
            while end < len(body) and body[end] == "\\":
                end += 1
            run = end - i
            if end == len(body) or body[end] == quote:
                out.append("\\" * (run // 2) + (quote if run % 2 else ""))
                i = end + run % 2
            else:
                out.append("\\" * run)
                i = end
        elif body[i] == quote:  # '' inside single quotes
            out.append(quote)
            i += 2
        else:
            out.append(body[i])
            i += 1
    return "".join(out)


def _yaml_quoted(text: str) -> str:
    """``text`` as a YAML double-quoted string (escapes for backslash, quote and anything not printable)."""
    out = []
    for ch in text:
        if ch in '\\"':
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


# -- sweep functions --------------------------------------------------------------------------------


def _function(name: str, args: str, item: str, limit: int) -> tuple[str, ...]:
    if name == "choice":
        if not args.strip():
            raise UsageError(f"-S {cut(item)}: choice() needs at least one value, e.g. choice(a, b)")
        return _items(_split(args, item), item, limit, "choice()")
    if name == "range":
        return _range(args, item, limit)
    if name in _HYDRA_FUNCTIONS:
        raise UsageError(
            f"-S {cut(item)}: {name}() is not supported in opsctl's sweeps; they support {SUPPORTED}",
            hint="list the values to try, e.g. -S a=0.1,0.5,1",
        )
    raise UsageError(
        f"-S {cut(item)}: {cut(name, 40)}() is not a sweep function; opsctl's sweeps support {SUPPORTED}",
        hint=f"to use the text itself as the value, quote it: -S {cut(item.partition('=')[0], 40)}='...'",
    )


def _range(args: str, item: str, limit: int) -> tuple[str, ...]:
    usage = "range(stop), range(start, stop) or range(start, stop, step)"
    positional: list[str] = []
    named: dict[str, str] = {}
    for part in [part.strip() for part in _split(args, item)] if args.strip() else []:
        match = _NAMED_ARG.fullmatch(part)
        if match is None and named:
            raise UsageError(f"-S {cut(item)}: range()'s arguments by position come before those by name")
        if match is None:
            positional.append(part)
        elif match[1] not in ("start", "stop", "step") or match[1] in named:
            raise UsageError(f"-S {cut(item)}: range() takes start, stop and step once each ({usage})")
        else:
            named[match[1]] = match[2].strip()
    if len(positional) > 3:
        raise UsageError(f"-S {cut(item)}: range() takes at most 3 arguments ({usage})")
    order = ["stop"] if len(positional) == 1 and not {"start", "stop"} & named.keys() else ["start", "stop", "step"]
    given = dict(zip(order, positional, strict=False))
    if given.keys() & named.keys():
        raise UsageError(f"-S {cut(item)}: range() takes start, stop and step once each ({usage})")
    given.update(named)
    if "stop" not in given:
        raise UsageError(f"-S {cut(item)}: range() needs a stop: {usage}")
    texts = {"start": given.get("start", "0"), "stop": given["stop"], "step": given.get("step", "1")}
    numbers = {arg: _number(text, arg, item) for arg, text in texts.items()}
    start, stop, step = numbers["start"], numbers["stop"], numbers["step"]
    shown = f"range({texts['start']}, {texts['stop']}, {texts['step']})"
    if step == 0:
        raise UsageError(f"-S {cut(item)}: range()'s step is 0, so it would never reach its stop")
    count = _DECIMAL.divide(_DECIMAL.subtract(stop, start), step)
    if count <= 0:
        if start == stop:
            raise UsageError(f"-S {cut(item)}: {cut(shown)} is empty (its start is its stop)")
        direction = "up" if step > 0 else "down"
        raise UsageError(
            f"-S {cut(item)}: {cut(shown)} is empty: counting {direction} from {start} never reaches {stop}",
            hint=f"give a {'negative' if step > 0 else 'positive'} step, e.g. range({start}, {stop}, {-step})",
        )
    if count > limit:
        shown_count = f"{count:.2e}" if count > 10**12 else str(int(count.to_integral_value(decimal.ROUND_CEILING)))
        raise UsageError(
            f"-S {cut(item)}: {shown_count} values, more than the limit of {limit} experiments",
            hint="a larger step, or a smaller span",
        )
    n = int(count.to_integral_value(decimal.ROUND_CEILING))
    values = [_DECIMAL.add(start, _DECIMAL.multiply(step, i)) for i in range(n)]
    if all(_INT.fullmatch(text) for text in texts.values()):
        return tuple(str(int(value)) for value in values)
    return tuple(_float_text(float(value)) for value in values)


def _number(text: str, arg: str, item: str) -> decimal.Decimal:
    if len(text) > MAX_NUMBER_CHARS or not _NUMBER.fullmatch(text):
        raise UsageError(f"-S {cut(item)}: range()'s {arg} must be a number, not {cut(text, 40)!r}")
    value = decimal.Decimal(text)
    if math.isinf(float(value)):
        raise UsageError(f"-S {cut(item)}: range()'s {arg} {cut(text, 40)} is too large")
    return value


def _float_text(value: float) -> str:
    """``repr(value)``, with a ".0" before an exponent that has none: YAML 1.1 (PyYAML) reads
    ``1e-05`` as a string and ``1.0e-05`` as a float."""
    text = repr(value)
    mantissa, e, exponent = text.partition("e")
    return f"{mantissa}.0e{exponent}" if e and "." not in mantissa else text
