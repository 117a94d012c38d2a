"""The no-op fast path's test matrix (issue 18): one real Git + DVC project, and every kind of
change the fast path (core/plan_cache.py) must notice, each with the outcome it is designed
for: a hit (answered from the last full plan) or a fall-back to DVC's full check.

The project: a ``.dvc``-tracked data file feeding ``prepare`` (a directory out), ``train``
(file and directory deps, ``params: [train.x]``), a ``foreach`` stage over a list in
``params.yaml``, and ``package``, run in its own ``ref:`` image. Built with a real
``opsctl run`` under the docker executor, so ``opsctl.lock`` records each stage's image, and
committed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.conftest import git_dvc_project, opsctl_inprocess, run

BUSYBOX = "opsctl-test/busybox:latest"
HIT, FALL_BACK = "hit", "fall back"

TRAIN_SH = "cat prepared/raw.csv > model.txt\ngrep 'x:' params.yaml >> model.txt\n"
DVC_YAML = {
    "stages": {
        "prepare": {
            "cmd": "mkdir -p prepared && cp data/raw.csv prepared/raw.csv && echo extra > prepared/extra.txt",
            "deps": ["data/raw.csv"],
            "outs": ["prepared"],
        },
        "train": {
            "cmd": "sh src/train.sh",
            "deps": ["src/train.sh", "prepared"],
            "params": ["train.x"],
            "outs": ["model.txt"],
        },
        "evaluate": {
            "foreach": "${items}",
            "do": {
                "cmd": "echo ${item} > eval_${item}.txt && cat model.txt >> eval_${item}.txt",
                "deps": ["model.txt"],
                "outs": ["eval_${item}.txt"],
            },
        },
        "package": {"cmd": "cat model.txt > package.txt", "deps": ["model.txt"], "outs": ["package.txt"]},
    }
}
PARAMS = {"train": {"x": 1}, "items": ["a", "b"]}
OPSCTL_YAML = f"""\
project: noop-matrix
executor: docker
images:
  tools:
    ref: "{BUSYBOX}"
  packer:
    ref: "{BUSYBOX}"
stages:
  default: {{image: tools}}
  package: {{image: packer}}
