#!/usr/bin/env python3
"""`opsctl ui` over the 100,000-run store of bench/runs.py: time to the first page of
runs, and from a key press to its screen, with a bare Textual app as the yardstick.

    .venv/bin/python bench/ui.py [--count 100000] [--runs 7] [--keys 15] [--batch 5000] [--fresh] [--tmp DIR]

Store: bench/runs.py's generated store (COUNT runs, cached under .bench/runs/, made
again when the store's code changed: ~2.5 minutes), copied to .opsctl/opsctl.db of a
project made as bench/runs.py makes it (git init + dvc init by the real CLIs, .opsctl/
ignored, committed) and fsynced before any timing.

Start-up, as a user starts it: a fresh `python -c PROBE` in the project. The parent
takes time.time() just before spawning it and passes it in argv; the probe imports
opsctl.tui.app, opsctl.core.dashboard and open_project, runs
`OpsctlApp(Dashboard(open_project())).run_test(size=(160, 50))` headless and polls
with `pilot.pause(0.01)` (each ends with the screen's layout and compositor update:
everything but the write to a terminal) until the RunsScreen's DataTable#runs holds
its rows, drawn ("settled": every DataTable has measured its rows, which it defers
to idle time, and no layout or repaint is pending after the last update), and prints
time.time() minus the parent's stamp. The page is checked (PAGE_SIZE rows, the
store's newest run first, "runs 1–100 of COUNT"). Yardstick: the
same probe for a bare Textual app whose on_mount fills a DataTable with 100 rows x 13
columns of constant strings (Textual's own floor: its import, app start, one table).
Informational: the opsctl probe with opsctl's entry imported first (opsctl.__main__,
the fast path and tui/launch.py: what `opsctl ui` imports before the app; no typer). Median of RUNS each after a
warm-up of 2, the three interleaved (rotating which goes first), with bytecode written
by the warm-ups into a cache of the run's own (PYTHONPYCACHEPREFIX;
PYTHONDONTWRITEBYTECODE cleared), as bench/runs.py does. Target: <= 1.0 s.

Key presses, in this process, with the pilot of a warm app over the same store (after
its first page), from just before the key is sent to the condition first seen true,
on a settled screen (as above):
  down    the runs table's cursor_row moved one row
  enter   app.screen is a RunScreen of the run under the cursor (one screen pushed) and
          its DataTable#stages lists the run's stages
  escape  app.screen is the RunsScreen again (the screen stack as before)
  ]       the summary says "runs N+1–N+100 of COUNT" and the table holds PAGE_SIZE
          rows whose first is not the previous page's (the last page is checked
          against the store)
Each way, median of KEYS presses after 2 warm-ups; target <= 100 ms for down, enter and
escape (the issue's move, open run, back; ] is shown, informational), for:
  sent    the Key event `pilot.press` sends, through the same driver, then polls of
          `pilot.pause(0.002)` (each ends with a layout and compositor update);
and alongside, informational, the same through `await pilot.press(KEY)`, then
`pilot.pause()`, then the polls: pilot.press waits for the app to be idle after the
key (two `wait_for_idle`, each at least a 20 ms sleep, until the whole process,
worker threads included, is quiet), which puts a floor of ~60 ms under every key.
Yardstick: `down` in the bare app's 100-row table, both ways, measured before and
after opsctl's keys. Informational: the table's row count (paging: PAGE_SIZE rows,
not the store) and the store's size.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _timing import report_limit_against
from runs import ENV, STAGES, add_store_arguments, generated_store, project_with_store

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from anywhere: the opsctl being measured is this checkout's

from opsctl.store import RunStore  # noqa: E402

START_TARGET = 1.0  # seconds, start to the first rendered page of runs
KEY_TARGET = 0.100  # seconds, a key press to its screen rendered
# The issue names move, open run and back; a next page re-renders every visible cell of
# the table (Textual draws ~0.25 ms a cell here), so it is shown, not held to the target.
TARGET_KEYS = ("down", "enter", "escape")
SIZE = (160, 50)
WARMUP = 2

# The yardstick app: shared by the start-up probe and the in-process key timing.
BARE_APP = '''
from textual.app import App
from textual.widgets import DataTable

BARE_COLUMNS = ["", "run", "status", "started", "duration", "commit", "stages",
                "accuracy", "f1", "log_loss", "precision", "recall", "roc_auc"]
BARE_ROW = ["", "a1b2c3d4", "succeeded", "2020-09-13 12:26", "12m 03s", "0f1e2d3c", "5 ran, 0 cached",
            "0.93121", "0.88412", "0.21433", "0.90118", "0.87001", "0.95310"]


class BareApp(App):
    def compose(self):
        yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)

    def on_mount(self):
        table = self.query_one(DataTable)
        table.add_columns(*BARE_COLUMNS)
        for i in range(100):
            table.add_row(*BARE_ROW, key=str(i))
'''

# "Rendered": the state sought is on screen only once nothing of it waits to be drawn.
# DataTable measures new rows and columns when idle, and that changes what is drawn;
# shared by the probes and the key timing.
SETTLED = '''
def settled(screen):
    """Drawn as it stands: each DataTable has measured its rows (it does when idle) and no
    layout or repaint is left pending since the screen's last compositor update."""
    from textual.widgets import DataTable

    if any(t._require_update_dimensions or t._updated_cells for t in screen.query(DataTable)):
        return False
    return not (screen._dirty_widgets or screen._layout_required or screen._repaint_required
                or screen._scroll_required)
