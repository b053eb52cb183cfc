"""A fake Runtime at the engine's boundary: the engine's state machine and the app's keys are
tested without forking scoring servers.

It reports what a real runtime reports (storage-initializer lines, the server's typed events from
``inference_server.protocol``), and serves a tiny HTTP/1.1 endpoint on 127.0.0.1 (keep-alive, as
the real one) so the app's Invoke has something real to call. A test scripts outcomes with
``fail_next(stage)``; ``calls`` records what the engine asked for.

What it answers, like the scoring server: 503 and why at once while no revision serves; a POST of
JSON gets the sklearn sample's prediction; a GET gets its query back; any other body is described
(content type, size, text); a body holding ``"fail"`` makes run() "raise" (500, and the traceback
in the log); more than ``max_in_flight`` requests at once get 429. ``hold`` keeps requests
unanswered until the client gives up and closes the connection, or ``release()`` lets them go on. With ``--traces`` (the Launch's
``traces``) each answered request's spans follow its answer as the server sends them: the request's
span (its x-request-id and status) with ``run`` under it, which records the exception when run()
"raised".
"""

from __future__ import annotations

import asyncio
import errno
import json
import time
import uuid
from urllib.parse import parse_qsl, urlsplit

from inference_server import protocol
from inference_server.protocol import ReloadMode

from devtui.events import INFERENCE_SERVER, STORAGE_INITIALIZER
from devtui.runtimes import Runtime

ANSWER = [199.85, 74.01]  # what the sklearn sample answers
EXEC_MS = "0.500"
RUN_FAILED = "An unexpected error occurred in scoring script. Check the logs for more info."


