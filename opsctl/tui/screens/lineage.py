"""Lineage: where a model version or an output came from, as an expandable tree.

The same graph as `opsctl lineage` (core/lineage.py) and the same wording per node,
so the CLI's text tree and this one read alike: artifact → the stage and run that
produced it → that stage's image, params and inputs, back to data and source files.
"""

from __future__ import annotations

from typing import NamedTuple

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Header, Static, Tree
from textual.widgets.tree import TreeNode

from opsctl.core.formatting import OUTCOME_STYLES, STATUS_STYLES, VERDICT_STYLES, value_text, verdict_text, when
from opsctl.core.lineage import Lineage, Node, flat_params
from opsctl.core.lineage import describe as core_describe
from opsctl.tui.screens.base import DashboardScreen
from opsctl.tui.widgets.keybar import KeyBar

# Levels open when the tree appears: the target and what produced it; deeper inputs
# are one keypress away, so a long chain does not bury the first answer.
EXPANDED_DEPTH = 2

KIND_STYLES = {
    "artifact": "bold",
    "data": "bold blue",
    "source": "bold",
    "stage": "bold magenta",
    "run": "bold",
    "image": "",
    "params": "",
    "unknown": "yellow",
}


class LineageItem(NamedTuple):
    """What a tree node shows: a node of the graph and how its parent relates to it."""

    node: Node
    relation: str | None  # None for the root
    repeat: bool = False  # already shown elsewhere in the tree: not expanded again

    @property
    def run_id(self) -> str | None:
        if self.node.kind in ("run", "stage"):
            return self.node.attrs.get("run")
        return None

    @property
    def stage(self) -> str | None:
        return self.node.attrs.get("stage") if self.node.kind == "stage" else None


class LineageLoaded(Message):
    def __init__(self, target: str, graph: Lineage) -> None:
        super().__init__()
        self.target = target
        self.graph = graph


class LineageFailed(Message):
    def __init__(self, target: str, error: BaseException) -> None:
        super().__init__()
        self.target = target
        self.error = error


def describe(node: Node) -> Text:
    """One node in the CLI's words (core/lineage.py), coloured: the node by its kind,
    a run's status and a stage's outcome by their own colours."""
    text = Text(core_describe(node))
    style = KIND_STYLES.get(node.kind, "")
    if style:
        text.stylize(style, 0, len(node.label) + (6 if node.kind == "stage" else 0))
    a = node.attrs
    if node.kind == "run" and a.get("status"):
        text.highlight_words([a["status"]], STATUS_STYLES.get(a["status"], ""))
    if node.kind == "stage" and a.get("outcome"):
        text.highlight_words([a["outcome"]], OUTCOME_STYLES.get(a["outcome"], ""))
    checks = a.get("checks")
    if isinstance(checks, dict):
        text.highlight_words(
            [verdict_text(checks["passed"], checks.get("failed") or 0)], VERDICT_STYLES[bool(checks["passed"])]
        )
    return text


def item_label(item: LineageItem, target: str | None = None) -> Text:
    label = Text()
    if item.relation:
        label.append(f"{item.relation}  ", style="dim italic")
    elif target and target.rstrip("/") != item.node.label:
        label.append(f"{target} → ", style="bold")  # a model version: name@version, then its file
    label.append_text(describe(item.node))
    if item.repeat:
        label.append("  (see above)", style="dim")
    return label


def details(item: LineageItem) -> Text:
    """Everything recorded about the node under the cursor, hashes in full."""
    node = item.node
    text = Text.assemble((node.kind, "bold"), f"  {node.id}\n")
    for key, value in node.attrs.items():
        if value is None or value == "":
            continue
        if key == "started":
            value = when(value)
        elif key == "duration":
            value = f"{value:.1f}s" if isinstance(value, (int, float)) else value
        elif key == "values" and isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in flat_params(value))
        elif key == "checks" and isinstance(value, dict):
            by = f"run {value['run'][:8]}" if value.get("run") else "opsctl data validate"
            value = (
                f"{verdict_text(value['passed'], value.get('failed') or 0)} "
                f"(checks {value.get('checks_hash')}, {when(value.get('at'))}, {by})"
            )
        text.append(f"{key}: ", style="dim")
        text.append(f"{value_text(value)}\n")
    if item.stage and item.run_id:
        text.append("enter opens this stage in its run", style="italic")
    elif item.stage:
        text.append("no opsctl run recorded this stage: no log, image or commit to show", style="italic")
    elif item.run_id:
        text.append("enter opens this run", style="italic")
    return text


class LineageTree(Tree):
    """The tree, with enter described for the help screen as what it does here."""

    BINDINGS = [Binding("enter", "select_cursor", "Open run / expand or collapse", show=False)]


