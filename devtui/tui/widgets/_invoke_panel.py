"""Invoke: a request (method, query, headers, a JSON or text body or a file upload), the answer,
and a history of this session's requests to open again.

The editor flags invalid JSON as you type; sending is refused until the request can be sent.
Requests run in Textual workers through one shared client (``exchange.Sender``), so the app stays
responsive while ``run()`` works and the latency shown is the endpoint's.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import httpx
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, ContentSwitcher, Input, Label, ListView, Select, TabbedContent, TabPane, TextArea

from ..commands import INVOKE_BINDINGS
from ..failures import TracebackWanted
from ..tracing import RequestSent
from ..exchange import METHODS, BodyKind, Exchange, Request, Sender, new_request_id, parse_headers, sent_request_id
from ._answer_view import AnswerView
from ._history_list import HistoryItem, HistoryList
from ._request_editor import RequestEditor

# While nothing serves, the server answers 503 at once; a server that does not (a custom
# container) gets this long before the app says why nothing answered.
NOT_SERVING_TIMEOUT_S = 3.0

# Where each direct key (commands.INVOKE_BINDINGS) goes: the tabs to switch and the pane to show
# first, then the widget to focus (None: the body's field, of the kind chosen).
JUMPS = {"method": (None, None, "#method"), "query": (None, None, "#query"), "kind": (None, None, "#body-kind"),
         "body": ("#request-tabs", "request-body-tab", None),
         "headers": ("#request-tabs", "request-headers-tab", "#request-headers"),
         "answer": ("#answer-tabs", "answer-body-tab", "#response-body"),
         "answer-headers": ("#answer-tabs", "answer-headers-tab", "#response-headers-box")}


class InvokePanel(Vertical):
    BINDINGS = INVOKE_BINDINGS

    class Answered(Message):
        def __init__(self, exchange: Exchange) -> None:
            super().__init__()
            self.exchange = exchange

    def __init__(self, request_text: str = "{}", base_folder: Path | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.request_text = request_text
        self.base_folder = base_folder or Path.cwd()
        self.scoring_uri: str | None = None
        self.history: list[Exchange] = []  # oldest first; the list on screen shows newest first
        self.shown: Exchange | None = None
        self.timeout_s = 30.0
        self.not_serving = ""  # why nothing serves, from the engine; "" while a revision serves
        self.sender = Sender()
        self.in_flight = 0  # requests sent and not yet answered (or given up)
        self.serving_revision: int | None = None  # the engine's, now
        self.last_curl = ""

    def compose(self) -> ComposeResult:
        with Horizontal(id="request-line"):
            yield Select([(method, method) for method in METHODS], value="POST", allow_blank=False, id="method",
                         compact=True)
            yield Input(placeholder="query: name=value&...", id="query", compact=True)
            yield Select([("JSON body", BodyKind.JSON), ("text body", BodyKind.TEXT),
                          ("file upload", BodyKind.FILE)], value=BodyKind.JSON, allow_blank=False, id="body-kind",
                         compact=True)
            yield Button("Send ^j", id="send", variant="success", compact=True)
            yield Button("curl (y)", id="copy-curl", compact=True)
        with Horizontal(id="invoke-body"):
            with Vertical(id="invoke-request"):
                with TabbedContent(id="request-tabs"):
                    with TabPane("Body", id="request-body-tab"):
                        with ContentSwitcher(initial="request-editor", id="body-switcher"):
                            yield RequestEditor(self.request_text, id="request-editor")
                            with Vertical(id="request-file-box"):
                                yield Input(placeholder="file to upload (relative to the deployment folder)",
                                            id="request-file")
                                yield Label("sent as multipart/form-data in the field 'file'", classes="hint")
                    with TabPane("Headers", id="request-headers-tab"):
                        yield TextArea("", id="request-headers", tab_behavior="focus",
                                       placeholder="Name: value, one a line")
                yield Label("", id="request-problem")
            yield AnswerView(id="answer")
        yield Label("History, newest first (enter opens, e edits)", classes="section-title")
        yield HistoryList(id="history")

    @property
    def editor(self) -> RequestEditor:
        return self.query_one("#request-editor", RequestEditor)

    @property
    def answer(self) -> AnswerView:
        return self.query_one("#answer", AnswerView)

    def on_mount(self) -> None:
        self._check()
        self._prepare()

    @work(group="invoke-prepare")
    async def _prepare(self) -> None:
        await self.sender.prepare()

    def on_unmount(self) -> None:
        self.sender.close()

    # -- the request ---------------------------------------------------------------------------

    def request(self) -> tuple[Request, str]:
        """The request as the fields say, and why it cannot be sent ("" when it can)."""
        headers, problem = parse_headers(self.query_one("#request-headers", TextArea).text)
        kind = BodyKind(self.query_one("#body-kind", Select).value)
        file_text = self.query_one("#request-file", Input).value.strip()
        file = (self.base_folder / Path(file_text).expanduser()) if file_text else None
        request = Request(str(self.query_one("#method", Select).value), self.query_one("#query", Input).value,
                          headers, kind, self.editor.text, file)
        return request, problem or request.problem()

    def set_request(self, text: str) -> None:
        self.editor.load_text(text)
        self._check()

    def load(self, request: Request) -> None:
        """Put ``request`` in the fields, as it was sent."""
        self.query_one("#method", Select).value = request.method
        self.query_one("#query", Input).value = request.query
        self.query_one("#body-kind", Select).value = request.kind
        self._show_kind(request.kind)  # now, not on the Select's message: the focus may go there next
        self.query_one("#request-file", Input).value = str(request.file or "")
        self.query_one("#request-headers", TextArea).load_text(
            "\n".join(f"{name}: {value}" for name, value in request.headers))
        self.set_request(request.body)

    @on(TextArea.Changed)
    @on(Input.Changed, "#query, #request-file")
    @on(Select.Changed, "#method")
    def _changed(self) -> None:
        self._check()

    @on(Select.Changed, "#body-kind")
    def _kind_changed(self, event: Select.Changed) -> None:
        self._show_kind(BodyKind(event.value))
        self._check()

    def _show_kind(self, kind: BodyKind) -> None:
        self.query_one("#body-switcher", ContentSwitcher).current = (
            "request-file-box" if kind == BodyKind.FILE else "request-editor")
        self.editor.language = "json" if kind == BodyKind.JSON else None

    @property
    def body_field(self) -> Input | RequestEditor:
        """Where the body is typed for the kind chosen: the editor, or the file's name (never the
        one hidden)."""
        if BodyKind(self.query_one("#body-kind", Select).value) == BodyKind.FILE:
            return self.query_one("#request-file", Input)
        return self.editor

    def _check(self) -> str:
        request, problem = self.request()
        self.editor.set_class(bool(problem) and request.kind == BodyKind.JSON and request.sends_body, "invalid")
        if problem:
            shown = Text(problem, style="bold red")
        elif not request.sends_body:
            shown = Text("GET: the query is the input; no body is sent", style="green")
        else:
            shown = Text({BodyKind.JSON: "valid JSON", BodyKind.TEXT: "text body",
                          BodyKind.FILE: "file ready"}[request.kind], style="green")
        self.query_one("#request-problem", Label).update(shown)
        return problem

    # -- sending -------------------------------------------------------------------------------

    @on(Button.Pressed, "#send")
    def _send_pressed(self) -> None:
        self.send()

    def send(self) -> bool:
        """Send the request the fields hold; False when it cannot be sent."""
        request, problem = self.request()
        if problem:
            self._check()
            self.notify(f"Not sent: {problem}", severity="error")
            return False
        if not self.scoring_uri:
            self.notify("Not sent: the endpoint has no scoring URI yet", severity="warning")
            return False
        self.answer.sending(f" ({self.not_serving})" if self.not_serving else "")
        self._post(self.scoring_uri, request)
        return True

    @work(exclusive=False, group="invoke")
    async def _post(self, uri: str, request: Request) -> None:
        timeout = min(self.timeout_s, NOT_SERVING_TIMEOUT_S) if self.not_serving else self.timeout_s
        self.in_flight += 1
        request_id = new_request_id()
        # The Traces tab shows it in flight until its answer; by its id, the server's word that the
        # debugger holds it is not shown a second time.
        self.post_message(RequestSent(request, sent_request_id(request, request_id)))
        try:
            exchange = await self.sender.send(uri, request, timeout, self.not_serving, request_id)
        finally:
            self.in_flight -= 1
        self.record(exchange)

    def record(self, exchange: Exchange) -> None:
        """An answer (or why there is none): on screen, in the history, and to the app."""
        self.history.append(exchange)
        self.query_one("#history", HistoryList).add(exchange)
        self.open(exchange)
        self.post_message(self.Answered(exchange))

    def open(self, exchange: Exchange) -> None:
        self.shown = exchange
        self.answer.show(exchange, self.serving_revision)

    def serving(self, revision: int | None) -> None:
        """The engine serves ``revision`` now: an answer on screen from an older one says so."""
        if revision != self.serving_revision:
            self.serving_revision = revision
            if self.shown is not None:
                self.open(self.shown)

    def explain(self, exchange: Exchange, line: str) -> None:
        """The log says why ``exchange`` failed: ``line``, the user's exception line."""
        explained = replace(exchange, exception=line)
        self.history = [explained if e is exchange else e for e in self.history]
        self.query_one("#history", HistoryList).replace(exchange, explained)
        if self.shown is exchange:
            self.open(explained)

    def reset_connections(self) -> None:
        """The server behind the scoring URI changed: the next request opens a new connection."""
        self.sender.reset()

    @on(ListView.Selected, "#history")
    def _opened(self, event: ListView.Selected) -> None:
        if isinstance(event.item, HistoryItem):
            self.open(event.item.exchange)

    @on(HistoryList.Edit)
    def _edit(self, event: HistoryList.Edit) -> None:
        self.load(event.exchange.request)
        self.body_field.focus()

    @work(group="swagger")
    async def prefill_from_swagger(self) -> None:
        """No sample-request.json: take the example from the swagger document, if it has one."""
        if not self.scoring_uri:
            return
        try:
            document = await self.sender.get_json(self.scoring_uri.rsplit("/", 1)[0] + "/swagger.json")
            example = document["definitions"]["ServiceInput"]["example"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return
        if example and self.editor.text.strip() in ("", "{}"):
            self.set_request(json.dumps(example, indent=2))

    # -- keys ----------------------------------------------------------------------------------

    def action_jump(self, target: str) -> None:
        """A direct key: show the part ``target`` names and focus it; a choice opens its list."""
        tabs, pane, selector = JUMPS[target]
        if tabs is not None:
            self.query_one(tabs, TabbedContent).active = pane
        widget = self.body_field if selector is None else self.query_one(selector)
        widget.focus()
        if isinstance(widget, Select):
            widget.expanded = True

    @on(Button.Pressed, "#copy-curl")
    def action_copy_curl(self) -> None:
        request, _ = self.request()
        self.last_curl = request.curl(self.scoring_uri or "http://127.0.0.1:5001/score")
        self.app.copy_to_clipboard(self.last_curl)
        self.notify(self.last_curl, title="Copied as curl", timeout=6)

    def action_pin(self) -> None:
        from ..pinning import from_invoke

        self.post_message(from_invoke(self.request()[0]))

    @on(Button.Pressed, "#goto-traceback")
    def action_goto_traceback(self) -> None:
        if self.shown is None or not self.shown.run_failed:
            self.notify("The answer on screen has no traceback: it did not fail in the server.", severity="warning")
            return
        self.post_message(TracebackWanted(self.shown.request_id, self.shown.sent, self.shown.at))
