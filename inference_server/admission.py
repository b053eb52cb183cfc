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
"""

from __future__ import annotations

import socket
import struct
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

# Where the protocol leaves a scoring request's ticket: in its ASGI scope.
TICKET = "devtui.ticket"
SCORE_PATH = b"/score"
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

    def asgi(self, app: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        """``app``, releasing each request's ticket once it has been answered, however it ends."""

        async def releasing(scope, receive, send) -> None:
            ticket = scope.get(TICKET)

            async def sending(message) -> None:
                # Answered as the last byte is handed over, before the client can have it: taken
                # after (where this task resumes), a busy machine could let the client's next
                # request, on a new connection, arrive "before" this one was answered.
                if ticket is not None and message["type"] == "http.response.body" and not message.get("more_body"):
                    self.leave(ticket)
                await send(message)

            try:
                await app(scope, receive, sending if ticket is not None else send)
            finally:
                if ticket is not None:
                    self.leave(ticket)

        return releasing
