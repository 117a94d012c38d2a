"""opsctl.core.rollback.FileTransaction: undo of created and overwritten files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from opsctl.core.rollback import FileTransaction


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    path = tmp_path / "scratch"
    path.mkdir()
    return path


@pytest.fixture
def work(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


def test_created_file_and_dir_removed_on_rollback(work, scratch):
    tx = FileTransaction(scratch_parent=scratch)
    new_file = work / "new.txt"
    new_file.write_text("x")
    tx.created(new_file)
    new_dir = work / "pkg"
    (new_dir / "sub").mkdir(parents=True)
    (new_dir / "sub" / "f").write_text("y")
    tx.created(new_dir)

    tx.rollback()

    assert not new_file.exists()
    assert not new_dir.exists()
    assert list(work.iterdir()) == []


def test_preserved_file_restored_byte_for_byte(work, scratch):
    original = bytes(range(256)) + b"\r\n\x00tail"
    target = work / "data.bin"
    target.write_bytes(original)
    tx = FileTransaction(scratch_parent=scratch)
    tx.preserve(target)
    target.write_bytes(b"overwritten")

    tx.rollback()

    assert target.read_bytes() == original
    assert list(scratch.iterdir()) == []  # backups dropped after restoring


def test_preserved_file_restored_after_deletion(work, scratch):
    target = work / "keep.txt"
    target.write_text("keep me")
    tx = FileTransaction(scratch_parent=scratch)
    tx.preserve(target)
    target.unlink()

    tx.rollback()

    assert target.read_text() == "keep me"


def test_preserved_directory_restored(work, scratch):
    d = work / ".dvc"
    (d / "tmp").mkdir(parents=True)
    (d / "config").write_bytes(b"[core]\n    remote = a\n")
    (d / "tmp" / "lock").write_bytes(b"\x01\x02")
    tx = FileTransaction(scratch_parent=scratch)
    tx.preserve(d)
    (d / "config").write_text("changed")
    (d / "tmp" / "lock").unlink()
    (d / "extra").write_text("added later")

    tx.rollback()

    assert sorted(p.relative_to(d).as_posix() for p in d.rglob("*")) == ["config", "tmp", "tmp/lock"]
    assert (d / "config").read_bytes() == b"[core]\n    remote = a\n"
    assert (d / "tmp" / "lock").read_bytes() == b"\x01\x02"


def test_preserve_missing_path_is_a_no_op(work, scratch):
    tx = FileTransaction(scratch_parent=scratch)
    tx.preserve(work / "absent")
    (work / "absent").write_text("appeared")
    tx.rollback()
    # not recorded as created either: it is left alone
    assert (work / "absent").read_text() == "appeared"
    assert list(scratch.iterdir()) == []


def test_preserving_twice_keeps_the_first_content(work, scratch):
    target = work / "f.txt"
    target.write_text("first")
    tx = FileTransaction(scratch_parent=scratch)
    tx.preserve(target)
    target.write_text("second")
    tx.preserve(target)
    target.write_text("third")

    tx.rollback()

    assert target.read_text() == "first"


def test_mkdirs_records_only_directories_it_made(work, scratch):
    existing = work / "a"
    existing.mkdir()
    (existing / "old.txt").write_text("old")
    tx = FileTransaction(scratch_parent=scratch)

    tx.mkdirs(existing / "b" / "c")
    assert (existing / "b" / "c").is_dir()
    tx.mkdirs(existing / "b" / "c")  # already there: nothing new to record
    (existing / "b" / "c" / "f").write_text("x")

    tx.rollback()

    assert existing.is_dir()
    assert (existing / "old.txt").read_text() == "old"
    assert not (existing / "b").exists()


def test_mkdirs_of_existing_directory_records_nothing(work, scratch):
    tx = FileTransaction(scratch_parent=scratch)
    tx.mkdirs(work)
    tx.rollback()
    assert work.is_dir()


def test_rollback_restores_file_inside_created_and_preserved_mix(work, scratch):
    # A typical init --force: one file overwritten, one created in a new dir.
    readme = work / "README.md"
    readme.write_text("mine")
    tx = FileTransaction(scratch_parent=scratch)
    tx.preserve(readme)
    readme.write_text("template's")
    tx.mkdirs(work / "src" / "pkg")
    (work / "src" / "pkg" / "x.py").write_text("")
    tx.created(work / "src" / "pkg" / "x.py")

    tx.rollback()

    assert sorted(p.name for p in work.iterdir()) == ["README.md"]
    assert readme.read_text() == "mine"


def test_context_manager_rolls_back_on_exception_and_reraises(work, scratch):
    target = work / "f"
    target.write_text("before")
    with pytest.raises(RuntimeError, match="boom"):
        with FileTransaction(scratch_parent=scratch) as tx:
            tx.preserve(target)
            target.write_text("after")
            (work / "new").write_text("n")
            tx.created(work / "new")
            raise RuntimeError("boom")
    assert target.read_text() == "before"
    assert not (work / "new").exists()
    assert list(scratch.iterdir()) == []


def test_context_manager_rolls_back_on_keyboard_interrupt_and_reraises(work, scratch):
    target = work / "f"
    target.write_text("before")
    with pytest.raises(KeyboardInterrupt):
        with FileTransaction(scratch_parent=scratch) as tx:
            tx.preserve(target)
            target.write_text("after")
            tx.mkdirs(work / "d")
            raise KeyboardInterrupt
    assert target.read_text() == "before"
    assert not (work / "d").exists()


def test_rollback_restores_the_sigint_handler(work, scratch):
    import signal

    before = signal.getsignal(signal.SIGINT)
    tx = FileTransaction(scratch_parent=scratch)
    tx.created(work / "nothing")
    tx.rollback()
    assert signal.getsignal(signal.SIGINT) is before


def test_commit_keeps_changes_and_drops_backups(work, scratch):
    target = work / "f"
    target.write_text("before")
    with FileTransaction(scratch_parent=scratch) as tx:
        tx.preserve(target)
        assert list(scratch.iterdir()) != []  # a backup exists while open
        target.write_text("after")
        (work / "new").write_text("n")
        tx.created(work / "new")
    assert target.read_text() == "after"
    assert (work / "new").read_text() == "n"
    assert list(scratch.iterdir()) == []


def test_rollback_after_commit_changes_nothing(work, scratch):
    target = work / "f"
    target.write_text("before")
    tx = FileTransaction(scratch_parent=scratch)
    tx.preserve(target)
    target.write_text("after")
    (work / "new").write_text("n")
    tx.created(work / "new")
    tx.commit()
    tx.rollback()
    assert target.read_text() == "after"
    assert (work / "new").exists()
    assert list(scratch.iterdir()) == []


# -- regressions: bugs found while writing these tests ---------------------------


def test_preserved_dangling_symlink_is_restored(work, scratch):
    link = work / "link"
    os.symlink("missing-target", link)
    tx = FileTransaction(scratch_parent=scratch)
    tx.preserve(link)
    link.unlink()
    link.write_text("replacement")

    tx.rollback()

    assert link.is_symlink()
    assert os.readlink(link) == "missing-target"


def _other_filesystem(path: Path) -> Path | None:
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and shm.stat().st_dev != path.stat().st_dev:
        return shm
    return None


def test_rollback_restores_across_filesystems(work, tmp_path):
    other = _other_filesystem(tmp_path)
    if other is None:
        pytest.skip("no writable second filesystem (/dev/shm) to put backups on")
    import tempfile

    scratch = Path(tempfile.mkdtemp(prefix="opsctl-test-", dir=other))
    try:
        target = work / "f"
        target.write_text("before")
        tx = FileTransaction(scratch_parent=scratch)
        tx.preserve(target)
        target.write_text("after")
        tx.rollback()
        assert target.read_text() == "before"
    finally:
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)
