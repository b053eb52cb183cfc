"""The app's keys, each one also a command palette entry: one list, so the footer, the palette and
the help never disagree."""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding


@dataclass(frozen=True)
class Command(Binding):
    """A key that is also a command palette entry: ``title`` there, ``tooltip`` its help."""

    title: str = ""


BINDINGS = [
    Command("ctrl+j", "invoke", "Invoke", priority=True, id="invoke", title="Invoke endpoint",
            tooltip="Send the request in the Invoke editor"),
    Command("r", "reload", "Reload", id="reload", title="Reload now",
            tooltip="Swap in a fresh worker with the current code"),
    Command("ctrl+r", "restart", "Restart", priority=True, id="restart", title="Restart deployment",
            tooltip="Load the YAML again and restart the scoring server"),
    Command("l", "focus_logs", "Logs", id="focus-logs", title="Focus logs",
            tooltip="Show the logs and put the focus on them"),
    Command("i", "focus_invoke", "Editor", id="focus-invoke", title="Focus invoke",
            tooltip="Show the Invoke editor and put the focus on it"),
    Command("f", "toggle_follow", "Follow", id="follow", title="Toggle follow",
            tooltip="Follow new log lines, or stop following"),
    Command("t", "toggle_timestamps", "Time", id="timestamps", title="Toggle timestamps",
            tooltip="Show or hide the time of each log line"),
    Command("slash", "filter_logs", "Filter", id="filter", title="Filter logs",
            tooltip="Narrow the log to lines matching text or /regex/"),
    Command("c", "clear_logs", "Clear", id="clear", title="Clear logs", tooltip="Empty the log view and its buffer"),
    Command("s", "save_logs", "Save", id="save", title="Save logs", tooltip="Write the log lines in view to a file"),
    Command("x", "switch_runtime", "Runtime", id="runtime", title="Switch runtime",
            tooltip="Run the deployment on the next available runtime"),
    Command("d", "toggle_debugger", "Debug", id="debugger", title="Toggle debugger",
            tooltip="Start or stop the debugpy listener (VS Code attaches to it)"),
    Command("q", "quit", "Quit", id="quit", title="Quit", tooltip="Stop the endpoint and leave"),
    Binding("ctrl+c", "quit", "Quit", show=False, priority=True, id="quit-ctrl-c"),
]
