"""Request traces kept per endpoint: the scoring server's span batches (OTLP JSON, one line per
batch, already scrubbed of secrets by the engine) appended to ``traces.jsonl`` in the endpoint's
folder, rotated like the logs; and read back as one :class:`Trace` per request, for ``devtui
traces``; :class:`EarlierTraces` reads the newest of them from the end, for the app's Traces tab.

A request's spans may arrive in more than one batch (a batch is sent every 100 ms): a trace is
whole once its root span (the request's, with no parent) has arrived, and :class:`TraceReader`
holds the others until then.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .registry import private_folder, private_opener

# At most MAX_BYTES per endpoint: the file is rotated before a batch would take it past half of
# that, keeping one older file (``traces.jsonl.1``), as the logs are.
MAX_BYTES = 50 * 1024 * 1024
FILE = "traces.jsonl"

REQUEST_ID = "http.request.header.x-request-id"
CLIENT_REQUEST_ID = "http.request.header.x-ms-client-request-id"
STATUS_CODE = "http.response.status_code"
_KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
_STATUS = {0: "unset", 1: "ok", 2: "error"}


def path(folder: Path) -> Path:
    """The traces file of the endpoint whose folder is ``folder``."""
    return folder / "traces" / FILE


class TraceFile:
    """Appends batches (one OTLP JSON line each) to the traces file, rotating it at half of
    ``max_bytes`` so that it and its one older file never hold more."""

    def __init__(self, file: Path, max_bytes: int = MAX_BYTES):
        self.file = file
        self.rotate_bytes = max_bytes // 2
        private_folder(file.parent)
        self._out = None

    def write(self, line: str) -> None:
        data = (line.rstrip("\n") + "\n").encode()
        if self._out is None:
            self._out = open(self.file, "ab", opener=private_opener)
        if self._out.tell() and self._out.tell() + len(data) > self.rotate_bytes:
            self._out.close()
            os.replace(self.file, self.file.with_name(self.file.name + ".1"))
            self._out = open(self.file, "ab", opener=private_opener)
        self._out.write(data)
        self._out.flush()

    def close(self) -> None:
        if self._out is not None:
            out, self._out = self._out, None
            out.close()


# -- reading ---------------------------------------------------------------------------------------

@dataclass
class Span:
    name: str
    span_id: str
    parent_span_id: str
    trace_id: str
    start_ns: int
    end_ns: int
    kind: str
    status: str
    attributes: dict[str, Any]

    @property
    def duration_ms(self) -> float:
        return round((self.end_ns - self.start_ns) / 1e6, 3)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "span_id": self.span_id, "parent_span_id": self.parent_span_id or None,
                "start_time": _iso(self.start_ns), "duration_ms": self.duration_ms, "kind": self.kind,
                "status": self.status, "attributes": self.attributes}


@dataclass
class Trace:
    """One request: its root span and every span under it, in the order they started."""

    trace_id: str
    spans: list[Span] = field(default_factory=list)

    @property
    def root(self) -> Span:
        return next(s for s in self.spans if not s.parent_span_id)

    @property
    def request_id(self) -> str | None:
        return self.root.attributes.get(REQUEST_ID)

    @property
    def status_code(self) -> int | None:
        return self.root.attributes.get(STATUS_CODE)

    def to_json(self) -> dict[str, Any]:
        return {"trace_id": self.trace_id, "request_id": self.request_id, "status_code": self.status_code,
                "duration_ms": self.root.duration_ms, "spans": [s.to_json() for s in self.spans]}

    def tree(self) -> list[tuple[int, Span]]:
        """The spans with their depth, each under its parent (children in the order they started)."""
        children: dict[str, list[Span]] = {}
        ids = {s.span_id for s in self.spans}
        for span in self.spans:
            parent = span.parent_span_id if span.parent_span_id in ids else ""
            children.setdefault(parent, []).append(span)
        rows: list[tuple[int, Span]] = []

        def walk(parent: str, depth: int) -> None:
            for span in children.get(parent, ()):
                rows.append((depth, span))
                walk(span.span_id, depth + 1)

        walk("", 0)
        return rows


class TraceReader:
    """Turns batches into whole traces, holding a trace's spans until its root arrives."""

    def __init__(self) -> None:
        self.pending: dict[str, list[Span]] = {}

    def feed(self, line: str) -> list[Trace]:
        """The traces ``line`` (one batch) completes; a line that is not a batch completes none."""
        done: list[Trace] = []
        for span in _spans(_batch(line)):
            self.pending.setdefault(span.trace_id, []).append(span)
            if not span.parent_span_id:
                trace = Trace(span.trace_id, sorted(self.pending.pop(span.trace_id), key=lambda s: s.start_ns))
                done.append(trace)
        return done


def read(file: Path, last: int | None = None, reader: TraceReader | None = None) -> list[Trace]:
    """The whole traces kept in ``file`` (and its older file), newest first; the ``last`` newest.
    ``reader`` keeps the spans of traces not yet whole, for following the file from its end."""
    reader = reader if reader is not None else TraceReader()
    traces: list[Trace] = []
    for name in (file.with_name(file.name + ".1"), file):
        if name.exists():
            with open(name, encoding="utf-8", errors="replace") as lines:
                for line in lines:
                    traces.extend(reader.feed(line))
    traces.sort(key=lambda t: t.root.start_ns, reverse=True)
    return traces[:last] if last is not None else traces


