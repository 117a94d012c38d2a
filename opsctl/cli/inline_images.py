"""Image plots drawn inline, in terminals that speak an image protocol (kitty, iTerm2, sixel).

``detect`` says which protocol the terminal behind a stream speaks, ``encode`` turns PNG/JPEG/GIF bytes into
that protocol's escape sequence, and ``show_image`` writes one image, or its path when the terminal can't draw it.

Detection reads the environment first (terminals announce themselves there) and asks the terminal only for
sixel, with the DA1 query. ``OPSCTL_IMAGES=kitty|iterm2|sixel|none`` overrides all of it (also off a terminal,
e.g. to write the sequences into a file shown later with ``cat``).

Start-up is a feature (docs/architecture.md, "Layers"): this module imports only the standard library; Pillow
(the ``images`` extra) is imported only to draw sixel or to turn a JPEG/GIF into PNG for kitty. Without it
those cases fall back to printing the path.
"""

from __future__ import annotations

import base64
import io
import os
import re
import select
import struct
import time
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, TextIO

from opsctl.cli.output import Output
from opsctl.errors import UsageError

if TYPE_CHECKING:
    from PIL.Image import Image

PROTOCOLS = ("kitty", "iterm2", "sixel")
ENV_OVERRIDE = "OPSCTL_IMAGES"
MAX_BYTES = 32 * 1024 * 1024  # larger files are shown by path: tens of MB of escapes would only stall the terminal
DA1_TIMEOUT = 0.2  # seconds; a terminal answers DA1 in a few ms, one that never does must not stall opsctl
DEFAULT_CELL = (10, 20)  # pixels of one character cell when the terminal doesn't say
KITTY_CHUNK = 4096  # the graphics protocol's largest payload per escape
SIXEL_MAX_ASPECT = 4  # a sixel image is at most this many times as tall as it is wide (after scaling)

_PNG = b"\x89PNG\r\n\x1a\n"
_DA1_QUERY = b"\x1b[c"
_DA1_REPLY = re.compile(rb"\x1b\[\?([0-9;]*)c\Z")
_DA1_MAX = 64  # bytes: a DA1 reply is far shorter; anything longer isn't one
_SIXEL_DA1_PARAM = 4  # "sixel graphics" in a DA1 reply's attribute list
_PLUS_63 = bytes((i + 63) & 0xFF for i in range(256))  # a 6-bit column to its sixel character
_RUNS = re.compile(rb"(.)\1{3,}")  # 4 or more equal sixels: shorter as "!count<sixel>"

# The DA1 answer per stream, so showing several images asks the terminal once.
_sixel_answers: weakref.WeakKeyDictionary[TextIO, bool] = weakref.WeakKeyDictionary()


# -- detection ---------------------------------------------------------------


def detect(env: Mapping[str, str], stream: TextIO) -> str | None:
    """The image protocol of the terminal behind ``stream``: "kitty", "iterm2", "sixel" or None (draw none)."""
    forced = env.get(ENV_OVERRIDE, "").strip().lower()
    if forced:
        if forced == "none":
            return None
        if forced in PROTOCOLS:
            return forced
        raise UsageError(
            f"{ENV_OVERRIDE}={env[ENV_OVERRIDE]!r} is not one of kitty, iterm2, sixel, none",
            hint=f"unset {ENV_OVERRIDE} to let opsctl detect the terminal",
        )
    if not Output.is_tty(stream):
        return None
    term = env.get("TERM", "")
    if term == "dumb":
        return None
    # A multiplexer between opsctl and the terminal passes image escapes on only when configured to (tmux's
    # allow-passthrough, wrapped sequences): draw nothing rather than garbage.
    if env.get("TMUX") or term.startswith(("screen", "tmux")):
        return None
    from_env = _protocol_from_env(env, term)
    if from_env:
        return from_env
    return "sixel" if _answers_sixel(stream) else None


