"""Image plots drawn inline: which protocol a terminal speaks, and the escape sequences for each.

The terminal is a real pseudo-terminal (os.openpty); its other end plays the terminal emulator, answering the
DA1 query the way a sixel-capable terminal (or one without sixel, or one that never answers) would.
"""

from __future__ import annotations

import base64
import fcntl
import io
import os
import re
import select
import struct
import subprocess
import sys
import termios
import threading

import pytest
from PIL import Image

from opsctl.cli import inline_images
from opsctl.cli.inline_images import _ask_da1, cell_size, detect, encode, show_image
from opsctl.errors import EXIT_USAGE, UsageError

SIXEL_REPLY = b"\x1b[?62;4;6c"
PLAIN_REPLY = b"\x1b[?62;6c"
QUERY = b"\x1b[c"
WAIT = 5.0  # seconds: a generous bound for threads that should end in a fraction of that


class Terminal:
    """A pty whose master end answers the DA1 query with ``answer`` (None: never answers)."""

    def __init__(self, answer: bytes | None = None, after: bytes = b"") -> None:
        self.master, self.slave = os.openpty()
        self.answer = answer
        self.after = after
        self.queries = 0
        self.lflag_during_query: int | None = None
        self.received = bytearray()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        self.stream = os.fdopen(self.slave, "w", closefd=False)

    def _serve(self) -> None:
        while not self._stop.is_set():
            if not select.select([self.master], [], [], 0.02)[0]:
                continue
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            self.received += chunk
            while self.received.count(QUERY) > self.queries:
                self.queries += 1
                self.lflag_during_query = termios.tcgetattr(self.slave)[3]
                if self.answer is not None:
                    os.write(self.master, self.answer + self.after)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(WAIT)
        self.stream.close()
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def terminal():
    made: list[Terminal] = []

    def make(answer: bytes | None = None, after: bytes = b"") -> Terminal:
        made.append(Terminal(answer, after))
        return made[-1]

    yield make
    for term in made:
        term.close()


@pytest.fixture
def pipe():
    read_end, write_end = os.pipe()
    stream = os.fdopen(write_end, "w")
    yield stream, read_end
    stream.close()
    os.close(read_end)


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def stripes(width: int = 30, height: int = 13) -> Image.Image:
    """Three vertical stripes: red, green, blue, each a third of the width."""
    image = Image.new("RGB", (width, height))
    third = width // 3
    for x in range(width):
        colour = (255, 0, 0) if x < third else (0, 255, 0) if x < 2 * third else (0, 0, 255)
        for y in range(height):
            image.putpixel((x, y), colour)
    return image


def noise(width: int, height: int) -> Image.Image:
    return Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))


# -- detection ---------------------------------------------------------------

ENV_CASES = [
    ({"TERM": "xterm-kitty"}, "kitty"),
    ({"KITTY_WINDOW_ID": "1", "TERM": "xterm-256color"}, "kitty"),
    ({"TERM_PROGRAM": "ghostty"}, "kitty"),
    ({"GHOSTTY_RESOURCES_DIR": "/usr/share/ghostty"}, "kitty"),
    ({"TERM_PROGRAM": "WezTerm"}, "kitty"),
    ({"TERM_PROGRAM": "iTerm.app"}, "iterm2"),
    ({"LC_TERMINAL": "iTerm2"}, "iterm2"),
    ({"TERM_PROGRAM": "vscode"}, "iterm2"),
    # the terminal running this shell wins over a variable inherited from one that started it
    ({"TERM_PROGRAM": "vscode", "KITTY_WINDOW_ID": "3"}, "iterm2"),
    ({"TERM": "dumb", "KITTY_WINDOW_ID": "1"}, None),
    ({"TMUX": "/tmp/tmux-1000/default,1,0", "TERM_PROGRAM": "iTerm.app"}, None),
    ({"TERM": "screen-256color", "KITTY_WINDOW_ID": "1"}, None),
    ({"TERM": "tmux-256color", "LC_TERMINAL": "iTerm2"}, None),
    ({"OPSCTL_IMAGES": "none", "TERM": "xterm-kitty"}, None),
    ({"OPSCTL_IMAGES": "kitty", "TMUX": "/tmp/tmux-1000/default,1,0"}, "kitty"),
    ({"OPSCTL_IMAGES": "ITerm2", "TERM": "dumb"}, "iterm2"),
    ({"OPSCTL_IMAGES": "sixel", "TERM_PROGRAM": "iTerm.app"}, "sixel"),
]


