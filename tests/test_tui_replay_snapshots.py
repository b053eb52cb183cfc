"""A snapshot of the Replay tab (issue 20, item 11) at 80x24, 100x30 and 160x45: the previous
answer beside the new one, each with its revision and how it came to be, and the coloured diff.
No server runs: the test pins a request and posts the Replayed event a save would bring, with
fixed values (see tests/test_tui_snapshots.py; update with --snapshot-update and look at the SVGs)."""

from __future__ import annotations

import pytest

from devtui.events import ReloadFinished
from devtui.replay import Answer, PinnedRequest, Replayed, body_diff
from devtui.tui.pinning import PinWanted, ReplayMessage
from devtui.tui.widgets._replay_view import ReplayView
from test_tui_snapshots import AT, SUCCEEDED, THREE_SIZES, app, frozen_clock, ready, settle  # noqa: F401

BEFORE = '{"predictions": [11055.98, 4503.01], "model": "blue-model:1"}'
AFTER = '{"predictions": [11055.977, 4503.012], "model": "blue-model:1", "rounded": 3}'


@pytest.mark.parametrize("size", THREE_SIZES)
def test_replay_after_a_patch(app, snap_compare, size):
    async def run_before(pilot):
        ready(app)
        await settle(pilot, lambda: app.status.state == SUCCEEDED)
        request = PinnedRequest(headers=(("content-type", "application/json"),), body=b'{"data": [[1,2,3]]}')
        previous = Answer(200, BEFORE, 1, "req-1", 1.4, sent=AT, at=AT)
        app.post_message(PinWanted(request, "the Invoke request", previous))
        await settle(pilot, lambda: app.pinning.pinned and app.query("#replay"))
        answer = Answer(200, AFTER, 2, "req-2", 1.2, sent=AT, at=AT)
        reload = ReloadFinished(2, True, 14.0, 2, rung="patch", detail="run()")
        app.post_message(ReplayMessage(Replayed(request, answer, previous, reload,
                                                body_diff(BEFORE, AFTER, "revision 1", "revision 2"))))
        await settle(pilot, lambda: app.query_one("#replay", ReplayView).last is not None)
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)
