"""How to run one deployment, read once from the command line and handed whole to the engine.

``cli/parser.py`` builds a :class:`Launch` from argv; preflight checks its ports, once; the
engine and every runtime take it as it is. ``to_argv`` gives the same launch back as ``devtui up``
arguments (``up --detach`` starts its background child with them), and ``server_argv`` is what it
asks of the scoring server's command line. Nothing else reads the command line.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from inference_server.protocol import ReloadMode

if TYPE_CHECKING:
    from .replay import PinnedRequest
    from .runtimes.container.gpus import GpuRequest

DEFAULT_DEBUG_PORT = 5678


@dataclass(frozen=True)
class DebugSettings:
    """debugpy for the scoring code: listen on host:port (0: a free one); hold init() with wait."""

    port: int = DEFAULT_DEBUG_PORT
    wait: bool = False
    host: str = "127.0.0.1"


@dataclass(frozen=True)
class Launch:
    """Which deployment (``path``, ``endpoint_file``, ``name``), where it runs (``runtime``, the
    Docker ``context``, ``gpus``), on which ``port`` (0: a free one), what a save does
    (``reload``, ``watch``), the debugger, a prompt flow's ``connections``, and the request
    ``replay`` sends after each reload."""

    path: Path = Path(".")
    endpoint_file: Path | None = None
    name: str | None = None
    runtime: str = "process"
    host: str = "127.0.0.1"
    port: int = 0
    reload: ReloadMode = ReloadMode.PATCH
    watch: bool = True
    debug: DebugSettings | None = None
    context: str | None = None
    gpus: GpuRequest | None = None
    connections: tuple[Path, ...] = ()
    replay: PinnedRequest | None = None
    traces: bool = False  # request traces (off by default: they cost the request path, see the README)

    @classmethod
    def of(cls, args: argparse.Namespace) -> Launch:
        """The launch an ``up`` or the app's command line asks for."""
        debug = None
        if args.debug or args.debug_port is not None or args.debug_wait:
            debug = DebugSettings(DEFAULT_DEBUG_PORT if args.debug_port is None else args.debug_port, args.debug_wait)
        return cls(path=args.path, endpoint_file=args.endpoint_file, name=args.name, runtime=args.runtime,
                   port=args.port or 0, reload=ReloadMode(args.reload), debug=debug, context=args.context,
                   gpus=args.gpus, connections=tuple(args.connections),
                   replay=getattr(args, "replay", None), traces=args.traces)

    def to_argv(self) -> list[str]:
        """``devtui up`` arguments that give this launch again."""
        argv = [str(self.path), "--runtime", self.runtime, "--reload", str(self.reload)]
        for flag, value in (("--endpoint-file", self.endpoint_file), ("-n", self.name),
                            ("--port", self.port or None), ("--context", self.context), ("--gpus", self.gpus)):
            if value is not None:
                argv += [flag, str(value)]
        if self.debug is not None:
            argv += ["--debug", "--debug-port", str(self.debug.port), *(["--debug-wait"] if self.debug.wait else [])]
        for file in self.connections:
            argv += ["--connections", str(file.resolve())]
        if self.replay is not None:
            argv += ["--replay", str(self.replay.source)]  # read again by the child: it checks it too
        if self.traces:
            argv.append("--traces")
        return argv

    def server_argv(self, host: str, port: int, debug_host: str | None = None,
                    debug_port: int | None = None) -> list[str]:
        """What this launch asks of the scoring server's command line: where it listens (as the
        runtime places it), what a reload does, and the debugger."""
        argv = ["--host", host, "--port", str(port), "--reload", str(self.reload)]
        if self.traces:
            argv.append("--traces")
        if self.debug is not None:
            argv += ["--debug-host", debug_host or self.debug.host,
                     "--debug-port", str(self.debug.port if debug_port is None else debug_port)]
            if self.debug.wait:
                argv.append("--debug-wait")
        return argv
