"""A failed reload's traceback; it stays until the next good reload."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class TracebackPanel(Static):
    def show_failure(self, revision: int, stage: str, traceback: str, serving: int | None) -> None:
        text = Text()
        still = (f"revision {serving} is still serving" if serving is not None
                 else "nothing is serving until a good save")
        text.append(f"Revision {revision} failed in {stage}: {still}.\n", style="bold red")
        text.append(traceback.rstrip())
        self.update(text)
        self.display = True

    def clear_failure(self) -> None:
        self.update("")
        self.display = False
