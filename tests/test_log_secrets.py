"""Secrets devtui loaded never reach a log (issue 19, item 13): a connection's secret and an
environment variable that `show` masks, printed by the user's code or quoted in its traceback,
are hidden in the engine's log events, in inference-server.log and in `devtui logs`, in both
runtimes. The real scoring server; the scrubber itself is tested on its own below.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import json
import os
import secrets
import signal
import textwrap
import time

import httpx
import pytest

from devtui import registry, spec
from devtui.cli import Recorder
from devtui.engine import Engine, Launch
from devtui.events import INFERENCE_SERVER, SUCCEEDED, Logs, ReloadFinished
from devtui.lines import CUT_MARK, LineSplitter
from devtui.masking import MASK, hidden
from devtui.scrub import MIN_LENGTH, Scrubber
from devtui.spec.connections import connection_secrets
from flow_reference import CONNECTED_FLOW
from helpers import devtui, pid_alive, save, wait_for, write_deployment

# -- the scrubber -----------------------------------------------------------------------------------


def test_secrets_are_hidden_as_literal_text_longest_first():
    scrubber = Scrubber(["a.b*c+d(e)", "s3cret-value", "s3cret-value-longer"])
    assert scrubber.text("x a.b*c+d(e) y") == f"x {MASK} y"
    assert scrubber.text("axbxcxdxe s3cret-value-longer!") == f"axbxcxdxe {MASK}!"
    assert scrubber.lines(["one s3cret-value", "two"]) == [f"one {MASK}", "two"]


def test_short_values_and_numbers_are_never_scrubbed():
    scrubber = Scrubber(["true", "key", "4096", "100000", "3.14159", "x" * (MIN_LENGTH - 1)])
    assert not scrubber
    line = "true key 4096 100000 3.14159 xxxxx"
    assert scrubber.lines([line]) == [line]


def test_a_batch_without_secrets_is_passed_on_as_it_is():
    scrubber = Scrubber(["s3cret-value"])
    batch = ["GET /score 200", "POST /score 200"]
    assert scrubber.lines(batch) is batch


def test_a_multi_line_secret_and_its_json_form_are_hidden():
    pem = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEF\n-----END KEY-----"
    quoted = 'pa"ss\\word'
    scrubber = Scrubber([pem, quoted])
    assert scrubber.lines(pem.splitlines()) == [MASK, MASK, MASK]
    assert scrubber.text(json.dumps({"password": quoted})) == json.dumps({"password": MASK})


def test_a_line_cut_inside_a_secret_hides_the_start_it_kept():
    value = secrets.token_hex(16)
    splitter = LineSplitter(limit=100)
    lines = splitter.feed(("x" * 90 + value + " rest\nnext\n").encode())
    scrubbed = Scrubber([value]).lines(lines)
    assert scrubbed[0] == "x" * 90 + MASK + CUT_MARK.format(limit=100)
    assert value[:10] not in scrubbed[0] and scrubbed[1] == "next"


def test_a_server_events_text_is_scrubbed():
    from inference_server import protocol

    value = secrets.token_hex(16)
    failed = protocol.Failed(revision=2, stage=protocol.Stage.INIT, traceback=f"ValueError: {value}",
                             duration_ms=1.0, serving_revision=1)
    assert Scrubber([value]).event(failed) == dataclasses.replace(failed, traceback=f"ValueError: {MASK}")


def test_what_show_masks_is_what_the_logs_hide():
    assert hidden("AZURE_OPENAI_API_KEY", "abc123xyz") == ["abc123xyz"]
    assert "pa55word" in hidden("DATABASE_URL", "postgres://user:pa55word@db:5432/app")
    assert "abc%2Fdef" in hidden("BLOB", "https://a.blob/c?sv=1&sig=abc%2Fdef")
    assert "abc/def" in hidden("BLOB", "https://a.blob/c?sv=1&sig=abc%2Fdef")
    assert hidden("STORAGE", "AccountName=a;AccountKey=k3yk3y==;x=y") == ["k3yk3y=="]
    inline = json.dumps({"type": "custom", "configs": {"base": "https://x"}, "secrets": {"key": "inl1ne"}})
    assert hidden("my_conn", inline) == ["inl1ne"]
    assert hidden("LOG_LEVEL", "INFO") == []


def test_connection_files_give_their_secrets(tmp_path):
    file = tmp_path / "connections.yaml"
    file.write_text("name: c1\ntype: custom\nconfigs:\n  base: https://x\nsecrets:\n  key: s3cret-one\n---\n"
                    "- name: c2\n  type: azure_open_ai\n  api_key: s3cret-two\n  api_base: https://y\n")
    (tmp_path / "broken.yaml").write_text("name: [\n")
    assert connection_secrets([file, tmp_path / "broken.yaml", tmp_path / "missing.yaml"]) == [
        "s3cret-one", "s3cret-two"]


@pytest.mark.timeout(30)
def test_a_log_flood_stays_cheap():
    """10 s of a 1,900 lines/s flood, in the batches the runtimes pass on, with ten secrets to
    hide and one of them in every batch: a small part of one core."""
    values = [secrets.token_urlsafe(24) for _ in range(10)]
    scrubber = Scrubber(values)
    line = '127.0.0.1 - "POST /score HTTP/1.1" 200 OK request_id=5f1c2b7e-1234-4c2a duration_ms=12.3'
    batch = [line] * 37 + [f"{line} {values[3]}"]
    started = time.process_time()
    for _ in range(500):
        assert scrubber.lines(batch)[-1].endswith(MASK)
    assert time.process_time() - started < 1.0


# -- end to end, the process runtime ------------------------------------------------------------------

SCRIPT_DEPLOYMENT = """
name: blue
endpoint_name: log-secrets
code_configuration:
  code: ./code
  scoring_script: score.py
