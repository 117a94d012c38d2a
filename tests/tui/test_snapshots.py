"""Every dashboard screen as an SVG snapshot (pytest-textual-snapshot), from a fixed store.

Runs, a run, help and compare read a real store written with fixed ids and times
(the real Dashboard over a real Git + DVC project). Lineage, pipeline and models
would show random run ids and Git dates from a real pipeline run, so for those the
Dashboard's answers are fixed values of the same core types (the screens' behaviour
over real projects is tested in test_*_screen.py). Times are shown in UTC.

After an intended change of a screen: `pytest tests/tui/test_snapshots.py --snapshot-update`,
then look at the SVGs (the README shows the runs screen's).
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from opsctl.core.check_records import record_verdicts
from opsctl.core.checks import DatasetVerdict, Example, Failure
from opsctl.core.dashboard import Dashboard, PipelineStageView
from opsctl.core.lineage import Lineage, Node
from opsctl.core.project import open_project
from opsctl.core.registry import HistoryEvent, ModelDetails, ModelVersion
from opsctl.store import ArtifactRecord, NewRun, RunRecord, RunStore, StageRecord
from opsctl.store.drift_checks import DriftRecord
from opsctl.store.plots import RecordedFile, RecordedPlots, record_plots
from opsctl.tui.app import OpsctlApp
from tests.conftest import git_dvc_project

SIZE = (130, 34)
T0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC
STAGES = ["prepare", "featurize", "train", "evaluate"]
PROFILE_MD5 = "5e1f" * 8  # of the reference profile registered with churn v0.0.2


def run_id(n: int) -> str:
    return f"{(n * 2654435761) % (1 << 48):012x}"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = git_dvc_project(tmp_path_factory.mktemp("snapshots") / "churn", "churn", executor="docker")
    newest = run_id(11)
    log_dir = root / ".opsctl" / "runs" / newest
    log_dir.mkdir(parents=True)
    (log_dir / "prepare.log").write_text(
        "reading data/raw.csv (12,000 rows)\nwrote data/prepared/train.csv\nwrote data/prepared/test.csv\n"
    )
    records = []
    for n in range(12):
        started = T0 + 3600 * n
        status = "failed" if n == 7 else "succeeded"
        stages = []
        for i, name in enumerate(STAGES):
            failed = status == "failed" and name == "train"
            outcome = (
                "failed"
                if failed
                else ("skipped" if status == "failed" and i > 2 else "cached" if i < 2 and n % 3 else "ran")
            )
            stages.append(
                StageRecord(
                    name,
                    outcome,
                    detail="restored from the run cache" if outcome == "cached" else "",
                    started=started + i * 20,
                    duration=None if outcome == "skipped" else 4.0 + i * 7 + n,
                    cmd=f"python src/{name}.py",
                    image_ref="churn/app:1.4",
                    image_id="sha256:" + "3f9a" * 16,
                    exit_code=None if outcome == "skipped" else (1 if failed else 0),
                    log_path=f".opsctl/runs/{newest}/{name}.log" if n == 11 else None,
                    artifacts=[ArtifactRecord("out", f"data/{name}", f"{n:04d}" + "ab" * 14)],
                )
            )
        records.append(
            RunRecord(
                NewRun(
                    run_id(n),
                    started=started,
                    user="ana",
                    host="ml-box",
                    git_commit=f"{n // 4:02x}c0ffee" + "0" * 32,
                    branch="main",
                    dirty=n == 10,
                    executor="docker",
                    jobs=4,
                ),
                status=status,
                finished=started + 95 + n * 3,
                stages=stages,
                params={"train.n_estimators": 50 + 10 * (n % 4), "train.max_depth": 6, "featurize.max_features": 200},
                metrics={
                    "accuracy": round(0.81 + 0.01 * (n % 5), 3),
                    "f1": round(0.74 + 0.012 * (n % 4), 3),
                    "log_loss": round(0.42 - 0.01 * (n % 5), 3),
                },
            )
        )
    with RunStore(root / ".opsctl" / "opsctl.db") as store:
        store.record_runs(records)
    record_checks(root, newest)
    record_plots_of(root, {run_id(11): 0.35, run_id(10): 0.6})
    return root


def record_plots_of(root: Path, curves: dict[str, float]) -> None:
    """Plots as the runs would have recorded them, with fixed values: an ROC curve (tpr = fpr^K,
    K per run) and a confusion matrix, kept in the store (no DVC cache: the values are known)."""
    definitions = {
        "": {
            "data": {
                "plots/confusion.json": {
                    "template": "confusion",
                    "x": "predicted",
                    "y": "actual",
                    "title": "Confusion matrix (test split)",
                },
                "plots/roc.json": {
                    "x": "fpr",
                    "y": "tpr",
                    "title": "ROC curve (test split)",
                    "x_label": "False positive rate",
                    "y_label": "True positive rate",
                },
            }
        }
    }
    with RunStore(root / ".opsctl" / "opsctl.db") as store:
        for n, (rid, k) in enumerate(curves.items()):
            roc = [{"fpr": i / 20, "tpr": round((i / 20) ** k, 4)} for i in range(21)]
            cells = [(0, 0)] * (48 + n) + [(0, 1)] * (12 - n) + [(1, 0)] * (10 + 2 * n) + [(1, 1)] * (30 - 2 * n)
            confusion = [{"actual": a, "predicted": p} for a, p in cells]
            files = []
            for path, rows in (("plots/confusion.json", confusion), ("plots/roc.json", roc)):
                data = json.dumps(rows).encode()
                files.append(RecordedFile(path, hashlib.md5(data).hexdigest(), len(data), content=data))
            record_plots(store, rid, RecordedPlots(definitions, files))


CHECKS = """\
checks:
  data/raw.csv:
    rows: {min: 1000}
    unique: [[customer_id]]
    columns:
      customer_id: {type: int}
      tenure: {type: int, min: 0, max: 120}
      plan: {type: str, in: [basic, plus, pro]}
  data/features:
    format: parquet
    columns:
      monthly_fee: {type: float, min: 0}
  data/incoming/batch.csv:
    rows: {min: 1}
