"""One request of the Invoke tab and its answer: what is sent, how, and the same as curl.

:class:`Sender` keeps one HTTP client for the whole session, so a request's latency is the
endpoint's round trip, not the cost of a new client (its TLS context alone takes tens of
milliseconds) or of a new connection, nor the app's own drawing; the app resets its pool whenever
the server behind the scoring URI changes. A request the app gives up on (its timeout) has its
connection closed, so it holds no slot of the endpoint's concurrency after that.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import time
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from http import HTTPStatus
from pathlib import Path

import httpx

from ..failures import server_message
from ..spec import LocalDeployment


class BodyKind(StrEnum):
    JSON = "json"
    TEXT = "text"
    FILE = "file"  # multipart/form-data, one file in the field "file" (what rawhttp's files reads)


METHODS = ("POST", "GET")
REVISION_HEADER = "x-devtui-revision"  # written by the worker that ran the request
UPLOAD_FIELD = "file"
CONTENT_TYPE = {BodyKind.JSON: "application/json", BodyKind.TEXT: "text/plain"}


def sample_request(deployment: LocalDeployment) -> str | None:
    """What the Invoke tab starts with: the ``sample-request.json`` beside the deployment YAML,
    else a flow's sample (its samples.json's first entry, or its inputs' defaults); None when
    there is neither, and the app asks the swagger document for an example."""
    sample = deployment.deployment_file.parent / "sample-request.json"
    if sample.is_file():
        return sample.read_text()
    if deployment.flow is not None and deployment.flow.sample is not None:
        return json.dumps(deployment.flow.sample, indent=2)
    return None


def json_problem(text: str) -> str:
    """Why ``text`` is not JSON, or "" when it is."""
    try:
        json.loads(text)
    except json.JSONDecodeError as ex:
        return f"invalid JSON at line {ex.lineno}, column {ex.colno}: {ex.msg}"
    return ""


def pretty(text: str) -> str:
    """JSON indented for reading; anything else as it is."""
    try:
        return json.dumps(json.loads(text), indent=2)
    except (ValueError, TypeError):
        return text


def parse_headers(text: str) -> tuple[tuple[tuple[str, str], ...], str]:
    """``Name: value`` lines (blank lines and ``#`` comments skipped) -> (headers, problem)."""
    headers = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip() or " " in name.strip():
            return (), f"headers line {number}: expected 'Name: value'"
        headers.append((name.strip(), value.strip()))
    return tuple(headers), ""


@dataclass(frozen=True)
class Request:
    method: str = "POST"
    query: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    kind: BodyKind = BodyKind.JSON
    body: str = ""
    file: Path | None = None  # for BodyKind.FILE, absolute

    @property
    def sends_body(self) -> bool:
        return self.method != "GET"

    def problem(self) -> str:
        """Why this request cannot be sent, or ""."""
        if not self.sends_body:
            return ""
        if self.kind == BodyKind.JSON:
            return json_problem(self.body)
        if self.kind == BodyKind.FILE:
            if self.file is None:
                return "no file to upload: name one"
            if not self.file.is_file():
                return f"{self.file} is not a file"
        return ""

    def url(self, scoring_uri: str) -> str:
        query = self.query.strip().lstrip("?")
        return f"{scoring_uri}?{query}" if query else scoring_uri

    def header_map(self) -> dict[str, str]:
        headers = {}
        if self.sends_body and self.kind in CONTENT_TYPE:
            headers["content-type"] = CONTENT_TYPE[self.kind]
        # The user's own headers win, content-type included.
        lowered = {name.lower() for name, _ in self.headers}
        headers = {k: v for k, v in headers.items() if k not in lowered}
        headers.update(self.headers)
        return headers

    def curl(self, scoring_uri: str) -> str:
        """The same request as a curl command line."""
        words = ["curl", "-sS", "-i", "-X", self.method, self.url(scoring_uri)]
        for name, value in self.header_map().items():
            words += ["-H", f"{name}: {value}"]
        if self.sends_body:
            if self.kind == BodyKind.FILE and self.file is not None:
                words += ["-F", f"{UPLOAD_FIELD}=@{self.file}"]
            elif self.kind != BodyKind.FILE:
                words += ["--data-binary", self.body]
        return shlex.join(words)

    def preview(self) -> str:
        what = f"{UPLOAD_FIELD}=@{self.file.name}" if self.kind == BodyKind.FILE and self.file else self.body
        query = f"?{self.query.strip().lstrip('?')}" if self.query.strip() else ""
        return " ".join(f"{query} {what if self.sends_body else ''}".split())


@dataclass(frozen=True)
class Exchange:
    """A request and what came back: an answer, or why none did."""

    request: Request
    status: int | None
    latency_ms: float  # the round trip as the app measured it
    answer: str
    headers: tuple[tuple[str, str], ...]
    at: float  # when it ended (wall clock)
    sent: float = 0.0  # when it was sent (wall clock)
    why: str = ""  # no (whole) answer: why
    scoring_uri: str = ""
    exception: str = ""  # the user's exception line, from the log (failures.exception_line)
    sent_id: str = ""  # the x-request-id the app sent (for a server that answers without one)

    @property
    def body(self) -> str:
        return self.request.body

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key.lower() == name), None)

    @property
    def exec_ms(self) -> float | None:
        """The server's own time in run() (x-ms-run-fn-exec-ms), when it ran."""
        try:
            return float(self.header("x-ms-run-fn-exec-ms") or "")
        except ValueError:
            return None

    @property
    def revision(self) -> int | None:
        """The revision whose worker wrote the answer (``x-devtui-revision``), when it said."""
        try:
            return int(self.header(REVISION_HEADER) or "")
        except ValueError:
            return None

    @property
    def request_id(self) -> str:
        """The answer's ``x-request-id``, else the one sent: prompt flow's app answers without it,
        and its trace still carries the one sent."""
        return self.header("x-request-id") or self.sent_id

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def run_failed(self) -> bool:
        """run() raised (or its answer could not be sent): the log has a traceback. Not a 503:
        then nothing ran."""
        return self.header("x-ms-run-function-failed") == "True" or self.status == 500 or bool(self.exception)

    @property
    def phrase(self) -> str:
        try:
            return HTTPStatus(self.status).phrase
        except ValueError:
            return ""

    @property
    def message(self) -> str:
        """The server's reason for a non-2xx answer: the scoring server's ``{"message": ...}`` or
        prompt flow's ``{"error": {"message": ...}}``, or ""."""
        if self.ok or self.status is None:
            return ""
        return server_message(self.answer)

    @property
    def failed(self) -> bool:
        """The server failed it (5xx) or it got no whole answer: the log may say why."""
        return self.status is None or self.status >= 500 or bool(self.why)


