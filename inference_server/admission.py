"""Requests in flight as an online endpoint's front end counts them: what request_settings' 429
(more than 2 x max_concurrent_requests_per_instance in flight) and 408 (request_timeout_ms after
arrival) are measured against.

run() is called on the event loop, one call at a time, as the reference server's synchronous
worker calls it; while it runs, the loop reads nothing, and requests that arrive meanwhile wait
in their sockets until it returns. A scoring request is counted when the server reads it (the
HTTP protocol calls :meth:`Admission.arrive`), but as of when it arrived: Linux keeps, for each
TCP connection, the time it last received data, and its deadline runs from then. A request read
at once counts those not yet answered; one that waited in its socket counts the requests that
were in flight when it arrived, answered since or not (the one run() held the loop for, among
them). The kernel's clock ticks in jiffies (4 ms at HZ=250), so two arrivals closer than two
of them count as at once, and an answer that close to an arrival does not count. A connection
carries one request at a time (HTTP/1.1), so each counts once: a client's next request on it,
taken for simultaneous, is not counted beside the one before. So the emulation is exact to about
10 ms, as it was when run() ran on threads and the loop waited for the GIL. Elsewhere (no
TCP_INFO) a request arrives when it is read.

:class:`RequestSettings` is the one ASGI middleware every kind of worker serves its app behind
(the score.py app, prompt flow's): it counts each scoring request (or takes the protocol's count),
answers 429 beyond the limit and, for an app whose handler can be cancelled, 408 at the timeout,
with the messages below, and releases the request once it has been answered.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import struct
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

logger = logging.getLogger("azmlinfsrv")

# Where the protocol leaves a scoring request's ticket: in its ASGI scope.
TICKET = "devtui.ticket"
SCORE_PATH = b"/score"
SCORE_ROUTE = "/score"
# Where RequestSettings leaves (status, message) for the ASGI app that answers a refused request.
REFUSAL = "devtui.refusal"
# A request read this long after it arrived waited while run() held the loop (shorter: it was
# read as soon as the loop could; the kernel's figure is too coarse to say more).
WAITED_S = 0.010
# How far apart two times from the kernel must be to be ordered: two jiffies at HZ=250.
MARGIN_S = 0.008


@dataclass(slots=True, eq=False)
class Ticket:
    arrived: float  # time.monotonic() when the request arrived
    in_flight: int  # other scoring requests in flight when it arrived
    admitted: bool  # False: over the limit, answered 429
    answered: float | None = None  # time.monotonic() when it was answered
    connection: object = None  # what it came on (one request at a time each)


def received_ago(sock) -> float:
    """Seconds since the kernel last received data on the TCP connection ``sock`` (Linux's
    TCP_INFO, ``tcpi_last_data_recv``, in ms); 0 where that is not known."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
        return struct.unpack_from("I", info, 52)[0] / 1000
    except (AttributeError, OSError, struct.error):
        return 0.0


class Admission:
    def __init__(self, limit: int | None, timed: bool = False):
        self.limit = limit  # at most this many in flight (None: no limit)
        # Emulating: arrive() is given how long ago each request arrived (the protocol asks the kernel).
        self.timed = timed or limit is not None
        self.live: set[Ticket] = set()  # admitted, not yet answered
        # Recently answered, latest last: a request that waited in its socket counts those in
        # flight when it arrived. Only whether `limit` connections had one matters; a few more
        # are kept, as several may be one connection's.
        self.answered: deque[Ticket] = deque(maxlen=4 * limit if limit else 0)

    def arrive(self, ago: float = 0.0, connection: object = None) -> Ticket:
        """A scoring request was read from ``connection``, ``ago`` seconds after it arrived:
        count it, or refuse it when the limit is reached."""
        now = time.monotonic()
        if ago < WAITED_S:  # read as soon as it came
            arrived, in_flight = now, len(self.live)
        else:
            arrived = now - ago
            within = arrived + MARGIN_S
            connections = {t.connection for t in self.live if t.arrived < within}
            connections.update(t.connection for t in self.answered if t.arrived < within and t.answered > within)
            connections.discard(connection)
            in_flight = len(connections)
        ticket = Ticket(arrived, in_flight, self.limit is None or in_flight < self.limit, connection=connection)
        if ticket.admitted:
            self.live.add(ticket)
        return ticket

    def leave(self, ticket: Ticket) -> None:
        """The request was answered (or its connection lost); safe to call twice."""
        if ticket.answered is not None:
            return
        ticket.answered = time.monotonic()
        if ticket.admitted:
            self.live.discard(ticket)
            if self.limit is not None:
                self.answered.append(ticket)


