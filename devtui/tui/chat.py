"""A chat flow's conversation, without a screen: what each message sends (the message and the
history so far), how a streamed answer is read, and what the history keeps.

Prompt flow's serving app streams a generator output as server-sent events when asked with
``Accept: text/event-stream``: ``data: {"answer": "chunk"}`` per chunk, keyed by output name, with
the flow's other outputs in a first event of their own. A flow whose chat output is not a generator
answers JSON instead (it refuses ``text/event-stream`` alone with 406, so both are accepted). Each
turn of the history has the shape prompt flow's chat flows take:
``{"inputs": {chat_input: message}, "outputs": {chat_output: answer}}``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from http import HTTPStatus

import httpx

from ..failures import server_message
from ..spec import FlowSpec

ACCEPT = "text/event-stream, application/json"


class ChatError(Exception):
    """Why a message got no (whole) answer, in words for the panel."""


@dataclass
class Conversation:
    chat_input: str
    chat_history: str
    chat_output: str
    history: list[dict] = field(default_factory=list)

    @classmethod
    def of(cls, flow: FlowSpec) -> Conversation:
        """The chat of ``flow`` (a chat flow: FlowSpec.is_chat). Without an output marked as the
        chat's, its first output answers."""
        output = flow.chat_output or (flow.outputs[0] if flow.outputs else "answer")
        return cls(flow.chat_input or "question", flow.chat_history or "chat_history", output)

    def follow(self, flow: FlowSpec) -> None:
        """The flow was loaded again (a restart): use its names, keep the history."""
        names = Conversation.of(flow)
        self.chat_input, self.chat_history, self.chat_output = names.chat_input, names.chat_history, names.chat_output

    def body(self, message: str) -> dict:
        return {self.chat_input: message, self.chat_history: list(self.history)}

    def remember(self, message: str, answer: str) -> None:
        self.history.append({"inputs": {self.chat_input: message}, "outputs": {self.chat_output: answer}})

    def clear(self) -> None:
        self.history.clear()


class EventStream:
    """Server-sent events from text as it arrives: ``feed`` returns the ``data`` of each event that
    the text completed (an event ends at a blank line; its data lines are joined by newlines)."""

    def __init__(self) -> None:
        self._pending = ""
        self._data: list[str] = []

    def feed(self, text: str) -> list[str]:
        self._pending += text.replace("\r\n", "\n")
        *lines, self._pending = self._pending.split("\n")
        events = []
        for line in lines:
            if not line:
                if self._data:
                    events.append("\n".join(self._data))
                    self._data = []
            elif line.startswith("data:"):
                value = line[5:]
                self._data.append(value[1:] if value.startswith(" ") else value)
        return events

    def end(self) -> list[str]:
        """What is left when the stream ends without a last blank line."""
        return self.feed("\n\n") if (self._pending or self._data) else []


def chunk_of(data: str, output: str) -> str:
    """The text an event adds to the answer: its ``output`` field (JSON other than a string is
    shown as JSON); an event without it adds nothing; data that is not JSON is taken as text."""
    try:
        event = json.loads(data)
    except ValueError:
        return data
    if not isinstance(event, dict) or output not in event:
        return ""
    value = event[output]
    return value if isinstance(value, str) else json.dumps(value)


def _problem(response: httpx.Response) -> str:
    """The answer's status and the server's reason: devtui's ``{"message"}`` or prompt flow's
    ``{"error": {"message"}}``, else the start of the body."""
    try:
        phrase = HTTPStatus(response.status_code).phrase
    except ValueError:
        phrase = ""
    message = server_message(response.text)
    return f"{response.status_code} {phrase}: {message or response.text.strip()[:300] or '(empty body)'}"


async def ask(client: httpx.AsyncClient, url: str, body: dict, output: str, timeout_s: float,
              on_response: Callable[[httpx.Response], None] | None = None) -> AsyncIterator[str]:
    """Send one message; yield the answer's text as it arrives. ``on_response`` gets the response
    once its head has arrived (its headers: the request id, the revision). Raises ChatError, in
    words, when there is no answer, an error status, or the stream breaks off."""
    timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0))
    answered = False
    try:
        async with client.stream("POST", url, json=body, headers={"accept": ACCEPT}, timeout=timeout) as response:
            answered = True
            if on_response is not None:
                on_response(response)
            if response.status_code >= 400:
                await response.aread()
                raise ChatError(_problem(response))
            async for piece in _pieces(response, output):
                yield piece
    except httpx.ConnectError:
        raise ChatError(f"cannot connect to {url}: nothing accepts connections there (the server may be "
                        "restarting); send again once it serves") from None
    except httpx.TimeoutException:
        raise ChatError(f"no answer within {timeout_s:g} s; the request was given up") from None
    except httpx.HTTPError:
        if answered:
            raise ChatError("the answer broke off: the server closed the connection while the flow was "
                            "answering (a node raised, or its worker stopped)") from None
        raise ChatError("the server closed the connection before answering (its worker stopped: a restart, "
                        "a swap, or a crash); the message had been sent, so it was not sent again") from None


async def _pieces(response: httpx.Response, output: str) -> AsyncIterator[str]:
    """The answer's text, one piece per network read (all the chunks that read completed), so
    the screen is updated per batch, not per chunk; a JSON answer (not streamed) in one piece."""
    if not response.headers.get("content-type", "").startswith("text/event-stream"):
        await response.aread()
        yield chunk_of(response.text, output) or response.text
        return
    events = EventStream()
    async for text in response.aiter_text():
        piece = "".join(chunk_of(data, output) for data in events.feed(text))
        if piece:
            yield piece
    rest = "".join(chunk_of(data, output) for data in events.end())
    if rest:
        yield rest