"""


def record_checks(root: Path, newest: str) -> None:
    """Checks in opsctl.yaml, and verdicts at fixed times: the raw data passed its gate in
    the newest run, the features failed two checks there; an older standalone verdict too."""
    with open(root / "opsctl.yaml", "a") as f:
        f.write(CHECKS)
    (root / "data").mkdir(exist_ok=True)
    (root / "data" / "raw.csv").write_text("customer_id,tenure,plan\n1,3,basic\n")
    (root / "data" / "features").mkdir()
    project = open_project(root)
    checks = project.config.checks
    raw = DatasetVerdict("data/raw.csv", "5c5c" * 8, checks["data/raw.csv"].digest, rows=12000, checks=9)
    features = DatasetVerdict(
        "data/features",
        "77aa" * 8 + ".dir",
        checks["data/features"].digest,
        rows=11800,
        checks=4,
        failures=[
            Failure(
                "min", "monthly_fee", 3, (Example(17, -4.5, "part-0.parquet"), Example(230, -1.0, "part-1.parquet"))
            ),
            Failure("type", "monthly_fee", 1, (Example(4411, "n/a", "part-1.parquet"),)),
        ],
    )
    at = T0 + 11 * 3600 + 30
    older = DatasetVerdict("data/features", "66bb" * 8 + ".dir", checks["data/features"].digest, rows=11500, checks=4)
    assert record_verdicts(project, [older], at=T0) is None  # `opsctl data validate`, before the runs
    assert record_verdicts(project, [raw], run_id=newest, stage="prepare", at=at) is None
    assert record_verdicts(project, [features], run_id=newest, stage="featurize", at=at + 25) is None


class FixedAnswers(Dashboard):
    """The real services for runs; fixed answers where a real project would be random."""

    def lineage(self, target: str) -> Lineage:
        graph = Lineage(root="artifact:models/model.pkl")
        rid = run_id(11)

        def node(node_id, kind, label, **attrs):
            graph.add(Node(node_id, kind, label, attrs))
            return node_id

        model = node(
            graph.root,
            "artifact",
            "models/model.pkl",
            path="models/model.pkl",
            hash="9b1d0c4e5f6a7b8c9d0e1f2a3b4c5d6e",
            output_of="train",
        )
        train = node(
            f"stage:{rid}:train",
            "stage",
            "train",
            stage="train",
            run=rid,
            outcome="ran",
            cmd="python src/train.py",
            started=T0 + 11 * 3600 + 40,
            duration=29.0,
        )
        run_node = node(
            f"run:{rid}",
            "run",
            rid[:8],
            run=rid,
            status="succeeded",
            started=T0 + 11 * 3600,
            git_commit="02c0ffee" + "0" * 32,
            branch="main",
            dirty=False,
            user="ana",
        )
        image = node("image:app", "image", "churn/app:1.4", ref="churn/app:1.4", digest="sha256:" + "3f9a" * 16)
        params = node(
            f"params:{rid}:train",
            "params",
            "params.yaml",
            file="params.yaml",
            values={"train": {"n_estimators": 80, "max_depth": 6}},
        )
        features = node(
            "artifact:data/features",
            "artifact",
            "data/features",
            path="data/features",
            hash="77aa" * 8 + ".dir",
            output_of="featurize",
        )
        source = node("source:src/train.py", "source", "src/train.py", path="src/train.py", hash="1e2d" * 8)
        featurize = node(
            f"stage:{rid}:featurize",
            "stage",
            "featurize",
            stage="featurize",
            run=rid,
            outcome="cached",
            cmd="python src/featurize.py",
        )
        raw = node(
            "data:data/raw.csv",
            "data",
            "data/raw.csv",
            path="data/raw.csv",
            hash="5c5c" * 8,
            dvcfile="data/raw.csv.dvc",
        )
        for src, dst, rel in [
            (model, train, "produced by"),
            (train, run_node, "in run"),
            (train, image, "ran in"),
            (train, params, "used params"),
            (train, features, "read"),
            (train, source, "read"),
            (features, featurize, "produced by"),
            (featurize, run_node, "in run"),
            (featurize, raw, "read"),
        ]:
            graph.link(src, dst, rel)
        return graph

    def pipeline_changes(self):
        return None  # no file watch: the fixed answers stay

    def pipeline(self) -> list[PipelineStageView]:
        rows = [
            ("prepare", 1, [], "up to date", []),
            ("featurize", 2, ["prepare"], "up to date", []),
            ("split", 2, ["prepare"], "up to date", []),
            ("train", 3, ["featurize", "split"], "stale", ["params.yaml: train.n_estimators changed"]),
            ("evaluate", 4, ["train"], "stale", ["upstream train is stale"]),
            ("report", 5, ["evaluate"], "failed", ["never ran"]),
        ]
        return [
            PipelineStageView(name, layer, up, status, reasons, f"python src/{name}.py")
            for name, layer, up, status, reasons in rows
        ]

    def models(self) -> list:
        def version(v, n, stages=(), run=None, profile=None):
            return ModelVersion(
                "churn",
                v,
                f"{n:02x}" + "be" * 19,
                f"churn@{v}",
                datetime(2026, 1, n, 9, 30, tzinfo=timezone.utc),
                "ana",
                "ana@example.com",
                "models/model.pkl",
                "9b1d" * 8,
                run,
                True,
                tuple(stages),
                {"accuracy": 0.8 + n / 100} if run else None,
                "monitor/train.profile.json" if profile else None,
                profile,
            )

        versions = [
            version("v0.0.3", 3, ("staging",), run_id(11)),
            version("v0.0.2", 2, ("prod",), run_id(8), PROFILE_MD5),
            version("v0.0.1", 1),
        ]
        return [
            ModelDetails(
                "churn",
                "models/model.pkl",
                "v0.0.3",
                {"prod": "v0.0.2", "staging": "v0.0.3"},
                False,
                versions,
                {"prod": "v0.0.1"},
            )
        ]

    def model_history(self, name: str) -> list:
        def event(kind, n, version=None, stage=None, before=None, after=None):
            return HistoryEvent(
                kind,
                name,
                version,
                stage,
                before,
                after,
                f"tag{n}",
                f"{n:02x}" + "be" * 19,
                datetime(2026, 1, n, 10, 0, tzinfo=timezone.utc),
                "ana",
                "ana@example.com",
                "",
            )

        return [
            event("promotion", 5, "v0.0.3", "staging", None, "v0.0.3"),
            event("promotion", 4, "v0.0.2", "prod", "v0.0.1", "v0.0.2"),
            event("registration", 3, "v0.0.3"),
            event("registration", 2, "v0.0.2"),
            event("promotion", 2, "v0.0.1", "prod", None, "v0.0.1"),
            event("registration", 1, "v0.0.1"),
        ]

    def allowed_stages(self):
        return ["staging", "prod"]

    def drift_verdicts(self, profile_hashes: list[str]) -> dict:
        """prod's reference: the newest check, three hours ago, found 2 of 5 columns drifted."""
        assert profile_hashes == [PROFILE_MD5]
        columns = [{"column": f"c{n}", "statistic": 0.2, "drift": n < 2, "compared": True} for n in range(5)]
        at = time.time() - 3 * 3600 - 60  # "3h ago" whenever the snapshot is taken
        record = DriftRecord("data/live.csv", "", "churn@v0.0.2", PROFILE_MD5, True, 0.4, 0.4, columns, 500, at)
        return {PROFILE_MD5: record}


