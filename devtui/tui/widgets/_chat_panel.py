"""Chat, for a chat flow: type a message, it goes to the endpoint with the history so far, and
the answer is drawn as its chunks arrive; a whole answer joins the history for the next message.

The conversation itself (what is sent, how the stream is read, what the history keeps) is
``chat.py``'s; this widget draws it. Answers stream in a Textual worker over httpx's async API,
so the app stays responsive while the flow answers; an error (a 4xx/5xx, a server that is
restarting) is shown in the transcript and the message can be sent again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import httpx
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.message import Message
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Label, Static

from ...spec import LocalDeployment
from ..chat import ChatError, Conversation, ask
from ..commands import CHAT_BINDINGS
from ..exchange import REVISION_HEADER
from ..failures import TracebackWanted
from ._answer_view import revision_stamp

STREAMING = "▍"  # after the answer while more may come


class ChatTurn(Vertical):
    """One message and its answer, as it grows; a failed one says why (app.tcss shows that line
    only then): the user's exception line once the log has it, and what happened."""

    def __init__(self, message: str) -> None:
        self.shown = Static(Text(STREAMING), classes="chat-answer")
        self.error = Static("", classes="chat-error")
        super().__init__(Static(Text.assemble(("you  ", "bold"), message), classes="chat-you"), self.shown,
                         self.error, classes="chat-turn")
        self.message = message
        self.answer = ""
        self.why = ""
        self.exception = ""  # the user's exception line, from the log
        self.finished = False
        self.sent = time.time()
        self.at = 0.0  # when it ended
        self.request_id = ""
        self.revision: int | None = None  # the revision whose worker answered
        self.body: dict | None = None  # what was sent: the message and the history before it

    def answering(self, response: httpx.Response) -> None:
        self.request_id = response.headers.get("x-request-id", "")
        try:
            self.revision = int(response.headers.get(REVISION_HEADER, ""))
        except ValueError:
            self.revision = None

    def _answer_text(self, tail: str = "") -> Text:
        """The answer so far, stamped with the revision that wrote it once it is whole."""
        text = Text(self.answer + tail)
        if not tail and self.revision is not None:
            text.append("  ").append_text(revision_stamp(self.revision))
        return text

    def add(self, piece: str) -> None:
        self.answer += piece
        self.shown.update(self._answer_text(STREAMING))

    def done(self) -> None:
        self.finished = True
        self.at = time.time()
        self.shown.update(self._answer_text())

    def fail(self, why: str) -> None:
        self.finished = True
        self.at = time.time()
        self.why = why
        self.shown.update(self._answer_text())  # what came before the stream broke off stays
        self._show_error()
        self.set_class(True, "-failed")
        self.set_class(not self.answer, "-empty")

    def explain(self, line: str) -> None:
        """The log says why it failed: ``line``, the user's exception line."""
        self.exception = line
        self._show_error()

    def _show_error(self) -> None:
        text = Text(style="red")
        if self.exception:
            text.append(f"{self.exception}\n", style="bold")
        text.append(f"{self.why}\nNot added to the history; send it again.")
        if self.exception:
            text.append(" g: the traceback in the log.")
        self.error.update(text)