environment:
  image: python:3.11-slim
environment_variables:
  SERVICE_API_KEY: "{key}"
  LOG_LEVEL: INFO
"""

SCORE = '''
import os

KEY = os.environ["SERVICE_API_KEY"]


def init():
    print(f"init sees {KEY}", flush=True)


def run(raw):
    print(f"run sees {KEY}", flush=True)
    raise ValueError(f"run refused {KEY}")
'''


@pytest.mark.e2e
def test_a_scripts_secret_is_hidden_in_events_log_file_and_devtui_logs(tmp_path):
    key = f"sk-{secrets.token_hex(16)}"
    folder = write_deployment(tmp_path / "d", SCRIPT_DEPLOYMENT.format(key=key), score=SCORE)
    claim = registry.claim("log-secrets")
    engine = Engine(spec.load(folder), claim.folder / "staging", Launch(port=0))
    engine.subscribe(Recorder(engine, claim))
    seen: list = []
    engine.subscribe(seen.append)

    def texts() -> str:
        return "\n".join(record.text for event in seen if isinstance(event, Logs) for record in event.records)

    async def scenario():
        try:
            assert await engine.start() == SUCCEEDED
            async with httpx.AsyncClient(timeout=30) as client:
                assert (await client.post(engine.scoring_uri, content="{}")).status_code == 500
            # A revision whose init() raises quotes the secret in the traceback the app shows.
            save(folder / "code" / "score.py", SCORE.replace('print(f"init sees {KEY}", flush=True)',
                                                            'raise RuntimeError(f"init refused {KEY}")'))
            deadline = time.monotonic() + 60
            while not any(isinstance(e, ReloadFinished) and e.revision == 2 for e in seen):
                assert time.monotonic() < deadline, texts()[-3000:]
                await asyncio.sleep(0.05)
            assert f"init refused {MASK}" in texts(), texts()[-3000:]
            logged = devtui("logs", "-n", "log-secrets", "--lines", "1000").stdout
        finally:
            await engine.stop()
            claim.release(remove=False)
        return logged

    logged = asyncio.run(asyncio.wait_for(scenario(), 120))
    shown = texts()
    for expected in (f"init sees {MASK}", f"run sees {MASK}", f"run refused {MASK}", f"init refused {MASK}"):
        assert expected in shown and expected in logged, expected
    failed = next(e for e in seen if isinstance(e, ReloadFinished) and e.revision == 2)
    assert not failed.ok and f"init refused {MASK}" in failed.traceback
    stored = [path.read_text() for path in claim.folder.rglob("*") if path.is_file() and path.name != "lock"]
    for text in (shown, logged, failed.traceback, *stored):
        assert key not in text
    assert (claim.folder / "logs" / f"{INFERENCE_SERVER}.log").read_text().count(MASK) >= 4


def log_holding(name: str, text: str) -> str | None:
    """`devtui logs` of endpoint ``name`` once it holds ``text``."""
    logged = devtui("logs", "-n", name, "--lines", "2000").stdout
    return logged if text in logged else None


needs_promptflow = pytest.mark.skipif(importlib.util.find_spec("promptflow.core") is None,
                                      reason="promptflow-core is not installed (pip install -e '.[flow]')")

FLOW_DEPLOYMENT = """
name: blue
endpoint_name: {name}
model:
  path: ./flow
