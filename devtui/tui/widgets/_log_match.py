"""What the log's filter box asks for: plain text (any case) or a /regex/, which lines match, where
in a line (to highlight it), and why a regex is not one."""

from __future__ import annotations

import re

from rich.text import Text

MATCH_STYLE = "bold black on yellow"


class LogMatch:
    def __init__(self, value: str = "") -> None:
        self.value = value
        self.error = ""  # why the regex is not one, in words; "" when it is (or is plain text)
        self.pattern: re.Pattern | None = None
        if len(value) >= 2 and value.startswith("/") and value.endswith("/"):
            try:
                self.pattern = re.compile(value[1:-1], re.IGNORECASE)
            except re.error as ex:
                self.error = f"not a valid regex: {ex.msg}" + (f" at {ex.pos + 1}" if ex.pos is not None else "")
        elif value:
            self.pattern = re.compile(re.escape(value), re.IGNORECASE)

    @property
    def active(self) -> bool:
        """A filter that narrows the log (a bad regex narrows nothing)."""
        return self.pattern is not None

    def matches(self, text: str) -> bool:
        return self.pattern is None or self.pattern.search(text) is not None

    def highlight(self, line: Text, text: str, offset: int) -> None:
        """Mark every match of ``text`` in ``line``, where ``text`` starts at ``offset``."""
        if self.pattern is None:
            return
        for match in self.pattern.finditer(text):
            if match.end() > match.start():
                line.stylize(MATCH_STYLE, offset + match.start(), offset + match.end())
