"""A container's log as devtui reads it: streamed through the Docker API on a thread of its own,
split into lines, the server's events taken out; followed again across a restart devtui asked for
(a liveness failure, a bring-your-own reload); and an ``Exited`` event when it ends. Every batch
is scrubbed of the deployment's secrets (``devtui.scrub``) before it is passed on: the server's
events travel in the same stream, so a failed revision's traceback is scrubbed too."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

from inference_server import protocol

from ...lines import LineSplitter
from ...scrub import Scrubber
from ..base import STOP_GRACE_S


class Owner(Protocol):
    deployment: object  # spec.LocalDeployment: its environment holds secrets to scrub
    launch: object  # launch.Launch: so do its connection files
    stopping: bool  # devtui is stopping the container: its end is expected
    restarting: bool  # devtui is restarting it: follow it again


class LogPump(threading.Thread):
    def __init__(self, container, splitter: Callable[[], LineSplitter], on_lines: Callable[[list[str]], None],
                 on_event: Callable[[protocol.ServerEvent], None], owner: Owner):
        super().__init__(daemon=True, name=f"logs of {container.name}")
        self.container, self.splitter, self.on_lines, self.on_event, self.owner = (container, splitter, on_lines,
                                                                                  on_event, owner)
        self.scrubber = Scrubber.of(owner.deployment, owner.launch.connections)

    def run(self) -> None:
        since = None
        while True:
            splitter = self.splitter()
            try:
                for chunk in self.container.logs(stream=True, follow=True, since=since):
                    self.on_lines(self.scrubber.lines(splitter.feed(chunk)))
                self.on_lines(self.scrubber.lines(splitter.flush()))
            except Exception:  # the engine closed the stream (a restart, a stop): see below
                pass
            since = int(time.time())
            if self.owner.stopping or not self._restarted():
                break
        try:
            code = self.container.wait(timeout=30).get("StatusCode")
        except Exception:
            code = None
        self.on_event(protocol.Exited(exit_code=code, expected=self.owner.stopping))

    def _restarted(self) -> bool:
        """Whether the container is running again after a restart devtui asked for."""
        deadline = time.monotonic() + STOP_GRACE_S + 20
        while time.monotonic() < deadline and not self.owner.stopping:
            try:
                self.container.reload()
            except Exception:
                return False
            if not self.owner.restarting:
                if self.container.status == "running":
                    return True
                if self.container.status in ("exited", "dead"):
                    return False
            time.sleep(0.05)  # polling the engine's view of the container, with a deadline
        return False
