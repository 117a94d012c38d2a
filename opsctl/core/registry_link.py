"""The seam between the model registry and the run store (lineage of NAME@VERSION)."""

from __future__ import annotations

from opsctl.core.project import Project


def model_version_lookup(project: Project):
    """``(name, version) -> (path, hash, run id or None)`` for ``opsctl lineage NAME@VERSION``."""

    def lookup(name: str, version: str):
        from opsctl.core import registry

        return registry.version_artifact(project, name, version)

    return lookup


def resolve_run(project: Project, prefix: str) -> str:
    """``--run RUN`` of ``model register``: the full id of an existing run."""
    from opsctl.core.runs import open_store, store_path
    from opsctl.errors import UsageError

    if not store_path(project).exists():
        raise UsageError(f"no run {prefix}: this project has no recorded runs yet", hint="`opsctl run` records one")
    with open_store(project) as store:
        return store.get_run(prefix).id


def producing_run(project: Project, path: str, md5: str) -> str | None:
    """The newest recorded run whose stage wrote PATH with this hash (the default link)."""
    from opsctl.core.runs import open_store, store_path

    if not store_path(project).exists():
        return None
    with open_store(project) as store:
        found = store.producers(path, md5)
    return found[0].run_id if found else None


def run_metrics(project: Project, run_id: str) -> dict | None:
    from opsctl.core.runs import open_store, store_path

    if not store_path(project).exists():
        return None
    with open_store(project) as store:
        try:
            return store.get_run(run_id).metrics
        except Exception:  # noqa: BLE001 — a version linked to a run this clone never saw
            return None
