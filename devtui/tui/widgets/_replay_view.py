"""Replay on save, drawn: the pinned request's new answer beside the previous one, each stamped
with its revision and how that revision came to be, the diff of the bodies (coloured; "no
change" when equal), the user's exception line when it now fails, and a line while the debugger
holds the replay. It draws :mod:`devtui.replay`'s events; it sends nothing."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Static

from ...replay import Answer, PinnedRequest, Replayed, ReplayWaiting
from ..exchange import pretty
from ._answer_view import status_style

NOT_PINNED = ("Nothing is pinned, so nothing is replayed. p pins the Invoke tab's request (or the history "
              "row's, or the last chat turn's); every save that brings a new revision sends it again here.")


def side(title: str, answer: Answer | None, revision: int | None, how: str) -> Text:
    """One side: its revision and how it came to be, the status, the exception line, the body."""
    text = Text(title, style="bold")
    if revision is not None:
        text.append(f" · rev {revision}", style="bold")
    if how:
        text.append(f" · {how}", style="cyan")
    text.append("\n")
    if answer is None:
        return text.append("(none yet: the first answer is the baseline)", style="dim")
    text.append(answer.status_text, style=status_style(answer.status))
    text.append(f"  {answer.latency_ms:.1f} ms\n")
    if answer.exception:
        text.append(answer.exception + "\n", style="bold red")
    if answer.why:
        text.append(answer.why + "\n", style="red")
    elif answer.message and not answer.ok:
        text.append(f"server: {answer.message}\n", style="red")
    return text.append(pretty(answer.body))


def diff_text(event: Replayed) -> Text:
    if event.baseline:
        return Text("baseline: the next save's answer is compared with this one", style="dim")
    if not event.diff:
        return Text("no change", style="bold green")
    text = Text()
    for number, line in enumerate(event.diff):
        style = ("bold" if line.startswith(("---", "+++")) else "green" if line.startswith("+")
                 else "red" if line.startswith("-") else "cyan" if line.startswith("@@") else "")
        text.append(("\n" if number else "") + line, style=style)
    return text


class ReplayView(VerticalScroll):
    """The Replay tab's content; ``pinned``, ``replayed``, ``waiting`` and ``unpinned`` draw it."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.request: PinnedRequest | None = None
        self.where = ""  # what was pinned, in words ("the Invoke request")
        self.last: Replayed | None = None

    def compose(self) -> ComposeResult:
        yield Static(NOT_PINNED, id="replay-state")
        yield Static("", id="replay-diff")  # first: what changed is read before the bodies
        with Horizontal(id="replay-sides"):
            yield Static("", id="replay-previous", classes="replay-side")
            yield Static("", id="replay-current", classes="replay-side")

    def _state(self, text: Text | str) -> None:
        self.query_one("#replay-state", Static).update(text)

    def pinned(self, request: PinnedRequest, where: str) -> None:
        self.request, self.where, self.last = request, where, None
        self._state(Text.assemble(("Pinned ", "bold"), f"{where} ({request.describe()}); replayed on every save "
                                  "that brings a new revision (p unpins)"))
        self.set_class(True, "-pinned")
        for part in ("#replay-previous", "#replay-current", "#replay-diff"):
            self.query_one(part, Static).update("")
        self.query_one("#replay-diff").set_class(True, "-empty")

    def unpinned(self) -> None:
        self.request = None
        self._state(NOT_PINNED)
        self.set_class(False, "-pinned")

    def waiting(self, event: ReplayWaiting) -> None:
        where = f" ({event.detail})" if event.detail else ""
        revision = f"revision {event.revision}'s " if event.revision is not None else "the "
        self._state(Text(f"The replay waits: the debugger holds a request{where}; {revision}replay is sent once "
                         "it lets go", style="bold yellow"))

    def replayed(self, event: Replayed) -> None:
        self.last = event
        previous = event.previous
        self._state(Text.assemble(("Pinned ", "bold"), f"{self.where} ({event.request.describe()}) · "
                                  + ("baseline" if event.baseline else "changed" if event.changed else "no change")
                                  + (" · an older revision answered" if event.stale else "")))
        self.query_one("#replay-previous", Static).update(
            side("Previous", previous, previous.revision if previous else None, ""))
        self.query_one("#replay-current", Static).update(
            side("Now", event.answer, event.revision, self._how(event)))
        self.query_one("#replay-diff", Static).update(diff_text(event))
        self.query_one("#replay-diff").set_class(False, "-empty")

    @staticmethod
    def _how(event: Replayed) -> str:
        if not event.rung:
            return event.how
        return f"{event.rung}: {event.how}" if event.how and event.how != event.rung else event.rung
