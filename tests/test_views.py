"""The CLI's views of the engine's events: one handler per event class in each dispatch table,
and the lines ``up`` prints for each kind of event."""

from __future__ import annotations

from typing import get_args

import pytest

from devtui.cli.views import Printer, Recorder
from devtui.events import (DEVTUI, INFERENCE_SERVER, DebuggerChanged, Event, LogRecord, Logs, Progress,
                           Placement, ReloadFinished, ReloadStarted, ServerStarted, StateChanged)


@pytest.mark.parametrize("view", [Printer, Recorder])
def test_each_view_has_one_handler_for_every_event_class(view):
    assert set(view.handlers) == set(get_args(Event))


def test_the_printer_prints_one_line_per_fact(capsys):
    printer = Printer()
    for event in (
        Logs((LogRecord(INFERENCE_SERVER, "init done"), LogRecord(DEVTUI, "hello"))),
        StateChanged("Creating"),
        StateChanged("Succeeded", "revision 1 is serving"),
        ServerStarted("http://127.0.0.1:5001/score", 5001, Placement(pid=42)),
        Progress("copying the model", 1, 2),
        DebuggerChanged("listening", "127.0.0.1", 5678),
        DebuggerChanged("failed", "127.0.0.1", 5678, "port taken"),
        ReloadStarted(2, "code", ("/x/score.py", "/x/util.py")),
        ReloadStarted(3, "manual"),
        ReloadFinished(1, True, 120.4, 1, first=True),
        ReloadFinished(2, True, 35.6, 2, rung="swap", detail="init() changed"),
        ReloadFinished(5, True, 3.2, 5, rung="patch", detail="run()"),
        ReloadFinished(3, False, 10, 2, stage="init"),
        ReloadFinished(4, False, 10, None, stage="load"),
    ):
        printer(event)
    pad = " " * (len("storage-initializer") - len(DEVTUI))
    assert capsys.readouterr().out.splitlines() == [
        "inference-server    | init done",
        f"devtui{pad} | hello",
        f"devtui{pad} | provisioning_state: Creating",
        f"devtui{pad} | provisioning_state: Succeeded (revision 1 is serving)",
        f"devtui{pad} | debugger listening on 127.0.0.1:5678",
        f"devtui{pad} | debugger failed on 127.0.0.1:5678 (port taken)",
        f"devtui{pad} | reloading revision 2 (code: score.py, util.py)",
        f"devtui{pad} | reloading revision 3 (manual)",
        f"devtui{pad} | revision 2 is serving: worker swap (init() changed) in 36 ms",
        f"devtui{pad} | revision 5 is serving: patched run() in place (model kept) in 3 ms",
        f"devtui{pad} | revision 3 failed in init (10 ms); revision 2 keeps serving. The traceback is above; "
        "save a fix to try again.",
        f"devtui{pad} | revision 4 failed in load (10 ms); nothing is serving. The traceback is above; "
        "save a fix to try again.",
    ]