@pytest.mark.parametrize("env,expected", ENV_CASES)
def test_detect_on_a_terminal_from_the_environment(terminal, env, expected):
    term = terminal(answer=SIXEL_REPLY)
    assert detect(env, term.stream) == expected
    # the environment decided: the terminal was not asked
    assert term.queries == 0


@pytest.mark.parametrize(
    "env,expected",
    [
        ({"TERM": "xterm-kitty"}, None),
        ({"TERM_PROGRAM": "iTerm.app"}, None),
        ({"TERM": "xterm-256color"}, None),
        ({"OPSCTL_IMAGES": "kitty"}, "kitty"),  # forced: also off a terminal (e.g. a file shown later)
        ({"OPSCTL_IMAGES": "sixel"}, "sixel"),
    ],
)
def test_detect_off_a_terminal_draws_nothing_unless_forced(pipe, env, expected):
    stream, read_end = pipe
    assert detect(env, stream) == expected
    stream.flush()
    assert not select.select([read_end], [], [], 0)[0], "nothing may be written to a pipe"


@pytest.mark.parametrize(
    "answer,expected", [(SIXEL_REPLY, "sixel"), (PLAIN_REPLY, None), (None, None)], ids=["sixel", "no-sixel", "mute"]
)
def test_detect_asks_an_unknown_terminal_for_sixel(terminal, answer, expected):
    term = terminal(answer=answer)
    assert detect({"TERM": "xterm-256color"}, term.stream) == expected
    assert term.queries == 1
    # asked once per stream: a second image doesn't ask again
    assert detect({"TERM": "xterm-256color"}, term.stream) == expected
    assert term.queries == 1


def test_detect_under_tmux_does_not_ask(terminal):
    term = terminal(answer=SIXEL_REPLY)
    assert detect({"TERM": "tmux-256color"}, term.stream) is None
    assert detect({"TMUX": "x", "TERM": "xterm-256color"}, term.stream) is None
    assert term.queries == 0


def test_a_bad_override_is_a_usage_error(terminal):
    term = terminal()
    with pytest.raises(UsageError) as error:
        detect({"OPSCTL_IMAGES": "on"}, term.stream)
    assert error.value.exit_code == EXIT_USAGE
    assert "OPSCTL_IMAGES='on' is not one of kitty, iterm2, sixel, none" == str(error.value)


# -- the DA1 query -----------------------------------------------------------


def ask(term: Terminal, timeout: float = 0.2):
    """_ask_da1 on the terminal, in a thread bounded by WAIT; its answer and the tty mode before/after."""
    before = termios.tcgetattr(term.slave)
    result: list = []
    thread = threading.Thread(target=lambda: result.append(_ask_da1(term.slave, timeout)), daemon=True)
    thread.start()
    thread.join(WAIT)
    assert not thread.is_alive(), "_ask_da1 blocked"
    return result[0], before, termios.tcgetattr(term.slave)


def test_ask_da1_reads_a_sixel_terminal(terminal):
    term = terminal(answer=SIXEL_REPLY)
    params, before, after = ask(term, timeout=2.0)
    assert params == (62, 4, 6)
    assert after == before
    # while asking, the reply was neither echoed nor held back for a newline
    assert term.lflag_during_query is not None
    assert not term.lflag_during_query & (termios.ICANON | termios.ECHO)
    assert before[3] & termios.ICANON  # and the tty was canonical before and after


def test_ask_da1_reads_a_terminal_without_sixel(terminal):
    term = terminal(answer=PLAIN_REPLY)
    params, before, after = ask(term, timeout=2.0)
    assert params == (62, 6)
    assert 4 not in params
    assert after == before


def test_ask_da1_gives_up_on_a_mute_terminal_and_restores_the_mode(terminal):
    term = terminal(answer=None)
    params, before, after = ask(term, timeout=0.2)
    assert params is None
    assert after == before
    assert term.queries == 1


