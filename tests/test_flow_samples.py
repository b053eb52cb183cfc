"""The three flow samples on prompt flow's own serving app (flow_reference.py), with both engines.

These pin down what prompt flow answers, so that devtui's answers can be compared with them: the
sample requests' exact outputs, the 400s with a UserError body, /health, /swagger.json, server-sent
events for a generator output, and PROMPTFLOW_RESPONSE_INCLUDED_FIELDS. Where flask and fastapi differ
(key order and a trailing newline in JSON bodies), the tests say so. Each server serves a copy of
its sample, is started once per module and engine, and is stopped after.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from contract_servers import ServerExited, ServerProcess
from flow_reference import (
    CONNECTED_FLOW,
    ENGINES,
    FLOW_BASIC_ANSWER,
    FLOW_CHAT_ANSWER,
    FLOW_FLEX_ANSWER,
    copy_sample,
    deployment_env,
    start_flow_reference,
)
from helpers import children_of, pid_alive, wait_for

pytestmark = pytest.mark.skipif(importlib.util.find_spec("promptflow.core") is None,
                                reason="promptflow-core is not installed (pip install -e '.[flow]')")

INCLUDED_FIELDS = "PROMPTFLOW_RESPONSE_INCLUDED_FIELDS"


@dataclass
class Reference:
    server: ServerProcess
    client: httpx.Client
    engine: str
    sample: Path

    def score(self, body: str | dict, **headers: str) -> httpx.Response:
        content = body if isinstance(body, str) else json.dumps(body)
        return self.client.post("/score", content=content, headers=headers)

    def sample_request(self) -> str:
        return (self.sample / "sample-request.json").read_text(encoding="utf-8")

    def swagger_score(self) -> dict:
        """The request body and the 200 schema that /swagger.json gives for POST /score."""
        response = self.client.get("/swagger.json")
        assert response.status_code == 200, response.text
        post = response.json()["paths"]["/score"]["post"]
        return {"request": post["requestBody"]["content"]["application/json"],
                "response": post["responses"]["200"]["content"]["application/json"]["schema"]}


def reference(name: str, **env: str):
    """A module-scoped fixture, once per engine: prompt flow's app on a copy of samples/<name>, with
    the deployment's environment_variables plus ``env``."""

    @pytest.fixture(scope="module", params=ENGINES)
    def fixture(request, tmp_path_factory):
        sample = copy_sample(name, tmp_path_factory.mktemp(name))
        server = start_flow_reference(sample / "flow", sample.parent, engine=request.param,
                                      env={**deployment_env(sample), **env}, name=f"pf-{request.param}")
        with server, httpx.Client(base_url=server.url, timeout=30) as client:
            yield Reference(server, client, request.param, sample)

    return fixture


def user_error(response: httpx.Response, status: int = 400) -> str:
    """The message of prompt flow's error body, after checking its status and shape."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == "UserError", error
    return error["message"]


def events(response: httpx.Response) -> list[dict]:
    """The server-sent events of a streamed answer: one ``data: {...}`` block per event."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    blocks = response.text.split("\n\n")
    assert blocks[-1] == "", f"the stream does not end with a blank line: {response.text!r}"
    parsed = []
    for block in blocks[:-1]:
        assert block.startswith("data: ") and "\n" not in block, block
        parsed.append(json.loads(block.removeprefix("data: ")))
    return parsed


# -- flow-basic: a DAG of Python nodes --------------------------------------------------------------

basic = reference("flow-basic")
basic_filtered = reference("flow-basic", **{INCLUDED_FIELDS: '["result", "characters"]'})


