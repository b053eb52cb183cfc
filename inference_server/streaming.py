"""A streamed answer: run() returned a Response whose body is an iterator (``AMLResponse(gen(),
200)``, or Flask's ``Response(gen(), mimetype="text/event-stream")``), sent chunk by chunk as the
reference server's gunicorn sends it, not read whole first (which an endless generator never let
end, on the event loop that serves every other request).

Each chunk is made where run() runs (``run_calls``): on the event loop one at a time, or on a
pool thread. A client that hangs up stops the generator at the next chunk: it is closed (its
``finally`` runs), and the request leaves the count of requests in flight (its 429 slot) and the
run gate (a pending patch may apply). Without that, an endless stream kept its slot until the
worker was replaced (issue 19, item 6).
"""

from __future__ import annotations

import asyncio
import logging

from starlette.responses import Response
from werkzeug.wrappers import Response as WerkzeugResponse

from .run_calls import END, RunCalls
from .user_script import user_traceback
from .wsgi_bridge import disconnected

logger = logging.getLogger("azmlinfsrv")


class StreamedAnswer(Response):
    """The ASGI answer for a streamed Response. Made once run() has returned, with the call still
    counted in the run gate: the count ends with the stream."""

    def __init__(self, output: WerkzeugResponse, headers: list, runs: RunCalls):
        self.output, self.runs = output, runs
        self.status_code = output.status_code
        self.raw_headers = headers  # no content-length: uvicorn sends it chunked
        self.body = b""
        self.background = None
        self.started = False  # whether the gate's count was taken over by __call__

    async def __call__(self, scope, receive, send) -> None:
        self.started = True
        runs = self.runs
        left = asyncio.ensure_future(disconnected(receive))
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            if await self._send_chunks(send, left):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            elif left.done():
                logger.info("The client left before the answer was complete: its generator is stopped")
        finally:
            left.cancel()
            try:
                await runs.finish(self.output.close)
            except Exception:
                logger.error(f"Encountered Exception: {user_traceback()}")
            finally:
                runs.gate.leave()

    async def _send_chunks(self, send, left: asyncio.Future) -> bool:
        """Send chunks until the last (True), the client leaves, or the generator fails (False:
        logged, and the connection is closed without the last chunk, so the client knows)."""
        runs = self.runs
        chunks = iter(self.output.response)  # the script's own iterator: a traceback starts in its code
        while not left.done():
            try:
                chunk = await runs.next_chunk(chunks)
            except Exception:
                logger.error(f"Encountered Exception: {user_traceback()}")
                return False
            if chunk is END:
                return True
            if chunk:
                body = chunk.encode() if isinstance(chunk, str) else chunk  # as werkzeug encodes
                await send({"type": "http.response.body", "body": body, "more_body": True})
            if runs.pool is None:
                await asyncio.sleep(0)  # chunks made on the loop: let it see the client leave
        return False

    def abandon(self) -> None:
        """Never sent (the request failed before): close it and end its count in the gate."""
        if not self.started:
            self.started = True
            try:
                self.output.close()
            finally:
                self.runs.gate.leave()
