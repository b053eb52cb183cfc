"""Waiting helpers for tests: poll a condition until a deadline, never sleep blindly."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Timeout(AssertionError):
    pass


def wait_for(condition: Callable[[], T], timeout: float = 30, interval: float = 0.02, message: str = "") -> T:
    """Call ``condition`` until it returns something truthy; return that, or fail at the deadline."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
        except Exception as ex:  # not ready yet (connection refused, file missing, ...)
            last_error = ex
        else:
            if value:
                return value
        time.sleep(interval)
    raise Timeout(f"timed out after {timeout}s waiting for {message or condition}"
                  + (f" (last error: {last_error!r})" if last_error else ""))


async def async_wait_for(condition: Callable[[], T], timeout: float = 30, interval: float = 0.02,
                         message: str = "") -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        await asyncio.sleep(interval)
    raise Timeout(f"timed out after {timeout}s waiting for {message or condition}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
