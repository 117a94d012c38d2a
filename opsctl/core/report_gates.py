"""``opsctl report --fail-on EXPR``: the gates a review report is judged by.

An expression names what must *not* happen: ``metrics.accuracy<0.8`` fails the report when
accuracy is below 0.8, ``metrics.accuracy.delta<-0.01`` when it fell by more than 0.01 against
the base, ``metrics.loss.delta_pct>5`` when loss rose by more than 5 %, ``checks`` when a data
check failed on the head's data, ``drift`` when a dataset drifted. (The pipeline's own data
gates are core/gates.py; these judge a finished report.)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opsctl.errors import UsageError

if TYPE_CHECKING:
    from opsctl.core.report import MetricRow, Report

OPERATORS = ("<=", ">=", "==", "!=", "<", ">")
FIELDS = ("delta_pct", "delta")  # longest first: `.delta_pct` must not read as `.delta` + `_pct`
_METRIC = re.compile(  # a name holds no operator character: `metrics.a<<1` is not the metric `a<`
    r"^metrics\.(?P<name>[^<>=!\s][^<>=!]*?)\s*(?P<op><=|>=|==|!=|<|>)\s*"
    r"(?P<value>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)$"
)
EXAMPLES = "metrics.accuracy<0.8, metrics.accuracy.delta<-0.01, metrics.loss.delta_pct>5, checks, drift"


@dataclass(frozen=True)
class Gate:
    text: str  # as given
    kind: str  # metric | checks | drift
    name: str = ""  # the metric as written, with its field suffix (resolved against the report)
    op: str = ""
    threshold: float = 0.0


@dataclass(frozen=True)
class GateResult:
    gate: str
    failed: bool
    detail: str  # what was compared, in words: "accuracy 0.75 < 0.8"

    def as_json(self) -> dict:
        return {"gate": self.gate, "failed": self.failed, "detail": self.detail}


def parse_gate(text: str) -> Gate:
    """One ``--fail-on`` expression; UsageError (exit 2) naming the accepted forms otherwise."""
    given = text.strip()
    if given in ("checks", "drift"):
        return Gate(given, given)
    match = _METRIC.match(given)
    if match is None:
        raise UsageError(f"--fail-on {text!r}: not a gate", hint=f"examples: {EXAMPLES}")
    return Gate(given, "metric", match["name"].strip(), match["op"], float(match["value"]))


def evaluate(gates: list[Gate], report: Report) -> list[GateResult]:
    """Each gate judged against the report; UsageError for a metric the report doesn't have
    (a typo must not pass silently)."""
    return [_evaluate(gate, report) for gate in gates]


def _evaluate(gate: Gate, report: Report) -> GateResult:
    if gate.kind == "checks":
        broken = [v for v in report.checks if not v.passed]
        if broken:
            names = ", ".join(f"{v.path} ({v.failed_checks} failed)" for v in broken)
            return GateResult(gate.text, True, f"data checks failed: {names}")
        return GateResult(gate.text, False, f"{len(report.checks)} datasets passed their checks")
    if gate.kind == "drift":
        drifted = [d for d in report.drift if d.drift]
        if drifted:
            names = ", ".join(f"{d.path} ({len(d.drifted)} of {d.compared} columns drifted)" for d in drifted)
            return GateResult(gate.text, True, f"drift: {names}")
        return GateResult(gate.text, False, f"no drift in {len(report.drift)} datasets checked")
    row, field = _metric(gate.name, report.metrics)
    if not _number(row.new):  # gone, NaN or text: a gate that names it can't hold it to anything
        return GateResult(gate.text, True, f"{row.name} has no numeric value in {report.head.label}")
    if field == "value":
        value = row.new
    else:
        value = row.delta if field == "delta" else row.delta_pct
        if value is None:
            why = "no base value to compare with" if not _number(row.old) else "the base value is 0 (no percent change)"
            return GateResult(gate.text, False, f"{row.name}: {why}")
    assert isinstance(value, (int, float))
    hit = _compare(float(value), gate.op, gate.threshold)
    what = row.name if field == "value" else f"{row.name} {'Δ' if field == 'delta' else 'Δ%'}"
    return GateResult(gate.text, hit, f"{what} {_short(float(value))} {gate.op} {_short(gate.threshold)}")


def _metric(name: str, rows: list[MetricRow]) -> tuple[MetricRow, str]:
    """The report's metric a gate names, and which value of it (``value``, ``delta``, ``delta_pct``)."""
    candidates = [(name, "value")]
    for field in FIELDS:
        if name.endswith(f".{field}"):
            candidates.append((name[: -len(field) - 1], field))
    for metric, field in candidates:
        found = [r for r in rows if r.name == metric] or [r for r in rows if r.key == metric]
        if len(found) == 1:
            return found[0], field
        if len(found) > 1:
            files = ", ".join(r.file for r in found)
            raise UsageError(f"--fail-on: metric {metric!r} is in several files ({files})", hint="write FILE:KEY")
    known = ", ".join(r.name for r in rows[:12]) or "none"
    raise UsageError(f"--fail-on: no metric named {name!r} in the report", hint=f"metrics: {known}")


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _compare(value: float, op: str, threshold: float) -> bool:
    return {
        "<": value < threshold,
        "<=": value <= threshold,
        ">": value > threshold,
        ">=": value >= threshold,
        "==": value == threshold,
        "!=": value != threshold,
    }[op]


def _short(value: float) -> str:
    return f"{value:.6g}"
