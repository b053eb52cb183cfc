"""Every key of the app, where it works and what it does, from the same lists as the footer and
the command palette (``commands.py``), with Textual's own keys after them."""

from __future__ import annotations

from collections.abc import Iterable

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from ..commands import SCOPES, key_name

# Keys that Textual's widgets and the app give without a line in commands.py.
TEXTUAL_KEYS = [
    ("ctrl+p", "Command palette: every command above by name, and Textual's own (Keys, Screenshot, Theme)"),
    ("tab", "Move the focus to the next field (shift+tab: the previous one)"),
    ("up, down", "Scroll the log a line (up stops following)"),
    ("pgup, pgdn", "Scroll the log a page (pgup stops following)"),
    ("home, end", "To the first line; to the last, which follows again"),
]


def _table(rows: Iterable[tuple[str, str]]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True, min_width=10)
    table.add_column()
    for key, what in rows:
        table.add_row(key, what)
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close", id="help-close")]

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box"):
            yield Label("Keys (esc closes)", classes="section-title")
            with VerticalScroll(id="help-keys"):
                for where, bindings in SCOPES:
                    yield Label(where.capitalize(), classes="help-scope")
                    yield Static(_table((key_name(b), b.tooltip or b.description) for b in bindings))
                yield Label("Textual's own", classes="help-scope")
                yield Static(_table(TEXTUAL_KEYS))