"""
STAGES = ["prepare", "train", "evaluate@a", "evaluate@b", "package"]


def dvc(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "dvc", *args], cwd=cwd)


def build(root: Path) -> Path:
    """The project at ``root``: reproduced by ``opsctl run`` in containers, and committed."""
    git_dvc_project(root)
    (root / "opsctl.yaml").write_text(OPSCTL_YAML)
    (root / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML, sort_keys=False))
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS, sort_keys=False))
    (root / "src").mkdir()
    (root / "src" / "train.sh").write_text(TRAIN_SH)
    (root / "data").mkdir()
    (root / "data" / "raw.csv").write_text("a,b\n1,2\n3,4\n")
    with open(root / ".gitignore", "a") as f:
        f.write(".opsctl/\n")
    dvc("add", "-q", "data/raw.csv", cwd=root)
    result = opsctl_inprocess("run", "-j", "2", cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    run(["git", "add", "-A"], cwd=root)
    run(["git", "commit", "-qm", "the pipeline, reproduced"], cwd=root)
    return root


# -- the changes ------------------------------------------------------------------------------


def _edit_yaml(path: Path, change: Callable[[dict], None]) -> None:
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def _nothing(root: Path) -> None:
    pass


def _dep_content(root: Path) -> None:
    with open(root / "src" / "train.sh", "a") as f:
        f.write("echo changed >> model.txt\n")


def _dep_touched(root: Path) -> None:
    _touch(root / "src" / "train.sh")


def _touch(path: Path) -> None:
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))


def _out_touched(root: Path) -> None:
    _touch(root / "model.txt")


def _directory_file_touched(root: Path) -> None:
    _touch(root / "prepared" / "raw.csv")


def _pipeline_files_rewritten_as_they_were(root: Path) -> None:
    """dvc.yaml and params.yaml written again with the same bytes (an editor's save): new stats."""
    for name in ("dvc.yaml", "params.yaml"):
        text = (root / name).read_bytes()
        (root / name).unlink()
        (root / name).write_bytes(text)


def _out_deleted(root: Path) -> None:
    (root / "model.txt").unlink()


def _out_modified(root: Path) -> None:
    (root / "package.txt").write_text("not what the stage wrote\n")


def _directory_out_file_added(root: Path) -> None:
    (root / "prepared" / "stray.txt").write_text("stray\n")


def _param_value(root: Path) -> None:
    _edit_yaml(root / "params.yaml", lambda d: d["train"].update(x=2))


def _param_added_unused(root: Path) -> None:
    _edit_yaml(root / "params.yaml", lambda d: d["train"].update(unused=7))


def _param_added_used(root: Path) -> None:
    _edit_yaml(root / "params.yaml", lambda d: d["train"].update(y=3))
    _edit_yaml(root / "dvc.yaml", lambda d: d["stages"]["train"]["params"].append("train.y"))


def _cmd_edited(root: Path) -> None:
    _edit_yaml(root / "dvc.yaml", lambda d: d["stages"]["package"].update(cmd="cat model.txt model.txt > package.txt"))


def _stage_added(root: Path) -> None:
    stage = {"cmd": "echo report > report.txt", "deps": ["package.txt"], "outs": ["report.txt"]}
    _edit_yaml(root / "dvc.yaml", lambda d: d["stages"].update(report=stage))


def _stage_removed(root: Path) -> None:
    _edit_yaml(root / "dvc.yaml", lambda d: d["stages"].pop("package"))


def _foreach_item_added(root: Path) -> None:
    _edit_yaml(root / "params.yaml", lambda d: d["items"].append("c"))


def _source_updated_and_added(root: Path) -> None:
    """`dvc add` again, through DVC's Python API (what the command calls, without its start-up)."""
    import contextlib

    from dvc.repo import Repo

    with open(root / "data" / "raw.csv", "a") as f:
        f.write("5,6\n")
    with contextlib.chdir(root), Repo(str(root)) as repo:
        repo.add("data/raw.csv")


def _source_changed_not_added(root: Path) -> None:
    with open(root / "data" / "raw.csv", "a") as f:
        f.write("5,6\n")


def _lock_edited(root: Path) -> None:
    def change(doc: dict) -> None:
        out = doc["stages"]["package"]["outs"][0]
        out["md5"] = "0" * 32

    _edit_yaml(root / "dvc.lock", change)


def _same_size_and_mtime(path: Path, text: str) -> None:
    old = os.stat(path)
    assert len(text.encode()) == old.st_size
    temp = path.with_name(path.name + ".new")
    temp.write_text(text)
    os.utime(temp, ns=(old.st_atime_ns, old.st_mtime_ns))
    os.replace(temp, path)


def _replaced_same_size_mtime(root: Path) -> None:
    """A new file (new inode) of the same size, its mtime set back to the old one's."""
    path = root / "src" / "train.sh"
    _same_size_and_mtime(path, path.read_text().replace("model.txt", "MODEL.TXT"))


def _rewritten_in_place_same_size_mtime(root: Path) -> None:
    """The same inode rewritten with other bytes of the same size, its mtime put back: only
    the ctime tells. DVC's own state trusts (inode, size, mtime), so DVC still says up to date."""
    path = root / "src" / "train.sh"
    old = os.stat(path)
    text = path.read_text().replace("model.txt", "MODEL.TXT")
    with open(path, "r+") as f:
        f.write(text)
    os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns))
    assert os.stat(path).st_ino == old.st_ino


def _subdirectory_pipeline(root: Path) -> None:
    (root / "sub").mkdir()
    stage = {"cmd": "echo hello > hello.txt", "outs": ["hello.txt"]}
    (root / "sub" / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"hello": stage}}))


def _gitignore_edited(root: Path) -> None:
    with open(root / ".gitignore", "a") as f:
        f.write("*.tmp\n")


def _dvcignore_edited(root: Path) -> None:
    with open(root / ".dvcignore", "a") as f:
        f.write("*.tmp\n")


