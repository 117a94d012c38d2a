"""Helpers the pilot tests share."""

from __future__ import annotations


async def settle(pilot) -> None:
    """Let the workers answer and their messages render (a screen just pushed starts its
    worker a few messages later: wait until none is running or pending)."""
    for _ in range(10):
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        if not any(w.is_running or w.state.name == "PENDING" for w in pilot.app.workers):
            return
