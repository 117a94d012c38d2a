"""The run store's schema and its migrations.

``PRAGMA user_version`` is the schema version: the number of migrations applied.
Migrations are an ordered list; migration *n* takes a store from version *n-1*
to *n*. A store is only ever moved forward, inside one ``BEGIN IMMEDIATE``
transaction (all of a migration or none of it, and two processes opening a new
store at once cannot both apply it). A store whose version is above
:data:`LATEST_VERSION` was written by a newer opsctl: it is refused, untouched.

Layout, and why:

- ``runs`` has an integer key (``rid``) besides the 12-hex ``id`` the caller
  chooses: every child row then carries a 1-3 byte integer instead of the text
  id, which keeps a 100,000-run store small and its joins cheap.
- ``params`` and ``metrics`` are ``WITHOUT ROWID`` tables clustered on
  ``(rid, kid)``: one run's values are contiguous, so ``get_run`` reads a page
  or two. Key names are interned in ``names`` (``train.n_est`` is stored once,
  not once per run). A value is stored once: a number as itself in ``num``
  (INTEGER or REAL, kept as given: the column has no type affinity), anything
  else (strings, booleans, lists, NaN, integers beyond 64 bits) as JSON text in
  ``value``. Filters and sorts on numbers use ``num``; on the rest, ``value``.
- Artifacts (each dep, out and param of a stage, with its DVC hash) point to
  ``objects``: one row per distinct (path, hash). Runs mostly reuse the same
  raw data and code, so each version is stored once however many runs read it.
  ``hash`` is ``''`` when unknown (NULL would defeat the uniqueness).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from opsctl.errors import StoreVersionError

# Migration 1: the tables. Constraints that keep the data meaningful (statuses,
# outcomes, kinds) are CHECKs so that no caller can write a run the readers
# cannot interpret.
_V1 = (
    """
    CREATE TABLE runs (
        rid         INTEGER PRIMARY KEY,
        id          TEXT NOT NULL UNIQUE,
        started     REAL NOT NULL,
        finished    REAL,
        status      TEXT NOT NULL
                    CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted')),
        user        TEXT,
        host        TEXT,
        pid         INTEGER,
        git_commit  TEXT,
        branch      TEXT,
        dirty       INTEGER NOT NULL DEFAULT 0,
        diff_hash   TEXT,
        executor    TEXT,
        jobs        INTEGER,
        targets     TEXT NOT NULL DEFAULT '[]',
        n_ran       INTEGER NOT NULL DEFAULT 0,
        n_cached    INTEGER NOT NULL DEFAULT 0,
        n_failed    INTEGER NOT NULL DEFAULT 0,
        n_skipped   INTEGER NOT NULL DEFAULT 0
    )
    """,
    """
    CREATE TABLE stages (
        sid         INTEGER PRIMARY KEY,
        rid         INTEGER NOT NULL REFERENCES runs (rid) ON DELETE CASCADE,
        name        TEXT NOT NULL,
        outcome     TEXT NOT NULL
                    CHECK (outcome IN ('ran', 'cached', 'skipped', 'failed', 'interrupted')),
        detail      TEXT NOT NULL DEFAULT '',
        started     REAL,
        duration    REAL,
        cmd         TEXT,
        image_ref   TEXT,
        image_id    TEXT,
        exit_code   INTEGER,
        log_path    TEXT,
        UNIQUE (rid, name)
    )
    """,
    """
    CREATE TABLE objects (
        oid         INTEGER PRIMARY KEY,
        path        TEXT NOT NULL,
        hash        TEXT NOT NULL,
        UNIQUE (path, hash)
    )
    """,
    """
    CREATE TABLE artifacts (
        sid         INTEGER NOT NULL REFERENCES stages (sid) ON DELETE CASCADE,
        kind        TEXT NOT NULL CHECK (kind IN ('dep', 'out', 'param')),
        oid         INTEGER NOT NULL REFERENCES objects (oid),
        PRIMARY KEY (sid, kind, oid)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE names (
        kid         INTEGER PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE
    )
    """,
    """
    CREATE TABLE params (
        rid         INTEGER NOT NULL REFERENCES runs (rid) ON DELETE CASCADE,
        kid         INTEGER NOT NULL REFERENCES names (kid),
        num,        -- no affinity: an INTEGER stays an integer, a REAL a float
        value       TEXT,
        PRIMARY KEY (rid, kid)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE metrics (
        rid         INTEGER NOT NULL REFERENCES runs (rid) ON DELETE CASCADE,
        kid         INTEGER NOT NULL REFERENCES names (kid),
        num,
        value       TEXT,
        PRIMARY KEY (rid, kid)
    ) WITHOUT ROWID
    """,
)

# Migration 2: the indexes behind listing, filtering, sorting and lineage. Without
# them every one of those reads the whole store; with them a page of the newest
# runs, the best run by a metric, the runs with a param above a value or the
# producers of an output are index range scans.
_V2 = (
    # newest first (every listing); ties broken by rid, which the index carries
    "CREATE INDEX runs_by_started ON runs (started)",
    # --status failed, and the reaper's "still running"
    "CREATE INDEX runs_by_status ON runs (status, started)",
    # previous_run: the last run on this branch before that one (metric deltas)
    "CREATE INDEX runs_by_branch ON runs (branch, started)",
    # --sort duration (the expression must be written the same way in queries)
    "CREATE INDEX runs_by_duration ON runs (finished - started)",
    # filters and sorts on one param / metric: (kid, num, value) ranges; rid is the row
    "CREATE INDEX params_by_value ON params (kid, num, value, rid)",
    "CREATE INDEX metrics_by_value ON metrics (kid, num, value, rid)",
    # lineage: which stages had this object as an out (objects(path, hash) is unique already)
    "CREATE INDEX artifacts_by_object ON artifacts (oid, kind, sid)",
)

# Migration 3: data-check verdicts, one row per dataset validated (a standalone
# `opsctl data validate`, or a gate of a run). A verdict is about data, not about the run
# that asked for it: ``rid`` is NULL for a standalone validation, and a run's deletion
# leaves its verdicts as standalone ones (ON DELETE SET NULL) instead of dropping what is
# still true of that data. ``data_hash`` is '' when unknown. ``failures`` is JSON: the
# failing checks with their counts and a few example rows (small by construction).
_V3 = (
    """
    CREATE TABLE validations (
        vid         INTEGER PRIMARY KEY,
        rid         INTEGER REFERENCES runs (rid) ON DELETE SET NULL,
        stage       TEXT,
        path        TEXT NOT NULL,
        data_hash   TEXT NOT NULL DEFAULT '',
        checks_hash TEXT NOT NULL,
        passed      INTEGER NOT NULL CHECK (passed IN (0, 1)),
        n_rows      INTEGER NOT NULL DEFAULT 0,
        n_checks    INTEGER NOT NULL DEFAULT 0,
        cached      INTEGER NOT NULL DEFAULT 0,  -- taken from an earlier passing verdict, not re-run
        failures    TEXT NOT NULL DEFAULT '[]',
        at          REAL NOT NULL,
        duration    REAL
    )
    """,
    # the last verdict of a path (the Data screen), and how many it had
    "CREATE INDEX validations_by_path ON validations (path, at)",
    # the verdict cache: did this data pass these checks before? (and lineage: this version's verdict)
    "CREATE INDEX validations_by_hash ON validations (data_hash, checks_hash, passed)",
    # a run's checks (`opsctl runs show`)
    "CREATE INDEX validations_by_run ON validations (rid)",
)

# Migration 4: drift checks, one row per comparison of a dataset with its reference (a
# standalone `opsctl monitor drift`, or a drift gate of a run; ``rid`` as for validations).
# ``reference`` is what the user named (a path, a profile, NAME@VERSION) and
# ``reference_hash`` the md5 of its bytes, which is how a model version's profile finds the
# checks made against it. ``columns`` is JSON: per column its method, statistic, p-value,
# threshold and verdict (no data: a few hundred bytes per column).
_V4 = (
    """
    CREATE TABLE drift_checks (
        did             INTEGER PRIMARY KEY,
        rid             INTEGER REFERENCES runs (rid) ON DELETE SET NULL,
        stage           TEXT,
        path            TEXT NOT NULL,
        data_hash       TEXT NOT NULL DEFAULT '',
        reference       TEXT NOT NULL,
        reference_hash  TEXT NOT NULL DEFAULT '',
        drift           INTEGER NOT NULL CHECK (drift IN (0, 1)),
        share           REAL NOT NULL,
        threshold_share REAL NOT NULL,
        n_columns       INTEGER NOT NULL DEFAULT 0,
        n_drifted       INTEGER NOT NULL DEFAULT 0,
        n_rows          INTEGER NOT NULL DEFAULT 0,
        columns         TEXT NOT NULL DEFAULT '[]',
        at              REAL NOT NULL,
        duration        REAL
    )
    """,
    "CREATE INDEX drift_checks_by_path ON drift_checks (path, at)",
    "CREATE INDEX drift_checks_by_reference ON drift_checks (reference_hash, at)",
    "CREATE INDEX drift_checks_by_run ON drift_checks (rid)",
)

# Migration 5: where each stage ran. ``worker`` is a remote executor's worker address
# (``tcp://10.0.0.7:40123``), NULL for a stage run on this host (local, docker) or
# recorded by an older opsctl; ``attempts`` counts the runs of the stage (above 1 when its
# worker died and it was run again elsewhere). The index answers "where did this stage last
# run" (the dashboard's pipeline screen) without reading every run's stages.
_V5 = (
    "ALTER TABLE stages ADD COLUMN worker TEXT",
    "ALTER TABLE stages ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1 CHECK (attempts >= 1)",
    "CREATE INDEX stages_by_name ON stages (name, started)",
)

# Migration 6: experiments. A run made by `opsctl exp run` has a row in ``experiments``: its
# group (the sweep), its name, the -S values that made it, and the Git commit holding its
# files (params, dvc.lock) for `exp apply` / `exp branch`, and ``base``, the snapshot of the
# work tree it started from. ``exp_queue`` is the durable queue:
# an entry is ``queued`` until a runner process claims it (``running``, with that process's
# host and pid, so an entry whose runner died goes back to the queue); a finished experiment
# is a run, and its entry is deleted in the transaction that says so. ``base`` is the commit
# of the workspace as it was when the entry was queued (the current commit plus uncommitted
# changes). ``runner``: the `exp run` process that queued it for itself ("host:pid"); NULL
# for `exp run --queue`, whose entries any `exp queue start` takes.
_V6 = (
    """
    CREATE TABLE experiments (
        rid         INTEGER PRIMARY KEY REFERENCES runs (rid) ON DELETE CASCADE,
        grp         TEXT NOT NULL,
        name        TEXT NOT NULL,
        overrides   TEXT NOT NULL DEFAULT '[]',
        git_ref     TEXT,
        base        TEXT
    )
    """,
    "CREATE INDEX experiments_by_group ON experiments (grp)",
    """
    CREATE TABLE exp_queue (
        qid         INTEGER PRIMARY KEY AUTOINCREMENT,
        grp         TEXT NOT NULL,
        name        TEXT NOT NULL,
        overrides   TEXT NOT NULL DEFAULT '[]',
        base        TEXT NOT NULL,
        branch      TEXT,
        executor    TEXT,
        queued      REAL NOT NULL,
        status      TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running')),
        runner      TEXT,
        owner_host  TEXT,
        owner_pid   INTEGER,
        run_id      TEXT
    )
    """,
)

# Migration 7: a run's plots (store/plots.py): its plot definitions, and each plot file by md5,
# with the bytes only when the DVC cache doesn't hold them and they fit the run's cap.
_V7 = (
    """
    CREATE TABLE run_plots (
        rid         INTEGER PRIMARY KEY REFERENCES runs (rid) ON DELETE CASCADE,
        definitions TEXT NOT NULL,
        errors      TEXT NOT NULL DEFAULT '{}'
    )
    """,
    """
    CREATE TABLE run_plot_files (
        rid         INTEGER NOT NULL REFERENCES runs (rid) ON DELETE CASCADE,
        path        TEXT NOT NULL,
        md5         TEXT NOT NULL,
        size        INTEGER NOT NULL,
        content     BLOB,
        omitted     INTEGER NOT NULL DEFAULT 0 CHECK (omitted IN (0, 1)),
        PRIMARY KEY (rid, path)
    ) WITHOUT ROWID
    """,
)

MIGRATIONS: tuple[Sequence[str], ...] = (_V1, _V2, _V3, _V4, _V5, _V6, _V7)
LATEST_VERSION = len(MIGRATIONS)


def user_version(conn: sqlite3.Connection) -> int:
    """The schema version of the store behind ``conn`` (0: an empty file)."""
    return conn.execute("PRAGMA user_version").fetchone()[0]


def check_version(version: int, label: str) -> None:
    """Refuse a store written by a newer opsctl: its tables may mean something this code
    does not know, and writing to it could break the newer opsctl that owns it."""
    if version > LATEST_VERSION:
        raise StoreVersionError(
            f"the run store {label} was written by a newer opsctl "
            f"(schema {version}; this opsctl knows up to {LATEST_VERSION})",
            hint="upgrade opsctl (pip install -U opsctl) to read it",
        )


def migrate(conn: sqlite3.Connection, target: int = LATEST_VERSION, *, label: str = "") -> int:
    """Bring the store to version ``target`` (default: the latest); return the version it had.

    ``conn`` must be in autocommit mode (``isolation_level=None``): the migration is one
    ``BEGIN IMMEDIATE`` transaction, and the version is read again inside it, so a store
    that another process migrated meanwhile is left alone. ``target`` below the latest
    exists for tests, which build a store as an older opsctl left it.
    """
    if not 0 <= target <= LATEST_VERSION:
        raise ValueError(f"no schema version {target} (0..{LATEST_VERSION})")
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = user_version(conn)
        check_version(current, label or "(this file)")
        for version in range(current + 1, target + 1):
            for statement in MIGRATIONS[version - 1]:
                conn.execute(statement)
        if target > current:
            # PRAGMA takes no parameters; both numbers are ints from this module
            conn.execute(f"PRAGMA user_version = {int(target)}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # some errors (a full disk) have rolled it back already
            conn.execute("ROLLBACK")
        raise
    return current
