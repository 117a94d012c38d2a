"""The handler behind Ctrl-C and, during `opsctl run`, SIGTERM (opsctl/cli/interrupts.py)."""

from __future__ import annotations

import signal

import pytest

from opsctl.cli import interrupts
from opsctl.cli.interrupts import interrupt_handler


def test_it_raises_every_time_by_default():
    handler = interrupt_handler()
    for _ in range(2):
        with pytest.raises(KeyboardInterrupt):
            handler(signal.SIGINT, None)


def test_once_more_signals_do_not_cut_the_clean_up_short(monkeypatch):
    handler = interrupt_handler(once=True)
    with pytest.raises(KeyboardInterrupt):
        handler(signal.SIGINT, None)
    handler(signal.SIGINT, None)  # the second Ctrl-C: ignored while the first one's clean-up runs
    handler(signal.SIGTERM, None)
    monkeypatch.setattr(interrupts, "ONCE_FOR", 0.0)  # long after: it raises again
    with pytest.raises(KeyboardInterrupt):
        handler(signal.SIGINT, None)


def test_inside_a_finaliser_it_is_deferred_not_lost():
    handler = interrupt_handler(once=True)

    class Finalised:
        def __del__(self):
            import sys

            handler(signal.SIGINT, sys._getframe())  # returns: raising here would be swallowed

    Finalised()
    with pytest.raises(KeyboardInterrupt):  # not counted as the one that stops: the next still raises
        handler(signal.SIGINT, None)
