"""The id headers on every answer: ``x-request-id``, ``x-ms-request-id``, ``x-ms-client-request-id``,
``traceid`` and ``x-ms-server-version``, as the reference server sets them.

One function for the routes (app.py) and for the supervisor's own answers while nothing serves
(unavailable.py); it imports nothing heavy, so the supervisor can use it before any worker runs.
:func:`ensure_request_id` gives a request its id before an app that makes none serves it (prompt
flow's, traced; any app under a debugger, whose held requests are named by it).
"""

from __future__ import annotations

import logging
import os
import random
import uuid
from collections.abc import Mapping

from . import __version__

logger = logging.getLogger("azmlinfsrv")

HEADER_LIMIT = 100
REQUEST_ID = b"x-request-id"


def new_request_id() -> str:
    # Not uuid4(): it asks the OS for randomness on every request; an id needs no crypto.
    return str(uuid.UUID(int=random.getrandbits(128), version=4))


def ensure_request_id(scope: dict, send):
    """An ASGI request's ``x-request-id``: ``(scope, send, made)``. A request sent without one gets
    one (``made``, the header; else None), in its headers as the app reads them and in its answer
    unless the app answers one of its own."""
    headers = scope.get("headers") or ()
    if any(name == REQUEST_ID for name, _ in headers):
        return scope, send, None
    made = (REQUEST_ID, new_request_id().encode())

    async def answering(message):
        if message["type"] == "http.response.start":
            answered = list(message.get("headers") or ())
            if not any(name.lower() == REQUEST_ID for name, _ in answered):
                message = {**message, "headers": [*answered, made]}
        await send(message)

    return {**scope, "headers": [*headers, made]}, answering, made


def server_version() -> str:
    return os.environ.get("HTTP_X_MS_SERVER_VERSION", f"devtui-inference-server/{__version__}")


def id_headers(headers: Mapping[str, str], version: str) -> tuple[list[tuple[bytes, bytes]], str | None]:
    """The id headers to answer a request with (``headers``: its headers, by lower-case name),
    and the message of the 431 to answer instead when an id is over the limit (else None)."""
    out = [(b"x-ms-server-version", version.encode())] if version else []
    trace = headers.get("traceid")
    if trace is not None:
        out.append((b"traceid", trace.encode("latin-1")))
    request_id = headers.get("x-request-id")
    if request_id is None:
        request_id = new_request_id()
    if len(request_id) > HEADER_LIMIT:
        return out, f"x-request-id must not exceed {HEADER_LIMIT} characters"
    if request_id:
        out.append((b"x-request-id", request_id.encode("latin-1")))
    legacy = headers.get("x-ms-request-id", "")
    client = headers.get("x-ms-client-request-id", "")
    if legacy:
        logger.warning("x-ms-request-id header has been deprecated and will be removed from future versions "
                       "of the server. Please use x-ms-client-request-id.")
        client = client or legacy
    else:
        legacy = client or request_id
    if len(legacy) > HEADER_LIMIT or len(client) > HEADER_LIMIT:
        return out, f"x-ms-request-id and x-ms-client-request-id must not exceed {HEADER_LIMIT} characters"
    if legacy:
        out.append((b"x-ms-request-id", legacy.encode("latin-1")))
    if client:
        out.append((b"x-ms-client-request-id", client.encode("latin-1")))
    return out, None
