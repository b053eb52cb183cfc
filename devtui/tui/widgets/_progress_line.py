"""A long step (image build, model copy): what it is doing and how far it is."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label, ProgressBar

from ...events import Progress


class ProgressLine(Horizontal):
    def compose(self) -> ComposeResult:
        yield Label("", id="progress-step")
        yield ProgressBar(id="progress-bar", show_eta=False)

    def on_mount(self) -> None:
        self.display = False

    def update(self, event: Progress) -> None:
        done = bool(event.total) and event.done >= event.total
        self.display = not done
        self.query_one("#progress-step", Label).update(event.step)
        self.query_one("#progress-bar", ProgressBar).update(total=event.total or None, progress=event.done)
