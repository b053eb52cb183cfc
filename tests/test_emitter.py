"""The engine's events reach every subscriber in order (devtui/engine/emitter.py)."""

from __future__ import annotations

import pytest

from devtui.engine.emitter import Emitter
from devtui.events import DEVTUI, Logs, StateChanged, SUCCEEDED


@pytest.mark.unit
def test_what_a_subscriber_says_reaches_everyone_after_the_event_at_hand():
    """The recorder reports a full disk inside an event: a later subscriber must still see that
    event before the line about it, as every subscriber sees the events in one order."""
    emitter = Emitter()
    seen: dict[str, list] = {"first": [], "last": []}

    def first(event) -> None:
        seen["first"].append(event)
        if isinstance(event, StateChanged):
            emitter.say("writing the log files failed")

    emitter.subscribe(first)
    emitter.subscribe(seen["last"].append)
    state = StateChanged(SUCCEEDED)
    emitter.emit(state)
    assert seen["first"] == seen["last"]
    assert seen["last"][0] == state and isinstance(seen["last"][1], Logs)
    assert seen["last"][1].records[0].source == DEVTUI


@pytest.mark.unit
def test_a_subscriber_that_raises_is_dropped_and_said_once():
    emitter = Emitter()
    told: list = []

    def broken(event) -> None:
        raise RuntimeError("boom")

    emitter.subscribe(broken)
    emitter.subscribe(told.append)
    emitter.emit(StateChanged(SUCCEEDED))
    emitter.emit(StateChanged(SUCCEEDED))
    said = [r.text for e in told if isinstance(e, Logs) for r in e.records]
    assert len(said) == 1 and "broken failed (RuntimeError: boom)" in said[0], said
    assert broken not in emitter.listeners and len(told) == 3