'''
_settled_ns: dict = {}
exec(SETTLED, _settled_ns)  # noqa: S102 - the same settled() as the probes run
settled = _settled_ns["settled"]

# Both probes: argv = [the parent's time.time() before spawning, the checkout]; print one
# JSON line. Import first (timed), then make the app and wait for its rows.
PROBE_HEAD = (
    '''
import sys, time
T0 = float(sys.argv[1])
sys.path.insert(0, sys.argv[2])
'''
    + SETTLED
)
PROBE_OPSCTL = (
    PROBE_HEAD
    + '''
{cli}
import asyncio, json
from opsctl.core.dashboard import Dashboard
from opsctl.core.project import open_project
from opsctl.tui.app import OpsctlApp
IMPORTED = time.time()


async def main():
    app = OpsctlApp(Dashboard(open_project()), refresh_interval=1.0)
    async with app.run_test(size={size}) as pilot:
        while True:
            await pilot.pause(0.01)
            screen = app.screen
            if type(screen).__name__ == "RunsScreen":
                tables = screen.query("#runs")
                if len(tables) and tables.first().row_count and settled(screen):
                    table = tables.first()
                    break
        done = time.time()
        first = table.coordinate_to_cell_key((0, 0))[0].value
        summary = str(screen.query_one("#summary").content)
        print(json.dumps({{"total": done - T0, "imports": IMPORTED - T0, "rows": table.row_count,
                          "first": first, "summary": summary}}), flush=True)

asyncio.run(main())
'''
)
PROBE_BARE = (
    PROBE_HEAD
    + '''
import asyncio, json
'''
    + BARE_APP
    + '''
IMPORTED = time.time()


async def main():
    app = BareApp()
    async with app.run_test(size={size}) as pilot:
        while True:
            await pilot.pause(0.01)
            tables = app.screen.query("#runs")
            if len(tables) and tables.first().row_count and settled(app.screen):
                table = tables.first()
                break
        done = time.time()
        print(json.dumps({{"total": done - T0, "imports": IMPORTED - T0, "rows": table.row_count}}), flush=True)

