"""Textual's footer, compact, with Help, Quit and the palette pinned to the right. The focused
widget's keys come first, then the app's; those that do not fit the width are left out whole
(the help screen and the palette list them all), so Help and Quit are never pushed off, nor the
keys hard to find otherwise (KEPT)."""

from __future__ import annotations

from rich.cells import cell_len
from textual.app import ComposeResult
from textual.containers import HorizontalGroup
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

PINNED = ("help", "quit")
# Kept in the footer whatever else fits: esc (the way out of any field), the runtime switch, and
# below this many columns (where the deployment panel starts hidden) the key that shows it.
KEPT = ("back_to_log", "switch_runtime")
PANEL_KEY_BELOW = 120


def _width(key: FooterKey) -> int:
    # Compact style: the key, a space and the description, then a margin of one.
    return cell_len(key.key_display) + (1 + cell_len(key.description) if key.description else 0) + 1


class AppFooter(Footer):
    def __init__(self, **kwargs) -> None:
        super().__init__(compact=True, **kwargs)
        self._shown: tuple | None = None  # what the last recompose showed (see bindings_changed)

    def bindings_changed(self, screen) -> None:
        """Textual's footer recomposes at every change of the screen's bindings, which is every
        focus change and every refresh of what is enabled (the app refreshes at each engine event):
        a dozen keys mounted and styled again, most of the time the same keys. Here only when what
        it would show differs."""
        shown = (tuple((binding.key, binding.description, binding.action, enabled, tooltip)
                       for _, binding, enabled, tooltip in screen.active_bindings.values() if binding.show),
                 self.size.width, getattr(self.app.focused, "id", None) == "log-lines")
        if shown == self._shown:
            return
        # Kept only where Textual's recompose follows: otherwise the next change must recompose.
        self._shown = shown if screen.app.app_focus and self.is_attached and screen is self.screen else None
        super().bindings_changed(screen)

    def compose(self) -> ComposeResult:
        pinned, rest = [], []
        for widget in super().compose():
            if isinstance(widget, FooterKey) and (widget.action in PINNED or widget.has_class("-command-palette")):
                pinned.append(self._plain(widget))
            else:
                rest.append(widget)
        yield from self._fitting(rest, sum(map(_width, pinned)) + 3)
        if pinned:
            with HorizontalGroup(id="footer-pinned"):
                yield from pinned

    def _fitting(self, rest: list, taken: int):
        """The keys of ``rest`` that fit beside ``taken`` cells, in order: the KEPT ones always,
        the others until one does not fit."""
        width = self.size.width or self.app.size.width
        kept = KEPT + (("toggle_side_panel",) if width < PANEL_KEY_BELOW else ())
        rest = [w for w in rest if not self._idle(w)]
        is_kept = [isinstance(w, FooterKey) and w.action in kept for w in rest]
        room = width - taken - sum(_width(w) for w, keep in zip(rest, is_kept) if keep)
        full = False
        for widget, keep in zip(rest, is_kept):
            size = 0 if keep or not isinstance(widget, FooterKey) else _width(widget)
            full = full or size > room  # the rest is left out whole, in order
            if keep or not full:
                room -= size
                yield widget

    def _idle(self, widget) -> bool:
        """`l` says nothing on the log itself: its room goes to the keys after it."""
        return (isinstance(widget, FooterKey) and widget.action == "focus_logs"
                and getattr(self.app.focused, "id", None) == "log-lines")

    def on_resize(self) -> None:
        self._shown = None
        self.call_later(self.recompose)

    def _plain(self, key: FooterKey) -> FooterKey:
        """Textual's own ctrl+c comes first among the quit keys: show q instead while q quits
        (not while a text field takes the letter)."""
        if key.action == "quit" and key.key != "q" and "q" in self.screen.active_bindings:
            return FooterKey("q", "q", key.description, "quit", tooltip=key.tooltip or "")
        return key
