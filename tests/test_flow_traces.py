"""Request traces of a prompt flow (issue 23): prompt flow's own spans (the flow, its node, the LLM
call its tool makes, a traced function) captured in the flow worker, under the request's span,
kept per endpoint with the connection's secret hidden, and read back by `devtui traces`.

The model is a stand-in OpenAI server on 127.0.0.1 (``openai_stand_in``) that reports token usage;
the node is a python tool calling it with the OpenAI client through a ``--connections`` file, the
way prompt flow's ``llm`` tool does (that tool is in promptflow-tools, which needs the whole
prompt flow devkit: not part of devtui's flow extra). The LLM span is prompt flow's own
instrumentation of the OpenAI client, the one its ``llm`` tool's calls go through.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import secrets
from pathlib import Path

import httpx
import pytest
import yaml

from devtui import registry, spec, traces
from devtui.cli import Recorder
from devtui.engine import Engine, Launch
from devtui.events import SUCCEEDED, ReloadFinished, Rung
from devtui.masking import MASK
from helpers import async_wait_for, devtui, save, show, wait_for
from openai_stand_in import OpenAIStandIn
from otlp_receiver import OTLPReceiver

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(importlib.util.find_spec("promptflow.core") is None,
                                 reason="promptflow-core is not installed (pip install -e '.[flow]')")]

FLOW = """\
inputs:
  question:
    type: string
outputs:
  answer:
    type: string
    reference: ${ask.output}
nodes:
- name: ask
  type: python
  source:
    type: code
    path: ask.py
  inputs:
    question: ${inputs.question}
    conn: model_conn
"""
# The key goes through a traced function's inputs: prompt flow records them in its span, so the
# worker's span holds the secret, and only devtui's masking keeps it out of the stored trace.
ASK = """\
from openai import OpenAI
from promptflow.connections import CustomConnection
from promptflow.core import tool
from promptflow.tracing import trace


@trace
def model_client(api_base: str, api_key: str) -> OpenAI:
    return OpenAI(base_url=api_base, api_key=api_key)


@tool
def ask(question: str, conn: CustomConnection) -> str:
    if question == "raise":
        raise ValueError("asked to raise")
    client = model_client(conn.configs["api_base"], conn.secrets["api_key"])
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": question}])
    return reply.choices[0].message.content
"""
DEPLOYMENT = """\
name: blue
endpoint_name: {name}
model:
  path: ./flow
environment:
  image: mcr.microsoft.com/azureml/promptflow/promptflow-runtime:latest
  inference_config:
    liveness_route: {{port: 8080, path: /health}}
    readiness_route: {{port: 8080, path: /health}}
    scoring_route: {{port: 8080, path: /score}}
