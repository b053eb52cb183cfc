"""The app's keys, each one also a command palette entry and a line of the help screen: one list
per place a key works, so the footer, the palette and the help never disagree.

The app's own keys work everywhere (unless a text field takes the letter); the others belong to
the widget that holds them and show in the footer while it (or something inside it) has focus.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.widgets import TabbedContent


@dataclass(frozen=True)
class Command(Binding):
    """A key that is also a command palette entry: ``title`` there, ``tooltip`` its help."""

    title: str = ""


BINDINGS = [
    # First: the footer lists keys in this order, and esc must fit at any width.
    Binding("escape", "back_to_log", "Log", key_display="esc", id="escape", tooltip="Back to the log, from anywhere"),
    Command("ctrl+j", "invoke", "Invoke", priority=True, id="invoke", title="Invoke endpoint",
            tooltip="Send the request of the Invoke tab (from anywhere; in the chat, the message)"),
    Command("r", "reload", "Reload", id="reload", title="Reload now",
            tooltip="Swap in a fresh worker with the current code"),
    Command("ctrl+r", "restart", "Restart", priority=True, id="restart", title="Restart deployment",
            tooltip="Load the YAML again and restart the scoring server"),
    Command("l", "focus_logs", "Logs", id="focus-logs", title="Focus logs",
            tooltip="Show the logs and put the focus on them"),
    Command("i", "focus_invoke", "Invoke tab", id="focus-invoke", title="Focus invoke",
            tooltip="Show the Invoke tab and put the focus in its request editor"),
    Command("m", "focus_chat", "Chat", id="focus-chat", title="Focus chat",
            tooltip="Show the Chat tab (chat flows only) and put the focus in its message box"),
    Binding("m", "no_chat", "Chat", show=False, id="no-chat",
            tooltip="On a deployment that is no chat flow: says why it has no Chat tab"),
    Command("T", "focus_traces", "Traces", id="focus-traces", title="Focus traces",
            tooltip="Show the Traces tab: what each request did, span by span (with --traces)"),
    Command("b", "toggle_side_panel", "Panel", id="side-panel", title="Toggle deployment panel",
            tooltip="Show or hide the deployment panel (hidden at first below 120 columns)"),
    Command("x", "switch_runtime", "Runtime", id="runtime", title="Switch runtime",
            tooltip="Run the deployment on the next available runtime"),
    Command("d", "toggle_debugger", "Debug", id="debugger", title="Toggle debugger",
            tooltip="Start or stop the debugpy listener (VS Code attaches to it)"),
    Command("question_mark", "help", "Help", key_display="?", id="help", title="Help",
            tooltip="Every key of the app, where it works and what it does"),
    Command("p", "unpin", "Unpin", id="unpin", title="Unpin",
            tooltip="Stop replaying the pinned request on save (shown while one is pinned)"),
    Command("q", "quit", "Quit", id="quit", title="Quit", tooltip="Stop the endpoint and leave"),
    Binding("ctrl+c", "quit", "Quit", priority=True, id="quit-ctrl-c",
            tooltip="Quit, even while typing"),
]

LOG_BINDINGS = [
    Command("f", "toggle_follow", "Follow", id="follow", title="Toggle follow",
            tooltip="Follow new log lines, or stop following (scrolling up stops it too)"),
    Command("slash", "filter", "Filter", key_display="/", id="filter", title="Filter logs",
            tooltip="Narrow the log to lines matching text or /regex/"),
    Command("w", "toggle_wrap", "Wrap", id="wrap", title="Toggle wrap",
            tooltip="Fold long lines at the width of the view, or scroll them sideways"),
    Command("t", "toggle_timestamps", "Time", id="timestamps", title="Toggle timestamps",
            tooltip="Show or hide the time of each log line (the server's own is left out while shown)"),
    Command("c", "clear", "Clear", id="clear", title="Clear logs", tooltip="Empty the log view and its buffer"),
    Command("s", "save", "Save", id="save", title="Save logs", tooltip="Write the log lines in view to a file"),
]

FILTER_BINDINGS = [
    Binding("escape", "app.focus_logs", "Back to log", key_display="esc", id="filter-escape",
            tooltip="Back to the log; the filter stays"),
    Binding("enter", "app.focus_logs", "Done", show=False, id="filter-enter",
            tooltip="Back to the log; the filter stays"),
]

EDITOR_BINDINGS = [
    Binding("escape", "app.focus_logs", "Back to log", key_display="esc", id="editor-escape",
            tooltip="Back to the log (tab moves to the next field; ctrl+j sends)"),
]

# The answer's keys, then direct keys to each part of the Invoke tab, numbered in screen order as
# Posting's jump mode numbers the method and the URL; ctrl+t is Posting's method key, and works
# while typing.
INVOKE_BINDINGS = [
    Command("y", "copy_curl", "Copy curl", id="copy-curl", title="Copy as curl",
            tooltip="Put the Invoke request on the clipboard as a curl command"),
    Command("g", "goto_traceback", "Traceback", id="goto-traceback", title="Show the answer's traceback",
            tooltip="Find the traceback of the answer on screen in the log (by its x-request-id)"),
    Command("T", "app.trace_answer", "Trace", id="invoke-trace", title="Show the answer's trace",
            tooltip="Open the trace of the answer on screen in the Traces tab (by its x-request-id)"),
    Command("p", "pin", "Pin", id="pin", title="Pin the request (replay on save)",
            tooltip="Pin the Invoke request: every save that brings a new revision sends it again and the "
                    "Replay tab shows the answer beside the previous one; p again unpins"),
    Command("1", "jump('method')", "Method", id="jump-method", title="Choose the method",
            tooltip="Open the method's list (up, down, enter)"),
    Binding("ctrl+t", "jump('method')", "Method", show=False, id="jump-method-ctrl-t",
            tooltip="Open the method's list, even while typing (Posting's key)"),
    Command("2", "jump('query')", "Query", show=False, id="jump-query", title="Edit the query",
            tooltip="Put the focus in the query field"),
    Command("3", "jump('kind')", "Kind", id="jump-kind", title="Choose the body kind",
            tooltip="Open the body kind's list: JSON, text or a file upload"),
    Command("4", "jump('body')", "Body", id="jump-body", title="Edit the body",
            tooltip="Show the request's Body tab and put the focus in it (the editor, or the file's name)"),
    Command("5", "jump('headers')", "Headers", id="jump-headers", title="Edit the request headers",
            tooltip="Show the request's Headers tab and put the focus in it"),
    Command("6", "jump('answer')", "Answer", id="jump-answer", title="Show the answer's body",
            tooltip="Show the answer's Body tab and put the focus on it"),
    Command("7", "jump('answer-headers')", "Answer headers", show=False, id="jump-answer-headers",
            title="Show the answer's headers", tooltip="Show the answer's Headers tab and put the focus on it"),
]

CHAT_BINDINGS = [
    Command("ctrl+l", "clear_chat", "Clear chat", id="clear-chat", title="Clear chat history",
            tooltip="Forget the chat history and empty the transcript; the next message starts afresh"),
    Command("p", "pin", "Pin", id="chat-pin", title="Pin the last chat turn (replay on save)",
            tooltip="Pin the last chat turn's request: every save that brings a new revision sends it again; "
                    "p again unpins"),
    Command("g", "goto_traceback", "Traceback", id="chat-goto-traceback", title="Show the failed message's traceback",
            tooltip="Find the traceback of the latest message that failed in the log"),
]

HISTORY_BINDINGS = [
    Binding("enter", "select_cursor", "Open", id="history-open",
            tooltip="Show that answer again (status, headers, body) without sending anything"),
    Binding("e", "edit", "Edit request", id="history-edit",
            tooltip="Put that request back in the Invoke fields (ctrl+j sends it)"),
    Binding("p", "pin", "Pin", id="history-pin",
            tooltip="Pin that request, its answer the previous one: every save that brings a new revision "
                    "sends it again; p again unpins"),
]

TRACES_BINDINGS = [
    Binding("enter", "select_cursor", "Open", id="trace-open",
            tooltip="Open the highlighted request's spans as a waterfall; up and down then show each span"),
    Command("n", "open_newest", "Newest", id="trace-newest", title="Open the newest trace",
            tooltip="Open the trace of the newest request"),
]

# Where each list works, as the help screen names it (the app's list works everywhere).
SCOPES = [
    ("everywhere", BINDINGS),
    ("in the log", LOG_BINDINGS),
    ("in the filter box", FILTER_BINDINGS),
    ("in the Invoke tab (not while typing, but ctrl+t)", INVOKE_BINDINGS),
    ("in the request editor", EDITOR_BINDINGS),
    ("in the history", HISTORY_BINDINGS),
    ("in the Chat tab (chat flows; g and p not while typing)", CHAT_BINDINGS),
    ("in the Traces tab's list of requests", TRACES_BINDINGS),
]


def key_name(binding: Binding) -> str:
    """The key as the footer, the help and the README write it."""
    return binding.key_display or binding.key


# The palette runs a widget's command on that widget, with its tab shown: (tab, widget, list).
PALETTE = [(None, None, BINDINGS), ("logs-tab", "#logs", LOG_BINDINGS), ("invoke-tab", "#invoke", INVOKE_BINDINGS),
           ("chat-tab", "#chat", CHAT_BINDINGS), ("traces-tab", "#trace-list", TRACES_BINDINGS)]


def palette_commands(app: App) -> Iterator[SystemCommand]:
    """Every command that works in this app, its key first in its help: not those of a widget it
    does not have (the chat of a deployment that is no chat flow), nor the app's own that
    ``check_action`` turns off."""
    for tab, selector, bindings in PALETTE:
        if selector is not None and not app.query(selector):
            continue
        for binding in bindings:
            if isinstance(binding, Command) and (selector is not None or app.check_action(binding.action, ())):
                yield SystemCommand(binding.title, f"{key_name(binding)} · {binding.tooltip}",
                                    partial(_run, app, tab, selector, binding.action))


def no_chat_reason(deployment) -> str:
    """Why ``deployment`` has no Chat tab, and what would give it one."""
    flow = deployment.flow
    if flow is None:
        return "No Chat tab: this deployment runs a scoring script; the Chat tab is for chat flows. Use the Invoke tab (i)."
    missing = [what for what, name in (("is_chat_input: true", flow.chat_input),
                                       ("is_chat_history: true", flow.chat_history)) if name is None]
    return (f"No Chat tab: {flow.flow_file} marks no input with {' nor '.join(missing)}, so it is no chat flow. "
            "Use the Invoke tab (i).")


async def _run(app: App, tab: str | None, selector: str | None, action: str) -> None:
    if tab is not None:
        app.query_one("#tabs", TabbedContent).active = tab
    await app.run_action(action, app.query_one(selector) if selector else app)
