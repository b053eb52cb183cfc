"""What is wrong right now, headline first: a failed revision (the exception line with its
file:line in the user's script, then the traceback) and YAML problems (file:line: field), until
a good reload or a good YAML clears them. Its height is capped so the log keeps the screen."""

from __future__ import annotations

import re
from pathlib import Path

from rich.text import Text
from textual.widgets import Static

from ...events import ReloadFinished
from ...spec import SpecError

_FRAME = re.compile(r'^\s*File "([^"]+)", line (\d+)', re.MULTILINE)
# The exception line: an unindented class name (dotted or not), then ": message" or nothing.
_EXCEPTION = re.compile(r"^(?:[A-Za-z_]\w*\.)*[A-Z]\w*(?::\s.*)?$")


def headline(traceback: str, code_dir: Path | None = None) -> tuple[str, str]:
    """(the exception line, "file:line" of the frame to look at) of a Python traceback: the
    innermost frame in ``code_dir`` (the user's script), else the innermost of all."""
    exception = next((line for line in reversed(traceback.rstrip().splitlines())
                      if _EXCEPTION.match(line) and not line.startswith("Traceback")), "")
    frames = _FRAME.findall(traceback)
    if code_dir is not None:
        mine = [(file, line) for file, line in frames if _inside(Path(file), code_dir)]
        frames = mine or frames
    if not frames:
        return exception, ""
    file, line = frames[-1]
    path = Path(file)
    if code_dir is not None and _inside(path, code_dir):
        file = str(path.relative_to(code_dir))
    return exception, f"{file}:{line}"


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
    except ValueError:
        return False
    return True


class FailurePanel(Static):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.reload: Text | None = None
        self.yaml: Text | None = None
        self.yaml_error: SpecError | None = None

    def on_mount(self) -> None:
        self.display = False

    def show_reload(self, event: ReloadFinished, code_dir: Path | None) -> None:
        exception, where = headline(event.traceback, code_dir)
        text = Text()
        text.append(exception or f"Revision {event.revision} failed", style="bold red")
        if where:
            text.append(f"  at {where}", style="bold")
        still = (f"revision {event.serving_revision} is still serving" if event.serving_revision is not None
                 else "nothing is serving until a good save")
        text.append(f"\nRevision {event.revision} failed in {event.stage or 'start'}: {still}.\n", style="red")
        text.append(event.traceback.rstrip(), style="dim")
        self.reload = text
        self._draw()

    def clear_reload(self) -> None:
        self.reload = None
        self._draw()

    def show_yaml(self, error: SpecError | None, serving: int | None) -> None:
        """The YAML's problems (None: the YAML is good again)."""
        if error is self.yaml_error:
            return
        self.yaml_error = error
        self.yaml = None
        if error is not None:
            keeps = f"revision {serving} keeps serving" if serving is not None else "nothing changes"
            text = Text(f"The changed YAML has problems; it is not applied and {keeps}:\n", style="bold red")
            for problem in error.problems:
                text.append(f"{problem}\n")
            for warning in error.warnings:
                text.append(f"warning: {warning}\n", style="yellow")
            text.rstrip()
            self.yaml = text
        self._draw()

    def _draw(self) -> None:
        parts = [part for part in (self.yaml, self.reload) if part is not None]
        self.update(Text("\n").join(parts) if parts else "")
        self.display = bool(parts)
        self.scroll_home(animate=False)