@dataclass
class Sender:
    """One HTTP client for every request; :meth:`reset` starts a new pool for the next ones.

    Each request runs in a thread of its own and is timed there, so the figure is the round trip
    and not also the time the app's event loop spends drawing the screen while the answer waits.
    """

    client: httpx.Client | None = None
    _retired: list[httpx.Client] = field(default_factory=list)
    _busy: dict[int, int] = field(default_factory=dict)
    _tls: object = None

    async def prepare(self) -> None:
        """What the first request would otherwise pay inside its timing, done once, off the event
        loop: the CA bundle takes tens of milliseconds to load."""
        if self._tls is None:
            self._tls = await asyncio.to_thread(httpx.create_ssl_context)

    async def _current(self) -> httpx.Client:
        if self.client is None:
            await self.prepare()
            # trust_env off: a proxy from the environment must never sit between the app and a
            # local endpoint.
            self.client = httpx.Client(verify=self._tls, trust_env=False)
        return self.client

    def reset(self) -> None:
        """The server behind the scoring URI changed: new requests get new connections; the old
        pool is closed once the requests still in flight on it are done."""
        if self.client is not None:
            self._retired.append(self.client)
            self.client = None
        for client in list(self._retired):
            if not self._busy.get(id(client)):
                self._retired.remove(client)
                client.close()

    def close(self) -> None:
        self.reset()
        for client in self._retired:
            client.close()
        self._retired.clear()

    async def send(self, scoring_uri: str, request: Request, timeout_s: float, not_serving: str = "",
                   request_id: str = "") -> Exchange:
        """Send ``request``, with ``request_id`` as its x-request-id (made here when "") unless its
        own headers set one."""
        client = await self._current()
        self._busy[id(client)] = self._busy.get(id(client), 0) + 1
        try:
            return await asyncio.to_thread(_exchange, client, scoring_uri, request, timeout_s, not_serving,
                                           request_id or new_request_id())
        finally:
            self._busy[id(client)] -= 1
            if client is not self.client:
                self.reset()

    async def get_json(self, url: str) -> object:
        client = await self._current()
        return await asyncio.to_thread(lambda: client.get(url, timeout=5).json())


def new_request_id() -> str:
    return str(uuid.uuid4())


