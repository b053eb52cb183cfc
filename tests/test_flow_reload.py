"""A prompt flow deployment while it is edited: every save of the flow folder is a worker swap
that builds prompt flow's app afresh, the flow's own modules imported from source (never stale),
a broken save keeps the last good revision serving and says where it broke, and connections
resolve as the deployed endpoint resolves them. The real scoring server, in the process runtime.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import textwrap
from pathlib import Path

import httpx
import pytest

from devtui import spec
from devtui.engine import Engine, Launch
from devtui.events import FAILED, SUCCEEDED, Logs, ReloadFinished
from flow_reference import CONNECTED_FLOW
from helpers import async_wait_for, devtui, save

pytestmark = [pytest.mark.anyio,
              pytest.mark.skipif(importlib.util.find_spec("promptflow.core") is None,
                                 reason="promptflow-core is not installed (pip install -e '.[flow]')")]

DEPLOYMENT = """
name: blue
endpoint_name: flow-reload
model:
  path: ./flow
environment:
  image: mcr.microsoft.com/azureml/promptflow/promptflow-runtime:latest
"""

FLOW = """
inputs:
  text:
    type: string
    default: hello
outputs:
  answer:
    type: string
    reference: ${shout.output}
nodes:
- name: shout
  type: python
  source:
    type: code
    path: shout.py
  inputs:
    text: ${inputs.text}
"""

SHOUT = """
from promptflow.core import tool

import punctuation


@tool
def shout(text: str) -> str:
    return text.upper() + punctuation.MARK
"""
HELLO = {"text": "hello"}


def write_flow(folder: Path, flow: str = FLOW, deployment: str = DEPLOYMENT, **files: str) -> Path:
    (folder / "flow").mkdir(parents=True)
    (folder / "deployment.yml").write_text(textwrap.dedent(deployment))
    (folder / "flow" / "flow.dag.yaml").write_text(textwrap.dedent(flow))
    for name, text in (files or {"shout.py": SHOUT, "punctuation.py": 'MARK = "!"\n'}).items():
        (folder / "flow" / name).write_text(textwrap.dedent(text))
    return folder


class Running:
    def __init__(self, folder: Path, tmp: Path, connections: tuple[Path, ...] = ()):
        self.folder = folder
        self.engine = Engine(spec.load(folder), tmp / "work", Launch(port=0, connections=connections))
        self.finished: list[ReloadFinished] = []
        self.lines: list[str] = []
        self.engine.subscribe(self._seen)

    def _seen(self, event) -> None:
        if isinstance(event, ReloadFinished):
            self.finished.append(event)
        elif isinstance(event, Logs):
            self.lines.extend(record.text for record in event.records)

    async def answer(self, body: dict | None = None) -> dict:
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.post(self.engine.scoring_uri, content=json.dumps(body or {}),
                                         headers={"content-type": "application/json"})
            assert response.status_code == 200, response.text
            return response.json()

    async def save(self, name: str, text: str) -> ReloadFinished:
        count = len(self.finished)
        save(self.folder / "flow" / name, textwrap.dedent(text))
        await async_wait_for(lambda: len(self.finished) > count, 60, message=f"the save of {name} to be applied")
        return self.finished[-1]


async def test_a_node_edit_swaps_and_the_flows_modules_are_imported_afresh(tmp_path):
    running = Running(write_flow(tmp_path / "d"), tmp_path)
    try:
        assert await running.engine.start() == SUCCEEDED
        assert await running.answer() == {"answer": "HELLO!"}
        finished = await running.save("shout.py", SHOUT.replace("text.upper()", "text.title()"))
        assert finished.ok and finished.rung == "swap", finished
        assert await running.answer({"text": "ab cd"}) == {"answer": "Ab Cd!"}
        # A module the node imports, not the node itself: the new worker must not find the old one.
        finished = await running.save("punctuation.py", 'MARK = "?"\n')
        assert finished.ok, finished
        assert await running.answer() == {"answer": "Hello?"}
        finished = await running.save("flow.dag.yaml", FLOW.replace("default: hello", "default: bonjour"))
        assert finished.ok, finished
        assert await running.answer() == {"answer": "Bonjour?"}
    finally:
        await running.engine.stop()


async def test_a_broken_save_keeps_the_last_good_flow_serving_and_says_where(tmp_path):
    running = Running(write_flow(tmp_path / "d"), tmp_path)
    try:
        assert await running.engine.start() == SUCCEEDED
        finished = await running.save("shout.py", SHOUT + "\ndef broken(:\n")
        assert not finished.ok, finished
        assert await running.answer() == {"answer": "HELLO!"}  # the last good revision
        text = "\n".join(running.lines)
        assert 'shout.py", line 11' in text and "SyntaxError" in text, text[-3000:]
        finished = await running.save("shout.py", SHOUT.replace("text.upper()", "text.lower()"))
        assert finished.ok
        assert await running.answer({"text": "QUIET"}) == {"answer": "quiet!"}
    finally:
        await running.engine.stop()


CONNECTION = """
name: {name}
type: custom
configs:
  base: {base}
