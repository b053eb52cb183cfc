"""Every key of the app, where it works and what it does, from the same lists as the footer and
the command palette (``commands.py``), then Textual's own keys, read from its widgets' binding
lists, so a key Textual adds in a new version shows here too. The list scrolls: it has the focus
as soon as it opens."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from rich.table import Table
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import ScrollableContainer, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Input, Label, ListView, OptionList, Select, Static, Tabs, TextArea

from ..commands import SCOPES, key_name

# Keys that the app gives without a line in commands.py.
OWN_KEYS = [
    ("ctrl+p", "Command palette: every command above by name, and Textual's own (Keys, Screenshot, Theme)"),
    ("up, down", "Scroll the log a line (up stops following)"),
    ("pgup, pgdn", "Scroll the log a page (pgup stops following)"),
    ("home, end", "To the first line; to the last, which follows again"),
]

# Textual's widgets, where the app uses each, and the bindings they bring.
TEXTUAL_SCOPES = [
    ("anywhere (Textual)", (App, Screen)),
    ("in a scrolling view: the help, the answer's headers, the deployment panel", (ScrollableContainer,)),
    ("on a tab row (Logs/Invoke/Chat/Traces, Body/Headers)", (Tabs,)),
    ("on a choice (method, body kind, log source)", (Select,)),
    ("in the history and the Traces tab's list", (ListView,)),
    ("in the Traces tab's waterfall", (OptionList,)),
    ("in a one-line field (query, file, filter, chat message)", (Input,)),
    ("in the request editor and the headers (the answer's body: moving only)", (TextArea,)),
]
# Textual's keys the app takes for itself: ctrl+c quits (commands.py), not "how to quit".
TAKEN = {"help_quit"}


def textual_keys(classes: Iterable[type]) -> Iterator[tuple[str, str]]:
    """(key, what) for each binding of ``classes`` with a description, keys of one action together."""
    for cls in classes:
        for binding in cls.BINDINGS:
            if isinstance(binding, tuple):
                binding = Binding(*binding)
            if binding.action in TAKEN or not binding.description:
                continue
            yield ", ".join(binding.key.split(",")), binding.description


def _table(rows: Iterable[tuple[str, str]]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True, min_width=10)
    table.add_column()
    for key, what in rows:
        table.add_row(key, what)
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close", id="help-close")]
    AUTO_FOCUS = "#help-keys"  # up, down, pgup, pgdn, home and end scroll it at once

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box"):
            yield Label("Keys (esc closes; up, down, pgup, pgdn scroll)", classes="section-title")
            with VerticalScroll(id="help-keys"):
                for where, bindings in SCOPES:
                    yield Label(where.capitalize(), classes="help-scope")
                    yield Static(_table((key_name(b), b.tooltip or b.description) for b in bindings))
                yield Label("In the log, and the app's own", classes="help-scope")
                yield Static(_table(OWN_KEYS))
                for where, classes in TEXTUAL_SCOPES:
                    yield Label(f"Textual's own, {where}", classes="help-scope")
                    yield Static(_table(textual_keys(classes)))
