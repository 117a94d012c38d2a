"""core.report_gates: each `--fail-on` form fails on the right side of its threshold, names a
metric by key or FILE:KEY, refuses what it can't mean (exit 2), and says what it compared.
Reports are built by hand; checks and drift records are plain objects with the fields read."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from opsctl.core.report import MetricRow, Report, Side
from opsctl.core.report_gates import GateResult, evaluate, parse_gate
from opsctl.errors import EXIT_USAGE, UsageError

BASE = Side("main", "main", "a" * 40)
HEAD = Side("workspace", None, "b" * 40, dirty=True)


def report(*rows: MetricRow, checks=(), drift=()) -> Report:
    return Report(BASE, HEAD, metrics=list(rows), checks=list(checks), drift=list(drift))


def row(key: str, old, new, file: str = "metrics.json", name: str | None = None) -> MetricRow:
    return MetricRow(file=file, key=key, name=name or key, old=old, new=new)


def judge(expr: str, rep: Report) -> GateResult:
    (result,) = evaluate([parse_gate(expr)], rep)
    assert result.gate == expr.strip()
    return result


# --- value gates -----------------------------------------------------------------------------

# (operator, threshold, a value that fails the gate, a value just on the other side that passes)
VALUE_CASES = [
    ("<", 0.8, 0.7999, 0.8),
    ("<=", 0.8, 0.8, 0.8001),
    (">", 0.8, 0.8001, 0.8),
    (">=", 0.8, 0.8, 0.7999),
    ("==", 0.8, 0.8, 0.8001),
    ("!=", 0.8, 0.8001, 0.8),
]


@pytest.mark.parametrize(("op", "threshold", "failing", "passing"), VALUE_CASES)
def test_a_value_gate_fails_only_on_its_side_of_the_threshold(op, threshold, failing, passing):
    expr = f"metrics.accuracy{op}{threshold}"
    failed = judge(expr, report(row("accuracy", 0.5, failing)))
    assert failed.failed, failed
    assert failed.detail == f"accuracy {failing:.6g} {op} {threshold:.6g}"
    passed = judge(expr, report(row("accuracy", 0.5, passing)))
    assert not passed.failed, passed
    assert passed.as_json() == {"gate": expr, "failed": False, "detail": passed.detail}


# (operator, a delta that fails `delta OP -0.5`, one just on the other side); exact in binary
DELTA_CASES = [("<", -0.75, -0.5), ("<=", -0.5, -0.25), (">", -0.25, -0.5), (">=", -0.5, -0.75)]
DELTA_CASES += [("==", -0.5, -0.25), ("!=", -0.25, -0.5)]


@pytest.mark.parametrize(("op", "failing", "passing"), DELTA_CASES)
def test_a_delta_gate_judges_the_change_against_the_base(op, failing, passing):
    expr = f"metrics.loss.delta {op} -0.5"
    failed = judge(expr, report(row("loss", 10, 10 + failing)))
    assert failed.failed, failed
    assert failed.detail == f"loss Δ {failing:.6g} {op} -0.5"
    assert not judge(expr, report(row("loss", 10, 10 + passing))).failed


def test_a_delta_pct_gate_is_the_change_in_percent_of_the_base():
    rep_up = report(row("loss", 0.5, 0.53))  # +6 %
    rep_small = report(row("loss", 0.5, 0.52))  # +4 %
    assert judge("metrics.loss.delta_pct>5", rep_up).failed
    assert not judge("metrics.loss.delta_pct>5", rep_small).failed
    assert judge("metrics.loss.delta_pct>5", rep_up).detail.startswith("loss Δ% 6 > 5")
    # a negative base: the percent is of its size, so a rise is still positive
    assert judge("metrics.score.delta_pct>=10", report(row("score", -2.0, -1.75))).failed
    assert not judge("metrics.score.delta_pct>=10", report(row("score", -2.0, -1.85))).failed
    # `.delta_pct` is the percent, not `.delta` (-0.5 here, which `<-1` would not catch)
    assert judge("metrics.loss.delta_pct<-1", report(row("loss", 0.5, 0.0))).failed


def test_a_delta_without_a_base_value_passes_and_says_so():
    new_metric = report(row("f1", None, 0.1))
    for expr in ("metrics.f1.delta<0", "metrics.f1.delta_pct<-1", "metrics.f1.delta>1000"):
        result = judge(expr, new_metric)
        assert not result.failed
        assert result.detail == "f1: no base value to compare with"
    # a base that isn't a number, or is zero (no percent of nothing)
    assert judge("metrics.f1.delta<0", report(row("f1", "n/a", 0.1))).detail == "f1: no base value to compare with"
    zero = judge("metrics.f1.delta_pct>1", report(row("f1", 0, 0.1)))
    assert not zero.failed and zero.detail == "f1: the base value is 0 (no percent change)"
    assert judge("metrics.f1.delta>0.05", report(row("f1", 0, 0.1))).failed  # the plain delta still works


@pytest.mark.parametrize("new", [None, "high", True, float("nan"), float("inf"), [0.9]])
@pytest.mark.parametrize(
    "expr", ["metrics.accuracy>0.5", "metrics.accuracy.delta<-0.1", "metrics.accuracy.delta_pct<-5"]
)
def test_a_gate_fails_when_the_head_has_no_numeric_value(new, expr):
    # a metric that went missing, NaN (a diverged training) or text can't pass a gate that names it
    result = judge(expr, report(row("accuracy", 0.9, new)))
    assert result.failed
    assert result.detail == "accuracy has no numeric value in workspace"


def test_a_metric_is_named_by_its_file_and_key_when_several_files_have_it():
    rows = [
        row("acc", 0.9, 0.7, file="eval/train.json", name="eval/train.json:acc"),
        row("acc", 0.9, 0.95, file="eval/test.json", name="eval/test.json:acc"),
    ]
    rep = report(*rows)
    assert judge("metrics.eval/train.json:acc<0.8", rep).failed
    assert not judge("metrics.eval/test.json:acc<0.8", rep).failed
    assert judge("metrics.eval/test.json:acc.delta>0.01", rep).detail == "eval/test.json:acc Δ 0.05 > 0.01"
    with pytest.raises(UsageError) as caught:
        judge("metrics.acc<0.8", rep)
    assert caught.value.exit_code == EXIT_USAGE
    assert "eval/train.json" in str(caught.value) and "eval/test.json" in str(caught.value)
    assert caught.value.hint == "write FILE:KEY"
    # a key only one of the files has is named by the key alone
    rep = report(*rows, row("loss", 1.0, 2.0, file="eval/train.json", name="eval/train.json:loss"))
    assert judge("metrics.loss>1.5", rep).detail == "eval/train.json:loss 2 > 1.5"


def test_a_nested_key_and_a_key_ending_in_delta_resolve_to_the_metric_itself():
    rep = report(row("train.loss", 1.0, 0.5), row("model.delta", 3, 4))
    assert judge("metrics.train.loss<0.6", rep).failed
    assert judge("metrics.train.loss.delta<-0.4", rep).failed
    # a metric literally called `model.delta` is its value, not model's delta
    assert judge("metrics.model.delta>3.5", rep).detail == "model.delta 4 > 3.5"


def test_an_unknown_metric_is_a_usage_error_listing_the_known_ones():
    rep = report(row("accuracy", 0.9, 0.8), row("loss", 0.1, 0.2))
    with pytest.raises(UsageError) as caught:
        judge("metrics.acuracy<0.8", rep)
    assert caught.value.exit_code == EXIT_USAGE
    assert "acuracy" in str(caught.value)
    assert caught.value.hint == "metrics: accuracy, loss"
    with pytest.raises(UsageError) as caught:
        judge("metrics.accuracy<0.8", report())
    assert caught.value.hint == "metrics: none"


@pytest.mark.parametrize(
    "expr",
    [
        "metrics.",
        "metrics.<1",
        "accuracy<1",
        "metrics.a<",
        "metrics.a<<1",
        "metrics.a<=>1",
        "metrics.a<1x",
        "metrics.a<1.2.3",
        "metrics.a~1",
        "metric.a<1",
        "",
        "check",
        "drift<1",
    ],
)
def test_a_bad_expression_is_a_usage_error_with_examples(expr):
    with pytest.raises(UsageError) as caught:
        parse_gate(expr)
    assert caught.value.exit_code == EXIT_USAGE
    assert "not a gate" in str(caught.value)
    assert caught.value.hint is not None and "metrics.accuracy<0.8" in caught.value.hint


@pytest.mark.parametrize(
    ("expr", "name", "op", "threshold"),
    [
        ("metrics.acc<0.8", "acc", "<", 0.8),
        ("  metrics.acc >= -1e-3 ", "acc", ">=", -0.001),
        ("metrics.a.b.delta_pct!=+.5", "a.b.delta_pct", "!=", 0.5),
        ("metrics.eval/x.json:acc==3", "eval/x.json:acc", "==", 3.0),
    ],
)
def test_expressions_parse_to_name_operator_and_threshold(expr, name, op, threshold):
    gate = parse_gate(expr)
    assert (gate.kind, gate.name, gate.op, gate.threshold) == ("metric", name, op, threshold)


# --- checks and drift ------------------------------------------------------------------------


def verdict(path: str, passed: bool, failed_checks: int = 0):
    return SimpleNamespace(path=path, passed=passed, failed_checks=failed_checks)


def drift_record(path: str, drifted: list[str], compared: int):
    return SimpleNamespace(path=path, drift=bool(drifted), drifted=drifted, compared=compared)


def test_the_checks_gate_fails_when_any_dataset_failed_its_checks():
    good = [verdict("data/a.csv", True), verdict("data/b.csv", True)]
    passed = judge("checks", report(checks=good))
    assert not passed.failed and passed.detail == "2 datasets passed their checks"
    failed = judge(" checks ", report(checks=[verdict("data/c.csv", False, 3), *good]))
    assert failed.failed
    assert failed.detail == "data checks failed: data/c.csv (3 failed)"
    assert not judge("checks", report()).failed  # nothing checked: nothing failed


def test_the_drift_gate_fails_when_any_dataset_drifted():
    calm = [drift_record("data/a.csv", [], 5)]
    passed = judge("drift", report(drift=calm))
    assert not passed.failed and passed.detail == "no drift in 1 datasets checked"
    failed = judge("drift", report(drift=[drift_record("data/b.csv", ["age", "income"], 7), *calm]))
    assert failed.failed
    assert failed.detail == "drift: data/b.csv (2 of 7 columns drifted)"


def test_several_gates_are_judged_each_in_order():
    rep = report(row("acc", 0.9, 0.85), checks=[verdict("d.csv", False, 1)])
    results = evaluate([parse_gate(e) for e in ("metrics.acc<0.8", "checks", "metrics.acc.delta<-0.01")], rep)
    assert [(r.gate, r.failed) for r in results] == [
        ("metrics.acc<0.8", False),
        ("checks", True),
        ("metrics.acc.delta<-0.01", True),
    ]
