"""The Invoke tab's body editor: Tab moves on to the next field instead of indenting, and Esc
hands the focus back to the log, so the editor never traps it."""

from __future__ import annotations

from textual.widgets import TextArea

from ..commands import EDITOR_BINDINGS


class RequestEditor(TextArea):
    BINDINGS = EDITOR_BINDINGS

    def __init__(self, text: str = "", **kwargs) -> None:
        super().__init__(text, language="json", tab_behavior="focus", **kwargs)
