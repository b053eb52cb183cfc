"""A fake Runtime at the engine's boundary: the engine's state machine and the app's keys are
tested without forking scoring servers.

It reports what a real runtime reports (storage-initializer lines, the server's typed events from
``inference_server.protocol``), and serves a tiny HTTP endpoint on 127.0.0.1 so the app's Invoke has
something real to call. A test scripts outcomes with ``fail_next(stage)``; ``calls`` records what
the engine asked for.
"""

from __future__ import annotations

import asyncio
import json

from inference_server import protocol

from devtui.events import INFERENCE_SERVER, STORAGE_INITIALIZER
from devtui.runtimes import Runtime

ANSWER = [199.85, 74.01]  # what the sklearn sample answers


class FakeRuntime(Runtime):
    name = "fake"
    instances: list[FakeRuntime] = []  # every runtime the engine made, in order

    def __init__(self, runtime_name: str, deployment, workdir, sink, host="127.0.0.1", port=0, debug=None,
                 reload_mode="patch"):
        super().__init__(deployment, workdir, sink, host=host, port=port, debug=debug, reload_mode=reload_mode)
        self.runtime_name = runtime_name
        self.calls: list[str] = []
        self.failures: list[protocol.Stage] = []
        self.revision = 0
        self.server: asyncio.Server | None = None
        self.requests = 0
        FakeRuntime.instances.append(self)

    def fail_next(self, stage: protocol.Stage = protocol.Stage.INIT) -> None:
        self.failures.append(stage)

    async def stage(self) -> None:
        self.calls.append("stage")
        self.sink.log(STORAGE_INITIALIZER, [f"fake: staged {self.deployment.model.name if self.deployment.model else '-'}"])

    async def start(self, first_revision: int) -> None:
        self.calls.append("start")
        self.server = await asyncio.start_server(self._answer, "127.0.0.1", self.port)
        port = self.server.sockets[0].getsockname()[1]
        self.sink.server_event(protocol.Listening(host="127.0.0.1", port=port, pid=None))
        self.revision = first_revision - 1
        self._next_revision(first=True)

    async def reload(self, swap: bool = False) -> None:
        self.calls.append("swap" if swap else "reload")
        self._next_revision(first=False)

    def _next_revision(self, first: bool) -> None:
        self.revision += 1
        serving = None if first else self.revision - 1
        self.sink.server_event(protocol.Starting(revision=self.revision, first=first))
        self.sink.log(INFERENCE_SERVER, [f"fake: worker for revision {self.revision}"])
        if self.failures:
            stage = self.failures.pop(0)
            self.sink.server_event(protocol.Failed(revision=self.revision, stage=stage, duration_ms=1.0,
                                                   traceback=f"Traceback: fake failure in {stage}",
                                                   serving_revision=serving))
        else:
            self.sink.server_event(protocol.Ready(revision=self.revision, duration_ms=1.0, first=first))

    def crash(self) -> None:
        """The serving worker exits on its own; the supervisor starts it again."""
        self.sink.server_event(protocol.Crashed(revision=self.revision, pid=1, exit_code=-9))
        self.revision -= 1
        self._next_revision(first=False)

    def die(self) -> None:
        """The whole server exits, unasked."""
        self.sink.server_event(protocol.Exited(exit_code=-9, expected=False))

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        await reader.readexactly(length)
        self.requests += 1
        body = json.dumps(ANSWER).encode()
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-ms-run-fn-exec-ms: 0.5\r\n"
                     b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    async def stop(self) -> None:
        self.calls.append("stop")
        if self.server is not None:
            self.server.close()
            self.server = None
            self.sink.server_event(protocol.Exited(exit_code=0, expected=True))

    def describe(self) -> dict:
        return {"pid": None}
