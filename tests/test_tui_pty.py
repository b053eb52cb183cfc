"""The real console script in a real pseudo-terminal: `devtui PATH` inside tmux, driven by keys.

Each test has its own tmux server (``-L``) and DEVTUI_HOME; the screen is read with
``capture-pane`` and polled until it shows what is expected.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from helpers import children_of, pid_alive, save, wait_for

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

# The sample model's prediction for the first row of sample-request.json.
FIRST_PREDICTION = "199.85"


def terminal_env(devtui_home) -> dict[str, str]:
    """The pane's whole environment (env -i), with the PYTHONPATH this test run imports devtui from."""
    env = {"DEVTUI_HOME": str(devtui_home), "TERM": "xterm-256color", "PATH": os.environ["PATH"],
           "HOME": os.environ.get("HOME", str(devtui_home)), "LANG": "C.UTF-8"}
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


def devtui_script() -> list[str]:
    script = Path(sys.executable).with_name("devtui")
    return [str(script)] if script.exists() else [sys.executable, "-m", "devtui"]


class Tmux:
    """One tmux server on its own socket, with one session running ``command``."""

    def __init__(self, tmp_path: Path):
        self.socket = f"devtui-test-{uuid.uuid4().hex[:12]}"
        self.session = "devtui"
        # A dead pane stays, so the screen can still be read after the app quits.
        self.config = tmp_path / "tmux.conf"
        self.config.write_text("set -g remain-on-exit on\n")
        self.status = tmp_path / "exit-status"
        self.socket_path: Path | None = None

    def __call__(self, *args: str, check: bool = True) -> str:
        result = subprocess.run(["tmux", "-L", self.socket, "-f", str(self.config), *args],
                                capture_output=True, text=True, timeout=10)
        if check and result.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)} failed: {result.stderr}")
        return result.stdout

    def start(self, command: list[str], env: dict[str, str], width: int = 140, height: int = 40) -> None:
        """Run ``command`` in the pane; its exit status is written to ``self.status``. (tmux's own
        #{pane_dead_status} is unreliable: the server sometimes leaves the pane's process unreaped.)"""
        wrapper = self.config.with_name("run.sh")
        wrapper.write_text(f'"$@"\necho $? > {shlex.quote(str(self.status))}\n')
        # env -i: the test process may carry COLUMNS/LINES, which would override the pane's size.
        line = shlex.join(["exec", "env", "-i", *(f"{k}={v}" for k, v in env.items()), "/bin/sh", str(wrapper),
                           *command])
        # Started in the test's own folder: whatever the app writes into its working folder (saved
        # logs, .vscode/launch.json) stays out of the checkout.
        self("new-session", "-d", "-s", self.session, "-c", str(self.config.parent), "-x", str(width), "-y",
             str(height), line)
        self.socket_path = Path(self.pane("#{socket_path}"))

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", self.session)

    def keys(self, *keys: str) -> None:
        self("send-keys", "-t", self.session, *keys)

    def pane(self, fmt: str) -> str:
        return self("display-message", "-p", "-t", self.session, fmt).strip()

    def kill(self) -> None:
        self("kill-server", check=False)
        if self.socket_path is not None:  # kill-server leaves the socket file behind
            self.socket_path.unlink(missing_ok=True)


@pytest.fixture
def tmux(tmp_path):
    server = Tmux(tmp_path)
    yield server
    server.kill()