class LineageScreen(DashboardScreen):
    HELP = (
        "Where a model version (NAME@VERSION) or an output came from: the stage and run "
        "that produced it, with code commit, params and image, back through each input's "
        "hash to the raw data and source files. Enter on a run or stage opens it."
    )
    CSS_PATH = "lineage.tcss"
    AUTO_FOCUS = "#lineage-tree"
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("e", "expand_all", "Expand all"),
        Binding("c", "collapse", "Collapse to the top levels"),
        Binding("r", "reload", "Reload"),
    ]

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target
        self.graph: Lineage | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        tree: LineageTree = LineageTree(Text(self.target), id="lineage-tree")
        tree.auto_expand = False  # enter opens runs and stages; other nodes toggle in the handler
        yield tree
        yield Static(id="lineage-empty", classes="empty")
        yield Static(id="lineage-detail")
        yield KeyBar()

    def on_mount(self) -> None:
        self.sub_title = f"lineage of {self.target}"
        self._start_load()

    # -- loading -----------------------------------------------------------------------
    def _start_load(self) -> None:
        self.query_one(LineageTree).loading = True
        self._load(self.target)

    @work(thread=True, exclusive=True, group="lineage")
    def _load(self, target: str) -> None:
        try:
            graph = self.services.lineage(target)
        except Exception as exc:  # noqa: BLE001 - a toast; the screen stays usable
            self.post_message(LineageFailed(target, exc))
            return
        self.post_message(LineageLoaded(target, graph))

    def on_lineage_failed(self, message: LineageFailed) -> None:
        tree = self.query_one(LineageTree)
        tree.loading = False
        self.show_error(message.error)
        if self.graph is None:
            tree.display = False
            empty = self.query_one("#lineage-empty", Static)
            empty.display = True
            empty.update(
                Text(
                    f"No lineage for {message.target}.\n\n"
                    "Give a DVC-tracked output path (models/model.pkl) or a registered model "
                    "version NAME@VERSION. Press escape to go back."
                )
            )

    def on_lineage_loaded(self, message: LineageLoaded) -> None:
        self.graph = graph = message.graph
        tree = self.query_one(LineageTree)
        tree.loading = False
        tree.display = True
        self.query_one("#lineage-empty", Static).display = False
        root_item = LineageItem(graph.nodes[graph.root], None)
        tree.reset(item_label(root_item, message.target), root_item)
        seen = {graph.root}
        self._add_branches(tree.root, graph.root, seen, {graph.root}, depth=1)
        tree.root.expand()
        tree.move_cursor(tree.root)
        self._show_details(root_item)

    def _add_branches(self, parent: TreeNode, node_id: str, seen: set[str], ancestors: set[str], depth: int) -> None:
        assert self.graph is not None
        children = self.graph.ordered_children(node_id)
        for child_id, relation in children:
            node = self.graph.nodes.get(child_id)
            if node is None:
                continue
            # A stage or artifact reached twice (two stages read one file) is drawn once; a
            # node that is its own ancestor would recurse forever.
            repeat = (child_id in seen and node.kind in ("artifact", "stage")) or child_id in ancestors
            item = LineageItem(node, relation, repeat)
            seen.add(child_id)
            if repeat or not self.graph.children(child_id):
                parent.add_leaf(item_label(item), item)
                continue
            branch = parent.add(item_label(item), item, expand=depth < EXPANDED_DEPTH)
            self._add_branches(branch, child_id, seen, ancestors | {child_id}, depth + 1)

    # -- keys and events ---------------------------------------------------------------
    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted) -> None:
        if isinstance(event.node.data, LineageItem):
            self._show_details(event.node.data)

    def on_tree_node_selected(self, event: Tree.NodeSelected) -> None:
        item = event.node.data
        if not isinstance(item, LineageItem):
            return
        if item.run_id:
            self.opsctl_app.open_run(item.run_id, stage=item.stage)
        elif event.node.allow_expand:
            event.node.toggle()

    def _show_details(self, item: LineageItem) -> None:
        self.query_one("#lineage-detail", Static).update(details(item))

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_reload(self) -> None:
        self._start_load()

    def action_expand_all(self) -> None:
        self.query_one(LineageTree).root.expand_all()

    def action_collapse(self) -> None:
        tree = self.query_one(LineageTree)

        def fold(node: TreeNode, depth: int) -> None:
            for child in node.children:
                if depth < EXPANDED_DEPTH:
                    child.expand()
                else:
                    child.collapse()
                fold(child, depth + 1)

        tree.root.expand()
        fold(tree.root, 1)