class FakeRuntime(Runtime):
    name = "fake"
    instances: list[FakeRuntime] = []  # every runtime the engine made, in order

    def __init__(self, deployment, launch, workdir, sink):
        super().__init__(deployment, launch, workdir, sink)
        self.runtime_name = launch.runtime
        self.calls: list[str] = []
        self.failures: list[protocol.Stage] = []
        self.revision = 0
        self.serving: int | None = None
        self.why = "no revision is serving yet"
        self.server: asyncio.Server | None = None
        self.requests = 0  # requests answered by a revision (not 503s or 429s)
        self.connections = 0  # connections accepted
        self.open = 0  # connections open now
        self.in_flight = 0
        self.max_in_flight: int | None = None
        self.hold = False
        self._released = asyncio.Event()
        self.seen: list[dict] = []  # every request: method, target, headers, body
        self._writers: set[asyncio.StreamWriter] = set()
        FakeRuntime.instances.append(self)

    def fail_next(self, stage: protocol.Stage = protocol.Stage.INIT) -> None:
        self.failures.append(stage)

    async def stage(self) -> None:
        self.calls.append("stage")
        model = self.deployment.model.name if self.deployment.model else "-"
        self.sink.log(STORAGE_INITIALIZER, [f"fake: staged {model}"])

    async def start(self, first_revision: int) -> None:
        self.calls.append("start")
        try:
            self.server = await asyncio.start_server(self._connection, "127.0.0.1", self.port)
        except OSError as ex:  # as the scoring server says it when its bind fails
            reason = "is already in use" if ex.errno == errno.EADDRINUSE else f"cannot be bound: {ex.strerror}"
            self.sink.server_event(protocol.BindFailed(host="127.0.0.1", port=self.port, reason=reason))
            return
        port = self.server.sockets[0].getsockname()[1]
        self.sink.server_event(protocol.Listening(host="127.0.0.1", port=port, pid=None))
        self.revision = first_revision - 1
        self._next_revision(first=True)

    async def reload(self, swap: bool = False) -> None:
        self.calls.append("swap" if swap else "reload")
        # Like the server: a code change is patched into the running worker where it may be.
        self._next_revision(first=False, patch=not swap and self.launch.reload == ReloadMode.PATCH)

    def _next_revision(self, first: bool, patch: bool = False) -> None:
        self.revision += 1
        serving = None if first else self.serving
        self.sink.server_event(protocol.Starting(revision=self.revision, first=first))
        self.sink.log(INFERENCE_SERVER, [f"fake: worker for revision {self.revision}"])
        if self.failures:
            stage = self.failures.pop(0)
            self.sink.log(INFERENCE_SERVER, [f"fake: revision {self.revision} failed in {stage}"])
            self.serving = serving
            if serving is None:
                self.why = f"revision {self.revision} failed in {stage}; nothing is serving: save a fix to try again"
            self.sink.server_event(protocol.Failed(revision=self.revision, stage=stage, duration_ms=1.0,
                                                   traceback=f"Traceback: fake failure in {stage}",
                                                   serving_revision=serving))
        else:
            self.serving = self.revision
            rung = protocol.Rung.START if first else protocol.Rung.PATCH if patch else protocol.Rung.SWAP
            self.sink.server_event(protocol.Ready(revision=self.revision, duration_ms=1.0, first=first, rung=rung,
                                                  detail="run()" if patch else ""))

    def crash(self) -> None:
        """The serving worker exits on its own; the supervisor starts it again."""
        self.sink.server_event(protocol.Crashed(revision=self.revision, pid=1, exit_code=-9))
        self.revision -= 1
        self.serving = None
        self._next_revision(first=False)

    def die(self) -> None:
        """The whole server exits, unasked."""
        self.sink.server_event(protocol.Exited(exit_code=-9, expected=False))

    # -- HTTP --------------------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self._writers.add(writer)
        try:
            while await self._exchange(reader, writer):
                pass
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open -= 1
            self._writers.discard(writer)
            writer.close()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """One request and its answer; False when the connection is to close."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
        headers = {}
        for line in head.decode("latin-1").split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", 0)))
        self.seen.append({"method": method, "target": target, "headers": headers, "body": body})
        request_id = headers.get("x-request-id") or str(uuid.uuid4())
        if self.serving is None:
            await self._write(writer, 503, {"message": self.why}, request_id, close=True)
            return False
        if self.max_in_flight is not None and self.in_flight >= self.max_in_flight:
            await self._write(writer, 429, {"message": f"Too many requests: {self.in_flight} already in flight"},
                              request_id)
            return True
        self.in_flight += 1
        try:
            if self.hold and not await self._held(reader):
                return False
            self.requests += 1
            started = time.time_ns()
            status, answer = self._answer(method, target, headers, body, request_id)
            await self._write(writer, status, answer, request_id)
            if self.launch.traces:
                self.sink.server_event(protocol.Spans(revision=self.serving, otlp=json.dumps(spans(
                    f"{method} {urlsplit(target).path}", request_id, status, started, time.time_ns()))))
        finally:
            self.in_flight -= 1
        return True

    def release(self) -> None:
        """The requests ``hold`` keeps are answered (as a debugger's continue lets them go on)."""
        self.hold = False
        self._released.set()

    async def _held(self, reader: asyncio.StreamReader) -> bool:
        """Hold a request until released (True: answer it) or its client gives up (False)."""
        released, gone = asyncio.ensure_future(self._released.wait()), asyncio.ensure_future(reader.read())
        done, pending = await asyncio.wait((released, gone), return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)  # the reader is free again
        return released in done

    def _answer(self, method: str, target: str, headers: dict, body: bytes, request_id: str) -> tuple[int, object]:
        if b"fail" in body:
            self.sink.log(INFERENCE_SERVER, [
                "2023-11-14 22:13:30,000 E [4250] azmlinfsrv - Encountered Exception: Traceback (most recent "
                "call last):", '  File "score.py", line 30, in run', "ValueError: fake failure in run()"])
            return 500, {"message": RUN_FAILED}
        if method == "GET":
            return 200, {"method": "GET", "args": dict(parse_qsl(urlsplit(target).query))}
        content_type = headers.get("content-type", "")
        if content_type in ("application/json", ""):
            return 200, ANSWER
        return 200, {"method": method, "content_type": content_type, "size": len(body),
                     "text": body.decode(errors="replace")[:500], "query": urlsplit(target).query,
                     "x-custom": headers.get("x-custom")}

    @staticmethod
    async def _write(writer: asyncio.StreamWriter, status: int, answer: object, request_id: str,
                     close: bool = False) -> None:
        body = json.dumps(answer).encode()
        phrase = {200: "OK", 429: "Too Many Requests", 500: "Internal Server Error",
                  503: "Service Unavailable"}[status]
        head = [f"HTTP/1.1 {status} {phrase}", "content-type: application/json", f"content-length: {len(body)}",
                f"x-request-id: {request_id}", f"x-ms-request-id: {request_id}",
                f"x-ms-run-function-failed: {status == 500}", "x-ms-server-version: fake/1.0"]
        if status in (200, 500):
            head.append(f"x-ms-run-fn-exec-ms: {EXEC_MS}")
        if close:
            head.append("connection: close")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await writer.drain()

    async def stop(self) -> None:
        self.calls.append("stop")
        if self.server is not None:
            self.server.close()
            for writer in list(self._writers):  # keep-alive connections end with the server
                writer.close()
            self.server = None
            self.sink.server_event(protocol.Exited(exit_code=0, expected=True))

    def describe(self) -> dict:
        return {"pid": None}


def spans(name: str, request_id: str, status: int, started: int, ended: int) -> dict:
    """One request's spans as the scoring server sends them (OTLP JSON, children first)."""
    trace_id, root, run = uuid.uuid4().hex, uuid.uuid4().hex[:16], uuid.uuid4().hex[:16]

    def attributes(values: dict) -> list[dict]:
        return [{"key": k, "value": {"intValue": str(v)} if isinstance(v, int) else {"stringValue": v}}
                for k, v in values.items()]

    run_span = {"traceId": trace_id, "spanId": run, "parentSpanId": root, "name": "run", "kind": 1,
                "startTimeUnixNano": str(started + (ended - started) // 4),
                "endTimeUnixNano": str(ended - (ended - started) // 4), "attributes": [], "status": {"code": 0}}
    if status == 500:
        run_span["status"] = {"code": 2, "message": "ValueError: fake failure in run()"}
        run_span["events"] = [{"name": "exception", "timeUnixNano": str(ended), "attributes": attributes(
            {"exception.type": "ValueError", "exception.message": "fake failure in run()"})}]
    request = {"traceId": trace_id, "spanId": root, "parentSpanId": "", "name": name, "kind": 2,
               "startTimeUnixNano": str(started), "endTimeUnixNano": str(ended),
               "attributes": attributes({"http.request.header.x-request-id": request_id,
                                         "http.response.status_code": status}),
               "status": {"code": 2 if status >= 500 else 0}}
    return {"resourceSpans": [{"resource": {"attributes": []},
                               "scopeSpans": [{"scope": {"name": "fake"}, "spans": [run_span, request]}]}]}