class ChatPanel(Vertical):
    BINDINGS = CHAT_BINDINGS

    class Failed(Message):
        """A message got no (whole) answer: the log may say why."""

        def __init__(self, turn: ChatTurn) -> None:
            super().__init__()
            self.turn = turn

    def __init__(self, deployment: Callable[[], LocalDeployment], scoring_uri: Callable[[], str | None],
                 **kwargs) -> None:
        """``deployment`` and ``scoring_uri``: the engine's, now (a restart changes them)."""
        super().__init__(**kwargs)
        self.deployment = deployment
        self.scoring_uri = scoring_uri
        flow = deployment().flow
        assert flow is not None and flow.is_chat, "the chat panel is for chat flows"
        self.conversation = Conversation.of(flow)
        self.turns: list[ChatTurn] = []
        self.transport: httpx.AsyncBaseTransport | None = None  # None: httpx's own
        self._client: httpx.AsyncClient | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="chat-transcript"):
            yield Static("", id="chat-intro", classes="hint")
        yield Label("", id="chat-state")
        with Horizontal(id="chat-input-line"):
            yield Input(placeholder="Message (enter sends it with the history)", id="chat-message")
            yield Button("Send ⏎", id="chat-send", variant="success", compact=True)
            yield Button("Clear ^l", id="chat-clear", compact=True)

    @property
    def message(self) -> Input:
        return self.query_one("#chat-message", Input)

    @property
    def busy(self) -> bool:
        return bool(self.turns) and not self.turns[-1].finished

    def on_mount(self) -> None:
        self._describe()

    async def on_unmount(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    def _describe(self) -> None:
        c = self.conversation
        self.query_one("#chat-intro", Static).update(Text(
            f"Each message is sent as {{\"{c.chat_input}\": message, \"{c.chat_history}\": [earlier turns]}}, "
            f"and the \"{c.chat_output}\" output is shown as it streams."))
        count = len(c.history)
        self.query_one("#chat-state", Label).update(
            "answering..." if self.busy else f"{count} turn{'s' if count != 1 else ''} in the history (ctrl+l clears)")

    # -- sending -------------------------------------------------------------------------------

    @on(Input.Submitted, "#chat-message")
    @on(Button.Pressed, "#chat-send")
    def _submitted(self) -> None:
        self.send(self.message.value)

    def send(self, message: str) -> bool:
        """Send ``message`` with the history; False when it cannot be sent now."""
        if not message.strip():
            return False
        if self.busy:
            self.notify("Wait for the answer: the next message carries it in the history.", severity="warning")
            return False
        flow = self.deployment().flow
        if flow is not None and flow.is_chat:
            self.conversation.follow(flow)
        self.message.value = ""
        turn = ChatTurn(message)
        self.turns.append(turn)
        mounted = self.query_one("#chat-transcript").mount(turn)
        self._describe()
        self._ask(turn, mounted)
        return True

    @work(exclusive=True, group="chat")
    async def _ask(self, turn: ChatTurn, mounted: Awaitable) -> None:
        await mounted
        uri = self.scoring_uri()
        timeout_s = self.deployment().request_settings.request_timeout_ms / 1000 + 10
        transcript = self.query_one("#chat-transcript", VerticalScroll)
        try:
            if not uri:
                raise ChatError("the endpoint has no scoring URI yet: wait for it to start")
            client = await self._http()
            turn.body = self.conversation.body(turn.message)
            async for piece in ask(client, uri, turn.body, self.conversation.chat_output,
                                   timeout_s, turn.answering):
                turn.add(piece)
                transcript.scroll_end(animate=False)
        except ChatError as ex:
            turn.fail(str(ex))
            self.post_message(self.Failed(turn))
        else:
            turn.done()
            self.conversation.remember(turn.message, turn.answer)
        transcript.scroll_end(animate=False)
        self._describe()

    async def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            # Built off the event loop: a client loads its CA bundle, tens of milliseconds. trust_env
            # off: a proxy from the environment must never sit between the app and a local endpoint.
            self._client = await asyncio.to_thread(httpx.AsyncClient, trust_env=False, transport=self.transport)
        return self._client

    # -- keys ----------------------------------------------------------------------------------

    def action_goto_traceback(self) -> None:
        """The log's traceback of the latest failed message."""
        failed = next((turn for turn in reversed(self.turns) if turn.why), None)
        if failed is None:
            self.notify("No message here failed in the server: there is no traceback to show.", severity="warning")
            return
        self.post_message(TracebackWanted(failed.request_id, failed.sent, failed.at))

    def action_pin(self) -> None:
        from ..pinning import from_chat

        self.post_message(from_chat(self.turns[-1].body if self.turns else None))

    @on(Button.Pressed, "#chat-clear")
    def action_clear_chat(self) -> None:
        """Forget the history and empty the transcript (an answer still streaming is dropped)."""
        self.workers.cancel_group(self, "chat")
        self.conversation.clear()
        for turn in self.turns:
            turn.remove()
        self.turns.clear()
        self._describe()
        self.message.focus()