@pytest.fixture
def app(project, monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.chdir(project)
    yield OpsctlApp(FixedAnswers(open_project(project)), refresh_interval=3600)
    monkeypatch.undo()
    time.tzset()


async def settled(pilot) -> None:
    """Every worker done and its answer drawn."""
    for _ in range(3):
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
    await pilot.pause(0.05)


def shot(app, snap_compare, *, press: tuple[str, ...] = (), then=None) -> bool:
    """The screen after the first page settled, PRESS sent and THEN(app) done, settled again."""

    async def before(pilot):
        await settled(pilot)
        await pilot.press(*press)
        if then is not None:
            then(pilot.app)
        await settled(pilot)

    return snap_compare(app, terminal_size=SIZE, run_before=before)


def test_runs_screen(app, snap_compare):
    assert shot(app, snap_compare, press=("space", "down", "space"))  # two runs marked


def test_run_screen(app, snap_compare):
    assert shot(app, snap_compare, press=("enter",))


def test_help_screen(app, snap_compare):
    assert shot(app, snap_compare, press=("question_mark",))


def test_compare_screen(app, snap_compare):
    assert shot(app, snap_compare, then=lambda a: a.open_compare([run_id(11), run_id(10), run_id(9)]))


def test_lineage_screen(app, snap_compare):
    assert shot(app, snap_compare, then=lambda a: a.open_lineage("models/model.pkl"))


def test_pipeline_screen(app, snap_compare):
    assert shot(app, snap_compare, press=("2",))


def test_models_screen(app, snap_compare):
    assert shot(app, snap_compare, press=("3",))


def test_data_screen(app, snap_compare):
    assert shot(app, snap_compare, press=("4", "down"))  # the features: their failing checks below


def plot_drawn(pilot):
    """Until the Plots view shows a drawing made for its present size."""

    async def wait(title: str) -> None:
        from opsctl.tui.screens.plots import PlotArea

        for _ in range(400):
            screen = pilot.app.screen
            area = screen.query(PlotArea)
            if area and screen.shown is not None:
                region = area.first().content_region
                title_text = str(screen.query_one("#plot-title").render())
                if title_text == title and screen.shown == (screen.index, region.width, region.height):
                    return
            await pilot.pause(0.05)
        raise AssertionError(f"{title} was never drawn")

    return wait


async def _plots_to_the_roc(pilot) -> None:
    """`g` on the screen in front, then `]` from the confusion matrix to the ROC curve."""
    await pilot.press("g")
    await plot_drawn(pilot)("plot 1/2: plots/confusion.json")
    await pilot.press("right_square_bracket")
    await plot_drawn(pilot)("plot 2/2: plots/roc.json")
    await settled(pilot)


def test_plots_screen(app, snap_compare):
    """A run's ROC curve: `g` on the newest run, `]` from the confusion matrix to the curve."""

    async def before(pilot):
        await settled(pilot)
        await pilot.press("enter")
        await settled(pilot)
        await _plots_to_the_roc(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_plots_screen_overlaid(app, snap_compare):
    """From Compare: the ROC curves of two runs overlaid, the legend naming each."""

    async def before(pilot):
        await settled(pilot)
        pilot.app.open_compare([run_id(11), run_id(10)])
        await settled(pilot)
        await _plots_to_the_roc(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


class NoChecks(FixedAnswers):
    def datasets(self) -> list:
        return []


def test_data_screen_without_checks(project, monkeypatch, snap_compare):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.chdir(project)
    app = OpsctlApp(NoChecks(open_project(project)), refresh_interval=3600)
    try:
        assert shot(app, snap_compare, press=("4",))
    finally:
        monkeypatch.undo()
        time.tzset()