asyncio.run(main())
'''
)


def probe(code: str, project: Path, env: dict) -> dict:
    """One start-up: spawn the probe, stamped just before; what it printed."""
    cmd = [sys.executable, "-c", code]
    started = time.time()
    proc = subprocess.run(
        [*cmd, repr(started), str(REPO)],
        cwd=project,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode:
        raise SystemExit(f"start-up probe failed (exit {proc.returncode}) in {project}:\n{proc.stdout}{proc.stderr}")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise SystemExit(f"start-up probe printed no result:\n{proc.stdout}{proc.stderr}")
    return json.loads(lines[-1])


# -- key presses, in this process ------------------------------------------------------


def post_key(app, key: str) -> None:
    """The Key event `pilot.press` sends, through the same driver, without the idle waits
    it does after it (two `wait_for_idle`, each at least one 20 ms sleep and until the
    whole process, worker threads included, is quiet)."""
    import unicodedata

    from textual import events
    from textual.keys import REPLACED_KEYS, _character_to_key, _get_unicode_name_from_key

    if len(key) == 1 and not key.isalnum():
        key = _character_to_key(key)
    try:
        char = unicodedata.lookup(_get_unicode_name_from_key(REPLACED_KEYS.get(key, key)))
    except KeyError:
        char = key if len(key) == 1 else None
    event = events.Key(key, char)
    event.set_sender(app)
    app._driver.send_message(event)


async def timed_post(pilot, key: str, done) -> float:
    """From just before the key is sent to ``done()`` first seen true; every check follows
    a `pilot.pause(0.002)`, which ends with the screen's layout and compositor update."""
    started = time.perf_counter()
    post_key(pilot.app, key)
    while True:
        await pilot.pause(0.002)
        if done() and settled(pilot.app.screen):
            return time.perf_counter() - started
        if time.perf_counter() - started > 30:
            raise SystemExit(f"after pressing {key!r}, the screen did not get there in 30 s")


async def timed_press(pilot, key: str, done) -> float:
    """From just before `await pilot.press(key)` to ``done()`` first seen true, checked after
    a `pilot.pause()` and then after each `pilot.pause(0.002)`."""
    started = time.perf_counter()
    await pilot.press(key)
    await pilot.pause()
    while not (done() and settled(pilot.app.screen)):
        await pilot.pause(0.002)
        if time.perf_counter() - started > 30:
            raise SystemExit(f"after pressing {key!r}, the screen did not get there in 30 s")
    return time.perf_counter() - started


METHODS = {"post": timed_post, "press": timed_press}


async def until(pilot, done, what: str, timeout: float = 60) -> None:
    deadline = time.perf_counter() + timeout
    while True:
        await pilot.pause(0.01)
        if done() and settled(pilot.app.screen):
            return
        if time.perf_counter() > deadline:
            raise SystemExit(f"timed out waiting for {what}")


async def bare_downs(keys: int, method: str) -> list[float]:
    """The yardstick: `down` in the bare app's 100-row table."""
    namespace: dict = {}
    exec(BARE_APP, namespace)  # noqa: S102 - the same app the start-up probe runs
    app = namespace["BareApp"]()
    samples = []
    timed = METHODS[method]
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one("#runs")
        await until(pilot, lambda: table.row_count == 100, "the bare app's rows")
        for i in range(WARMUP + keys):
            before = table.cursor_row
            t = await timed(pilot, "down", lambda: table.cursor_row != before)
            if i >= WARMUP:
                samples.append(t)
    return samples


async def opsctl_keys(project: Path, keys: int, count: int, method: str) -> dict:
    from textual.widgets import DataTable

    from opsctl.core.dashboard import Dashboard
    from opsctl.core.project import open_project
    from opsctl.tui.app import OpsctlApp
    from opsctl.tui.screens.run import RunScreen
    from opsctl.tui.screens.runs import PAGE_SIZE, RunsScreen

    app = OpsctlApp(Dashboard(open_project(project)), refresh_interval=1.0)
    times: dict[str, list[float]] = {"down": [], "enter": [], "escape": [], "]": []}
    result: dict = {"times": times, "page_size": PAGE_SIZE}
    timed = METHODS[method]
    async with app.run_test(size=SIZE) as pilot:

        def first_page() -> bool:
            if not isinstance(app.screen, RunsScreen):
                return False
            tables = app.screen.query("#runs")
            return bool(len(tables)) and tables.first().row_count > 0

        await until(pilot, first_page, "the first page of runs")
        runs_screen = app.screen
        table = runs_screen.query_one("#runs", DataTable)
        summary = runs_screen.query_one("#summary")
        home_depth = len(app.screen_stack)
        result["rows"] = table.row_count
        result["summary"] = str(summary.content)

        def cursor_run() -> str:
            return table.coordinate_to_cell_key(table.cursor_coordinate)[0].value

        # down: one row further each time (2 + KEYS presses stay within the page).
        if WARMUP + keys >= table.row_count:
            raise SystemExit(f"--keys {keys}: the page has only {table.row_count} rows to move down")
        for i in range(WARMUP + keys):
            before = table.cursor_row
            t = await timed(pilot, "down", lambda: table.cursor_row != before)
            if table.cursor_row != before + 1:
                raise SystemExit(f"down moved the cursor from row {before} to {table.cursor_row}")
            if i >= WARMUP:
                times["down"].append(t)

        # enter / escape: open the run under the cursor, back to the table.
        for i in range(WARMUP + keys):
            run_id = cursor_run()

            def run_shown() -> bool:
                screen = app.screen
                if not isinstance(screen, RunScreen):
                    return False
                tables = screen.query("#stages")  # not there until the screen is composed
                return bool(len(tables)) and tables.first().row_count > 0

            t_enter = await timed(pilot, "enter", run_shown)
            if app.screen.run_id != run_id or len(app.screen_stack) != home_depth + 1:
                raise SystemExit(
                    f"enter on {run_id} opened {app.screen.run_id}, screen stack "
                    f"{[type(s).__name__ for s in app.screen_stack]}"
                )
            stages = app.screen.query_one("#stages", DataTable).row_count
            if stages != len(STAGES):
                raise SystemExit(f"the run screen of {run_id} lists {stages} stages, expected {len(STAGES)}")
            t_escape = await timed(pilot, "escape", lambda: app.screen is runs_screen)
            if len(app.screen_stack) != home_depth:
                raise SystemExit(f"escape left the screen stack {[type(s).__name__ for s in app.screen_stack]}")
            if i >= WARMUP:
                times["enter"].append(t_enter)
                times["escape"].append(t_escape)

        # ]: the next page from the store, replacing the table's rows.
        if runs_screen.page_offset != 0:
            raise SystemExit(f"the runs table is at offset {runs_screen.page_offset} before paging")
        for i in range(WARMUP + keys):
            start = runs_screen.page_offset + PAGE_SIZE
            if start + PAGE_SIZE > count:
                raise SystemExit(f"--keys {keys}: the store has too few runs to page that far")
            expected = f"runs {start + 1:,}–{start + PAGE_SIZE:,} of {count:,}"
            previous_first = table.coordinate_to_cell_key((0, 0))[0].value

            def next_page() -> bool:
                return (
                    str(summary.content).startswith(expected)
                    and table.row_count == PAGE_SIZE
                    and table.coordinate_to_cell_key((0, 0))[0].value != previous_first
                )

            t = await timed(pilot, "]", next_page)
            if i >= WARMUP:
                times["]"].append(t)
        result["paged_rows"] = table.row_count
        result["paged_summary"] = str(summary.content)
        with RunStore(project / ".opsctl" / "opsctl.db") as store:  # the page is the store's
            want = [r.id for r in store.list_runs(limit=PAGE_SIZE, offset=runs_screen.page_offset, metric_keys=[])]
        got = [table.coordinate_to_cell_key((row, 0))[0].value for row in range(table.row_count)]
        if got != want:
            raise SystemExit(f"page at offset {runs_screen.page_offset}: the table's runs are not the store's")
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    add_store_arguments(parser)  # bench/runs.py's store
    parser.add_argument("--runs", type=int, default=7, help="timed start-ups per probe (median)")
    parser.add_argument("--keys", type=int, default=15, help="timed presses per key (median)")
    args = parser.parse_args()
    if args.runs < 1 or args.keys < 1:
        parser.error("--runs and --keys must be at least 1")

    cached_db, info = generated_store(args.count, args.batch, args.fresh)
    how = f"cached, generated {info['made']}" if info["cached"] else f"generated now in {info['seconds']:.1f} s"
    print(f"store: {args.count:,} runs, {info['bytes'] / 2**20:.1f} MiB ({how})", flush=True)

    work = Path(tempfile.mkdtemp(prefix="opsctl-bench-ui-", dir=args.tmp))
    try:
        project, db = project_with_store(work, cached_db)
        with RunStore(db) as store:
            total = store.count_runs()
            newest = store.list_runs(limit=1, metric_keys=[])[0].id
        if total != args.count:
            raise SystemExit(f"the store holds {total:,} runs, expected {args.count:,}")
        print(f"project: {project}", flush=True)

        # -- start-up, in fresh processes, interleaved --
        from opsctl.tui.screens.runs import PAGE_SIZE

        env = {**ENV, "PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": str(work / "pycache")}
        probes = {
            "opsctl": PROBE_OPSCTL.format(size=SIZE, cli=""),
            "bare": PROBE_BARE.format(size=SIZE),
            "cli": PROBE_OPSCTL.format(size=SIZE, cli="import opsctl.__main__, opsctl.cli.fastpath, opsctl.tui.launch"),
        }
        expected_summary = f"runs 1–{min(PAGE_SIZE, total):,} of {total:,}"
        for name, code in probes.items():  # warm-up: bytecode, page cache; and the page is right
            for _ in range(WARMUP):
                got = probe(code, project, env)
            if name == "bare":
                if got["rows"] != 100:
                    raise SystemExit(f"the bare app showed {got['rows']} rows, not 100")
            elif (got["rows"], got["first"]) != (min(PAGE_SIZE, total), newest) or not got["summary"].startswith(
                expected_summary
            ):
                raise SystemExit(f"the first page is not the store's newest {PAGE_SIZE} runs: {got}")
        results: dict[str, list[dict]] = {name: [] for name in probes}
        order = list(probes)
        for i in range(args.runs):
            for name in order[i % len(order) :] + order[: i % len(order)]:
                results[name].append(probe(probes[name], project, env))

        def med(name: str, field: str = "total") -> float:
            return statistics.median(r[field] for r in results[name])

        # -- key presses, in this process --
        # The key yardstick before and after opsctl's keys; each way of pressing in turn.
        bare = {m: asyncio.run(bare_downs(args.keys, m)) for m in METHODS}
        keyed = {m: asyncio.run(opsctl_keys(project, args.keys, total, m)) for m in METHODS}
        for m in METHODS:
            bare[m] += asyncio.run(bare_downs(args.keys, m))
        bare_down = {m: statistics.median(bare[m]) for m in METHODS}
        print()
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the end of the timings")
        post = keyed["post"]
        print(
            f"store: {total:,} runs, {db.stat().st_size / 2**20:.1f} MiB; the runs table holds "
            f"{post['rows']} rows (PAGE_SIZE {post['page_size']}), {post['paged_rows']} after paging "
            f"to \"{post['paged_summary']}\""
        )
        width = 44
        print(
            f"{'bare Textual app, 100-row DataTable':<{width}} {med('bare'):7.3f} s   (start-up yardstick; "
            f"its imports {med('bare', 'imports'):.3f} s)"
        )
        ok = report_limit_against(
            "start to first page of runs", med("opsctl"), START_TARGET, "bare app", med("bare"), width=width
        )
        print(
            f"{'  of which imports (informational)':<{width}} {med('opsctl', 'imports'):7.3f} s   "
            f"(opsctl.tui.app, opsctl.core.dashboard, open_project)"
        )
        print(
            f"{'  with the CLI entry first (informational)':<{width}} {med('cli'):7.3f} s   "
            f"(+ opsctl's entry and fast path, as `opsctl ui` starts, no typer: "
            f"{(med('cli') - med('opsctl')) * 1e3:+.0f} ms)"
        )
        print(
            f"keys, median of {args.keys} (bare: of {len(bare['post'])}); the target applies to the key sent as "
            f"pilot.press sends it, then pilot.pause(0.002) polls;\n  alongside, through `await pilot.press` "
            f"(its idle waits included: >= 40 ms of sleeps, and until worker threads are quiet)"
        )
        print(
            f"{'bare app: down':<{width}} {bare_down['post'] * 1e3:7.1f} ms  (key yardstick)"
            f"{'':23}pilot.press {bare_down['press'] * 1e3:6.1f} ms"
        )
        names = {
            "down": "down (cursor moved)",
            "enter": "enter (run screen, its stages)",
            "escape": "escape (back to the runs)",
            "]": "] (next page from the store)",
        }
        for key, label in names.items():
            samples = post["times"][key]
            value = statistics.median(samples)
            pressed = statistics.median(keyed["press"]["times"][key])
            if key in TARGET_KEYS:
                key_ok = value <= KEY_TARGET
                ok &= key_ok
                verdict = f"target <= {KEY_TARGET * 1e3:.0f} ms   {'OK' if key_ok else 'MISSED':<6}"
            else:
                verdict = f"{'(informational)':<25}"
            print(
                f"{label:<{width}} {value * 1e3:7.1f} ms  {verdict}   pilot.press {pressed * 1e3:6.1f} ms   "
                f"({value / bare_down['post']:5.2f}x bare down; slowest {max(samples) * 1e3:.1f} ms)"
            )
        return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
