"""The Traces tab: the requests traced this session, newest first (``TraceList``), then those
kept from before it (read from the traces file off the app's thread once mounted), and the one
opened as a waterfall of its spans (``Waterfall``) beside the highlighted span's inputs, output
and attributes (``SpanDetails``). A failed request opens on the span that raised, its exception
above the waterfall. The requests in flight are counted above the list: the Invoke tab's, until
their answer, and any other client's while the debugger holds it at a breakpoint (the server says
which, by x-request-id; an Invoke request it names is not counted twice). With traces off it says
how to turn them on.
"""

from __future__ import annotations

import asyncio

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.reactive import reactive
from textual.widgets import Label, ListView, Static

from inference_server.protocol import HeldRequest

from ...traces import EarlierTraces
from ..trace_book import CAPACITY, TraceBook, TracedRequest, read_earlier
from ._span_details import SpanDetails
from ._trace_list import HEADINGS, TraceItem, TraceList
from ._waterfall import Waterfall

OFF = ("Request traces are off. Start devtui with --traces (devtui PATH --traces, or devtui up --traces) to see "
       "what each request did inside the deployment, span by span. They cost the request path (see the README), "
       "so they are off unless asked.")
NOTHING_YET = "No request traced yet: send one (ctrl+j)."


class TracesPanel(Vertical):
    # Invoke's requests sent and not yet answered: (the request, what it sends, its x-request-id).
    in_flight: reactive[tuple[tuple[object, str, str], ...]] = reactive((), init=False)
    held_at: reactive[str] = reactive("", init=False)  # where the debugger stopped; "" when it runs
    # The requests the debugger holds there, whoever sent them (Invoke's among them).
    held_requests: reactive[tuple[HeldRequest, ...]] = reactive((), init=False)

    def __init__(self, enabled: bool, capacity: int = CAPACITY, earlier: EarlierTraces | None = None,
                 **kwargs) -> None:
        """``earlier``: the traces kept before this session, listed below its own once read."""
        super().__init__(**kwargs)
        self.enabled = enabled
        self.capacity = capacity
        self.earlier = earlier if enabled else None
        self.book = TraceBook(capacity)
        self.opened: TracedRequest | None = None
        self.wanted = ""  # the x-request-id whose trace is to open when it arrives

    def compose(self) -> ComposeResult:
        if not self.enabled:
            with VerticalScroll(id="traces-off"):
                yield Static(OFF)
            return
        yield Label("", id="traces-in-flight")
        yield Label(f"Requests, newest first (enter opens)\n{HEADINGS}", classes="section-title")
        yield TraceList(self.capacity, id="trace-list")
        yield Label(NOTHING_YET, id="trace-title")
        with Horizontal(id="trace-view"):
            yield Waterfall(id="waterfall")
            yield SpanDetails(id="span-details")

    def on_mount(self) -> None:
        if self.enabled:
            self._show_in_flight()
        if self.earlier is not None:
            self.run_worker(self._read_earlier(self.earlier), name="earlier traces", group="earlier-traces")

    async def _read_earlier(self, earlier: EarlierTraces) -> None:
        # Up to 50 MiB on disk: read on a thread, so the first frame never waits for it.
        found = await asyncio.to_thread(read_earlier, earlier, self.capacity)
        added = self.book.add_earlier(found)
        if added:
            self.query_one("#trace-list", TraceList).add_earlier(added)
            self._listed()

    def on_unmount(self) -> None:
        if self.earlier is not None:
            self.earlier.close()  # not read yet (the app closed first); read, it is closed already

    @property
    def focus_target(self):
        """What the tab focuses: the list (or, with traces off, the message)."""
        return self.query_one("#trace-list" if self.enabled else "#traces-off")

    def add(self, revision: int, otlp: str) -> None:
        """A batch of spans: the requests it completes go on top of the list."""
        done = self.book.feed(revision, otlp)
        if not done or not self.enabled:
            return
        self.query_one("#trace-list", TraceList).add(done)
        self._listed()
        wanted = next((r for r in done if self.wanted and r.request_id == self.wanted), None)
        if wanted is not None:
            self.open(wanted)

    def _listed(self) -> None:
        if self.opened is None and not self.wanted:
            self.query_one("#trace-title", Label).update("Enter on a request opens its spans.")

    def open(self, request: TracedRequest, focus: bool = True) -> None:
        """``request``'s waterfall, on the span that raised if one did."""
        self.opened, self.wanted = request, ""
        title = Text(f"{request.root.name}  {request.status_code or '---'}  {request.duration_ms:.3f} ms  "
                     f"{request.request_id}", style="bold")
        if exception := request.exception():
            raised = request.raised()
            title.append(f"\n✗ {exception}", style="bold red")
            title.append(f"  (raised in {raised.name})" if raised is not None else "", style="red")
        self.query_one("#trace-title", Label).update(title)
        waterfall = self.query_one("#waterfall", Waterfall)
        waterfall.show(request)
        if focus:
            waterfall.focus()

    def open_request(self, request_id: str) -> bool:
        """Open the trace of ``request_id``; False when it has not arrived (yet): it opens when
        it does."""
        found = self.book.find(request_id)
        if found is not None:
            self.open(found)
            return True
        self.wanted = request_id
        self.query_one("#trace-title", Label).update(
            Text(f"Waiting for the trace of request {request_id}...", style="yellow"))
        return False

    @on(ListView.Selected, "#trace-list")
    def _selected(self, event: ListView.Selected) -> None:
        if isinstance(event.item, TraceItem):
            self.open(event.item.request)

    @on(Waterfall.SpanHighlighted)
    def _span(self, event: Waterfall.SpanHighlighted) -> None:
        self.query_one("#span-details", SpanDetails).show(event.row)

    # -- in flight ---------------------------------------------------------------------------------

    def sent(self, request: object, what: str, request_id: str = "") -> None:
        self.in_flight = (*self.in_flight, (request, what, request_id))

    def answered(self, request: object) -> None:
        self.in_flight = tuple(sent for sent in self.in_flight if sent[0] is not request)

    def held(self, where: str, requests: tuple[HeldRequest, ...] = ()) -> None:
        """The debugger stopped (``where``: at score.py:30 in run()) holding ``requests``, or
        ``""``: it runs on."""
        self.held_at, self.held_requests = where, requests if where else ()

    def watch_in_flight(self) -> None:
        self._show_in_flight()

    def watch_held_at(self) -> None:
        self._show_in_flight()

    def watch_held_requests(self) -> None:
        self._show_in_flight()

    def _show_in_flight(self) -> None:
        if not self.enabled:
            return
        label = self.query_one("#traces-in-flight", Label)
        text = in_flight_line(self.in_flight, self.held_requests, self.held_at)
        label.display = bool(text)
        if text:
            label.update(Text(text, style="bold yellow"))


def in_flight_line(invoked: tuple[tuple[object, str, str], ...], held: tuple[HeldRequest, ...], held_at: str) -> str:
    """The in-flight line: Invoke's requests (what each sends), then those of other clients the
    debugger holds (method, path, x-request-id); "" when none is in flight."""
    ours = {request_id for _, _, request_id in invoked if request_id}
    others = [r for r in held if r.request_id not in ours]
    count = len(invoked) + len(others)
    if not count:
        return ""
    source = (" sent from Invoke" if not others else "" if not invoked
              else f" ({len(invoked)} sent from Invoke)")
    where = f", held by the debugger {held_at}" if held_at else ""
    what = [what for _, what, _ in invoked] + [_held(r) for r in others]
    return (f"In flight: {count} request{'s' if count > 1 else ''}{source}{where}; spans come when a request ends. "
            + "; ".join(what))


def _held(request: HeldRequest) -> str:
    trace = f", trace {request.trace_id[:8]}..." if request.trace_id else ""
    return f"{request.method} {request.path} (x-request-id {request.request_id}{trace})"
