"""Small timing helpers shared by the bench scripts: wall time of whole commands, and (for the
data benches) wall time, CPU and peak RSS of one command per fresh process, in rotating rounds."""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent


def compile_opsctl() -> None:
    """Byte-compile opsctl's modules where they are imported from, as installing a wheel with pip
    does. An editable install (scripts/bootstrap.sh) has no bytecode until Python writes it at the
    first start, and with PYTHONDONTWRITEBYTECODE set (as on the machine these figures come from)
    it never does: every start would compile opsctl from source (~0.1 s for `opsctl status`,
    more for `opsctl run`), while DVC and every other installed package start from bytecode."""
    import compileall

    import opsctl

    compileall.compile_dir(os.path.dirname(opsctl.__file__), quiet=1, workers=0)


compile_opsctl()  # every bench measures opsctl as installed, before anything is timed


def wall(cmd: list[str], *, cwd: Path | None = None, env: dict | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(
        cmd,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def median_wall(cmd: list[str], runs: int, *, warmup: int = 2, **kw) -> float:
    for _ in range(warmup):
        wall(cmd, **kw)
    return statistics.median(wall(cmd, **kw) for _ in range(runs))


def report(name: str, value: float, baseline_name: str, baseline: float, target: float) -> bool:
    ratio = value / baseline
    ok = ratio <= target
    print(
        f"{name:<28} {value:7.3f} s   {baseline_name:<24} {baseline:7.3f} s   ratio {ratio:5.2f}x   "
        f"target <= {target:.2f}x   {'OK' if ok else 'MISSED'}"
    )
    return ok


# --- helpers for the pipeline benches (parallel.py, noop.py, overhead.py) ---

GIT_ID = ["-c", "user.name=opsctl bench", "-c", "user.email=bench@opsctl.invalid"]


def timed(cmd: list[str], *, cwd: Path | None = None, env: dict | None = None, timeout: float | None = None) -> float:
    """Like ``wall``, but a failing command stops the bench with the command, its exit
    code and its output (instead of a bare CalledProcessError). A command still running
    after ``timeout`` seconds gets SIGINT (as Ctrl-C: the tool stops and cleans up; SIGKILL
    a minute later) and stops the bench too."""
    started = time.perf_counter()
    with subprocess.Popen(
        cmd, cwd=cwd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        try:
            output, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            try:
                output, _ = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                output, _ = proc.communicate()
            raise SystemExit(
                f"did not finish within {timeout:g} s (interrupted) in {cwd}:\n  $ {' '.join(map(str, cmd))}\n"
                f"{output.rstrip()}"
            ) from None
    elapsed = time.perf_counter() - started
    if proc.returncode:
        raise SystemExit(f"failed (exit {proc.returncode}) in {cwd}:\n  $ {' '.join(map(str, cmd))}\n{output.rstrip()}")
    return elapsed


def json_of(cmd: list[str], *, cwd: Path | None = None, env: dict | None = None):
    """A command's stdout read as JSON; a failing command or other output stops the bench with both streams."""
    proc = subprocess.run(cmd, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    try:
        if not proc.returncode:
            return json.loads(proc.stdout)
    except json.JSONDecodeError:
        pass
    raise SystemExit(
        f"{'failed (exit ' + str(proc.returncode) + ')' if proc.returncode else 'printed no JSON'} in {cwd}:\n"
        f"  $ {' '.join(map(str, cmd))}\n{proc.stdout.rstrip()}\n{proc.stderr.rstrip()}"
    )


def pipeline_project(path: Path, dvc_yaml: str, *, opsctl_yaml: str | None = None, env: dict | None = None) -> Path:
    """A committed Git + DVC project at ``path`` (made by the real CLIs) with this
    ``dvc.yaml``, an optional ``opsctl.yaml``, an ``out/`` directory for the stages'
    outputs and ``.opsctl/`` ignored by Git and DVC."""
    path.mkdir(parents=True)
    timed(["git", "init", "-q"], cwd=path)
    timed([str(BIN / "dvc"), "init", "-q"], cwd=path, env=env)
    (path / "dvc.yaml").write_text(dvc_yaml)
    if opsctl_yaml is not None:
        (path / "opsctl.yaml").write_text(opsctl_yaml)
    (path / "out").mkdir()
    (path / "out" / ".gitkeep").write_text("")
    for ignore in (".gitignore", ".dvcignore"):
        with (path / ignore).open("a") as f:
            f.write(".opsctl/\n")
    timed(["git", "add", "-A"], cwd=path)
    timed(["git", *GIT_ID, "commit", "-qm", "bench pipeline"], cwd=path)
    return path


def fresh_copy(template: Path, dest: Path) -> Path:
    """A copy of a pristine project (its own empty DVC cache, so no run cache), with
    Git's index refreshed so that neither timed tool pays for the copy's new stat data."""
    shutil.copytree(template, dest, symlinks=True)
    subprocess.run(
        ["git", "update-index", "-q", "--refresh"], cwd=dest, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return dest


def report_limit(name: str, value: float, target: float) -> bool:
    """An absolute figure against an absolute target, in ``report``'s columns."""
    ok = value <= target
    print(f"{name:<28} {value:7.3f} s   target <= {target:.3f} s   {'OK' if ok else 'MISSED'}")
    return ok


def compare(name: str, value: float, baseline_name: str, baseline: float) -> None:
    """A figure next to a baseline, as a ratio with no target of its own."""
    print(f"{name:<28} {value:7.3f} s   {baseline_name:<24} {baseline:7.3f} s   ratio {value / baseline:5.2f}x")


# --- helpers for the in-process benches (runs.py) ---


def median_call(fn, runs: int, *, warmup: int = 2) -> float:
    """Median wall time of ``fn()`` called in this process, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def report_limit_against(
    name: str, value: float, target: float, baseline_name: str, baseline: float, *, width: int = 28
) -> bool:
    """An absolute figure against an absolute target, with its ratio to a baseline measured
    in the same run alongside (informational: the target is the absolute one)."""
    ok = value <= target
    print(
        f"{name:<{width}} {value:7.3f} s   target <= {target:.3f} s   {'OK' if ok else 'MISSED':<6}   "
        f"({value / baseline:4.2f}x {baseline_name} {baseline:.3f} s)"
    )
    return ok


# -- the Docker benches' shared project material --------------------------------------

BUSYBOX_IMAGE = "opsctl-test/busybox:latest"
DOCKER_OPSCTL_YAML = f"""\
project: bench
executor: docker
images:
  tools:
    ref: "{BUSYBOX_IMAGE}"
stages:
  default: {{image: tools}}
"""


def check_image(ref: str, only: str) -> None:
    """Stop the bench unless the engine holds test image ``ref`` (built by build-test-images.sh --only ONLY)."""
    if subprocess.run(
        ["docker", "image", "inspect", ref], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    ).returncode:
        raise SystemExit(
            f"{ref} is not in the Docker engine (or no engine is reachable); "
            f"build it with scripts/build-test-images.sh --only {only}"
        )


def check_busybox_image() -> None:
    check_image(BUSYBOX_IMAGE, "busybox")


def check_outputs(project: Path, stages: int) -> dict:
    """Stage ``s<i>`` wrote ``out/s<i>.txt`` holding ``s<i>``, and dvc.lock records every stage;
    returns the lock (the benches compare opsctl's lock with dvc repro's)."""
    import yaml

    for i in range(stages):
        out = project / "out" / f"s{i}.txt"
        if not out.is_file() or out.read_text() != f"s{i}\n":
            raise SystemExit(f"{out} is missing or wrong: not every stage ran")
    lock_path = project / "dvc.lock"
    if not lock_path.is_file():
        raise SystemExit(f"{lock_path} was not written")
    lock = yaml.safe_load(lock_path.read_text())
    missing = {f"s{i}" for i in range(stages)} - set(lock.get("stages", {}))
    if missing:
        raise SystemExit(f"{lock_path} lacks stages {sorted(missing)}")
    return lock


# -- the data benches' shared measuring (validate.py, drift.py): one command per fresh process ------


@dataclass
class Sample:
    seconds: float
    rss: int  # peak resident set size in bytes, of the process and the children it waited for
    cpu: float  # user + system seconds of the process and those children (less swayed by a busy machine)
    code: int
    stdout: str
    stderr: str


def measured(cmd: list[str], *, cwd: Path | None = None, env: dict | None = None) -> Sample:
    """Run ``cmd`` to its end: its wall time, CPU time and peak RSS (from wait4's rusage of that one child).
    The calling process should stay small: a forked child's peak RSS counts its parent's pages."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, **(env or {})}, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        cpu = usage.ru_utime + usage.ru_stime
        return Sample(seconds, usage.ru_maxrss * 1024, cpu, proc.returncode, out.read().decode(), err.read().decode())


def last_line(text: str) -> str:
    """The line that says what went wrong: the last one, or opsctl's error line before its hint."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if len(lines) > 1 and lines[-1].startswith("hint:"):
        return f"{lines[-2]} ({lines[-1]})"
    return lines[-1] if lines else "(no output)"


@dataclass
class Tool:
    """A command timed in rounds: its counted samples, or why it was dropped from the comparison.
    Subclasses say in ``check`` whether a run counts (it must also give the right answer)."""

    name: str
    cmd: list[str]
    cwd: Path | None = None
    env: dict | None = None
    samples: list[Sample] | None = None
    broken: str | None = None  # why the tool was dropped from the comparison
    info: dict | None = None  # the last run's JSON output
    split_keys: tuple[str, ...] = ()  # the phases (seconds) a baseline's output reports, e.g. import / read
    splits: list[dict] | None = None  # each counted run's phases

    def run(self, *args) -> None:
        if self.broken:
            return
        sample = measured(self.cmd, cwd=self.cwd, env=self.env)
        self.broken = self.check(sample, *args)
        if not self.broken:
            self.samples = [*(self.samples or []), sample]
            if self.split_keys and self.info and all(k in self.info for k in self.split_keys):
                self.splits = [*(self.splits or []), {k: self.info[k] for k in self.split_keys}]

    def check(self, sample: Sample, *args) -> str | None:
        """Why this run does not count, or None; by default: it failed, or its output is not JSON."""
        if sample.code:
            return f"exit {sample.code}: {last_line(sample.stderr)}"
        return self.parse(sample)

    def parse(self, sample: Sample) -> str | None:
        """Read the run's JSON output into ``info``; why not, or None."""
        try:
            self.info = json.loads(sample.stdout)
        except json.JSONDecodeError:
            return f"exit {sample.code}, output is not JSON: {last_line(sample.stdout or sample.stderr)}"
        return None

    def reset(self) -> None:
        """Forget the counted runs (after the warm-up)."""
        self.samples = self.splits = None

    def split(self) -> str:
        """The median phases of the counted runs, e.g. "0.52 / 1.10 / 0.31 s", or ""."""
        if not self.splits:
            return ""
        return " / ".join(f"{statistics.median(s[k] for s in self.splits):.2f}" for k in self.split_keys) + " s"

    @property
    def seconds(self) -> float:
        return statistics.median(s.seconds for s in self.samples or [])

    @property
    def cpu(self) -> float:
        return statistics.median(s.cpu for s in self.samples or [])

    @property
    def rss(self) -> int:
        return int(statistics.median(s.rss for s in self.samples or []))


def rounds(tools: list[Tool], repeat: int, *args) -> None:
    """One untimed warm-up of each tool (bytecode, the page cache; a wrong answer drops it), then
    ``repeat`` rounds rotating which tool goes first; ``args`` go to each tool's ``check``."""
    for tool in tools:
        tool.run(*args)
        tool.reset()
        print(f"  warm-up {tool.name}: {tool.broken or 'ok'}", flush=True)
    for i in range(repeat):
        order = tools[i % len(tools) :] + tools[: i % len(tools)]
        for tool in order:
            tool.run(*args)
        print(
            f"  round {i + 1}: "
            + ", ".join(f"{t.name} {t.samples[-1].seconds:.2f} s" for t in order if t.samples and not t.broken),
            flush=True,
        )


def data_project(path: Path, files: dict[str, Path], config: dict | None = None, *, env: dict | None = None) -> Path:
    """A committed Git + DVC project (made by the real CLIs) with each of ``files`` copied to its
    name (e.g. ``data/base.csv``) and tracked by DVC, an optional opsctl.yaml from ``config``,
    and ``.opsctl/`` ignored by Git and DVC."""
    import yaml

    path.mkdir(parents=True)
    timed(["git", "init", "-q"], cwd=path)
    timed([str(BIN / "dvc"), "init", "-q"], cwd=path, env=env)
    for name, src in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, path / name)
    if config is not None:
        (path / "opsctl.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    for ignore in (".gitignore", ".dvcignore"):
        with (path / ignore).open("a") as f:
            f.write(".opsctl/\n")
    timed([str(BIN / "dvc"), "add", "-q", *files], cwd=path, env=env)
    timed(["git", "add", "-A"], cwd=path)
    timed(["git", *GIT_ID, "commit", "-qm", "bench data"], cwd=path)
    return path


def tool_venv(venv: Path, requirements: list[str], probe: str) -> tuple[Path | None, str]:
    """The python of a baseline tool's own venv, made with ``python3 -m venv`` and filled with
    ``pip install REQUIREMENTS`` on first use; and the version ``probe`` (Python code) prints.
    Or None and why not (the bench then skips that tool only)."""
    python = venv / "bin" / "python"
    check = [str(python), "-c", probe]
    if python.is_file():
        found = subprocess.run(check, capture_output=True, text=True)
        if found.returncode == 0:
            return python, found.stdout.strip()
    print(f"  installing {' '.join(requirements)} into {venv} (once) ...", flush=True)
    for cmd in (["python3", "-m", "venv", str(venv)], [str(venv / "bin" / "pip"), "install", "-q", *requirements]):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            return None, f"`{' '.join(cmd)}` failed: {last_line(proc.stderr or proc.stdout)}"
    found = subprocess.run(check, capture_output=True, text=True)
    if found.returncode:
        return None, f"installed but does not import: {last_line(found.stderr)}"
    return python, found.stdout.strip()


def mib(n: int) -> str:
    return f"{n / 2**20:6.0f} MiB"


def verdict(ok: bool) -> str:
    return "OK" if ok else "MISSED"


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def cached_build(target: Path, fresh: bool, make, *, stale_glob: str) -> tuple[Path, dict]:
    """``target`` (a file or directory under .bench/), made once by ``make(partial) -> info`` and kept
    with what making it measured (``TARGET.json`` beside it); ``fresh`` makes it again. It is made
    under a ``.partial`` name and renamed when whole; older builds matching ``stale_glob`` (made by
    other code) are removed."""
    info_path = target.with_suffix(".json")
    if target.exists() and info_path.is_file() and not fresh:
        return target, {**json.loads(info_path.read_text()), "cached": True}
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    for leftover in (partial, Path(f"{partial}-wal"), Path(f"{partial}-shm"), target):
        _remove(leftover)
    info = make(partial)
    os.replace(partial, target)
    for stale in target.parent.glob(stale_glob):
        if stale.name not in (target.name, info_path.name):
            _remove(stale)
    info["made"] = time.strftime("%Y-%m-%d %H:%M:%S")
    info_path.write_text(json.dumps(info, indent=1))
    return target, {**info, "cached": False}
