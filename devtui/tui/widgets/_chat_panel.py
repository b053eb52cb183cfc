"""Chat, for a chat flow: type a message, it goes to the endpoint with the history so far, and
the answer is drawn as its chunks arrive; a whole answer joins the history for the next message.

The conversation itself (what is sent, how the stream is read, what the history keeps) is
``chat.py``'s; this widget draws it. Answers stream in a Textual worker over httpx's async API,
so the app stays responsive while the flow answers; an error (a 4xx/5xx, a server that is
restarting) is shown in the transcript and the message can be sent again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Label, Static

from ...spec import LocalDeployment
from ..chat import ChatError, Conversation, ask
from ..commands import CHAT_BINDINGS

STREAMING = "▍"  # after the answer while more may come


class ChatTurn(Vertical):
    """One message and its answer, as it grows; a failed one says why (app.tcss shows that line
    only then)."""

    def __init__(self, message: str) -> None:
        self.shown = Static(Text(STREAMING), classes="chat-answer")
        self.error = Static("", classes="chat-error")
        super().__init__(Static(Text.assemble(("you  ", "bold"), message), classes="chat-you"), self.shown,
                         self.error, classes="chat-turn")
        self.message = message
        self.answer = ""
        self.why = ""
        self.finished = False

    def add(self, piece: str) -> None:
        self.answer += piece
        self.shown.update(Text(self.answer + STREAMING))

    def done(self) -> None:
        self.finished = True
        self.shown.update(Text(self.answer))

    def fail(self, why: str) -> None:
        self.finished = True
        self.why = why
        self.shown.update(Text(self.answer))  # what came before the stream broke off stays
        self.error.update(Text(f"{why}\nNot added to the history; send it again.", style="red"))
        self.set_class(True, "-failed")
        self.set_class(not self.answer, "-empty")


class ChatPanel(Vertical):
    BINDINGS = CHAT_BINDINGS

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
            async for piece in ask(client, uri, self.conversation.body(turn.message), self.conversation.chat_output,
                                   timeout_s):
                turn.add(piece)
                transcript.scroll_end(animate=False)
        except ChatError as ex:
            turn.fail(str(ex))
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
