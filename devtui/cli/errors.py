"""How a command fails: one message for the user and the exit code that goes with it."""

from __future__ import annotations

import sys

from ..record import EndpointRecord

BAD_INPUT = 2


class CommandError(Exception):
    """A message for the user and the exit code that goes with it."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)


def warn(warnings) -> None:
    """The YAML's warnings (a misspelled key): said, and nothing stops."""
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr, flush=True)


def already_running(name: str, record: EndpointRecord | None) -> CommandError:
    """The one answer to a second engine for a running endpoint, whichever check caught it."""
    existing = record.deployment.name if record is not None else None
    which = f"a deployment ({existing!r})" if existing else "a deployment"
    return CommandError(f"endpoint {name!r} already has {which} running; a local endpoint has exactly one. Stop it "
                        f"with `devtui down -n {name}`, or run this one under another name with -n NAME.", BAD_INPUT)