def test_ask_da1_leaves_what_follows_the_reply_unread(terminal):
    term = terminal(answer=SIXEL_REPLY, after=b"ls\n")
    params, _, _ = ask(term, timeout=2.0)
    assert params == (62, 4, 6)
    # the keys typed after the reply are still there for the shell (the tty is canonical again)
    assert select.select([term.slave], [], [], WAIT)[0]
    assert os.read(term.slave, 100) == b"ls\n"


def test_ask_da1_on_a_pipe_is_none(pipe):
    stream, _ = pipe
    assert _ask_da1(stream.fileno(), 0.2) is None


# -- cell size ---------------------------------------------------------------


def test_cell_size_from_the_terminal_else_10x20(terminal, pipe):
    term = terminal()
    fcntl.ioctl(term.slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 1600, 960))
    assert cell_size(term.stream) == (20, 40)
    fcntl.ioctl(term.slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))  # pixels unknown
    assert cell_size(term.stream) == (10, 20)
    assert cell_size(pipe[0]) == (10, 20)


# -- kitty -------------------------------------------------------------------

KITTY = re.compile(r"\x1b_G([^;\x1b]*);([A-Za-z0-9+/=]*)\x1b\\")


def kitty_chunks(sequence: str) -> list[tuple[dict[str, str], str]]:
    chunks = [(dict(kv.split("=", 1) for kv in m.group(1).split(",")), m.group(2)) for m in KITTY.finditer(sequence)]
    assert "".join(m.group(0) for m in KITTY.finditer(sequence)) == sequence, "nothing but graphics escapes"
    return chunks


def test_kitty_sends_the_png_in_chunks():
    data = png(noise(120, 90))  # incompressible: about 32 KB, 11 chunks of base64
    sequence = encode(data, "kitty", columns=80)
    chunks = kitty_chunks(sequence)
    assert len(chunks) > 2
    first = chunks[0][0]
    assert first["a"] == "T" and first["f"] == "100" and first["m"] == "1"
    assert first["c"] == "12"  # 120 px at 10 px a cell: its own size, within 80 columns
    assert all(keys == {"m": "1"} for keys, _ in chunks[1:-1])
    assert chunks[-1][0] == {"m": "0"}
    assert all(len(payload) <= 4096 for _, payload in chunks)
    assert base64.b64decode("".join(payload for _, payload in chunks)) == data


def test_kitty_shrinks_to_the_columns_given():
    data = png(noise(400, 30))
    (keys, _), *_ = kitty_chunks(encode(data, "kitty", columns=25))
    assert keys["c"] == "25"
    (keys, _), *_ = kitty_chunks(encode(data, "kitty", columns=80, cell=(8, 16)))
    assert keys["c"] == "50"


def test_kitty_small_image_is_one_chunk_with_m0():
    data = png(stripes())
    [(keys, payload)] = kitty_chunks(encode(data, "kitty", columns=80))
    assert keys["m"] == "0" and keys["a"] == "T"
    assert base64.b64decode(payload) == data


@pytest.mark.parametrize("fmt", ["JPEG", "GIF"])
def test_kitty_converts_jpeg_and_gif_to_png(fmt):
    out = io.BytesIO()
    stripes(60, 20).save(out, format=fmt)
    chunks = kitty_chunks(encode(out.getvalue(), "kitty", columns=80))
    sent = base64.b64decode("".join(payload for _, payload in chunks))
    assert sent.startswith(b"\x89PNG\r\n\x1a\n")
    assert Image.open(io.BytesIO(sent)).size == (60, 20)
    assert chunks[0][0]["f"] == "100" and chunks[0][0]["c"] == "6"


def test_not_an_image_is_not_encoded():
    for protocol in ("kitty", "iterm2", "sixel"):
        assert encode(b"<svg xmlns='http://www.w3.org/2000/svg'/>", protocol, columns=80) == ""
        # a PNG signature on a broken file: sixel can't decode it
    assert encode(b"\x89PNG\r\n\x1a\nbroken", "sixel", columns=80) == ""


# -- iterm2 ------------------------------------------------------------------

