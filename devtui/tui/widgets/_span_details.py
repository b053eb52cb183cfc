"""What one span received and returned: its name, duration, kind and status, the exception it
raised (or its error), then its inputs and output (prompt flow's ``inputs`` / ``output``) and every
other attribute. It scrolls: inputs of an LLM call can be long."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.json import JSON
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from ..trace_book import WaterfallRow, span_details

NOTHING = "Enter on a request opens its spans; up and down move over them."


def _value(value: Any) -> RenderableType:
    if isinstance(value, (dict, list)):
        return JSON.from_data(value, indent=2)
    return Text(str(value))


def details(row: WaterfallRow) -> Group:
    """The span of ``row``, as the panel shows it."""
    span = row.span
    head = Text(span.name, style="bold")
    head.append(f"  {span.duration_ms:.3f} ms · {span.kind}", style="dim")
    if span.status != "unset":
        head.append(f" · {span.status.upper()}", style="bold red" if span.status == "error" else "green")
    parts: list[RenderableType] = [head]
    if row.exception:
        parts.append(Text(("✗ raised " if row.raised else "✗ ") + row.exception, style="bold red"))
    inputs, output, attributes = span_details(span)
    for title, value in (("Inputs", inputs), ("Output", output)):
        if value is not None:
            parts += [Text(title, style="bold"), _value(value)]
    if attributes:
        # name value, folded at the width: a narrow panel still shows both.
        parts += [Text("Attributes", style="bold"), *(
            Text.assemble((name, "bold cyan"), " ", value if isinstance(value, str) else repr(value), overflow="fold")
            for name, value in sorted(attributes.items()))]
    return Group(*parts)


class SpanDetails(VerticalScroll):
    row: WaterfallRow | None = None  # the span shown

    def compose(self) -> ComposeResult:
        yield Static(NOTHING, id="span-info")

    def show(self, row: WaterfallRow | None) -> None:
        self.row = row
        self.query_one("#span-info", Static).update(details(row) if row is not None else NOTHING)
        self.scroll_home(animate=False)
