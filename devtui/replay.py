"""Replay on save: a pinned request, sent again after every save that brings a new revision, and
its answer beside the one before it, with a diff of the two bodies.

:class:`Replay` is a listener of the engine (``engine.subscribe``): it changes nothing in it. It
is off until a request is pinned. Its first answer is the baseline (sent when the first revision
is ready, or at once when pinned while one serves); then each reload that brings a revision
(``ReloadFinished`` with ok) sends the request again. It sends from a task of its own, one
request at a time; reloads that finish while one is in flight are answered once, by the newest.
It never sends while the debugger holds a request: it says so (:class:`ReplayWaiting`) and sends
once the debugger lets go.

What it finds is told to its own subscribers (``replay.subscribe``), the CLI's and the app's:
:class:`Replayed` carries the answer (status, body, the revision that served it, the user's
exception line when run() raised), how that revision came to be (patch or swap), the previous
answer and the diff of the bodies.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from http import HTTPStatus
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from .events import (DELETING, DEVTUI, INFERENCE_SERVER, DebuggerChanged, DebuggerState, LogRecord, Logs, ReloadFinished,
                     Rung, StateChanged)
from .failures import FLOW_FAILED, LATE_S, exception_line, server_message

REVISION_HEADER = "x-devtui-revision"  # the revision whose worker wrote the answer
REQUEST_ID = "x-request-id"
ENVELOPE = frozenset({"method", "path", "headers", "body"})
# The server's lines kept to find a failure's exception line: a traceback is tens of lines, a
# replay waits at most LATE_S for them.
LOG_KEPT = 2000
NO_ANSWER_GRACE_S = 10  # beyond the deployment's request_timeout_ms, as `devtui invoke` waits


class RequestFileError(ValueError):
    """A request file that cannot be pinned; the message names the file and what is wrong."""


@dataclass(frozen=True)
class PinnedRequest:
    """The request a replay sends: ``path`` is resolved against the scoring URI ("" is the URI
    itself; "?verbose=1" adds a query; "/score?x=1" replaces path and query)."""

    method: str = "POST"
    path: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    source: Path | None = None  # the file it was read from

    @classmethod
    def read(cls, path: Path) -> PinnedRequest:
        """A request file: a JSON object with a "method" key and no keys beyond method, path,
        headers and body is the whole request; any other JSON is the body, POSTed as
        application/json (as `devtui invoke --request-file` sends it)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as ex:
            why = ex.strerror if isinstance(ex, OSError) else "it is not UTF-8 text"
            raise RequestFileError(f"{path}: cannot read the request file: {why}") from None
        return cls.parse(text, path.resolve())

    @classmethod
    def parse(cls, text: str, source: Path | None = None) -> PinnedRequest:
        where = source or "the request"
        try:
            value = json.loads(text)
        except json.JSONDecodeError as ex:
            raise RequestFileError(f"{where}: not JSON (line {ex.lineno}, column {ex.colno}: {ex.msg}); a request "
                                   "file is the JSON body, or {\"method\": ..., \"path\": ..., \"headers\": ..., "
                                   "\"body\": ...}") from None
        if isinstance(value, dict) and "method" in value and value.keys() <= ENVELOPE:
            return cls._envelope(value, where, source)
        return cls(headers=(("content-type", "application/json"),), body=text.encode(), source=source)

    @classmethod
    def _envelope(cls, value: dict, where: object, source: Path | None) -> PinnedRequest:
        method, path, headers = value["method"], value.get("path", ""), value.get("headers") or {}
        if not isinstance(method, str) or not method.isalpha():
            raise RequestFileError(f"{where}: method must be an HTTP method such as \"POST\" or \"GET\"")
        if not isinstance(path, str) or urlsplit(path).netloc:
            raise RequestFileError(f"{where}: path must be a path on the endpoint such as \"/score\" or "
                                   "\"?verbose=true\", not a URL")
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise RequestFileError(f"{where}: headers must be an object of header names to text values")
        body = value.get("body")
        if body is None:
            default, data = (), b""
        elif isinstance(body, str):  # sent as it is written
            default, data = (("content-type", "text/plain"),), body.encode()
        else:
            default, data = (("content-type", "application/json"),), json.dumps(body).encode()
        named = {name.lower() for name in headers}
        pairs = tuple((k, v) for k, v in default if k not in named) + tuple(headers.items())
        return cls(method.upper(), path, pairs, data, source)

    def url(self, scoring_uri: str) -> str:
        return urljoin(scoring_uri, self.path) if self.path else scoring_uri

    def describe(self) -> str:
        """What is replayed, in words: "sample-request.json (POST)", "request.json (GET ?verbose=1)"."""
        how = " ".join(filter(None, (self.method, self.path)))
        return f"{self.source.name} ({how})" if self.source else f"{how} to the scoring URI"


