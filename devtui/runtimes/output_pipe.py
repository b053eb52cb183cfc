"""The scoring server's output as the process runtime reads it: from a pipe, in batches.

Under load the server logs a line per request. Read as it comes, each line cost devtui a
wake-up, an event and a file write, on the cores the server needed (a deployment run by
`devtui up` served at 60-70 % of the standalone server). So the pipe is read at most once per
``BATCH_S``, whatever has gathered, and :meth:`OutputPipe.drain` reads what is there at once:
the runtime calls it before it passes on each of the server's events, which come through a
pipe of their own, so that a traceback the server logged before its event (a failed reload)
still reaches the log before the event does. Every batch is scrubbed of the deployment's secrets
(``devtui.scrub``) before it is passed on.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

from ..lines import LineSplitter
from ..scrub import Scrubber

# How long output may gather before it is read again: one batch of lines, one event, per read.
BATCH_S = 0.02
READ_BYTES = 65536


class OutputPipe:
    def __init__(self, fd: int, splitter: LineSplitter, on_lines: Callable[[list[str]], None],
                 scrubber: Scrubber | None = None):
        os.set_blocking(fd, False)
        self.fd, self.splitter, self.on_lines = fd, splitter, on_lines
        self.scrubber = scrubber or Scrubber()
        self.open = True

    def drain(self) -> None:
        """Read whatever the pipe holds now, without waiting, and pass it on as lines."""
        lines: list[str] = []
        while self.open:
            try:
                chunk = os.read(self.fd, READ_BYTES)
            except BlockingIOError:
                break
            except OSError:  # the pipe is gone: as its end
                chunk = b""
            if not chunk:
                self.open = False
                lines += self.splitter.flush()
                break
            lines += self.splitter.feed(chunk)
        if lines:
            self.on_lines(self.scrubber.lines(lines))

    async def pump(self) -> None:
        """Read until the other end closes, a batch at a time; then close the pipe."""
        loop = asyncio.get_running_loop()
        try:
            while self.open:
                readable = loop.create_future()
                loop.add_reader(self.fd, lambda: readable.done() or readable.set_result(None))
                try:
                    await readable
                finally:
                    loop.remove_reader(self.fd)
                self.drain()
                if self.open:
                    await asyncio.sleep(BATCH_S)
        finally:
            self.open = False
            os.close(self.fd)
