"""A WSGI app (prompt flow's flask engine) served over ASGI, stopped when its client leaves.

uvicorn's own adapter runs the app on one of ten threads and iterates its answer to the end,
whether or not anyone reads it: a streamed answer whose generator never ends (a chat node that
yields forever) kept its thread, and its request counted in flight, after the client had hung
up, until the worker was replaced (issue 19, item 6). Here each request's answer is iterated on
a thread of its own that hands each chunk to the event loop and waits until it is sent; a task
on the loop watches for the client's disconnect meanwhile. Once the client is gone the request
ends at once (so its slot is free), the thread stops at the next chunk and closes the answer,
as WSGI requires: a generator gets its ``GeneratorExit`` there.

Stdlib only: the flow worker imports it without the script server's web stack.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import io
import logging
import sys
import threading
from typing import Any

logger = logging.getLogger("azmlinfsrv")

# How often a thread waiting for its chunk to be sent looks whether the request was given up
# (the loop may be gone, at the worker's exit, and never answer).
POLL_S = 0.5


class _Gone(Exception):
    """The client left, or the request was given up (a 408, the worker's exit)."""


class WsgiBridge:
    """The ASGI app for a WSGI app; a request's thread is a daemon, so that a generator stuck
    between two chunks does not hold the worker's exit."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        body = await _read_body(receive)
        exchange = _Exchange(self.app, wsgi_environ(scope, body), asyncio.get_running_loop(), send)
        left = asyncio.ensure_future(disconnected(receive))
        try:
            await asyncio.wait({exchange.finished, left}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not exchange.finished.done():  # the client left, or this task was cancelled
                exchange.stopped = True
            left.cancel()
        if exchange.stopped and not exchange.complete:
            logger.info("The client left before the answer was complete: its generator is stopped")
        if exchange.finished.done():
            exchange.finished.result()  # the app's own exception, for the server to answer 500


class _Exchange:
    """One request: the WSGI app called and its answer iterated on a thread, each message sent
    on the loop (and waited for: a slow reader slows the generator, as a socket would)."""

    def __init__(self, app, environ: dict, loop: asyncio.AbstractEventLoop, send):
        self.loop, self.send = loop, send
        self.stopped = False  # set on the loop; read by the thread between chunks
        self.head: dict | None = None  # the response start, sent once the app has returned
        self.head_sent = False
        self.complete = False  # the last message was sent (set on the loop)
        self.finished: asyncio.Future = loop.create_future()
        # The request's context goes with it (a traced request's span is current in the app).
        thread = threading.Thread(target=contextvars.copy_context().run, args=(self._run, app, environ), daemon=True,
                                  name="wsgi-request")
        thread.start()

    def _run(self, app, environ: dict) -> None:
        error: BaseException | None = None
        try:
            answer = app(environ, self._start_response)
            try:
                # The head goes out now, as uvicorn's adapter sent it: a stream whose first chunk
                # is slow (an LLM's first token) has started to answer, for the request timeout.
                self._deliver(None)
                for chunk in answer:
                    if chunk:
                        self._deliver({"type": "http.response.body", "body": chunk, "more_body": True})
                    elif self.stopped:
                        raise _Gone()
                self._deliver({"type": "http.response.body", "body": b"", "more_body": False})
            finally:
                close = getattr(answer, "close", None)
                if close is not None:
                    close()  # WSGI's rule; a generator stops here
        except _Gone:
            pass
        except BaseException as ex:
            error = ex
        self._finish(error)

    def _start_response(self, status: str, headers: list[tuple[str, str]], exc_info=None):
        if exc_info is not None and self.head_sent:  # too late to answer otherwise (WSGI's rule)
            raise exc_info[1].with_traceback(exc_info[2])
        self.head = {"type": "http.response.start", "status": int(status.split(" ", 1)[0]),
                     "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]}
        return self._write

    def _write(self, data: bytes) -> None:
        """The ``write`` callable start_response returns, for old-style WSGI apps."""
        if data:
            self._deliver({"type": "http.response.body", "body": data, "more_body": True})

    def _deliver(self, message: dict | None) -> None:
        """Send MESSAGE (the head first, once; None: only the head) on the loop and wait until it
        is sent."""
        if self.stopped:
            raise _Gone()
        messages = [] if message is None else [message]
        if not self.head_sent and self.head is not None:
            messages.insert(0, self.head)
            self.head_sent = True
        if not messages:  # no head yet: a WSGI app may call start_response from its iterator
            return
        if not self.head_sent:
            raise RuntimeError("The WSGI app answered without calling start_response")
        try:
            sent = asyncio.run_coroutine_threadsafe(self._send(messages), self.loop)
        except RuntimeError:  # the loop is closed: the worker is exiting
            raise _Gone() from None
        while True:
            try:
                sent.result(POLL_S)
                return
            except concurrent.futures.TimeoutError:
                if self.stopped:
                    raise _Gone() from None

    async def _send(self, messages: list[dict]) -> None:
        for message in messages:
            if self.stopped:  # checked on the loop: nothing is sent after the request ended
                raise _Gone()
            await self.send(message)
        last = messages[-1]
        self.complete = last["type"] == "http.response.body" and not last.get("more_body", False)

    def _finish(self, error: BaseException | None) -> None:
        def settle() -> None:
            if self.finished.done():
                return
            if error is None:
                self.finished.set_result(None)
            else:
                self.finished.set_exception(error)

        try:
            self.loop.call_soon_threadsafe(settle)
        except RuntimeError:
            pass  # the loop is closed: nobody waits for the answer


async def _read_body(receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def disconnected(receive) -> None:
    """Returns once the client is gone (on uvicorn, also once the answer is complete); call it
    once the request's body is read."""
    while (await receive())["type"] != "http.disconnect":
        pass


def wsgi_environ(scope: dict, body: bytes, headers_only: bool = False) -> dict[str, Any]:
    """The WSGI environ of an ASGI request, so werkzeug's Request (the API @rawhttp scripts use,
    and flask's) and header mapping work on it unchanged."""
    environ: dict[str, Any] = {}
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        if name == "content-type":
            environ["CONTENT_TYPE"] = value
        elif name == "content-length":
            environ["CONTENT_LENGTH"] = value
        else:
            key = "HTTP_" + name.upper().replace("-", "_")
            environ[key] = f"{environ[key]},{value}" if key in environ else value
    if headers_only:
        return environ
    server = scope.get("server") or ("127.0.0.1", 80)
    client = scope.get("client") or ("127.0.0.1", 0)
    environ.update({
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": scope.get("root_path", "").encode().decode("latin-1"),
        "PATH_INFO": scope["path"].encode().decode("latin-1"),
        "QUERY_STRING": scope["query_string"].decode("latin-1"),
        "SERVER_NAME": str(server[0]), "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "REMOTE_ADDR": str(client[0]), "REMOTE_PORT": str(client[1]),
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0), "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr,
        "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
    })
    return environ
