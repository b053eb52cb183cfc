"""Known secret values out of the logs: a deployment's connection secrets and the values ``show``
masks in its environment, replaced by masking's MASK in every line devtui stores or shows.

devtui loaded these values itself, so it can hide them exactly, whatever the user's code printed
them in (a print(), a log record, a traceback's message). They are matched as literal text, by one
compiled alternation, longest first (a secret that contains another is hidden whole); a batch of
lines is searched once, as one string, so the usual batch, with no secret in it, costs one scan.
A value shorter than MIN_LENGTH, or a plain number, is left alone: hiding ``true`` or ``4096`` (a
MAX_TOKENS, whose name looks secret) would mangle every line and hide nothing.

Lines are whole (``devtui.lines`` joins what arrives in pieces), so a secret is never split across
two of them; only a line cut at the line limit can end inside one, and that tail is hidden too.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from .lines import CUT_MARK
from .masking import MASK, hidden

if TYPE_CHECKING:
    from .spec import LocalDeployment

MIN_LENGTH = 6
# The shortest start of a secret hidden where a cut line ends inside it: shorter tells nothing.
MIN_TAIL = 3
_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")
_CUT = re.compile(re.escape(CUT_MARK).replace(re.escape("{limit}"), r"\d+") + r"\Z")
_CUT_START = CUT_MARK.split("{", 1)[0]


class Scrubber:
    """Hides ``values`` in text. Empty (false) when there is nothing to hide: then it costs nothing."""

    def __init__(self, values: Iterable[str] = ()):
        kept = {variant for value in values for variant in _variants(value)
                if len(variant) >= MIN_LENGTH and not _NUMBER.fullmatch(variant)}
        self.values = sorted(kept, key=lambda value: (-len(value), value))
        self._pattern = re.compile("|".join(map(re.escape, self.values))) if self.values else None

    @classmethod
    def of(cls, deployment: LocalDeployment, connections: Iterable[Path] = ()) -> Scrubber:
        """What a deployment must not show: what ``show`` masks of its environment_variables, and the
        secrets of its connection files (``--connections``)."""
        from .spec.connections import connection_secrets

        values = [piece for name, value in deployment.environment_variables.items()
                  for piece in hidden(name, str(value))]
        return cls(values + connection_secrets(tuple(connections)))

    def __bool__(self) -> bool:
        return self._pattern is not None

    def adding(self, other: Scrubber) -> Scrubber:
        """One that hides what both hide: after a connection file's edit, the old secrets may still
        be in what a draining worker logs."""
        return Scrubber([*self.values, *other.values])

    def lines(self, lines: list[str]) -> list[str]:
        """``lines`` with every secret hidden: the same list when none holds one."""
        if self._pattern is None or not lines:
            return lines
        joined = "\n".join(lines)
        if self._pattern.search(joined) is None and _CUT_START not in joined:
            return lines
        return [self.text(line) for line in lines]

    def text(self, text: str) -> str:
        if self._pattern is None:
            return text
        text = self._pattern.sub(MASK, text)
        cut = _CUT.search(text)
        return text if cut is None else self._hide_tail(text[:cut.start()]) + cut.group()

    def event(self, event):
        """A server event (a dataclass) with its text fields scrubbed: a failed revision's traceback
        quotes what the code raised, and the app shows it."""
        if self._pattern is None or not dataclasses.is_dataclass(event):
            return event
        changes = {field.name: self.text(value) for field in dataclasses.fields(event)
                   if type(value := getattr(event, field.name)) is str and self._pattern.search(value)}
        return dataclasses.replace(event, **changes) if changes else event

    def _hide_tail(self, head: str) -> str:
        """``head`` (a line cut at the limit) without the start of a secret it ends with."""
        longest = 0
        for value in self.values:
            for size in range(min(len(value) - 1, len(head)), max(MIN_TAIL, longest + 1) - 1, -1):
                if head.endswith(value[:size]):
                    longest = size
                    break
        return head[:len(head) - longest] + MASK if longest else head


class Secrets:
    """The scrubber for a deployment as it is now, for what devtui keeps of a request (its trace):
    made again only when the deployment (a restart loads the YAML again) or a connection file
    changed, and still hiding what was hidden before, as a draining worker may send it."""

    def __init__(self) -> None:
        self._deployment = None
        self._key: tuple = ()
        self.scrubber = Scrubber()

    def of(self, deployment: LocalDeployment, connections: Iterable[Path] = ()) -> Scrubber:
        connections = tuple(connections)
        key = tuple((str(path), _mtime(path)) for path in connections)
        if deployment is not self._deployment or key != self._key:
            self._deployment, self._key = deployment, key
            self.scrubber = self.scrubber.adding(Scrubber.of(deployment, connections))
        return self.scrubber


def _mtime(path: Path) -> int | None:
    try:
        return Path(path).stat().st_mtime_ns
    except OSError:
        return None


def _variants(value: str) -> set[str]:
    """How ``value`` may appear in a line: as it is, each of its lines (a PEM key printed spans
    several), trimmed, and escaped as JSON writes it (a structured log record, a server event)."""
    pieces = {value, value.strip(), *(line.strip() for line in value.splitlines())}
    return {form for piece in pieces if piece for form in (piece, json.dumps(piece)[1:-1])}