# -- the messages, one set for every kind of worker -------------------------------------------


def too_many(in_flight: int, limit: int | None) -> str:
    return (f"Too many requests: {in_flight} already in flight and the endpoint takes at most {limit} "
            "(2 x request_settings.max_concurrent_requests_per_instance).")


def timed_out(timeout_ms: int) -> str:
    return (f"Request timed out after {timeout_ms} ms (request_settings.request_timeout_ms); "
            "the online endpoint answers 408 here too.")


def timeout_suspended(timeout_ms: int) -> str:
    return f"A debugger is attached: the request timeout ({timeout_ms} ms) is suspended for this request"


ASGIApp = Callable[..., Awaitable[None]]


async def answer_json(scope, receive, send) -> None:
    """A refused request's answer, ``{"message": ...}``: the refusal for an app with no contract
    of its own for it (prompt flow's)."""
    status, message = scope[REFUSAL]
    body = json.dumps({"message": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class RequestSettings:
    """``app`` behind an online endpoint's request_settings, on the scoring route:

    - each scoring request is counted, by the HTTP protocol as of when it arrived (its ticket in
      the scope) or, when the protocol did not, here as it is read;
    - one over the limit gets 429 from ``refusal``, an ASGI app that finds (status, message) in
      ``scope[REFUSAL]`` (an app that owes every answer its own headers answers it itself);
    - with ``timeout_ms``, one whose answer has not started in time gets 408 from ``refusal``
      (an app that calls run() on the event loop times it where it calls it instead: see
      ``run_calls``), except while ``debugging()`` says a debugger is attached;
    - its ticket is released as the last byte of its answer is handed over, however it ends."""

    def __init__(self, app: ASGIApp, admission: Admission, refusal: ASGIApp = answer_json,
                 timeout_ms: int | None = None, debugging: Callable[[], bool] | None = None, subject: str = "The app"):
        self.app = app
        self.admission = admission
        self.refusal = refusal
        self.timeout_ms = timeout_ms
        self.debugging = debugging
        self.subject = subject  # who did not answer in time, for the log

    async def __call__(self, scope, receive, send) -> None:
        ticket = scope.get(TICKET) if scope["type"] == "http" else None
        if ticket is None:
            if scope["type"] != "http" or scope["path"] != SCORE_ROUTE:
                await self.app(scope, receive, send)
                return
            ticket = scope[TICKET] = self.admission.arrive()
        admission = self.admission

        async def sending(message) -> None:
            # Answered as the last byte is handed over, before the client can have it: taken
            # after (where this task resumes), a busy machine could let the client's next
            # request, on a new connection, arrive "before" this one was answered.
            if message["type"] == "http.response.body" and not message.get("more_body"):
                admission.leave(ticket)
            await send(message)

        try:
            if not ticket.admitted:
                await self._refuse(scope, receive, sending, 429, too_many(ticket.in_flight, admission.limit))
            elif self.timeout_ms:
                await self._within_timeout(scope, receive, sending)
            else:
                await self.app(scope, receive, sending)
        finally:
            admission.leave(ticket)

    async def _refuse(self, scope, receive, send, status: int, message: str) -> None:
        await self.refusal({**scope, REFUSAL: (status, message)}, receive, send)

    async def _within_timeout(self, scope, receive, send) -> None:
        timeout_ms = self.timeout_ms
        if self.debugging is not None and self.debugging():
            logger.info(timeout_suspended(timeout_ms))
            timeout_ms = None
        started = []

        async def starting(message) -> None:
            if message["type"] == "http.response.start":
                started.append(True)
            await send(message)

        task = asyncio.ensure_future(self.app(scope, receive, starting))
        done, _ = await asyncio.wait({task}, timeout=timeout_ms / 1000 if timeout_ms else None)
        if done or started:
            await task  # answered in time, or the answer has started (a stream): it goes on
            return
        task.cancel()
        logger.error(f"{self.subject} did not answer within {timeout_ms} ms; answered 408")
        await self._refuse(scope, receive, send, 408, timed_out(timeout_ms))