class TestFlowBasic:
    def test_sample_request(self, basic):
        response = basic.score(basic.sample_request())
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        assert response.json() == FLOW_BASIC_ANSWER  # characters is evaluation_only: left out

    def test_json_bodies_differ_by_engine_only_in_layout(self, basic):
        # flask's jsonify sorts keys and ends with a newline; fastapi keeps the outputs' order.
        body = basic.score({"text": "a b", "count": 1}).text
        expected = {"flask": '{"result":"a b","words":2}\n', "fastapi": '{"result":"a b","words":2}'}
        assert body == expected[basic.engine]

    def test_defaults_fill_left_out_inputs_and_extra_inputs_are_ignored(self, basic):
        assert basic.score({"text": "hi"}).json() == {"result": "hi hi", "words": 2}
        assert basic.score({"text": "hi", "count": 1, "extra": True}).json() == {"result": "hi", "words": 1}

    def test_missing_required_input(self, basic):
        message = user_error(basic.score({"count": 1}))
        assert message == "Required input fields ['text'] are missing in request data {'count': 1}"
        assert user_error(basic.score({})) == "Required input fields ['text'] are missing in request data {}"

    def test_wrong_input_type(self, basic):
        message = user_error(basic.score({"text": "a", "count": "many"}))
        assert "flow input 'count' does not match the expected type 'int'" in message

    def test_raw_text_needs_a_flow_with_one_input(self, basic):
        message = user_error(basic.score("just text", **{"content-type": "text/plain"}))
        assert message == ("Promptflow executor received non json data, but there's more than 1 input fields, "
                           "please use json request data instead.")

    def test_event_stream_without_a_generator_output_is_not_acceptable(self, basic):
        message = user_error(basic.score({"text": "a"}, accept="text/event-stream"), status=406)
        assert message == ("Media type text/event-stream in Accept header is not acceptable. "
                           "Supported media type(s) - application/json")

    def test_health(self, basic):
        response = basic.client.get("/health")
        assert response.status_code == 200
        assert response.json() == {"status": "Healthy", "version": importlib.metadata.version("promptflow-core")}

    def test_swagger_lists_inputs_outputs_and_the_sample(self, basic):
        score = basic.swagger_score()
        assert score["request"]["schema"] == {
            "type": "object",
            "properties": {"text": {"type": "string"}, "count": {"type": "integer", "default": 2}},
            "required": ["text", "count"],  # every input, defaulted or not
        }
        samples = json.loads((basic.sample / "flow" / "samples.json").read_text())
        assert score["request"]["example"] == samples[0]  # samples.json is a list: its first item
        assert score["response"] == {"type": "object",
                                     "properties": {"result": {"type": "string"}, "words": {"type": "integer"}}}

    def test_x_request_id_is_the_run_id_and_not_echoed(self, basic):
        response = basic.score({"text": "a"}, **{"x-request-id": "flow-basic-request-7"})
        assert response.status_code == 200
        assert "x-request-id" not in response.headers
        wait_for(lambda: "request_id: flow-basic-request-7" in basic.server.output(), timeout=10,
                 message="the request id in the app's log")

    def test_included_fields_filter_the_response(self, basic_filtered):
        # The list wins over evaluation_only: characters comes back, words does not.
        response = basic_filtered.score(basic_filtered.sample_request())
        assert response.json() == {"result": FLOW_BASIC_ANSWER["result"], "characters": 32}
        # The swagger leaves evaluation_only outputs out whatever the list says.
        assert basic_filtered.swagger_score()["response"]["properties"] == {"result": {"type": "string"}}


# -- flow-chat: a chat flow with a generator answer -------------------------------------------------

chat = reference("flow-chat")


class TestFlowChat:
    def test_sample_request_answers_from_the_history(self, chat):
        response = chat.score(chat.sample_request())
        assert response.status_code == 200, response.text
        assert response.json() == FLOW_CHAT_ANSWER

    def test_the_history_defaults_to_empty(self, chat):
        assert chat.score({"question": "hi"}).json() == {"answer": 'Question 1: "hi". Nothing asked before.'}

    def test_event_stream_gives_one_event_per_word(self, chat):
        streamed = events(chat.score(chat.sample_request(), accept="text/event-stream"))
        assert len(streamed) == len(FLOW_CHAT_ANSWER["answer"].split(" "))
        assert streamed[:2] == [{"answer": "Question"}, {"answer": " 2:"}]
        assert all(list(event) == ["answer"] for event in streamed)
        assert "".join(event["answer"] for event in streamed) == FLOW_CHAT_ANSWER["answer"]

    def test_event_stream_arrives_in_chunks(self, chat):
        with chat.client.stream("POST", "/score", content=chat.sample_request(),
                                headers={"accept": "text/event-stream"}) as response:
            assert response.status_code == 200
            lines = [line for line in response.iter_lines() if line]
        assert len(lines) == len(FLOW_CHAT_ANSWER["answer"].split(" "))
        assert all(line.startswith("data: ") for line in lines)

    def test_event_stream_among_several_accepted_types(self, chat):
        streamed = events(chat.score({"question": "hi"}, accept="text/event-stream, application/json"))
        assert "".join(event["answer"] for event in streamed) == 'Question 1: "hi". Nothing asked before.'

    def test_accept_without_json_or_event_stream(self, chat):
        message = user_error(chat.score({"question": "hi"}, accept="text/html"), status=406)
        assert message.startswith("Media type text/html in Accept header is not acceptable.")

    def test_missing_question(self, chat):
        message = user_error(chat.score({"chat_history": []}))
        assert message == "Required input fields ['question'] are missing in request data {'chat_history': []}"

    def test_raw_text_is_refused_with_two_inputs(self, chat):
        assert "more than 1 input fields" in user_error(chat.score("hello"))

    def test_swagger_marks_the_chat(self, chat):
        info = chat.client.get("/swagger.json").json()["info"]
        assert {key: info[key] for key in info if key.startswith("x-chat") or key == "x-flow-type"} == {
            "x-flow-type": "chat", "x-chat-input": "question", "x-chat-history": "chat_history",
            "x-chat-output": "answer"}
        schema = chat.swagger_score()["request"]["schema"]
        assert schema["properties"] == {
            "question": {"type": "string"},
            # the default [] is falsy, so the swagger shows none
            "chat_history": {"type": "array", "items": {"type": "object", "additionalProperties": {}}},
        }


