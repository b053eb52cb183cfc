"""A small Debug Adapter Protocol client, for testing devtui's debugging as VS Code would use it.

It speaks DAP over debugpy's socket: requests with responses, events queued per session, and
child sessions opened on ``debugpyAttach`` (how debugpy announces a subprocess, such as a
forked worker) with the same breakpoints, as VS Code does.
"""

from __future__ import annotations

import itertools
import json
import queue
import socket
import threading
import time
from typing import Any


class DapError(AssertionError):
    pass


class Session:
    """One DAP connection: to the adapter for the parent process, or one per child process."""

    def __init__(self, host: str, port: int, name: str = "parent"):
        self.name = name
        self.sock = socket.create_connection((host, port), timeout=30)
        self.sock.settimeout(None)
        self.seq = itertools.count(1)
        self.responses: dict[int, queue.Queue] = {}
        # Events not yet waited for, in order. Several threads wait on one session at once (the
        # children's follower and the test), so a waiter takes only the event it waits for.
        self.events: list[dict] = []
        self.arrived = threading.Condition()
        self.lock = threading.Lock()
        self.closed = False
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    # -- wire ------------------------------------------------------------------------------------

    def _send(self, message: dict) -> None:
        body = json.dumps(message).encode()
        with self.lock:
            self.sock.sendall(f"Content-Length: {len(body)}\r\n\r\n".encode() + body)

    def _read(self) -> None:
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = self.sock.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                header, buffer = buffer.split(b"\r\n\r\n", 1)
                length = int(next(line.split(b":")[1] for line in header.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")))
                while len(buffer) < length:
                    chunk = self.sock.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                message, buffer = json.loads(buffer[:length]), buffer[length:]
                if message["type"] == "response":
                    self.responses.setdefault(message["request_seq"], queue.Queue()).put(message)
                elif message["type"] == "event":
                    self._arrive(message)
                elif message["type"] == "request":  # reverse requests: acknowledge
                    self._send({"seq": next(self.seq), "type": "response", "request_seq": message["seq"],
                                "command": message["command"], "success": True, "body": {}})
        except OSError:
            pass
        finally:
            self.closed = True
            self._arrive({"type": "event", "event": "__closed__"})

    def _arrive(self, event: dict) -> None:
        with self.arrived:
            self.events.append(event)
            self.arrived.notify_all()

    def request(self, command: str, arguments: dict | None = None, wait: bool = True, timeout: float = 30) -> Any:
        seq = next(self.seq)
        self.responses.setdefault(seq, queue.Queue())
        self._send({"seq": seq, "type": "request", "command": command, "arguments": arguments or {}})
        if not wait:
            return seq
        return self.response(seq, timeout)

    def response(self, seq: int, timeout: float = 30) -> dict:
        try:
            message = self.responses[seq].get(timeout=timeout)
        except queue.Empty:
            raise DapError(f"[{self.name}] no response to request {seq} within {timeout}s") from None
        if not message.get("success"):
            raise DapError(f"[{self.name}] {message.get('command')} failed: {message.get('message')}")
        return message.get("body") or {}

    def wait_event(self, name: str, timeout: float = 30, where=None) -> dict:
        """The next event called ``name`` (others stay for their waiters)."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while True:
                event = next((e for e in self.events if e["event"] == name and (where is None or where(e))), None)
                if event is not None:
                    self.events.remove(event)
                    return event.get("body") or {}
                if name != "__closed__" and any(e["event"] == "__closed__" for e in self.events):
                    raise DapError(f"[{self.name}] connection closed while waiting for {name!r}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise DapError(f"[{self.name}] no {name!r} event within {timeout}s")
                self.arrived.wait(remaining)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class DebugClient:
    """Attach to debugpy once; follow child processes; keep breakpoints on every session."""

    def __init__(self, config: dict):
        self.config = config
        self.breakpoints: dict[str, list[int]] = {}
        self.children: "queue.Queue[Session]" = queue.Queue()
        self.sessions: list[Session] = []
        connect = config["connect"]
        self.parent = self._open(connect["host"], connect["port"], "parent", config)
        threading.Thread(target=self._follow_children, daemon=True).start()

    def _open(self, host: str, port: int, name: str, attach: dict) -> Session:
        session = Session(host, port, name)
        self.sessions.append(session)
        session.request("initialize", {"clientID": "devtui-tests", "adapterID": "debugpy", "pathFormat": "path",
                                       "linesStartAt1": True, "columnsStartAt1": True,
                                       "supportsVariableType": True, "supportsRunInTerminalRequest": False})
        attach_seq = session.request("attach", attach, wait=False)
        session.wait_event("initialized")
        for path, lines in self.breakpoints.items():
            self._set_breakpoints(session, path, lines)
        session.request("configurationDone")
        session.response(attach_seq)
        return session

    def _follow_children(self) -> None:
        while not self.parent.closed:
            try:
                body = self.parent.wait_event("debugpyAttach", timeout=3600)
            except DapError:
                return
            connect = body.get("connect") or {}
            try:
                child = self._open(connect.get("host", "127.0.0.1"), connect["port"],
                                   f"child {body.get('subProcessId')}", body)
            except (OSError, DapError):
                continue
            self.children.put(child)

    @staticmethod
    def _set_breakpoints(session: Session, path: str, lines: list[int]) -> dict:
        return session.request("setBreakpoints", {"source": {"path": path},
                                                   "breakpoints": [{"line": line} for line in lines]})

    def set_breakpoints(self, path: str, lines: list[int]) -> None:
        """On every session, as VS Code sends them. A retired worker's session can end meanwhile,
        and debugpy then answers "Server is not available": VS Code goes on, and so does this."""
        self.breakpoints[path] = lines
        for session in list(self.sessions):
            if session.closed:
                continue
            try:
                self._set_breakpoints(session, path, lines)
            except DapError as ex:
                if session is self.parent or "Server is not available" not in str(ex):
                    raise

    def next_child(self, timeout: float = 30) -> Session:
        try:
            return self.children.get(timeout=timeout)
        except queue.Empty:
            raise DapError(f"no child process attached within {timeout}s") from None

    def close(self) -> None:
        for session in self.sessions:
            try:
                if not session.closed:
                    session.request("disconnect", {"terminateDebuggee": False}, timeout=5)
            except DapError:
                pass
            session.close()


def stopped_frame(session: Session, timeout: float = 30) -> tuple[int, dict]:
    """Wait for a breakpoint stop; the thread id and its top stack frame."""
    body = session.wait_event("stopped", timeout)
    thread = body["threadId"]
    frames = session.request("stackTrace", {"threadId": thread, "levels": 1})["stackFrames"]
    return thread, frames[0]


def local_variables(session: Session, frame_id: int) -> dict[str, str]:
    scopes = session.request("scopes", {"frameId": frame_id})["scopes"]
    local = next(s for s in scopes if s["name"].lower().startswith("local"))
    variables = session.request("variables", {"variablesReference": local["variablesReference"]})["variables"]
    return {v["name"]: v["value"] for v in variables}