environment:
  image: mcr.microsoft.com/azureml/promptflow/promptflow-runtime:latest
environment_variables:
  SEARCH_API_KEY: "{key}"
"""

# CONNECTED_FLOW's node, printing its connection's secret and an environment variable's.
PRINTING_PEEK = CONNECTED_FLOW["peek.py"].replace(
    "def peek(text: str, conn: CustomConnection) -> str:\n",
    "def peek(text: str, conn: CustomConnection) -> str:\n"
    "    import os\n"
    "    print(f\"{text}: the key is {conn.secrets['key']}, the search key {os.environ['SEARCH_API_KEY']}\")\n")


@needs_promptflow
@pytest.mark.e2e
def test_a_flow_nodes_printed_connection_secret_is_hidden_in_the_log_file_and_devtui_logs(tmp_path):
    assert PRINTING_PEEK != CONNECTED_FLOW["peek.py"]
    name = f"secrets-{secrets.token_hex(3)}"
    connection_key, search_key = secrets.token_hex(16), f"srch-{secrets.token_hex(12)}"
    folder = tmp_path / "d"
    (folder / "flow").mkdir(parents=True)
    (folder / "deployment.yml").write_text(textwrap.dedent(FLOW_DEPLOYMENT.format(name=name, key=search_key)))
    (folder / "flow" / "flow.dag.yaml").write_text(CONNECTED_FLOW["flow.dag.yaml"])
    (folder / "flow" / "peek.py").write_text(PRINTING_PEEK)
    connection = tmp_path / "my_conn.yaml"
    connection.write_text(f"name: my_conn\ntype: custom\nconfigs:\n  base: http://x\nsecrets:\n  key: {connection_key}\n")
    marker = f"marker-{secrets.token_hex(4)}"
    try:
        shown = json.loads(devtui("up", str(folder), "--detach", "--connections", str(connection)).stdout)
        answer = httpx.post(shown["scoring_uri"], json={"text": marker}, timeout=60)
        assert answer.json() == {"out": f"{marker} via http://x, key of 32"}, answer.text
        logged = wait_for(lambda: log_holding(name, f"{marker}: the key is"), timeout=30, message="the print")
    finally:
        devtui("down", "-n", name, check=None)
    server_log = (registry.folder(name) / "logs" / f"{INFERENCE_SERVER}.log").read_text()
    for text in (logged, server_log):
        assert connection_key not in text and search_key not in text
        assert f"{marker}: the key is {MASK}, the search key {MASK}" in text


# -- the container runtime ----------------------------------------------------------------------------


@pytest.mark.e2e
def test_a_containers_printed_secret_is_hidden_in_devtui_logs(sample, endpoint, docker_client):
    name = endpoint("ct-secrets")
    folder = sample("sklearn-regression")
    key = f"sk-{secrets.token_hex(16)}"
    deployment = folder / "deployment.yml"
    text = deployment.read_text()
    assert "environment_variables:\n" in text, text
    deployment.write_text(text.replace("environment_variables:\n",
                                       f"environment_variables:\n  SERVICE_API_KEY: \"{key}\"\n"))
    score = folder / "onlinescoring" / "score.py"
    score.write_text(score.read_text().replace("def init():\n", "def init():\n    import os\n"
                                               "    print('init sees', os.environ['SERVICE_API_KEY'], flush=True)\n"))
    devtui("up", str(folder), "--runtime", "container", "--detach", "-n", name)
    logged = wait_for(lambda: log_holding(name, "init sees"), timeout=60, message="init's print")
    for text in (logged, (registry.folder(name) / "logs" / f"{INFERENCE_SERVER}.log").read_text()):
        assert key not in text and f"init sees {MASK}" in text
    # Where no log file is left here (its devtui killed, the files gone), `devtui logs` reads the
    # container's own log from the engine: scrubbed too.
    host = json.loads((registry.folder(name) / "endpoint.json").read_text())["host_pid"]
    os.kill(host, signal.SIGKILL)
    wait_for(lambda: not pid_alive(host), timeout=10)
    (registry.folder(name) / "logs" / f"{INFERENCE_SERVER}.log").unlink()
    raw = devtui("logs", "-n", name).stdout
    assert "init sees" in raw and key not in raw, raw