def _protocol_from_env(env: Mapping[str, str], term: str) -> str | None:
    # TERM_PROGRAM first: it is set by the terminal running this shell, while KITTY_WINDOW_ID and the like may
    # be inherited from a terminal that started it.
    program = env.get("TERM_PROGRAM", "")
    if program in ("iTerm.app", "vscode"):
        return "iterm2"
    if program in ("ghostty", "WezTerm"):
        return "kitty"
    if term == "xterm-kitty" or env.get("KITTY_WINDOW_ID") or env.get("GHOSTTY_RESOURCES_DIR"):
        return "kitty"
    if env.get("LC_TERMINAL") == "iTerm2":  # iTerm2 sets it, and ssh passes LC_* on
        return "iterm2"
    return None


def _answers_sixel(stream: TextIO) -> bool:
    if stream in _sixel_answers:
        return _sixel_answers[stream]
    answer = False
    try:
        fd = stream.fileno()
        # A process in the background of its terminal that changes the terminal's mode is stopped (SIGTTOU):
        # ask only from the foreground. A tty that isn't our controlling terminal has no such rule.
        try:
            foreground = os.tcgetpgrp(fd) == os.getpgrp()
        except OSError:
            foreground = True
        if foreground:
            stream.flush()
            answer = _ask_tty(fd)
    except (OSError, ValueError, AttributeError):  # no fd, a closed stream, a terminal gone
        answer = False
    _sixel_answers[stream] = answer
    return answer