secrets:
  key: {key}
"""


async def test_a_missing_connection_fails_naming_it_the_node_and_the_fix(tmp_path):
    folder = write_flow(tmp_path / "d", CONNECTED_FLOW["flow.dag.yaml"],
                        **{"peek.py": CONNECTED_FLOW["peek.py"]})
    running = Running(folder, tmp_path)
    try:
        assert await running.engine.start() == FAILED
        text = "\n".join(running.lines)
        assert "connection 'my_conn'" in text and "used by node peek" in text and "--connections" in text, text
    finally:
        await running.engine.stop()


async def test_connections_come_from_the_file_and_the_deployments_overrides(tmp_path):
    files = []
    for name, base, key in (("my_conn", "https://one", "k" * 5), ("other", "https://two", "s" * 7)):
        files.append(tmp_path / f"{name}.yaml")
        files[-1].write_text(CONNECTION.format(name=name, base=base, key=key))
    deployment = DEPLOYMENT + "environment_variables:\n  PLACEHOLDER: x\n"
    folder = write_flow(tmp_path / "d", CONNECTED_FLOW["flow.dag.yaml"], deployment,
                        **{"peek.py": CONNECTED_FLOW["peek.py"]})
    running = Running(folder, tmp_path, tuple(files))
    try:
        assert await running.engine.start() == SUCCEEDED
        assert await running.answer(HELLO) == {"out": "hello via https://one, key of 5"}
    finally:
        await running.engine.stop()

    # The deployment names another connection for my_conn, as a deployed endpoint's override does.
    save(folder / "deployment.yml", DEPLOYMENT + "environment_variables:\n  my_conn: other\n")
    running = Running(folder, tmp_path, tuple(files))
    try:
        assert await running.engine.start() == SUCCEEDED
        assert await running.answer(HELLO) == {"out": "hello via https://two, key of 7"}
    finally:
        await running.engine.stop()

    # ...or gives the connection itself, as JSON; {CONNECTION}_{KEY} then overrides one key.
    inline = json.dumps({"type": "custom", "configs": {"base": "https://three"}, "secrets": {"key": "abc"}})
    save(folder / "deployment.yml", DEPLOYMENT + f"environment_variables:\n  my_conn: '{inline}'\n"
                                                 "  MY_CONN_BASE: https://four\n")
    running = Running(folder, tmp_path)
    try:
        assert await running.engine.start() == SUCCEEDED
        assert await running.answer(HELLO) == {"out": "hello via https://four, key of 3"}
        shown = running.engine.describe().environment_variables["my_conn"]
        assert "abc" not in shown  # a connection's secret is masked where devtui shows it
    finally:
        await running.engine.stop()


TELLING_PEEK = CONNECTED_FLOW["peek.py"].replace("    return f", "    print(f\"the key is {conn.secrets['key']}\")\n    return f")


async def test_an_edit_of_a_connections_file_reloads_the_flow_with_its_values_and_hides_its_secrets(tmp_path):
    """Issue 24: a --connections file is watched; its edit swaps workers (no reload --full) and the
    new worker reads the new values. The line that says so names keys, never values, and the new
    secret is hidden in what the flow prints, as the old one was (and still is)."""
    old_key, new_key = "first-secret-value", "second-secret-value-longer"
    connection = tmp_path / "my_conn.yaml"
    connection.write_text(CONNECTION.format(name="my_conn", base="https://one", key=old_key))
    folder = write_flow(tmp_path / "d", CONNECTED_FLOW["flow.dag.yaml"], **{"peek.py": TELLING_PEEK})
    running = Running(folder, tmp_path, (connection,))
    try:
        assert await running.engine.start() == SUCCEEDED
        assert await running.answer(HELLO) == {"out": f"hello via https://one, key of {len(old_key)}"}
        count = len(running.finished)
        save(connection, CONNECTION.format(name="my_conn", base="https://two", key=new_key))
        await async_wait_for(lambda: len(running.finished) > count, 60, message="the connection's edit to be applied")
        assert running.finished[-1].ok and running.finished[-1].rung == "swap", running.finished[-1]
        assert await running.answer(HELLO) == {"out": f"hello via https://two, key of {len(new_key)}"}
        await async_wait_for(lambda: sum("the key is" in line for line in running.lines) >= 2, 30,
                             message="both answers' printed keys in the log")
        text = "\n".join(running.lines)
        assert f"Connections file {connection} changed: my_conn (configs.base, secrets.key)" in text, text
        assert old_key not in text and new_key not in text
        assert sum(line.endswith("the key is ********") for line in running.lines) >= 2, text
    finally:
        await running.engine.stop()


def test_a_bad_connections_file_is_refused_before_anything_starts(tmp_path):
    folder = write_flow(tmp_path / "d")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: my_conn\nconfigs: [1, 2]\n")
    result = devtui("up", str(folder), "--connections", str(bad), check=2)
    assert "bad.yaml:1: type: missing" in result.stderr, result.stderr
    assert "bad.yaml:2: configs: must be a mapping" in result.stderr, result.stderr


SLOW = """
import time

