"""Where the focus goes: each tab has its own field, and the focus is never on a widget the user
cannot see. A hidden widget that has the focus takes every key typed (into a JSON body the user
cannot see) or lets letters reach the app's own keys (`r` reloads, `q` quits), so whenever the
focus is found on one (a tab switch hid it, a field was swapped out) it moves to the active tab's
field: a text field if the user was typing, so what is typed next is still text.
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
        return self.app.logs.lines

    def show(self, tab: str) -> None:
        """Show ``tab`` and focus its field."""
        self.tabs.active = tab
        self.field_of(tab).focus()

    def keep_visible(self) -> None:
        """Move the focus off a hidden widget, to the active tab's field (the main screen only:
        a dialog's focus is its own)."""
        focused = self.app.focused
        if focused is None or focused.screen is not self.app.screen or shown(focused):
            return
        field = self.field_of(self.tabs.active)
        if not typing_in(focused) or typing_in(field):
            field.focus()
        else:  # the user was typing: the active tab's first field that takes text, if it has one
            fields = [w for w in self.app.screen.focus_chain if typing_in(w) and self.tabs.active_pane in w.ancestors]
            (fields[0] if fields else field).focus()