class EarlierTraces:
    """The traces kept before now, for the app to list below the ones that arrive later.

    The file and its older one are opened at once, as they are (opening reads nothing), and read
    later, only up to the size each had then: what the endpoint appends (or rotates) meanwhile is
    not taken for earlier. :meth:`batches` reads them from the end, block by block, only as far
    back as the ``count`` newest traces need.
    """

    BLOCK = 64 * 1024

    def __init__(self, file: Path) -> None:
        self._opened: list[tuple[Any, int]] = []
        # The current file first: a rotation between the two opens shows one file twice (the
        # caller drops a trace seen twice), never loses one.
        for name in (file, file.with_name(file.name + ".1")):
            try:
                kept = open(name, "rb")  # closed by batches() or close()
            except OSError:
                continue
            self._opened.append((kept, os.fstat(kept.fileno()).st_size))

    def batches(self, count: int) -> tuple[list[str], set[str]]:
        """The batches (lines, oldest first) that hold the ``count`` newest whole traces, read
        from the end, and those traces' ids (the lines may hold parts of others). A line that is
        not a batch (cut short, not JSON) is skipped. Children end before their request's span,
        so they come in its batch or an earlier one: reading stops at a line whose spans all ended
        before the oldest of those requests started."""
        wanted: dict[str, int] = {}  # trace id -> its request's start, once its root is read
        kept: list[str] = []
        try:
            for line in self._lines() if count > 0 else ():
                spans = list(_spans(_batch(line)))
                if not spans:
                    continue
                if len(wanted) >= count and max(s.end_ns for s in spans) < min(wanted.values()):
                    break
                if len(wanted) < count:  # all the roots of the line: a few more than count at most
                    wanted.update((s.trace_id, s.start_ns) for s in spans if not s.parent_span_id)
                if any(s.trace_id in wanted for s in spans):
                    kept.append(line)
        except (OSError, ValueError):
            pass  # a file that cannot be read (or closed as the app quits) ends the reading there
        finally:
            self.close()
        return kept[::-1], set(wanted)

    def close(self) -> None:
        for kept, _ in self._opened:
            kept.close()
        self._opened = []

    def _lines(self) -> Iterator[str]:
        """Every line of the files as opened, newest first."""
        for kept, size in self._opened:
            end, head = size, b""
            while end > 0:
                start = max(end - self.BLOCK, 0)
                kept.seek(start)
                lines = (kept.read(end - start) + head).split(b"\n")
                head = lines.pop(0) if start else b""  # the block may start inside a line
                end = start
                yield from (line.decode("utf-8", errors="replace") for line in reversed(lines) if line.strip())


def _batch(line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None


def render_tree(trace: Trace) -> list[str]:
    """A request as ``devtui traces`` prints it: a heading, then each span under its parent."""
    status = trace.status_code if trace.status_code is not None else "?"
    lines = [f"{_iso(trace.root.start_ns)}  {trace.request_id or '(no request id)'}  {status}  "
             f"{trace.root.duration_ms:.3f} ms"]
    for depth, span in trace.tree():
        failed = "  ERROR" if span.status == "error" else ""
        lines.append(f"  {'  ' * depth}{span.name}  {span.duration_ms:.3f} ms{failed}")
    return lines


def raw_spans(batch: Any) -> Iterator[dict]:
    """Each span of a batch (OTLP JSON, parsed), as it is; what is not shaped as OTLP is skipped."""
    for resource in _dicts(batch, "resourceSpans"):
        for scope in _dicts(resource, "scopeSpans"):
            yield from _dicts(scope, "spans")


def _dicts(value: Any, key: str) -> list[dict]:
    items = value.get(key) if isinstance(value, dict) else None
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def _spans(batch: Any) -> Iterator[Span]:
    for raw in raw_spans(batch):
        try:
            yield Span(name=raw["name"], span_id=raw["spanId"], parent_span_id=raw.get("parentSpanId") or "",
                       trace_id=raw["traceId"], start_ns=int(raw["startTimeUnixNano"]),
                       end_ns=int(raw["endTimeUnixNano"]), kind=_KINDS.get(raw.get("kind", 0), "unspecified"),
                       status=_STATUS.get((raw.get("status") or {}).get("code", 0), "unset"),
                       attributes=_attributes(raw.get("attributes") or ()))
        except (AttributeError, KeyError, TypeError, ValueError):
            continue  # a span this reader cannot make sense of is skipped, not the batch


def _attributes(pairs: Iterable[dict]) -> dict[str, Any]:
    return {pair["key"]: _value(pair.get("value") or {}) for pair in pairs if "key" in pair}


def _value(value: dict) -> Any:
    if "intValue" in value:
        return int(value["intValue"])
    if "arrayValue" in value:
        return [_value(v) for v in value["arrayValue"].get("values", ())]
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in value:
            return value[key]
    return None


def _iso(ns: int) -> str:
    import datetime

    moment = datetime.datetime.fromtimestamp(ns / 1e9, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