@dataclass(frozen=True)
class Answer:
    """What came back for one send: an answer, or why none did."""

    status: int | None  # None: no answer (``why`` says)
    body: str
    revision: int | None  # from x-devtui-revision: the revision whose worker wrote it
    request_id: str = ""
    latency_ms: float = 0.0
    why: str = ""  # no answer: why, in words ("no answer within 15 s")
    exception: str = ""  # the user's exception line, from the log, when run() raised
    sent: float = 0.0  # wall clock
    at: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def status_text(self) -> str:
        """"200 OK", "500 Internal Server Error", or "no answer"."""
        if self.status is None:
            return "no answer"
        try:
            return f"{self.status} {HTTPStatus(self.status).phrase}"
        except ValueError:
            return str(self.status)

    @property
    def message(self) -> str:
        """The server's reason in an error's JSON body ({"message": ...} or {"error": {"message": ...}})."""
        return server_message(self.body)


@dataclass(frozen=True)
class Replayed:
    """The pinned request's answer after a reload, beside the previous one (None: the baseline)."""

    request: PinnedRequest
    answer: Answer
    previous: Answer | None
    reload: ReloadFinished | None  # what brought the revision it was sent for
    diff: tuple[str, ...]  # previous body -> this one (unified); () when equal or the baseline

    @property
    def baseline(self) -> bool:
        return self.previous is None

    @property
    def revision(self) -> int | None:
        """The revision that served it: its own stamp, else the one it was sent for."""
        if self.answer.revision is not None:
            return self.answer.revision
        return self.reload.revision if self.reload is not None else None

    @property
    def rung(self) -> str:
        """patch, swap or start (a new server), as ReloadFinished.rung."""
        return self.reload.rung if self.reload is not None else ""

    @property
    def how(self) -> str:
        """How the revision came to be, in words ("patched run() in place (model kept)")."""
        if self.reload is None:
            return ""
        return "server started" if self.reload.rung in (Rung.START, None) else self.reload.how

    @property
    def stale(self) -> bool:
        """An older revision than the one it was sent for answered it (the reload's ``how`` is
        not this answer's)."""
        return (self.reload is not None and self.answer.revision is not None
                and self.answer.revision < self.reload.revision)

    @property
    def changed(self) -> bool:
        return bool(self.diff)


@dataclass(frozen=True)
class ReplayWaiting:
    """Revision ``revision`` serves, but the debugger holds a request (``detail``: where): the
    replay is sent once the debugger lets go."""

    revision: int | None
    detail: str = ""


ReplayEvent = Replayed | ReplayWaiting


def comparable(body: str) -> str:
    """A body as the diff compares it: JSON pretty-printed with sorted keys, else the text."""
    try:
        return json.dumps(json.loads(body), indent=2, sort_keys=True, ensure_ascii=False)
    except (ValueError, RecursionError):
        return body


def body_diff(before: str, after: str, before_name: str = "before", after_name: str = "after") -> tuple[str, ...]:
    """A unified diff of two bodies (see ``comparable``); () when they are the same."""
    old, new = comparable(before), comparable(after)
    if old == new:
        return ()
    return tuple(difflib.unified_diff(old.splitlines(), new.splitlines(), before_name, after_name, lineterm=""))


def _revision_name(answer: Answer | None, fallback: int | None) -> str:
    revision = answer.revision if answer is not None and answer.revision is not None else fallback
    return f"revision {revision}" if revision is not None else "the previous answer"


