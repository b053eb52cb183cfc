"""Every key of the app, where it works and what it does, from the same lists as the footer and
the command palette (``commands.py``), with Textual's own keys after them."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from ..commands import SCOPES

# Keys that Textual's widgets and the app give without a line in commands.py.
TEXTUAL_KEYS = [
    ("ctrl+p", "Command palette: every command above by name, and Textual's own (Keys, Screenshot, Theme)"),
    ("tab / shift+tab", "Move the focus to the next / previous field"),
    ("up / down, pgup / pgdn, home / end", "Scroll the log (scrolling up stops following; the end resumes it)"),
]


def key_name(binding: Binding) -> str:
    return binding.key_display or {"slash": "/", "question_mark": "?"}.get(binding.key, binding.key)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close", id="help-close")]

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        for where, bindings in SCOPES:
            table.add_row(Text(where.capitalize(), style="bold underline"), "")
            for binding in bindings:
                table.add_row(key_name(binding), binding.tooltip or binding.description)
            table.add_row("", "")
        table.add_row(Text("Textual's own", style="bold underline"), "")
        for key, what in TEXTUAL_KEYS:
            table.add_row(key, what)
        with Vertical(id="help-box"):
            yield Label("Keys (esc closes)", classes="section-title")
            with VerticalScroll(id="help-keys"):
                yield Static(table)