ITERM = re.compile(r"\x1b\]1337;File=([^:]*):([A-Za-z0-9+/=]*)\x07\Z")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF"])
def test_iterm2_sends_the_file_as_is(fmt):
    out = io.BytesIO()
    noise(300, 50).save(out, format=fmt)
    data = out.getvalue()
    match = ITERM.match(encode(data, "iterm2", columns=20, name="plots/roc.png"))
    assert match, "one OSC 1337 File= sequence ending in BEL"
    args = dict(kv.split("=", 1) for kv in match.group(1).split(";"))
    assert args["inline"] == "1"
    assert args["size"] == str(len(data))
    assert args["width"] == "20"  # 300 px is 30 cells: shrunk to the 20 columns given
    assert args["preserveAspectRatio"] == "1"
    assert base64.b64decode(args["name"]) == b"plots/roc.png"
    assert base64.b64decode(match.group(2)) == data


def test_iterm2_small_image_keeps_its_size():
    data = png(stripes())
    args = dict(kv.split("=", 1) for kv in ITERM.match(encode(data, "iterm2", columns=80)).group(1).split(";"))
    assert args["width"] == "3"
    assert "name" not in args


# -- sixel -------------------------------------------------------------------


def decode_sixel(sequence: str) -> tuple[dict[int, tuple[int, int, int]], list[list[int | None]]]:
    """A small DEC sixel decoder: the palette (in 0-255) and the pixels' palette indexes."""
    assert sequence.startswith("\x1bPq") and sequence.endswith("\x1b\\")
    body = sequence[3:-2]
    raster = re.match(r'"1;1;(\d+);(\d+)', body)
    assert raster, "raster attributes first"
    width, height = int(raster.group(1)), int(raster.group(2))
    pixels: list[list[int | None]] = [[None] * width for _ in range(height)]
    palette: dict[int, tuple[int, int, int]] = {}
    at, x, band, colour = raster.end(), 0, 0, 0
    while at < len(body):
        char = body[at]
        if char == "#":
            m = re.compile(r"#(\d+)(?:;2;(\d+);(\d+);(\d+))?").match(body, at)
            colour = int(m.group(1))
            if m.group(2) is not None:
                palette[colour] = tuple(round(int(m.group(i)) * 255 / 100) for i in (2, 3, 4))
            at = m.end()
            continue
        if char == "$":
            x, at = 0, at + 1
            continue
        if char == "-":
            x, band, at = 0, band + 1, at + 1
            continue
        count = 1
        if char == "!":
            m = re.compile(r"!(\d+)(.)").match(body, at)
            count, char, at = int(m.group(1)), m.group(2), m.end()
        else:
            at += 1
        bits = ord(char) - 63
        assert 0 <= bits < 64, f"not a sixel: {char!r}"
        for _ in range(count):
            for row in range(6):
                y = band * 6 + row
                if bits >> row & 1 and y < height:
                    assert colour in palette, "a colour used before it is declared"
                    pixels[y][x] = colour
            x += 1
    return palette, pixels


def test_sixel_draws_the_stripes():
    sequence = encode(png(stripes(30, 13)), "sixel", columns=80)
    palette, pixels = decode_sixel(sequence)
    assert len(palette) <= 256
    assert len(pixels) == 13 and len(pixels[0]) == 30
    assert all(p is not None for row in pixels for p in row), "every pixel painted"
    for (x, y), colour in {
        (0, 0): (255, 0, 0),
        (9, 12): (255, 0, 0),
        (10, 5): (0, 255, 0),
        (15, 6): (0, 255, 0),
        (20, 11): (0, 0, 255),
        (29, 12): (0, 0, 255),
    }.items():
        assert palette[pixels[y][x]] == colour, (x, y)
    assert "!10" in sequence, "runs are run-length encoded"


def test_sixel_scales_down_to_the_columns():
    sequence = encode(png(stripes(300, 60)), "sixel", columns=10)  # 10 cells of 10 px
    palette, pixels = decode_sixel(sequence)
    assert (len(pixels[0]), len(pixels)) == (100, 20)
    assert palette[pixels[10][5]] == (255, 0, 0)
    assert palette[pixels[10][50]] == (0, 255, 0)
    assert palette[pixels[10][95]] == (0, 0, 255)