def sent_request_id(request: Request, request_id: str) -> str:
    """The x-request-id ``request`` goes out with: its own header's, else ``request_id``."""
    return next((value for name, value in request.headers if name.lower() == "x-request-id"), request_id)


def _exchange(client: httpx.Client, scoring_uri: str, request: Request, timeout_s: float,
              not_serving: str, request_id: str) -> Exchange:
    """Send and time one request (in a worker thread); a timeout gives it up and closes its
    connection. A request that failed before any byte of answer is sent once more, on a new
    connection, when that is safe: it never reached the server, or its method is idempotent."""
    sent = time.time()
    started = time.perf_counter()
    for attempt in (1, 2):
        try:
            answer = client.send(_build(client, scoring_uri, request, timeout_s, request_id), stream=True)
        except httpx.HTTPError as ex:
            if attempt == 1 and _retry_safe(ex, request.method):
                continue
            return Exchange(request, None, (time.perf_counter() - started) * 1000, "", (), time.time(), sent,
                            _why(ex, timeout_s, not_serving, retried=attempt > 1), scoring_uri)
        break
    try:
        body, broke = _read(answer)
    finally:
        answer.close()
    latency_ms = (time.perf_counter() - started) * 1000
    return Exchange(request, answer.status_code, latency_ms, body, tuple(answer.headers.items()),
                    time.time(), sent, broke, scoring_uri, sent_id=answer.request.headers.get("x-request-id", ""))


def _read(answer: httpx.Response) -> tuple[str, str]:
    """The body as text, and why it is not whole ("" when it is)."""
    chunks: list[bytes] = []
    try:
        for chunk in answer.iter_bytes():
            chunks.append(chunk)
    except httpx.HTTPError as ex:
        size = sum(map(len, chunks))
        why = ("no answer within the request's time" if isinstance(ex, httpx.TimeoutException)
               else "the server closed the connection")
        text = b"".join(chunks).decode(answer.encoding or "utf-8", errors="replace")
        return text, f"the answer broke off after {size} bytes: {why}"
    return b"".join(chunks).decode(answer.encoding or "utf-8", errors="replace"), ""


# Never sent: no connection was made, or the request could not be written whole.
_NOT_SENT = (httpx.ConnectError, httpx.WriteError, httpx.PoolTimeout)
# Sent, and the connection ended before any byte of answer.
_CLOSED = (httpx.ReadError, httpx.RemoteProtocolError)
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


def _retry_safe(ex: httpx.HTTPError, method: str) -> bool:
    return isinstance(ex, _NOT_SENT) or (isinstance(ex, _CLOSED) and method in IDEMPOTENT)


def _build(client: httpx.Client, scoring_uri: str, request: Request, timeout_s: float,
           request_id: str = "") -> httpx.Request:
    """The httpx request, built before the clock starts (a file is read here). It carries
    ``request_id`` as its ``x-request-id`` unless the user's headers set one, so its trace is
    found by it also where the server answers without one (prompt flow)."""
    headers = request.header_map()
    if request_id and "x-request-id" not in {name.lower() for name in headers}:
        headers["x-request-id"] = request_id
    options: dict = {"headers": headers, "timeout": httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0))}
    if request.sends_body:
        if request.kind == BodyKind.FILE and request.file is not None:
            options["files"] = {UPLOAD_FIELD: (request.file.name, request.file.read_bytes())}
        else:
            options["content"] = request.body.encode()
    return client.build_request(request.method, request.url(scoring_uri), **options)


def _why(ex: httpx.HTTPError, timeout_s: float, not_serving: str, retried: bool = False) -> str:
    """What happened, in words: never the HTTP client's exception."""
    again = " (sent twice: the first try failed the same way)" if retried else ""
    if isinstance(ex, httpx.TimeoutException):
        why = f"no answer within {timeout_s:g} s; the request was given up and its connection closed"
    elif isinstance(ex, httpx.ConnectError):
        why = f"cannot connect: nothing accepts connections there (the server may be restarting){again}"
    elif isinstance(ex, _CLOSED):
        why = ("the server closed the connection before answering (its worker stopped: a restart, a swap, "
               "or a crash); the request had been sent, so it was not sent again: it may have run. "
               "Send it again once it serves" + again)
    elif isinstance(ex, httpx.WriteError):
        why = f"the connection broke while the request was being sent{again}"
    else:
        why = f"the request failed: {ex or type(ex).__name__}"
    return f"{not_serving}; {why}" if not_serving else why