def processes_mentioning(text: str, but: set[int]) -> list[str]:
    """Live processes (other than ``but``) whose command line or working directory mention ``text``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in but:
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        if text in cmdline or cwd.startswith(text):
            found.append(f"{entry}: {cmdline.strip()} (in {cwd})")
    return found


def test_devtui_in_a_terminal_deploys_invokes_and_quits_clean(sample, tmux, devtui_home):
    folder = sample("sklearn-regression")
    env = terminal_env(devtui_home)
    tmux.start([*devtui_script(), str(folder)], env)
    try:
        wait_for(lambda: "Succeeded" in tmux.screen() and "revision 1" in tmux.screen(), timeout=40,
                 message="Succeeded on screen")
        listed = subprocess.run([*devtui_script(), "list", "-o", "json"], capture_output=True, text=True,
                                env={**os.environ, "DEVTUI_HOME": str(devtui_home)}, timeout=30)
        assert [record["name"] for record in json.loads(listed.stdout)] == ["my-endpoint"]

        tmux.keys("C-j")
        wait_for(lambda: FIRST_PREDICTION in tmux.screen(), timeout=20, message="the answer on screen")
        assert re.search(r"\b200 OK +[\d.]+ ms round trip", tmux.screen()), "the status and latency of the answer"

        # The tmux server keeps the command line it was started with, the devtui command's included.
        tmux_server = int(tmux.pane("#{pid}"))
        running = processes_mentioning(str(folder), but={os.getpid(), tmux_server})
        assert any("inference_server" in p for p in running) and any("devtui" in p for p in running), running
        pane_process = int(tmux.pane("#{pane_pid}"))
        tmux.keys("q")
        status = wait_for(lambda: tmux.status.read_text().strip(), timeout=30, message="devtui to exit")
        assert status == "0"
        wait_for(lambda: not pid_alive(pane_process), timeout=10, message="the pane's process to end")
    except BaseException:
        print(tmux.screen())
        raise

    listed = subprocess.run([*devtui_script(), "list", "-o", "json"], capture_output=True, text=True,
                            env={**os.environ, "DEVTUI_HOME": str(devtui_home)}, timeout=30)
    assert listed.returncode == 0 and json.loads(listed.stdout) == []
    wait_for(lambda: processes_mentioning(str(folder), but={os.getpid(), tmux_server}) == [], timeout=10,
             message=f"no process left that mentions {folder}")
    assert children_of(os.getpid()) == []  # tmux runs as a daemon: nothing of this test is our child


def test_devtui_in_a_small_terminal_as_a_daily_tool(sample, tmux, devtui_home):
    """At 100x30: Esc leaves the filter; warm requests show the endpoint's latency; the log keeps
    following through a failed reload; invoke while Failed answers at once with why."""
    folder = sample("sklearn-regression")
    score = folder / "onlinescoring" / "score.py"
    good = score.read_text()
    env = terminal_env(devtui_home)
    tmux.start([*devtui_script(), str(folder)], env, width=100, height=30)
    try:
        wait_for(lambda: "Succeeded" in tmux.screen() and "revision 1" in tmux.screen(), timeout=40,
                 message="Succeeded on screen")
        assert "q Quit" in tmux.screen().splitlines()[-1]

        # Esc out of the filter: a q typed there is text; after Esc, f reaches the log.
        tmux.keys("/")
        wait_for(lambda: "esc Back to log" in tmux.screen(), timeout=10, message="the focus in the filter")
        tmux.keys("q")
        wait_for(lambda: re.search(r"▼ +q", tmux.screen()), timeout=10, message="q in the filter")
        tmux.keys("Escape")
        wait_for(lambda: "esc Back to log" not in tmux.screen(), timeout=10, message="the focus back on the log")
        assert re.search(r"▼ +q", tmux.screen()), "the filter stays"
        tmux.keys("f")
        wait_for(lambda: "Paused" in tmux.screen(), timeout=10, message="f handled by the log")
        tmux.keys("f", "/")
        wait_for(lambda: "Following" in tmux.screen() and "esc Back to log" in tmux.screen(), timeout=10)
        tmux.keys("BSpace", "Enter")
        wait_for(lambda: not re.search(r"▼ +q", tmux.screen()) and "esc Back to log" not in tmux.screen(),
                 timeout=10, message="the filter empty, the focus on the log")

        # Warm requests: each shows its round trip, which holds the run() time the server reports.
        for count in range(1, 6):  # the history shows five at this height
            tmux.keys("C-j")
            wait_for(lambda: len(re.findall(r"POST 200 ", tmux.screen())) >= count, timeout=20,
                     message=f"answer {count} in the history")
        shown = re.search(r"200 OK +([\d.]+) ms round trip · run\(\) ([\d.]+) ms", tmux.screen())
        assert shown and float(shown[1]) >= float(shown[2]) > 0, tmux.screen()
        latencies = [float(ms) for ms in re.findall(r"POST 200 +([\d.]+) ms", tmux.screen())]
        assert len(latencies) == 5 and all(ms > 0 for ms in latencies), latencies

        # A failed reload: the panel opens and the log still shows its newest line.
        tmux.keys("Escape")
        wait_for(lambda: "f Follow" in tmux.screen(), timeout=10, message="the log shown")
        save(score, "def init(:\n")

        def failure_shown() -> str:
            screen = tmux.screen()
            return screen if "Revision 2 failed (load)" in screen and "invalid syntax  at score.py:1" in screen else ""

        screen = wait_for(failure_shown, timeout=30, message="the failure in the log and in the panel")
        assert "SyntaxError: invalid syntax  at score.py:1" in screen and "Following" in screen
        panel_top = next(n for n, row in enumerate(screen.splitlines()) if "SyntaxError: invalid syntax  at" in row)
        failure_row = next(n for n, row in enumerate(screen.splitlines()) if "Revision 2 failed (load)" in row)
        assert failure_row < panel_top - 1  # in the log, above the panel

        # Failed (nothing serves): invoke answers at once, with why.
        tmux.keys("C-r")
        wait_for(lambda: "Failed" in tmux.screen(), timeout=40, message="Failed on screen")
        tmux.keys("C-j")
        wait_for(lambda: "503 Service Unavailable" in tmux.screen(), timeout=5, message="the 503 at once")
        assert "nothing is serving" in tmux.screen()

        save(score, good)
        wait_for(lambda: "Succeeded" in tmux.screen(), timeout=40, message="Succeeded again")
        tmux.keys("Escape")  # alone: a terminal reads Escape and a key at once as alt+key
        wait_for(lambda: "f Follow" in tmux.screen(), timeout=10, message="the log's keys in the footer")
        tmux.keys("q")
        status = wait_for(lambda: tmux.status.read_text().strip(), timeout=30, message="devtui to exit")
        assert status == "0"
    except BaseException:
        print(tmux.screen())
        raise


def test_ctrl_c_while_a_request_is_held_at_a_breakpoint_says_so_and_a_second_quits(sample, tmux, devtui_home,
                                                                                    tmp_path):
    """Issue 20, item 2: with a real debugpy client stopped in run(), ctrl+c says what the stop
    waits for, and a second ctrl+c quits at once, leaving nothing running."""
    from dap import DebugClient, stopped_frame
    from devtui.debug import strip_jsonc
    from helpers import free_port

    folder = sample("sklearn-regression")
    score = folder / "onlinescoring" / "score.py"
    line = score.read_text().splitlines(keepends=True).index("    predictions = model.predict(data)\n") + 1
    tmux.start([*devtui_script(), str(folder), "--debug", "--debug-port", str(free_port())],
               terminal_env(devtui_home), width=120, height=36)
    client = None
    try:
        wait_for(lambda: "Succeeded" in tmux.screen() and "listening" in tmux.screen(), timeout=60,
                 message="Succeeded, the debugger listening")
        launch = json.loads(strip_jsonc((tmp_path / ".vscode" / "launch.json").read_text()))
        client = DebugClient(next(c for c in launch["configurations"] if c["name"] == "devtui: attach to my-endpoint"))
        client.set_breakpoints(str(score), [line])
        child = client.next_child()
        wait_for(lambda: "attached" in tmux.screen(), timeout=30, message="the debugger attached")
        tmux.keys("C-j")
        stopped_frame(child)
        wait_for(lambda: f"stopped at score.py:{line}" in tmux.screen(), timeout=30, message="the stop in the header")
        server = processes_mentioning(str(folder), but={os.getpid(), int(tmux.pane("#{pid}"))})
        assert any("inference_server" in p for p in server), server

        tmux.keys("C-c")
        # The header and the toast: the toast is mounted a frame or more after the header changes.
        wait_for(lambda: all(text in tmux.screen() for text in (
                     f"stopping: waiting up to 10 s for 1 request held at score.py:{line}", "Quitting",
                     f"1 request held at score.py:{line} in run() — ctrl+c")),
                 timeout=10, message="what quitting waits for, and how long at most, in the header and a toast")
        tmux.keys("C-c")
        status = wait_for(lambda: tmux.status.read_text().strip(), timeout=8, message="devtui to exit at once")
        assert status == "0"
    except BaseException:
        print(tmux.screen())
        raise
    finally:
        if client is not None:
            client.close()
    wait_for(lambda: processes_mentioning(str(folder), but={os.getpid(), int(tmux.pane("#{pid}"))}) == [],
             timeout=10, message=f"no process left that mentions {folder}")


def test_a_flow_save_in_a_terminal_stamps_the_answer_and_replays_the_pinned_request(sample, tmux, devtui_home):
    """Issue 20: in a real terminal, an answer after a flow save names the new revision, and a
    pinned request is sent again on the next save, its new answer shown with the diff."""
    folder = sample("flow-basic")
    node = folder / "flow" / "repeat.py"
    tmux.start([*devtui_script(), str(folder)], terminal_env(devtui_home), width=160, height=45)
    try:
        wait_for(lambda: "Succeeded" in tmux.screen() and "revision 1" in tmux.screen(), timeout=60,
                 message="Succeeded on screen")
        tmux.keys("C-j")
        wait_for(lambda: "rev 1" in tmux.screen() and "200 OK" in tmux.screen(), timeout=30,
                 message="the first answer, stamped")
        save(node, node.read_text().replace('" ".join([text] * count)', '"-".join([text] * count)'))
        wait_for(lambda: "revision 2 is serving" in tmux.screen(), timeout=60, message="the save served")
        tmux.keys("C-j")
        wait_for(lambda: "rev 2" in tmux.screen() and "hello flow-hello flow" in tmux.screen(), timeout=30,
                 message="the answer after the save, stamped with the new revision")

        tmux.keys("p")  # pin it: the Replay tab opens with the answer as its baseline
        wait_for(lambda: "Replay" in tmux.screen(), timeout=30, message="the Replay tab")
        save(node, node.read_text().replace('"-".join([text] * count)', '"+".join([text] * count)'))
        wait_for(lambda: "rev 3" in tmux.screen() and "hello flow+hello flow" in tmux.screen(), timeout=60,
                 message="the pinned request replayed on the save, with the new revision")
        tmux.keys("C-c")
        wait_for(lambda: tmux.status.read_text().strip(), timeout=30, message="devtui to exit")
    except BaseException:
        print(tmux.screen())
        raise
