"""Replay on save in the app: ``p`` pins a request (the Invoke tab's, a history row's with its
answer as the previous one, or the last chat turn's) and :class:`devtui.replay.Replay` sends it
again after every save that brings a new revision; ``p`` again (or the palette's Unpin) unpins.

The widgets ask with a :class:`PinWanted` message; the replay's events reach the Replay tab as
:class:`ReplayMessage`\\ s posted to the app, never by touching widgets from the replay's task.
Nothing is sent while nothing is pinned.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from textual.message import Message
from textual.widgets import TabbedContent, TabPane

from ..replay import Answer, PinnedRequest, Replay, ReplayEvent, ReplayWaiting
from .exchange import BodyKind, Exchange, Request
from .widgets._replay_view import ReplayView

if TYPE_CHECKING:
    from .app import DevtuiApp


class PinWanted(Message):
    """``p``: pin ``request`` (``previous``: an answer it already has), or unpin when one is
    pinned; ``problem`` says why there is nothing to pin."""

    def __init__(self, request: PinnedRequest | None, where: str, previous: Answer | None = None,
                 problem: str = "") -> None:
        super().__init__()
        self.request, self.where, self.previous, self.problem = request, where, previous, problem


class ReplayMessage(Message):
    def __init__(self, event: ReplayEvent) -> None:
        super().__init__()
        self.event = event


def from_invoke(request: Request, where: str = "the Invoke request", previous: Answer | None = None) -> PinWanted:
    """What pinning an Invoke request (or a history row's) asks for."""
    if request.sends_body and request.kind == BodyKind.FILE:
        return PinWanted(None, where, problem="a file upload cannot be pinned: pin a JSON or text body")
    query = request.query.strip().lstrip("?")
    pinned = PinnedRequest(request.method, f"?{query}" if query else "", tuple(request.header_map().items()),
                           request.body.encode() if request.sends_body else b"")
    return PinWanted(pinned, where, previous)


def answer_of(exchange: Exchange) -> Answer:
    """A history row's answer, as the replay diffs the next one with it."""
    return Answer(exchange.status, exchange.answer, exchange.revision, exchange.request_id, exchange.latency_ms,
                  exchange.why, exchange.exception, exchange.sent, exchange.at)


def from_chat(body: dict | None) -> PinWanted:
    """The last chat turn's request (its message and the history it carried), asked for JSON."""
    if body is None:
        return PinWanted(None, "the last chat turn", problem="no chat turn yet: send a message first")
    headers = (("content-type", "application/json"), ("accept", "application/json"))
    return PinWanted(PinnedRequest("POST", "", headers, json.dumps(body).encode()), "the last chat turn")


class Pinning:
    """The app's one :class:`Replay` and the Replay tab (added the first time a request is pinned)."""

    def __init__(self, app: DevtuiApp) -> None:
        self.app = app
        self.replay = Replay(app.engine)
        self.replay.subscribe(lambda event: app.post_message(ReplayMessage(event)))

    @property
    def pinned(self) -> bool:
        return self.replay.pinned

    async def toggle(self, wanted: PinWanted) -> None:
        if self.replay.pinned:
            self.unpin()
        elif wanted.request is None:
            self.app.notify(f"Nothing pinned: {wanted.problem}", severity="warning")
        else:
            view = await self._view()
            self.replay.pin(wanted.request, wanted.previous)
            view.pinned(wanted.request, wanted.where)
            self.app.query_one("#tabs", TabbedContent).active = "replay-tab"
            view.focus()  # now: Textual would move it off the hidden field into the tab just left
            self.app.refresh_bindings()  # the footer's Unpin
            self.app.notify(f"Pinned {wanted.where}: every save that brings a new revision sends it again "
                            "(p unpins)", title="Replay on save", timeout=4)

    def unpin(self) -> None:
        self.replay.unpin()
        if self.app.query("#replay"):
            self.app.query_one("#replay", ReplayView).unpinned()
        self.app.refresh_bindings()
        self.app.notify("Unpinned: nothing is replayed", title="Replay on save", timeout=3)

    def show(self, event: ReplayEvent) -> None:
        if not self.replay.pinned or not self.app.query("#replay"):
            return  # unpinned meanwhile
        view = self.app.query_one("#replay", ReplayView)
        if isinstance(event, ReplayWaiting):
            view.waiting(event)
        else:
            view.replayed(event)

    async def _view(self) -> ReplayView:
        if not self.app.query("#replay"):
            await self.app.query_one("#tabs", TabbedContent).add_pane(
                TabPane("Replay", ReplayView(id="replay"), id="replay-tab"))
        return self.app.query_one("#replay", ReplayView)

    async def close(self) -> None:
        await self.replay.close()
