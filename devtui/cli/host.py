"""One engine hosted in this process, the same way for ``up``, for ``up --detach``'s background
child (``up --serve``) and for the terminal app: claim the endpoint's name, build the engine, keep
the registry record, the log files and VS Code's launch.json in step with it, and release the
name however it ends. What runs meanwhile is the caller's: ``serve`` for ``up`` (until a signal,
``devtui down`` or stdout's reader going away), the Textual app for ``devtui [PATH]``."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path

from .. import registry, spec
from ..engine import Engine, accept_reload_requests
from ..launch import Launch
from ..replay import Replay
from ..trace_export import TraceExport
from .errors import BAD_INPUT, CommandError
from .views import LaunchConfig, Printer, Recorder, ReplayLog


def host(launch: Launch, deployment: spec.LocalDeployment, claim: registry.Claim, run: Callable[[Engine], None],
         view: Callable[[object], None] | None = None) -> int:
    """Run ``deployment`` in this process, under ``claim`` (released however it ends):
    ``run(engine)`` returns when the host should end. ``view`` (the Printer of ``up``) sees each
    event before the record and the log files do. A deployment that cannot start at all (a port
    taken since the check) ends in a CommandError that says why."""
    export: TraceExport | None = None
    try:
        engine = Engine(deployment, claim.folder / "staging", launch)
        if view is not None:
            engine.subscribe(view)
        engine.subscribe(Recorder(engine, claim))
        export = TraceExport.of(engine)  # the kept traces, on to a collector the OTEL_* variables name
        engine.subscribe(export)
        engine.subscribe(LaunchConfig(engine, Path.cwd()))
        if launch.replay is not None:  # `up --replay FILE`
            Replay(engine, launch.replay).subscribe(ReplayLog(engine))
        run(engine)
    finally:
        if export is not None:
            export.close()
        claim.release()
    if engine.fatal is not None:
        raise CommandError(str(engine.fatal), BAD_INPUT)
    return 0


async def serve(engine: Engine, printer: Printer | None) -> None:
    """Start the engine and keep it until Ctrl-C, SIGTERM, SIGHUP (`devtui down` sends SIGTERM)
    or, with a printer, until stdout's reader goes away; then stop it."""
    stop = asyncio.Event()
    if printer:
        printer.on_closed = stop.set
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    accept_reload_requests(engine)
    starting = asyncio.create_task(engine.start())
    # Nothing would retry a deployment that cannot start at all: the host ends (host() says why).
    starting.add_done_callback(lambda _: engine.fatal is not None and stop.set())
    try:
        await stop.wait()
    finally:
        if not starting.done():
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
        await engine.stop()
