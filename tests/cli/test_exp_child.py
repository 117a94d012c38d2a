"""An experiment process's messages to its runner: one JSON line each, short enough for an
atomic pipe write (never interleaved with another experiment's), and always valid JSON."""

from __future__ import annotations

import json
import os

from opsctl.cli import exp_child


def written(message: dict) -> bytes:
    r, w = os.pipe()
    saved = os.dup(1)
    os.dup2(w, 1)
    try:
        exp_child._write(message)
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(w)
    try:
        return os.read(r, 1 << 20)
    finally:
        os.close(r)


def test_a_short_message_goes_whole():
    message = {"qid": 3, "event": "done", "run": "abc", "status": "succeeded", "metrics": {"acc": 0.9}}
    assert json.loads(written(message)) == message


def test_a_huge_message_is_cut_to_valid_json_keeping_its_outcome():
    message = {
        "qid": 3,
        "event": "done",
        "run": "abc",
        "status": "failed",
        "failed": ["train"],
        "detail": "x" * 10_000,
        "metrics": {f"m{i}": i / 3 for i in range(500)},
    }
    data = written(message)
    assert data.endswith(b"\n") and len(data) <= exp_child.MAX_MESSAGE + 1
    got = json.loads(data)
    assert (got["qid"], got["event"], got["run"], got["status"], got["failed"]) == (
        3,
        "done",
        "abc",
        "failed",
        ["train"],
    )
    assert got["metrics"] == {} and got["detail"] == "x" * 1000
