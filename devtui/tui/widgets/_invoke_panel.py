"""Invoke: a JSON editor, the answer with status, latency and headers, and a history to re-send.

The editor flags invalid JSON as you type; sending is refused until it parses. Requests run in
a Textual worker, so the app stays responsive while ``run()`` works.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import httpx
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Label, ListItem, ListView, Static, TextArea


@dataclass(frozen=True)
class Exchange:
    body: str
    status: int | None
    latency_ms: float
    answer: str
    headers: tuple[tuple[str, str], ...]
    at: float


def json_problem(text: str) -> str:
    """Why ``text`` is not JSON, or "" when it is."""
    try:
        json.loads(text)
    except json.JSONDecodeError as ex:
        return f"invalid JSON at line {ex.lineno}, column {ex.colno}: {ex.msg}"
    return ""


def pretty(text: str) -> str:
    try:
        return json.dumps(json.loads(text), indent=2)
    except (ValueError, TypeError):
        return text


class InvokePanel(Vertical):
    class Answered(Message):
        def __init__(self, exchange: Exchange) -> None:
            super().__init__()
            self.exchange = exchange

    def __init__(self, request_text: str = "{}", **kwargs) -> None:
        super().__init__(**kwargs)
        self.request_text = request_text
        self.scoring_uri: str | None = None
        self.history: list[Exchange] = []
        self.timeout_s = 30.0

    def compose(self) -> ComposeResult:
        with Horizontal(id="invoke-body"):
            with Vertical(id="invoke-request"):
                yield Label("Request (ctrl+j sends)", classes="section-title")
                yield TextArea(self.request_text, language="json", id="request-editor", tab_behavior="indent")
                with Horizontal(id="invoke-actions"):
                    yield Button("Send", id="send", variant="success")
                    yield Label("", id="request-problem")
            with Vertical(id="invoke-response"):
                yield Label("Answer", classes="section-title")
                yield Static("Nothing sent yet.", id="response-status")
                yield TextArea("", language="json", read_only=True, id="response-body")
                yield Static("", id="response-headers")
        yield Label("History (enter re-sends)", classes="section-title")
        yield ListView(id="history")

    @property
    def editor(self) -> TextArea:
        return self.query_one("#request-editor", TextArea)

    def on_mount(self) -> None:
        self._check(self.editor.text)

    def set_request(self, text: str) -> None:
        self.editor.load_text(text)
        self._check(text)

    @on(TextArea.Changed, "#request-editor")
    def _changed(self, event: TextArea.Changed) -> None:
        self._check(event.text_area.text)

    def _check(self, text: str) -> str:
        problem = json_problem(text)
        self.editor.set_class(bool(problem), "invalid")
        label = self.query_one("#request-problem", Label)
        label.update(Text(problem, style="bold red") if problem else Text("valid JSON", style="green"))
        return problem

    @on(Button.Pressed, "#send")
    def _send_pressed(self) -> None:
        self.send()

    def send(self, body: str | None = None) -> bool:
        """Send the editor's request (or ``body``); False when it cannot be sent."""
        body = self.editor.text if body is None else body
        problem = json_problem(body)
        if problem:
            self._check(body)
            self.notify(f"Not sent: {problem}", severity="error")
            return False
        if not self.scoring_uri:
            self.notify("Not sent: the endpoint has no scoring URI yet", severity="warning")
            return False
        self.query_one("#response-status", Static).update(Text("Sending...", style="yellow"))
        self._post(self.scoring_uri, body)
        return True

    @work(exclusive=False, group="invoke")
    async def _post(self, uri: str, body: str) -> None:
        started = time.perf_counter()
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                answer = await client.post(uri, content=body.encode(), headers={"content-type": "application/json"})
        except httpx.HTTPError as ex:
            exchange = Exchange(body, None, (time.perf_counter() - started) * 1000, f"{type(ex).__name__}: {ex}",
                                (), time.time())
        else:
            exchange = Exchange(body, answer.status_code, (time.perf_counter() - started) * 1000, answer.text,
                                tuple(answer.headers.items()), time.time())
        self.show(exchange)
        self.post_message(self.Answered(exchange))

    def show(self, exchange: Exchange) -> None:
        status = Text()
        if exchange.status is None:
            status.append("no answer", style="bold red")
        else:
            style = "bold green" if exchange.status < 400 else "bold red"
            status.append(f"{exchange.status}", style=style)
        status.append(f"  {exchange.latency_ms:.1f} ms")
        self.query_one("#response-status", Static).update(status)
        self.query_one("#response-body", TextArea).load_text(pretty(exchange.answer))
        headers = Text()
        for name, value in exchange.headers:
            headers.append(f"{name}: ", style="bold")
            headers.append(f"{value}\n")
        self.query_one("#response-headers", Static).update(headers)
        self.history.append(exchange)
        clock = time.strftime("%H:%M:%S", time.localtime(exchange.at))
        preview = " ".join(exchange.body.split())[:60]
        label = f"{clock}  {exchange.status or '---'}  {exchange.latency_ms:7.1f} ms  {preview}"
        self.query_one("#history", ListView).append(ListItem(Label(label)))

    @on(ListView.Selected, "#history")
    def _resend(self, event: ListView.Selected) -> None:
        index = event.list_view.index
        if index is not None and index < len(self.history):
            body = self.history[index].body
            self.set_request(body)
            self.send(body)