def _cache_object_deleted(root: Path) -> None:
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    md5 = lock["stages"]["package"]["outs"][0]["md5"]
    (root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]).unlink()


def image_tag(root: Path) -> str:
    """The ``packer`` image's own tag for the copy at ``root`` (unique: the engine is shared)."""
    import hashlib

    return f"opsctl-test/noop-matrix:{hashlib.sha256(str(root).encode()).hexdigest()[:16]}"


def _own_image_tag(root: Path) -> None:
    """Before the first plan: ``packer`` refers to a tag of this copy's own, of the very image
    the stage last ran in (so it is not stale yet)."""
    run(["docker", "tag", BUSYBOX, image_tag(root)])
    (root / "opsctl.yaml").write_text(
        OPSCTL_YAML.replace(f'packer:\n    ref: "{BUSYBOX}"', f'packer:\n    ref: "{image_tag(root)}"')
    )
    assert image_tag(root) in (root / "opsctl.yaml").read_text()


def _image_rebuilt(root: Path) -> None:
    """The tag now names another image: built FROM the old one with a label (a new image id)."""
    dockerfile = f"FROM {BUSYBOX}\nLABEL opsctl.test.noop-matrix={root.name}\n"
    subprocess.run(
        ["docker", "build", "-q", "-t", image_tag(root), "-"],
        input=dockerfile,
        text=True,
        check=True,
        capture_output=True,
    )


def remove_image_tag(root: Path) -> None:
    subprocess.run(["docker", "rmi", image_tag(root)], capture_output=True)


@dataclass(frozen=True)
class Scenario:
    name: str
    change: Callable[[Path], None]
    outcome: str  # HIT or FALL_BACK: what the fast path is designed to do after the change
    prepare: Callable[[Path], None] | None = None  # before the first plan
    cleanup: Callable[[Path], None] | None = None  # at the end, whatever happened
    docker: bool = False  # DVC can't see it: compared with opsctl's full check only


SCENARIOS = [
    Scenario("nothing changed", _nothing, HIT),
    Scenario("dep content changed", _dep_content, FALL_BACK),
    Scenario("dep touched only", _dep_touched, HIT),
    Scenario("out touched only", _out_touched, HIT),
    Scenario("dvc.yaml and params.yaml saved unchanged", _pipeline_files_rewritten_as_they_were, HIT),
    # A directory is hashed by DVC as a whole: a file in it is watched by its stat alone.
    Scenario("file in a directory out touched only", _directory_file_touched, FALL_BACK),
    Scenario("out deleted", _out_deleted, FALL_BACK),
    Scenario("out modified", _out_modified, FALL_BACK),
    Scenario("directory out: file added", _directory_out_file_added, FALL_BACK),
    Scenario("param value changed", _param_value, FALL_BACK),
    Scenario("param added, not used", _param_added_unused, FALL_BACK),
    Scenario("param added, used by a stage", _param_added_used, FALL_BACK),
    Scenario("cmd edited", _cmd_edited, FALL_BACK),
    Scenario("stage added", _stage_added, FALL_BACK),
    Scenario("stage removed", _stage_removed, FALL_BACK),
    Scenario("foreach item added", _foreach_item_added, FALL_BACK),
    Scenario(".dvc source updated and added", _source_updated_and_added, FALL_BACK),
    Scenario(".dvc source changed, not added", _source_changed_not_added, FALL_BACK),
    Scenario("dvc.lock md5 edited by hand", _lock_edited, FALL_BACK),
    Scenario("file replaced, same size and mtime", _replaced_same_size_mtime, FALL_BACK),
    Scenario("file rewritten in place, same size and mtime", _rewritten_in_place_same_size_mtime, FALL_BACK),
    Scenario("new dvc.yaml in a subdirectory", _subdirectory_pipeline, FALL_BACK),
    Scenario(".gitignore edited", _gitignore_edited, FALL_BACK),
    Scenario(".dvcignore edited", _dvcignore_edited, FALL_BACK),
    Scenario("cache object deleted", _cache_object_deleted, FALL_BACK),
    Scenario("image rebuilt", _image_rebuilt, FALL_BACK, _own_image_tag, remove_image_tag, docker=True),
]