# -- flow-flex: a class entry with init config -------------------------------------------------------

flex = reference("flow-flex")
flex_filtered = reference("flow-flex", **{INCLUDED_FIELDS: '["message"]'})


class TestFlowFlex:
    def test_the_deployment_gives_the_init_config(self, flex):
        assert json.loads(deployment_env(flex.sample)["PF_FLOW_INIT_CONFIG"]) == {"greeting": "Bonjour"}

    def test_sample_request(self, flex):
        response = flex.score(flex.sample_request())
        assert response.status_code == 200, response.text
        assert response.json() == FLOW_FLEX_ANSWER

    def test_raw_text_is_the_single_input(self, flex):
        assert flex.score("Ada", **{"content-type": "text/plain"}).json() == FLOW_FLEX_ANSWER

    def test_a_json_string_is_not_raw_text(self, flex):
        message = user_error(flex.score('"Ada"'))
        assert message == "Required input fields ['name'] are missing in request data 'Ada'"

    def test_missing_and_extra_inputs(self, flex):
        assert user_error(flex.score({})) == "Required input fields ['name'] are missing in request data {}"
        assert flex.score({"name": "Ada", "extra": 1}).json() == FLOW_FLEX_ANSWER

    def test_health(self, flex):
        assert flex.client.get("/health").json()["status"] == "Healthy"

    def test_swagger_reads_the_signature(self, flex):
        score = flex.swagger_score()
        assert score["request"]["schema"] == {"type": "object", "properties": {"name": {"type": "string"}},
                                              "required": ["name"]}
        assert score["request"]["example"] == {"name": "Ada"}
        assert score["response"] == {"type": "object",
                                     "properties": {"message": {"type": "string"}, "length": {"type": "integer"}}}

    def test_included_fields_filter_the_response(self, flex_filtered):
        assert flex_filtered.score(flex_filtered.sample_request()).json() == {"message": "Bonjour, Ada!"}


@pytest.mark.parametrize("init_config, expected", [
    (None, "missing 1 required positional argument: 'greeting'"),
    ("greeting=Bonjour", "PF_FLOW_INIT_CONFIG can't be deserialized to json"),
])
def test_flex_flow_without_a_usable_init_config_does_not_start(tmp_path, init_config, expected):
    sample = copy_sample("flow-flex", tmp_path)
    env = {} if init_config is None else {"PF_FLOW_INIT_CONFIG": init_config}
    with pytest.raises(ServerExited) as failure:
        start_flow_reference(sample / "flow", tmp_path, env=env)
    assert expected in str(failure.value)


def test_stop_ends_the_app_and_what_it_started(tmp_path):
    # A flex flow's signature is read in multiprocessing children (a reader and a manager); they
    # are gone by the time the app answers, but whatever is still running must end with it.
    sample = copy_sample("flow-flex", tmp_path)
    server = start_flow_reference(sample / "flow", tmp_path, env=deployment_env(sample))
    with server:
        assert httpx.post(server.url + "/score", content="Ada").json() == FLOW_FLEX_ANSWER
        started = [server.process.pid, *children_of(server.process.pid)]
    assert server.process.returncode is not None
    wait_for(lambda: not any(pid_alive(pid) for pid in started), timeout=10,
             message=f"{started} to end after stop()")


# -- connections, through the harness -------------------------------------------------------------

MY_CONN = {"name": "my_conn", "type": "custom", "configs": {"base": "http://x"}, "secrets": {"key": "s3cret"}}


@pytest.mark.parametrize("connections, env, answer", [
    ([MY_CONN], {}, "hi via http://x, key of 6"),
    # {CONNECTION}_{KEY} overrides a key, as the docs say a deployment's variables can.
    ([MY_CONN], {"MY_CONN_BASE": "http://override"}, "hi via http://override, key of 6"),
    (None, {}, "Get connection 'my_conn' for node 'peek' error: Connection 'my_conn' not found"),
])
def test_a_flow_gets_its_connections_from_the_caller(tmp_path, connections, env, answer):
    flow = tmp_path / "flow"
    flow.mkdir()
    for name, text in CONNECTED_FLOW.items():
        (flow / name).write_text(text)
    if connections is None:  # no connection: the app does not start, and says which node needs which
        with pytest.raises(ServerExited) as failure:
            start_flow_reference(flow, tmp_path, env=env)
        assert answer in str(failure.value)
        return
    with start_flow_reference(flow, tmp_path, env=env, connections=connections) as server:
        assert httpx.post(server.url + "/score", json={"text": "hi"}).json() == {"out": answer}
