"""The app's Traces tab wired to the rest: ``T`` shows it, and in the Invoke tab opens the trace
of the answer on screen (matched by its ``x-request-id``, which the server returns on every
answer); the Invoke tab's requests count as in flight there from when they are sent until their
answer (a request the debugger holds at a breakpoint stays in flight, and the tab says where the
debugger stopped), and so do other clients' requests while the debugger holds them. The spans
themselves arrive as engine events (``engine_view``); those the endpoint kept before this session
are read from its traces file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.message import Message

from .. import registry
from ..traces import EarlierTraces
from ..traces import path as traces_path
from .exchange import Request

if TYPE_CHECKING:
    from ..engine import Engine
    from .app import DevtuiApp


def earlier_traces(engine: Engine) -> EarlierTraces | None:
    """The traces the endpoint kept before this session, as they are when the app starts (before
    the engine does): the Traces tab lists them below the session's. None with traces off."""
    if not engine.launch.traces:
        return None
    return EarlierTraces(traces_path(registry.folder(engine.deployment.endpoint_name)))


class RequestSent(Message):
    """The Invoke tab sent ``request`` with ``request_id`` as its x-request-id; its
    :class:`InvokePanel.Answered` carries the same object."""

    def __init__(self, request: Request, request_id: str = "") -> None:
        super().__init__()
        self.request = request
        self.request_id = request_id


class Tracing:
    def __init__(self, app: DevtuiApp) -> None:
        self.app = app

    def sent(self, request: Request, request_id: str = "") -> None:
        self.app.traces.sent(request, f"{request.method} {request.preview()}"[:80], request_id)

    def answered(self, request: Request) -> None:
        self.app.traces.answered(request)

    def open_answer(self) -> None:
        """``T`` in the Invoke tab: the Traces tab, on the trace of the answer on screen."""
        app = self.app
        shown = app.invoke_panel.shown
        app.focus.show("traces-tab")
        if not app.engine.launch.traces:
            return  # the tab says how to turn them on
        if shown is None:
            app.notify("No answer on screen: send a request first (ctrl+j).", severity="warning")
        elif not shown.request_id:
            app.notify("The answer on screen has no x-request-id: no trace to match it with.", severity="warning")
        elif not app.traces.open_request(shown.request_id):
            app.notify(f"The trace of request {shown.request_id} has not arrived yet: it opens when it does.",
                       timeout=3)