class Replay:
    """A pinned request replayed on every new revision of ``engine`` (see the module's doc)."""

    def __init__(self, engine, request: PinnedRequest | None = None):
        self.engine = engine
        self.request: PinnedRequest | None = None
        self.last: Answer | None = None  # the previous answer, which the next one is diffed with
        self.listeners: list[Callable[[ReplayEvent], None]] = []
        self.waiting: int | None = None  # the revision whose replay waits for the debugger
        self._due = False  # a revision serves that is not replayed yet
        self._due_for: ReloadFinished | None = None  # the newest reload that brought one (None: not known)
        self._wake = asyncio.Event()
        self._moved = asyncio.Event()  # the debugger (or the deployment's state) changed
        self._logged = asyncio.Event()  # new server lines
        self._records: deque[LogRecord] = deque(maxlen=LOG_KEPT)
        self._task: asyncio.Task | None = None
        self.in_flight = False
        engine.subscribe(self._on_event)
        if request is not None:
            self.pin(request)

    # -- the API the CLI and the app use ------------------------------------------------------------

    def subscribe(self, listener: Callable[[ReplayEvent], None]) -> None:
        self.listeners.append(listener)

    def pin(self, request: PinnedRequest, previous: Answer | None = None) -> None:
        """Replay ``request`` from now on. ``previous`` (an answer the caller already has, such as
        a history row's) is what the next answer is diffed with; without it, a baseline is sent
        now when a revision serves, else when the first one is ready."""
        self.request, self.last, self._records = request, previous, deque(maxlen=LOG_KEPT)
        serving, last = self.engine.serving_revision, self.engine.last_reload
        if previous is None and serving is not None:
            # The reload that brought the serving revision, when the last one did (not a failed one since).
            self._schedule(last if last is not None and last.ok and last.revision == serving else None)

    def unpin(self) -> None:
        """Stop replaying (a send in flight finishes, and is not reported)."""
        self.request, self.last, self._due, self._due_for, self.waiting = None, None, False, None, None
        self._moved.set()  # a replay waiting for the debugger gives up

    @property
    def pinned(self) -> bool:
        return self.request is not None

    async def close(self) -> None:
        """Stop: cancel a send or a wait, close the HTTP client, stop listening to the engine."""
        self.unpin()
        self.engine.unsubscribe(self._on_event)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    # -- the engine's events ---------------------------------------------------------------------

    def _on_event(self, event) -> None:
        if isinstance(event, (DebuggerChanged, StateChanged)):
            self._moved.set()
            if isinstance(event, StateChanged) and event.state == DELETING and self._task is not None:
                self._task.cancel()  # the engine stops: nothing is left to answer
        if self.request is None:
            return
        if isinstance(event, Logs):
            records = [r for r in event.records if r.source == INFERENCE_SERVER]
            if records:
                self._records.extend(records)
                self._logged.set()
        elif isinstance(event, ReloadFinished) and event.ok:
            self._schedule(event)

    def _schedule(self, reload: ReloadFinished | None) -> None:
        self._due, self._due_for = True, reload
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._work(), name="devtui replay")

    # -- sending ---------------------------------------------------------------------------------

    def _held(self) -> bool:
        debugger = self.engine.debugger
        return debugger is not None and debugger.state == DebuggerState.STOPPED and not self.engine.stopped

    async def _work(self) -> None:
        import httpx  # only a deployment with a pinned request needs it

        # trust_env off: a proxy from the environment must never sit between devtui and a local endpoint.
        # A new connection each time (one replay a save is cheap): one kept alive from before the save
        # could still reach the old worker where it could not hand it over (stopped at a breakpoint).
        no_keep_alive = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(trust_env=False, limits=no_keep_alive) as client:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._due and self.request is not None and not self.engine.stopped:
                    try:
                        await self._replay(client)
                    except Exception as ex:  # a bug of the replay must not end it, nor show a traceback
                        self._due = False
                        self.engine.log(DEVTUI, [f"error: the replay failed ({type(ex).__name__}: {ex}); it "
                                                 "tries again on the next reload"])

    async def _replay(self, client) -> None:
        """Send the pinned request for the newest revision due, once the debugger lets go."""
        await self._until_released()
        reload, request, self._due, self._due_for = self._due_for, self.request, False, None
        if request is None or self.engine.stopped:
            return
        answer = await self._send(client, request)
        if reload is not None and answer.revision is not None and answer.revision < reload.revision:
            # An older worker took it after the new revision was announced (one let go by the
            # debugger can accept a connection before it hears it is retired): ask once more; an
            # answer that is still old is told as such (Replayed.stale).
            answer = await self._send(client, request)
        previous = self.last
        # On a thread: a diff of large bodies takes a while, and the engine's events share this loop.
        diff = () if previous is None else await asyncio.to_thread(
            body_diff, previous.body, answer.body, _revision_name(previous, None),
            _revision_name(answer, reload and reload.revision))
        if request is self.request:  # not unpinned or pinned anew meanwhile
            self.last = answer
            self._emit(Replayed(request, answer, previous, reload, diff))

    async def _until_released(self) -> None:
        if not self._held():
            return
        self.waiting = self._due_for.revision if self._due_for is not None else self.engine.serving_revision
        self._emit(ReplayWaiting(self.waiting, self.engine.debugger.detail))
        while self._held() and self.request is not None:
            self._moved.clear()
            await self._moved.wait()
        self.waiting = None

    async def _send(self, client, request: PinnedRequest) -> Answer:
        import httpx

        request_id = next((v for k, v in request.headers if k.lower() == REQUEST_ID), f"replay-{uuid.uuid4()}")
        headers = dict(request.headers) | {REQUEST_ID: request_id}
        timeout = self._timeout_s()
        sent, started = time.time(), time.perf_counter()
        self.in_flight = True
        try:
            response = await client.request(request.method, request.url(self.engine.scoring_uri or ""),
                                            content=request.body or None, headers=headers, timeout=timeout)
        except httpx.HTTPError as ex:
            return Answer(None, "", None, request_id, _ms(started), _no_answer(ex, timeout), sent=sent, at=time.time())
        finally:
            self.in_flight = False
        answer = Answer(response.status_code, response.text, _int(response.headers.get(REVISION_HEADER)),
                        response.headers.get(REQUEST_ID, request_id), _ms(started), sent=sent, at=time.time())
        # run() raised (500), or a flow's node did (prompt flow answers 400 UserError): the log
        # says what. A 503 ran nothing: its body says why.
        if not answer.ok and answer.status != 503:
            answer = replace(answer, exception=await self._exception_line(answer))
        return answer

    def _timeout_s(self) -> float:
        settings = self.engine.deployment.request_settings
        timeout_ms = settings.request_timeout_ms if settings is not None else 5000
        return timeout_ms / 1000 + NO_ANSWER_GRACE_S

    async def _exception_line(self, answer: Answer) -> str:
        """The user's exception line of a failed answer, from the server's log; its lines come
        through a pipe and may follow the answer by a moment (LATE_S at most)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LATE_S
        # prompt flow logs a node's traceback wrapped in its own before the summary that names
        # the node's exception: a flow's line is only final with that summary.
        flow = self.engine.deployment.flow is not None
        while True:
            records = [r for r in self._records if r.time >= answer.sent - 0.05]
            line = exception_line(records, answer.request_id, answer.sent, answer.at)
            final = not flow or any(FLOW_FAILED in r.text for r in records)
            remaining = deadline - loop.time()
            if (line and final) or remaining <= 0:
                return line
            self._logged.clear()
            try:
                await asyncio.wait_for(self._logged.wait(), remaining)
            except TimeoutError:
                pass

    def _emit(self, event: ReplayEvent) -> None:
        # As the engine does: a listener that raises is dropped, and the replay goes on.
        for listener in tuple(self.listeners):
            try:
                listener(event)
            except Exception as ex:
                self.listeners.remove(listener)
                self.engine.log(DEVTUI, [f"error: a replay listener failed ({type(ex).__name__}: {ex}) and "
                                           "gets no more replays"])


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _int(text: str | None) -> int | None:
    try:
        return int(text or "")
    except ValueError:
        return None


def _no_answer(ex: Exception, timeout: float) -> str:
    """Why no answer came, in words rather than the HTTP client's internals."""
    import httpx

    if isinstance(ex, httpx.TimeoutException):
        return f"no answer within {timeout:g} s"
    if isinstance(ex, httpx.ConnectError):
        return "no answer: the endpoint did not accept the connection"
    if isinstance(ex, httpx.RemoteProtocolError):
        return "no answer: the server closed the connection before it answered"
    return f"no answer: {type(ex).__name__}: {ex}"