from promptflow.core import tool


@tool
def shout(text: str) -> str:
    if text == "slow":
        time.sleep(3)
    return text.upper()
"""


async def test_request_settings_apply_to_a_flow_as_the_endpoint_applies_them(tmp_path):
    """The online endpoint's front end answers a flow deployment 408 after request_timeout_ms and
    429 beyond twice max_concurrent_requests_per_instance, as it does a scoring script."""
    deployment = DEPLOYMENT + "request_settings:\n  request_timeout_ms: 1000\n  max_concurrent_requests_per_instance: 1\n"
    running = Running(write_flow(tmp_path / "d", deployment=deployment, **{"shout.py": SLOW}), tmp_path)
    try:
        assert await running.engine.start() == SUCCEEDED
        assert await running.answer({"text": "quick"}) == {"answer": "QUICK"}
        # Not a wait for anything: the scenario. A request the worker reads late is counted against
        # what was in flight when the kernel received it, known to a jiffy or two (admission.py,
        # MARGIN_S); one sent within that of the warm-up's answer may count it, as the front end
        # would not know better either. The burst comes well after it.
        await asyncio.sleep(0.05)
        async with httpx.AsyncClient(timeout=30) as client:
            def slow():
                return client.post(running.engine.scoring_uri, json={"text": "slow"})

            answers = await asyncio.gather(slow(), slow(), slow())
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [408, 408, 429], [a.text for a in answers]
        timed_out = next(a for a in answers if a.status_code == 408).json()["message"]
        assert timed_out.startswith("Request timed out after 1000 ms (request_settings.request_timeout_ms)")
        assert "Too many requests" in next(a for a in answers if a.status_code == 429).json()["message"]
    finally:
        await running.engine.stop()
