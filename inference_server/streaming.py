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
        chunks = self.output.iter_encoded()
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            while not left.done():
                chunk = await runs.next_chunk(chunks)
                if chunk is END:
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    return
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                if runs.pool is None:
                    await asyncio.sleep(0)  # chunks made on the loop: let it see the client leave
            logger.info("The client left before the answer was complete: its generator is stopped")
        finally:
            left.cancel()
            try:
                await runs.finish(self.output.close)
            finally:
                runs.gate.leave()

    def abandon(self) -> None:
        """Never sent (the request failed before): close it and end its count in the gate."""
        if not self.started:
            self.started = True
            try:
                self.output.close()
            finally:
                self.runs.gate.leave()