def test_sixel_of_many_colours_declares_at_most_256():
    palette, pixels = decode_sixel(encode(png(noise(64, 40)), "sixel", columns=80))
    assert 100 < len(palette) <= 256
    assert (len(pixels[0]), len(pixels)) == (64, 40)
    assert all(p is not None for row in pixels for p in row)


def test_sixel_flattens_transparency_onto_white():
    image = Image.new("RGBA", (12, 6), (0, 0, 0, 0))
    image.putpixel((0, 0), (255, 0, 0, 255))
    palette, pixels = decode_sixel(encode(png(image), "sixel", columns=80))
    assert palette[pixels[0][0]] == (255, 0, 0)
    assert palette[pixels[3][6]] == (255, 255, 255)


def test_without_pillow_sixel_and_converted_kitty_are_empty(monkeypatch):
    data = png(stripes())
    jpeg = io.BytesIO()
    stripes().save(jpeg, format="JPEG")
    monkeypatch.setitem(sys.modules, "PIL", None)  # `from PIL import Image` raises ImportError
    assert encode(data, "sixel", columns=80) == ""
    assert encode(jpeg.getvalue(), "kitty", columns=80) == ""
    assert encode(data, "kitty", columns=80).startswith("\x1b_G")  # PNG needs no Pillow
    assert encode(jpeg.getvalue(), "iterm2", columns=80).startswith("\x1b]1337;")


def test_over_32_mib_is_not_encoded():
    data = png(stripes())
    huge = data + b"\0" * (inline_images.MAX_BYTES - len(data) + 1)
    for protocol in ("kitty", "iterm2", "sixel"):
        assert encode(huge, protocol, columns=80) == ""
    assert encode(huge[:-1], "kitty", columns=80) != ""  # exactly 32 MiB is still drawn


# -- show_image ----------------------------------------------------------------


def test_show_image_on_a_pipe_prints_the_path(pipe):
    stream, read_end = pipe
    show_image(png(stripes()), "plots/confusion.png", stream, {"TERM_PROGRAM": "iTerm.app"}, 80)
    stream.close()
    assert os.read(read_end, 1000) == b"plots/confusion.png (image; open it, or use --html)\n"


def test_show_image_that_cannot_be_encoded_prints_the_path(pipe):
    stream, read_end = pipe
    show_image(b"GIF89a-truncated", "plots/anim.gif", stream, {"OPSCTL_IMAGES": "sixel"}, 80)
    stream.close()
    assert os.read(read_end, 1000) == b"plots/anim.gif (image; open it, or use --html)\n"


def test_show_image_draws_on_a_kitty_terminal(terminal):
    term = terminal()
    data = png(stripes())
    show_image(data, "plots/stripes.png", term.stream, {"TERM": "xterm-kitty"}, 80)
    # the path, then the image; the tty turns \n into \r\n
    expected = ("plots/stripes.png\r\n" + encode(data, "kitty", columns=80) + "\r\n").encode()
    for _ in range(int(WAIT / 0.02)):
        if len(term.received) >= len(expected):
            break
        threading.Event().wait(0.02)
    assert bytes(term.received) == expected


def test_importing_the_module_loads_no_pillow():
    probe = "import sys, opsctl.cli.inline_images; print('PIL' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_detect_does_not_hang_on_a_terminal_that_takes_no_output():
    """Output stopped (Ctrl-S) with a full buffer: the query can't be written, and detect gives up at once."""
    master, slave = os.openpty()
    filler = os.open(os.ttyname(slave), os.O_WRONLY | os.O_NOCTTY | os.O_NONBLOCK)
    stream = os.fdopen(slave, "w", closefd=False)
    try:
        while True:
            try:
                os.write(filler, b"x" * 4096)
            except BlockingIOError:
                break
        result: list = []
        thread = threading.Thread(target=lambda: result.append(detect({"TERM": "xterm"}, stream)), daemon=True)
        thread.start()
        thread.join(WAIT)
        assert not thread.is_alive(), "detect blocked writing the query"
        assert result == [None]
    finally:
        stream.close()
        for fd in (filler, master, slave):
            os.close(fd)