environment_variables:
  PROMPTFLOW_SERVING_ENGINE: {engine}
{more}"""


def write_flow(folder: Path, name: str, engine: str = "flask", variables: dict[str, str] | None = None) -> Path:
    (folder / "flow").mkdir(parents=True)
    (folder / "flow" / "flow.dag.yaml").write_text(FLOW)
    (folder / "flow" / "ask.py").write_text(ASK)
    more = "".join(f"  {key}: {json.dumps(value)}\n" for key, value in (variables or {}).items())
    (folder / "deployment.yml").write_text(DEPLOYMENT.format(name=name, engine=engine, more=more))
    return folder / "deployment.yml"


def write_connection(folder: Path, base_url: str, key: str) -> Path:
    connection = {"name": "model_conn", "type": "custom", "configs": {"api_base": base_url},
                  "secrets": {"api_key": key}}
    path = folder / "model_conn.yaml"
    path.write_text(yaml.safe_dump(connection))
    return path


@pytest.mark.parametrize("engine", ["flask", "fastapi"])
def test_a_flows_trace_has_its_node_the_llm_call_and_its_tokens_under_the_request(tmp_path, engine):
    name = f"flow-traces-{secrets.token_hex(3)}"
    key = f"sk-{secrets.token_hex(16)}"
    request_id, client_id = f"req-{secrets.token_hex(6)}", f"client-{secrets.token_hex(4)}"
    claim = registry.claim(name)
    with OpenAIStandIn(key) as model:
        deployment = write_flow(tmp_path / "d", name, engine)
        connections = write_connection(tmp_path, model.base_url, key)
        running = Engine(spec.load(deployment), claim.folder / "staging",
                         Launch(port=0, connections=(connections,), traces=True))
        running.subscribe(Recorder(running, claim))

        finished: list[ReloadFinished] = []
        running.subscribe(lambda event: isinstance(event, ReloadFinished) and finished.append(event))

        def json_traces(count: int):
            def found() -> list[dict] | None:
                kept = json.loads(devtui("traces", "-n", name, "-o", "json").stdout)
                return kept if len(kept) == count and any(s["name"] == "ask" for s in kept[0]["spans"]) else None
            return found

        async def ask(client: httpx.AsyncClient, headers: dict[str, str]) -> dict:
            answer = await client.post(running.scoring_uri, json={"question": "how many tokens?"}, headers=headers)
            assert answer.status_code == 200, answer.text
            return answer.json()

        async def scenario():
            try:
                assert await running.start() == SUCCEEDED
                async with httpx.AsyncClient(timeout=30) as client:
                    assert await ask(client, {"x-request-id": request_id, "x-ms-client-request-id": client_id}) == {
                        "answer": "stand-in says: how many tokens?"}
                    await async_wait_for(json_traces(1), timeout=30, message="the flow's trace")
                    # A new worker (forked after a save) traces the same: its provider is its own.
                    save(deployment.parent / "flow" / "ask.py", ASK.replace('"gpt-4o-mini"', '"gpt-4o"'))
                    await async_wait_for(lambda: len(finished) > 1, 60, message="the save to be served")
                    assert finished[-1].ok and finished[-1].rung == Rung.SWAP, finished[-1]
                    made = (await client.post(running.scoring_uri, json={"question": "how many tokens?"})).headers
                    await async_wait_for(json_traces(2), timeout=30, message="the second request's trace")
                    # Sent without an id, it got one: answered, and in its trace.
                    assert json_traces(2)()[0]["request_id"] == made["x-request-id"]
                    failed = await client.post(running.scoring_uri, json={"question": "raise"})
                    assert failed.status_code >= 400, failed.text
                return await async_wait_for(json_traces(3), timeout=30, message="the failed request's trace")
            finally:
                await running.stop()
                claim.release(remove=False)

        found = asyncio.run(asyncio.wait_for(scenario(), 120))
    failed, newer, trace = found
    spans_of_failed = {s["name"]: s for s in failed["spans"]}
    assert spans_of_failed["ask"]["status"] == "error" and "openai_chat" not in spans_of_failed
    assert [s["name"] for s in newer["spans"]] == [s["name"] for s in trace["spans"]]
    assert '"gpt-4o"' in next(s for s in newer["spans"] if s["name"] == "openai_chat")["attributes"]["inputs"]
    assert trace["request_id"] == request_id and trace["status_code"] == 200 and trace["duration_ms"] > 0
    spans = {s["name"]: s for s in trace["spans"]}
    root = spans["POST /score"]
    assert root["kind"] == "server" and root["parent_span_id"] is None
    assert root["attributes"]["http.request.header.x-ms-client-request-id"] == client_id
    by_type = {s["attributes"].get("span_type"): s for s in trace["spans"]}
    flow, node, llm, function = by_type["Flow"], spans["ask"], by_type["LLM"], by_type["Function"]
    assert flow["parent_span_id"] == root["span_id"]  # prompt flow's spans, under the request's
    assert node["parent_span_id"] == flow["span_id"] and node["attributes"]["node_name"] == "ask"
    assert llm["parent_span_id"] == node["span_id"] and function["parent_span_id"] == node["span_id"]
    assert {k: llm["attributes"][k] for k in ("llm.usage.prompt_tokens", "llm.usage.completion_tokens",
                                                "llm.usage.total_tokens")} == {
        "llm.usage.prompt_tokens": 1, "llm.usage.completion_tokens": 1, "llm.usage.total_tokens": 2}
    assert "how many tokens?" in node["attributes"]["inputs"]
    assert "stand-in says: how many tokens?" in node["attributes"]["output"]
    assert any(s["attributes"].get("request_id") == request_id for s in trace["spans"] if s is not root)

    stored = traces.path(claim.folder).read_text()
    assert request_id in stored and "model_client" in stored
    # The traced function's inputs had the key: the worker's span held it, the stored one the mask.
    assert json.loads(function["attributes"]["inputs"])["api_key"] == MASK
    assert key not in stored
    for path in claim.folder.rglob("*"):
        if path.is_file() and path.name != "lock":
            assert key not in path.read_text(errors="replace"), path


def test_the_flows_spans_reach_an_otlp_receiver_masked_and_a_down_one_costs_one_warning(tmp_path):
    """`devtui up --detach --traces`, as a user runs it, with OTEL_EXPORTER_OTLP_ENDPOINT in the
    deployment's environment_variables: the receiver gets the spans at /v1/traces (protobuf, the
    default), without the connection's key. Once it is down, requests are answered and their traces
    kept as before, and the devtui log says so once."""
    name = f"flow-otlp-{secrets.token_hex(3)}"
    key = f"sk-{secrets.token_hex(16)}"
    request_id = f"req-{secrets.token_hex(6)}"
    with OpenAIStandIn(key) as model, OTLPReceiver() as receiver:
        deployment = write_flow(tmp_path / "d", name, variables={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url})
        connections = write_connection(tmp_path, model.base_url, key)
        devtui("up", str(deployment), "--detach", "--traces", "-n", name, "--connections", str(connections))
        try:
            scoring = show(name)["scoring_uri"]

            def ask(headers: dict[str, str] | None = None) -> None:
                answer = httpx.post(scoring, json={"question": "tokens?"}, headers=headers or {}, timeout=30)
                assert answer.status_code == 200, answer.text

            def kept(count: int):
                return lambda: len(json.loads(devtui("traces", "-n", name, "-o", "json").stdout)) == count

            ask({"x-request-id": request_id})
            spans = wait_for(lambda: (found := receiver.spans()) and any(s["name"] == "POST /score" for s in found)
                             and any(s["name"] == "openai_chat" for s in found) and found,
                             timeout=30, message="the request's spans at the receiver")
            assert {r.path for r in receiver.received} == {"/v1/traces"}
            assert {r.content_type for r in receiver.received} == {"application/x-protobuf"}
            assert {"POST /score", "flow", "ask", "model_client", "openai_chat"} <= {s["name"] for s in spans}
            assert all(key.encode() not in r.body for r in receiver.received)
            root = next(s for s in spans if s["name"] == "POST /score")
            assert {"key": "http.request.header.x-request-id", "value": {"stringValue": request_id}} in root["attributes"]
            assert len({s["traceId"] for s in spans}) == 1

            receiver.stop()
            for _ in range(3):
                ask()
            wait_for(kept(4), timeout=30, message="the traces kept while the collector is down")

            def warnings() -> list[str]:
                log = devtui("logs", "-n", name, "--container", "devtui").stdout
                return [line for line in log.splitlines() if "request traces could not be sent" in line]

            said = wait_for(warnings, timeout=30, message="the warning in the devtui log")
            assert len(said) == 1 and f"{receiver.url}/v1/traces" in said[0], said
        finally:
            devtui("down", "-n", name, check=None)
