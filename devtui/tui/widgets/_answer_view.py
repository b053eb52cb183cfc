"""An answer of the endpoint: status and why, the round trip beside the server's own time in
run(), and the body and every header, each in a tab of its own so all of them stay readable."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Button, Static, TabbedContent, TabPane, TextArea

from ..exchange import Exchange, pretty


def status_style(status: int | None) -> str:
    if status is None or status >= 500:
        return "bold red"
    return "bold green" if status < 300 else "bold yellow"


def revision_stamp(revision: int | None, serving: int | None = None) -> Text:
    """``rev 5``, and whether a newer revision serves now (an answer from before a save)."""
    if revision is None:
        return Text()
    text = Text(f"rev {revision}", style="bold")
    if serving is not None and revision < serving:
        text.append(f" · older than serving rev {serving}", style="bold yellow")
    return text


def status_line(exchange: Exchange, serving: int | None = None) -> Text:
    """The status, timing and revision, then why it failed: the user's exception line (from the
    log) and the server's reason, each whole on a line of its own."""
    text = Text()
    if exchange.status is None:
        text.append("no answer", style="bold red")
        text.append(f"  after {exchange.latency_ms:.1f} ms")
    else:
        text.append(f"{exchange.status} {exchange.phrase}", style=status_style(exchange.status))
        text.append(f"  {exchange.latency_ms:.1f} ms round trip")
        if exchange.exec_ms is not None:
            text.append(f" · run() {exchange.exec_ms:.1f} ms", style="bold")
        if exchange.revision is not None:
            text.append(" · ").append_text(revision_stamp(exchange.revision, serving))
    if exchange.exception:
        text.append(f"\n{exchange.exception}", style="bold red")
    if exchange.why:
        text.append(f"\n{exchange.why}", style="red")
    if exchange.message:
        text.append(f"\nserver: {exchange.message}", style="yellow" if exchange.status < 500 else "red")
    return text


class AnswerView(Vertical):
    def compose(self) -> ComposeResult:
        with Vertical(id="answer-line"):  # the status whole, the traceback's button under it
            yield Static("Nothing sent yet.", id="response-status")
            yield Button("g: traceback in log", id="goto-traceback", variant="error", compact=True)
        with TabbedContent(id="answer-tabs"):
            with TabPane("Body", id="answer-body-tab"):
                yield TextArea("", language="json", read_only=True, id="response-body")
            with TabPane("Headers", id="answer-headers-tab"):
                with VerticalScroll(id="response-headers-box"):
                    yield Static("", id="response-headers")

    def on_mount(self) -> None:
        self.query_one("#goto-traceback").display = False

    def sending(self, note: str = "") -> None:
        self.query_one("#response-status", Static).update(Text(f"Sending...{note}", style="yellow"))

    def show(self, exchange: Exchange, serving: int | None = None) -> None:
        """``exchange`` on screen; ``serving``: the revision serving now, to mark an older answer."""
        self.query_one("#response-status", Static).update(status_line(exchange, serving))
        self.query_one("#goto-traceback").display = exchange.run_failed or bool(exchange.exception)
        self.query_one("#response-body", TextArea).load_text(pretty(exchange.answer))
        table = Table.grid(padding=(0, 1))
        table.add_column(style="bold", no_wrap=True)
        table.add_column(overflow="fold")
        for name, value in exchange.headers:
            table.add_row(name, value)
        self.query_one("#response-headers", Static).update(table if exchange.headers else "")
        count = len(exchange.headers)
        self.query_one("#answer-tabs", TabbedContent).get_tab("answer-headers-tab").label = (
            f"Headers ({count})" if count else "Headers")
