"""The supervisor's own answers while nothing serves (inference_server/unavailable.py), on real
sockets: what a stopping server still holds is answered before it exits, never reset."""

from __future__ import annotations

import json
import selectors
import socket

import pytest

from inference_server.supervisor import bind
from inference_server.unavailable import Unavailable

REQUEST = b"POST /score HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}"


@pytest.fixture
def stopping():
    """An Unavailable on a listening socket of its own, as a supervisor told to stop has it."""
    selector = selectors.DefaultSelector()
    sock = bind("127.0.0.1", 0)
    unavailable = Unavailable(selector)
    unavailable.listen(sock)
    unavailable.update(stopping=True)
    yield unavailable, sock.getsockname()[1]
    for key in list(selector.get_map().values()):
        selector.unregister(key.fileobj)
    sock.close()
    selector.close()


def answer(client: socket.socket) -> tuple[int, dict]:
    client.settimeout(5)
    data = b""
    while chunk := client.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


@pytest.mark.unit
def test_a_request_still_in_the_listen_queue_at_exit_is_answered_not_reset(stopping):
    """Connected and sent before the supervisor exits, never accepted by its loop: closing the
    listening socket would reset it. finish() answers it: 503, the server is stopping."""
    unavailable, port = stopping
    with socket.create_connection(("127.0.0.1", port)) as client:
        client.sendall(REQUEST)
        unavailable.finish()
        status, body = answer(client)
    assert status == 503 and "the server is stopping" in body["message"]
    assert not unavailable.connections


@pytest.mark.unit
def test_a_kept_alive_connection_handed_over_at_a_stop_is_answered_not_closed(stopping):
    """A stopping worker hands its idle connections to the supervisor; with no worker to take
    them, their next request gets the 503 that says why, not a closed connection."""
    unavailable, _ = stopping
    ours, theirs = socket.socketpair()
    with ours:
        unavailable.adopt([theirs.detach()])
        ours.sendall(REQUEST)
        unavailable.finish()
        status, body = answer(ours)
    assert status == 503 and "the server is stopping" in body["message"]


@pytest.mark.unit
def test_finish_closes_a_connection_that_never_asks_within_its_bound(stopping):
    unavailable, port = stopping
    with socket.create_connection(("127.0.0.1", port)) as client:
        unavailable.finish(most_s=0.2)
        client.settimeout(5)
        assert client.recv(1) == b""  # closed, unanswered: it asked nothing
    assert not unavailable.connections