def _ask_tty(fd: int) -> bool:
    # The stream may be open for writing only; the terminal device itself can be read. Non-blocking (this open
    # only): a terminal whose output is stopped (Ctrl-S) and full makes the query fail instead of hang.
    try:
        tty_fd = os.open(os.ttyname(fd), os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError:
        tty_fd = -1
    try:
        params = _ask_da1(fd if tty_fd < 0 else tty_fd, DA1_TIMEOUT)
    finally:
        if tty_fd >= 0:
            os.close(tty_fd)
    return params is not None and _SIXEL_DA1_PARAM in params


def _ask_da1(fd: int, timeout: float) -> tuple[int, ...] | None:
    """Ask the terminal on ``fd`` for its primary device attributes (DA1); its reply's parameters, or None.

    The tty is put in non-canonical, no-echo mode for at most ``timeout`` seconds and always put back (signal
    keys stay on, so Ctrl-C still interrupts). The reply is read a byte at a time up to its final ``c``, so keys
    typed after it stay for whoever reads next. A reply later than ``timeout`` is not waited for; the terminal
    still sends it, as input.
    """
    try:
        import termios
    except ImportError:  # not a POSIX terminal
        return None
    try:
        saved = termios.tcgetattr(fd)
    except (termios.error, OSError):
        return None
    raw = list(saved)
    raw[3] = saved[3] & ~(termios.ICANON | termios.ECHO)
    control = list(saved[6])
    control[termios.VMIN] = 1
    control[termios.VTIME] = 0
    raw[6] = control
    reply = bytearray()
    try:
        termios.tcsetattr(fd, termios.TCSANOW, raw)
        os.write(fd, _DA1_QUERY)
        deadline = time.monotonic() + timeout
        while len(reply) < _DA1_MAX:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            byte = os.read(fd, 1)
            if not byte:
                return None
            reply += byte
            if byte == b"c":
                match = _DA1_REPLY.search(reply)
                if match:
                    return tuple(int(p) for p in match.group(1).split(b";") if p)
        return None
    except (termios.error, OSError):
        return None
    finally:
        try:
            termios.tcsetattr(fd, termios.TCSANOW, saved)
        except (termios.error, OSError):
            pass  # the terminal is gone: there is no mode left to restore


def cell_size(stream: TextIO) -> tuple[int, int]:
    """Pixels per character cell (width, height) of the terminal behind ``stream``, as the kernel knows it."""
    try:
        import fcntl
        import termios

        packed = fcntl.ioctl(stream.fileno(), termios.TIOCGWINSZ, b"\0" * 8)
        rows, cols, width, height = struct.unpack("HHHH", packed)
    except (ImportError, OSError, ValueError, AttributeError):
        return DEFAULT_CELL
    if rows and cols and width and height:
        cell = (width // cols, height // rows)
        if 2 <= cell[0] <= 200 and 2 <= cell[1] <= 400:
            return cell
    return DEFAULT_CELL


# -- encoding ----------------------------------------------------------------


def encode(data: bytes, protocol: str, *, columns: int, name: str = "", cell: tuple[int, int] = DEFAULT_CELL) -> str:
    """The escape sequence drawing the image ``data`` (PNG, JPEG or GIF) at most ``columns`` cells wide.

    "" when it can't be drawn: too large (over 32 MiB), not a PNG/JPEG/GIF, unreadable, or the conversion it
    needs requires Pillow and Pillow is missing. ``cell`` is one character cell's size in pixels.
    """
    columns = max(1, columns)
    if len(data) > MAX_BYTES or _image_kind(data) is None:
        return ""
    if protocol == "kitty":
        return _kitty(data, columns, cell)
    if protocol == "iterm2":
        return _iterm2(data, columns, name, cell)
    if protocol == "sixel":
        return _sixel(data, columns, cell)
    raise ValueError(f"unknown image protocol {protocol!r}")


def _image_kind(data: bytes) -> str | None:
    if data.startswith(_PNG):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    return None


def _pixel_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) read from a PNG, GIF or JPEG header, without decoding the image."""
    kind = _image_kind(data)
    if kind == "png" and len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return (width, height)
    if kind == "gif" and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return (width, height)
    if kind == "jpeg":
        at = 2
        while at + 4 <= len(data):
            if data[at] != 0xFF:
                return None
            marker = data[at + 1]
            if marker == 0xFF:  # fill byte
                at += 1
                continue
            if marker in (0x01, *range(0xD0, 0xDA)):  # markers without a length
                at += 2
                continue
            (length,) = struct.unpack(">H", data[at + 2 : at + 4])
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC) and at + 9 <= len(data):
                height, width = struct.unpack(">HH", data[at + 5 : at + 9])
                return (width, height)
            at += 2 + length
    return None


def _cells_wide(size: tuple[int, int] | None, columns: int, cell: tuple[int, int]) -> int:
    """Cells the image takes at its own size, at most ``columns``."""
    if size is None or size[0] <= 0:
        return columns
    return max(1, min(columns, -(-size[0] // cell[0])))


def _kitty(data: bytes, columns: int, cell: tuple[int, int]) -> str:
    if _image_kind(data) == "png":
        png, size = data, _pixel_size(data)
    else:  # the protocol's f=100 takes PNG only: convert
        converted = _to_png(data)
        if converted is None:
            return ""
        png, size = converted
    payload = base64.standard_b64encode(png).decode("ascii")
    chunks = [payload[i : i + KITTY_CHUNK] for i in range(0, len(payload), KITTY_CHUNK)] or [""]
    # a=T: transmit and show at the cursor; q=2: the terminal sends no reply that would land in the input.
    first = f"a=T,f=100,q=2,c={_cells_wide(size, columns, cell)}"
    parts = []
    for i, chunk in enumerate(chunks):
        more = 1 if i < len(chunks) - 1 else 0
        keys = f"{first},m={more}" if i == 0 else f"m={more}"
        parts.append(f"\x1b_G{keys};{chunk}\x1b\\")
    return "".join(parts)


def _iterm2(data: bytes, columns: int, name: str, cell: tuple[int, int]) -> str:
    # https://iterm2.com/documentation-images.html: ESC ] 1337 ; File = [key=value;...] : base64 BEL,
    # width=N meaning N character cells. iTerm2 (and VS Code's terminal) read PNG, JPEG and GIF themselves.
    args = ["inline=1", f"size={len(data)}", f"width={_cells_wide(_pixel_size(data), columns, cell)}"]
    args.append("preserveAspectRatio=1")
    if name:
        args.append("name=" + base64.standard_b64encode(name.encode("utf-8")).decode("ascii"))
    payload = base64.standard_b64encode(data).decode("ascii")
    return f"\x1b]1337;File={';'.join(args)}:{payload}\a"


def _open_image(data: bytes) -> Image | None:
    try:
        from PIL import Image as PILImage
    except ImportError:
        return None
    try:
        image = PILImage.open(io.BytesIO(data))
        image.load()
    except (OSError, ValueError, SyntaxError, PILImage.DecompressionBombError):
        return None
    return image


def _to_png(data: bytes) -> tuple[bytes, tuple[int, int]] | None:
    image = _open_image(data)
    if image is None:
        return None
    out = io.BytesIO()
    try:
        image.save(out, format="PNG")
    except (OSError, ValueError):
        return None
    return out.getvalue(), image.size


def _sixel(data: bytes, columns: int, cell: tuple[int, int]) -> str:
    image = _open_image(data)
    if image is None:
        return ""
    from PIL import Image as PILImage

    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Sixel has no alpha: flatten onto white, the background plots are drawn for.
        rgba = image.convert("RGBA")
        image = PILImage.new("RGBA", rgba.size, (255, 255, 255, 255))
        image.alpha_composite(rgba)
    image = image.convert("RGB")
    most = columns * cell[0]
    image.thumbnail((most, most * SIXEL_MAX_ASPECT))  # only ever shrinks, keeps the aspect ratio
    quantized = image.quantize(colors=256)
    return _sixel_bytes(quantized.tobytes(), quantized.width, quantized.height, quantized.getpalette() or [])


def _sixel_bytes(pixels: bytes, width: int, height: int, palette: list[int]) -> str:
    """DEC sixel for an image of palette indexes (one byte a pixel, rows top to bottom)."""
    used = sorted(set(pixels))
    out = [f'\x1bPq"1;1;{width};{height}']
    for index in used:
        r, g, b = (round(v * 100 / 255) for v in palette[3 * index : 3 * index + 3])
        out.append(f"#{index};2;{r};{g};{b}")
    # Per colour, over the columns where it occurs in the band: a 0/1 mask of each row (translate), shifted to
    # that row's bit of the band's 6; adding the rows' masks as big integers sets the bits without carries.
    masks = {index: bytes(1 if i == index else 0 for i in range(256)) for index in used}
    bands = []
    for top in range(0, height, 6):
        rows = [pixels[y * width : (y + 1) * width] for y in range(top, min(top + 6, height))]
        lines = []
        for index in sorted(set(pixels[top * width : (top + len(rows)) * width])):
            needle = bytes((index,))
            lo = min(at for row in rows if (at := row.find(needle)) >= 0)
            hi = max(row.rfind(needle) for row in rows) + 1
            bits = 0
            for shift, row in enumerate(rows):
                bits += int.from_bytes(row[lo:hi].translate(masks[index]), "big") << shift
            skip = "?" * lo if lo < 4 else f"!{lo}?"
            lines.append(f"#{index}{skip}" + _run_lengths(bits.to_bytes(hi - lo, "big").translate(_PLUS_63)))
        bands.append("$".join(lines))
    out.append("-".join(bands))
    out.append("\x1b\\")
    return "".join(out)


def _run_lengths(sixels: bytes) -> str:
    if len(sixels) < 4:
        return sixels.decode("ascii")
    return _RUNS.sub(lambda m: b"!%d%c" % (len(m.group(0)), m.group(1)[0]), sixels).decode("ascii")


# -- showing -----------------------------------------------------------------


def show_image(data: bytes, path: str, stream: TextIO, env: Mapping[str, str], columns: int) -> None:
    """Draw the image ``data`` (the file ``path``) on ``stream`` under its path, or write the path
    alone when that can't be done."""
    protocol = detect(env, stream)
    sequence = ""
    if protocol:
        sequence = encode(data, protocol, columns=columns, name=os.path.basename(path), cell=cell_size(stream))
    if sequence:
        stream.write(f"{path}\n{sequence}\n")
    else:
        stream.write(f"{path} (image; open it, or use --html)\n")
    stream.flush()


__all__ = ["ENV_OVERRIDE", "MAX_BYTES", "PROTOCOLS", "cell_size", "detect", "encode", "show_image"]
