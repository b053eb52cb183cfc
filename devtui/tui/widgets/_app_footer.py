"""Textual's footer, compact, with Help, Quit and the palette pinned to the right. The focused
widget's keys come first, then the app's; those that do not fit the width are left out whole
(the help screen and the palette list them all), so Help and Quit are never pushed off."""

from __future__ import annotations

from rich.cells import cell_len
from textual.app import ComposeResult
from textual.containers import HorizontalGroup
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

PINNED = ("help", "quit")


def _width(key: FooterKey) -> int:
    # Compact style: the key, a space and the description, then a margin of one.
    return cell_len(key.key_display) + (1 + cell_len(key.description) if key.description else 0) + 1


class AppFooter(Footer):
    def __init__(self, **kwargs) -> None:
        super().__init__(compact=True, **kwargs)

    def compose(self) -> ComposeResult:
        pinned, rest = [], []
        for widget in super().compose():
            if isinstance(widget, FooterKey) and (widget.action in PINNED or widget.has_class("-command-palette")):
                pinned.append(self._plain(widget))
            else:
                rest.append(widget)
        room = (self.size.width or self.app.size.width) - sum(map(_width, pinned)) - 3
        for widget in rest:
            width = _width(widget) if isinstance(widget, FooterKey) else 0
            if width > room:
                break
            room -= width
            yield widget
        if pinned:
            with HorizontalGroup(id="footer-pinned"):
                yield from pinned

    def on_resize(self) -> None:
        self.call_later(self.recompose)

    def _plain(self, key: FooterKey) -> FooterKey:
        """Textual's own ctrl+c comes first among the quit keys: show q instead while q quits
        (not while a text field takes the letter)."""
        if key.action == "quit" and key.key != "q" and "q" in self.screen.active_bindings:
            return FooterKey("q", "q", key.description, "quit", tooltip=key.tooltip or "")
        return key
