"""Where the focus goes: each tab has its own field, and the focus is never on a widget the user
cannot see. A hidden widget that has the focus takes every key typed (into a JSON body the user
cannot see) or lets letters reach the app's own keys (`r` reloads, `q` quits), so whenever the
focus is found on one (a tab switch hid it, a field was swapped out) it moves into the active tab:
to its text field if the user was typing, else to what it shows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.widget import Widget
from textual.widgets import Input, TabbedContent, TextArea

if TYPE_CHECKING:
    from .app import DevtuiApp


def shown(widget: Widget) -> bool:
    """Displayed and visible, with every ancestor."""
    return all(node.display and node.visible for node in widget.ancestors_with_self if isinstance(node, Widget))


def typing_in(widget: Widget | None) -> bool:
    """A field that takes letters as text."""
    return isinstance(widget, Input) or (isinstance(widget, TextArea) and not widget.read_only)


class Focus:
    """The app's tabs and the field each one gives the focus to."""

    def __init__(self, app: DevtuiApp) -> None:
        self.app = app

    @property
    def tabs(self) -> TabbedContent:
        return self.app.query_one("#tabs", TabbedContent)

    def field_of(self, tab: str | None) -> Widget:
        if tab == "invoke-tab":
            return self.app.invoke_panel.body_field
        if tab == "chat-tab":
            return self.app.query_one("#chat").message
        if tab == "replay-tab":
            return self.app.query_one("#replay")
        if tab == "traces-tab":
            return self.app.traces.focus_target
        return self.app.logs.lines

    def show(self, tab: str) -> None:
        """Show ``tab`` and focus its field."""
        self.tabs.active = tab
        self.field_of(tab).focus()

    def view_of(self, tab: str | None) -> Widget:
        """What the tab shows, to read with its keys (not a field that takes letters as text)."""
        if tab == "invoke-tab":
            return self.app.query_one("#response-body")
        if tab == "chat-tab":
            return self.app.query_one("#chat-transcript")
        if tab == "replay-tab":
            return self.app.query_one("#replay")
        if tab == "traces-tab":
            return self.app.traces.focus_target
        return self.app.logs.lines

    def keep_visible(self) -> None:
        """Move the focus off a hidden widget (the main screen only: a dialog's focus is its own):
        to the active tab's field if the user was typing, so what is typed next is still text;
        else to what the tab shows, so its keys (`g`, `y`) work at once."""
        if not self.app.screen.query("#tabs"):
            return
        focused = self.app.focused
        if focused is not None and shown(focused):
            return
        # None: Textual dropped the focus of a widget a tab switch hid; keys would reach the app's.
        active = self.tabs.active
        (self.field_of(active) if typing_in(focused) else self.view_of(active)).focus()
