"""`opsctl ui` in a real terminal: started in tmux in a project with recorded runs, driven
by keys sent to the pane, read back from the pane's text; and its refusals (not a
project, not a terminal) as a script sees them."""

from __future__ import annotations

import os
import shlex
import signal
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from opsctl.store import ArtifactRecord, NewRun, RunRecord, RunStore, StageRecord
from tests.conftest import git_dvc_project, run, run_opsctl

TMUX = shutil.which("tmux")
WAIT = 20.0  # seconds for the pane to show something: generous, no claim about speed

# Newest first in the table: RECENT is on the first row, where the cursor starts.
RECENT, OLDER = "a1b2c3d4e5f6", "0f0f0f0f0f0f"
STAGES = ["featurize", "train"]  # in the order they started
LOG_LINES = {"featurize": "wrote 1234 feature rows to data/features", "train": "epoch 3/3 loss=0.0421 done"}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A real Git + DVC project with two recorded runs; the newer one has saved stage logs."""
    root = git_dvc_project(tmp_path_factory.mktemp("ui-e2e"), "e2e-ui")
    with RunStore(root / ".opsctl" / "opsctl.db") as store:
        for n, (run_id, status) in enumerate([(OLDER, "failed"), (RECENT, "succeeded")]):
            started = 1.7e9 + 3600 * n
            stages = []
            for i, name in enumerate(STAGES):
                failed = status == "failed" and name == "train"
                log_path = None
                if run_id == RECENT:
                    log = root / ".opsctl" / "runs" / run_id / f"{name}.log"
                    log.parent.mkdir(parents=True, exist_ok=True)
                    log.write_text(f"starting {name}\n{LOG_LINES[name]}\n")
                    log_path = log.relative_to(root).as_posix()  # relative to the project root
                stages.append(
                    StageRecord(
                        name,
                        "failed" if failed else "ran",
                        started=started + 10 * i,
                        duration=5.0,
                        cmd=f"python src/{name}.py",
                        exit_code=1 if failed else 0,
                        log_path=log_path,
                        artifacts=[ArtifactRecord("out", f"data/{name}.out", f"{n:016x}{i:016x}")],
                    )
                )
            store.record_run(
                RunRecord(
                    NewRun(
                        run_id,
                        started=started,
                        user="ana",
                        host="box",
                        git_commit=f"{n + 1:040x}",
                        branch="main",
                        executor="local",
                        jobs=1,
                    ),
                    status=status,
                    finished=started + 30,
                    stages=stages,
                    params={"train.n_estimators": 10 * (n + 1)},
                    metrics={"accuracy": 0.5 + n / 10},
                )
            )
    return root


class Pane:
    """One tmux server of its own (its own socket, no config), one session in it."""

    def __init__(self, socket: str, session: str) -> None:
        self.socket, self.session = socket, session

    def tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return run([TMUX, "-L", self.socket, *args], check=check, timeout=30)

    def text(self) -> str:
        result = self.tmux("capture-pane", "-p", "-t", self.session, check=False)
        return result.stdout if result.returncode == 0 else f"(no pane: {result.stderr.strip()})"

    def send(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.session, *keys)

    def wait_for(self, what: str, ready: Callable[[str], bool], status: Path) -> str:
        """The pane's text once ``ready(text)``; fails with the pane's text after WAIT seconds
        or as soon as `opsctl ui` has exited."""
        deadline = time.monotonic() + WAIT
        while True:
            text = self.text()
            if ready(text):
                return text
            if status.exists():
                pytest.fail(f"opsctl ui exited ({status.read_text().strip()}) while waiting for {what}:\n{text}")
            if time.monotonic() > deadline:
                pytest.fail(f"the pane did not show {what} within {WAIT:.0f} s:\n{text}")
            time.sleep(0.1)


@pytest.fixture
def pane(tmp_path):
    """Start a tmux server and session; yield a factory that runs a shell command in it."""
    if TMUX is None:  # the README's test command installs it (scripts/setup-machine.sh): fail, don't skip
        pytest.fail("tmux is not installed: run scripts/setup-machine.sh (or apt-get install tmux)")
    socket = f"opsctl-e2e-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    session = "ui"
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
    env["TERM"] = "xterm-256color"  # of the client; the pane's own is tmux's

    sockets: list[Path] = []

    def start(command: str) -> Pane:
        result = subprocess.run(
            [
                TMUX,
                "-L",
                socket,
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-x",
                "140",
                "-y",
                "40",
                "-s",
                session,
                command,
                ";",
                "set-option",
                "-t",
                session,
                "remain-on-exit",
                "on",
            ],  # keep a crash's traceback
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        if result.returncode != 0:
            if "No such device" in result.stderr:
                pytest.fail(
                    f"tmux could not start its server ({result.stderr.strip()}): /dev/null is probably "
                    "not the character device it should be (ls -l /dev/null)"
                )
            pytest.fail(f"tmux new-session exited {result.returncode}: {result.stderr.strip()}")
        term = Pane(socket, session)
        sockets.append(Path(term.tmux("display-message", "-p", "#{socket_path}").stdout.strip()))
        return term

    try:
        yield start
    finally:
        subprocess.run([TMUX, "-L", socket, "kill-server"], capture_output=True, timeout=30)
        for path in sockets:  # tmux leaves its socket file behind
            path.unlink(missing_ok=True)


def test_dashboard_in_a_terminal(project, pane, tmp_path):
    status = tmp_path / "status"
    command = (
        f"cd {shlex.quote(str(project))} && {shlex.quote(sys.executable)} -m opsctl ui; "
        f"echo \"exit=$?\" > {shlex.quote(str(status))}"
    )
    term = pane(command)

    # The runs table: both runs by their id prefix, the newest first.
    text = term.wait_for("the runs", lambda t: RECENT[:8] in t and OLDER[:8] in t, status)
    assert text.index(RECENT[:8]) < text.index(OLDER[:8]), text
    assert "succeeded" in text and "failed" in text

    # Enter: the run under the cursor (the newest), its stages, the first stage's saved log.
    term.send("Enter")
    text = term.wait_for("the run screen", lambda t: LOG_LINES["featurize"] in t, status)
    assert f"run {RECENT}" in text
    for name in STAGES:
        assert name in text, text
    # Down: the next stage's log.
    term.send("Down")
    term.wait_for("train's log", lambda t: LOG_LINES["train"] in t, status)

    # Escape: back to the runs; ?: the help of the runs screen.
    term.send("Escape")
    term.wait_for("the runs again", lambda t: OLDER[:8] in t and LOG_LINES["train"] not in t, status)
    term.send("?")
    # (waits for the whole help: tmux may capture a frame while the terminal is still drawing it)
    text = term.wait_for(
        "the help", lambda t: "ctrl+q: quit from anywhere" in t and "Next page" in t and "Compare best" in t, status
    )
    assert "Compare marked" in text

    # Escape closes the help; q quits with exit code 0.
    term.send("Escape")
    term.wait_for("the help closed", lambda t: "ctrl+q: quit from anywhere" not in t, status)
    term.send("q")
    deadline = time.monotonic() + WAIT
    while not status.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert status.exists(), f"opsctl ui did not exit on q:\n{term.text()}"
    assert status.read_text().strip() == "exit=0", term.text()


def test_sigterm_ends_it_with_130_and_the_terminal_restored(project, pane, tmp_path):
    """`kill` (a closed session manager, a supervisor): exit 130, as `opsctl run` does, and
    the terminal back on the shell's screen, not left raw on the dashboard's."""
    status = tmp_path / "status"
    pidfile = tmp_path / "pid"
    inner = f"echo $$ > {shlex.quote(str(pidfile))}; exec {shlex.quote(sys.executable)} -m opsctl ui"
    command = (
        f"cd {shlex.quote(str(project))} && sh -c {shlex.quote(inner)}; "
        f"echo \"exit=$?\" > {shlex.quote(str(status))}; echo SHELL-AGAIN; sleep 30"
    )
    term = pane(command)
    term.wait_for("the runs", lambda t: RECENT[:8] in t, status)
    os.kill(int(pidfile.read_text()), signal.SIGTERM)
    deadline = time.monotonic() + WAIT
    while not status.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert status.exists(), f"opsctl ui did not exit on SIGTERM:\n{term.text()}"
    assert status.read_text().strip() == "exit=130"
    text = term.wait_for("the shell's screen", lambda t: "SHELL-AGAIN" in t, tmp_path / "never")
    assert RECENT[:8] not in text  # the dashboard's screen is gone


def test_refuses_outside_a_project_and_without_a_terminal(project, tmp_path):
    outside = run_opsctl("ui", cwd=tmp_path)
    assert outside.returncode == 3, outside.stderr
    assert "not an opsctl project" in outside.stderr

    # In a project, but stdin is not a terminal (run_opsctl gives it /dev/null): a script.
    piped = run_opsctl("ui", cwd=project)
    assert piped.returncode == 2, piped.stderr
    assert "needs a terminal" in piped.stderr
    assert "opsctl runs list --json" in piped.stderr  # the hint: what a script should use
