"""The project explains itself: its architecture notes are in the repository, linked from the README, and the
code cites them (not a design file that contributors never see)."""

from __future__ import annotations

from tests.conftest import REPO


def test_architecture_notes_are_in_the_repository_and_linked_from_the_readme():
    notes = REPO / "docs" / "architecture.md"
    assert notes.is_file()
    text = notes.read_text()
    for section in ("## Layers", "## Pipeline execution", "### Containers", "## Runs and lineage", "## Errors"):
        assert section in text, section
    assert "(docs/architecture.md)" in (REPO / "README.md").read_text()


def test_code_comments_cite_the_notes_in_the_repository():
    citing_a_missing_file = [
        str(path.relative_to(REPO))
        for folder in ("opsctl", "tests", "scripts", "bench")
        for path in (REPO / folder).rglob("*.py")
        if "DESIGN" + ".md" in path.read_text(encoding="utf-8")
    ]
    assert citing_a_missing_file == []
