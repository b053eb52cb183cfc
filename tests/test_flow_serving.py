"""The flow samples through devtui, side by side with prompt flow's own serving app.

Each sample is deployed with ``devtui up --detach`` (the process runtime: devtui's warm-parent
supervisor forks a worker that serves prompt flow's app) and served by prompt flow's app as
``pf flow serve`` would (flow_reference.py), both started here on 127.0.0.1. The same requests go to
both, and the status codes and bodies must be the same: /score with good, missing and extra inputs,
raw text, /health, /swagger.json, server-sent events, and response filtering.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from flow_reference import FLOW_BASIC_ANSWER, FLOW_CHAT_ANSWER, FLOW_FLEX_ANSWER, copy_sample, deployment_env, \
    start_flow_reference
from helpers import devtui, new_run_id, show, unique_name

pytestmark = pytest.mark.skipif(importlib.util.find_spec("promptflow.core") is None,
                                reason="promptflow-core is not installed (pip install -e '.[flow]')")

RUN = new_run_id()
FILTER = '["result", "characters"]'


@dataclass
class Pair:
    """One sample served twice: by devtui (``ours``) and by prompt flow's own app (``theirs``)."""

    ours: httpx.Client
    theirs: httpx.Client
    sample: Path

    def both(self, method: str, path: str, **kwargs) -> tuple[httpx.Response, httpx.Response]:
        return self.ours.request(method, path, **kwargs), self.theirs.request(method, path, **kwargs)

    def same(self, method: str, path: str, **kwargs) -> httpx.Response:
        """The request on both; the answers must match in status and (JSON) body. Returns ours."""
        ours, theirs = self.both(method, path, **kwargs)
        assert ours.status_code == theirs.status_code, (ours.text, theirs.text)
        assert _body(ours) == _body(theirs)
        return ours

    def sample_request(self) -> str:
        return (self.sample / "sample-request.json").read_text(encoding="utf-8")


def _body(response: httpx.Response):
    try:
        return response.json()
    except ValueError:
        return response.text


def _with_variable(sample: Path, name: str, value: str) -> None:
    """Set one of the deployment's environment_variables, as a user would edit deployment.yml."""
    import yaml

    path = sample / "deployment.yml"
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    document.setdefault("environment_variables", {})[name] = value
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    """name -> Pair, started lazily, each once per module; everything ends with the module."""
    started: dict[str, Pair] = {}
    stops = []
    home = tmp_path_factory.mktemp("devtui-home")

    def pair(name: str, variables: dict[str, str] | None = None) -> Pair:
        key = f"{name}{sorted((variables or {}).items())}"
        if key in started:
            return started[key]
        folder = tmp_path_factory.mktemp(name)
        sample = copy_sample(name, folder)
        for variable, value in (variables or {}).items():
            _with_variable(sample, variable, value)
        endpoint = unique_name(RUN, f"{name.removeprefix('flow-')}{len(started)}")
        env = {"DEVTUI_HOME": str(home)}
        devtui("up", str(sample), "--detach", "-n", endpoint, env=env)
        stops.append(lambda: devtui("down", "-n", endpoint, env=env, check=None))
        scoring = show(endpoint, env=env)["scoring_uri"]
        reference = start_flow_reference(sample / "flow", folder / "reference", env=deployment_env(sample))
        stops.append(reference.stop)
        ours = httpx.Client(base_url=scoring.rsplit("/", 1)[0], timeout=30)
        theirs = httpx.Client(base_url=reference.url, timeout=30)
        stops.extend([ours.close, theirs.close])
        started[key] = Pair(ours, theirs, sample)
        return started[key]

    yield pair
    for stop in reversed(stops):
        stop()


JSON = {"content-type": "application/json"}


@pytest.mark.parametrize("name, answer", [("flow-basic", FLOW_BASIC_ANSWER), ("flow-chat", FLOW_CHAT_ANSWER),
                                          ("flow-flex", FLOW_FLEX_ANSWER)])
def test_score_health_and_swagger_match_prompt_flows_own_app(pairs, name, answer):
    pair = pairs(name)
    assert pair.same("POST", "/score", content=pair.sample_request(), headers=JSON).json() == answer
    request = json.loads(pair.sample_request())
    pair.same("POST", "/score", content=json.dumps({**request, "unexpected": 1}), headers=JSON)
    missing = pair.same("POST", "/score", content="{}", headers=JSON)
    if name != "flow-flex":  # the flex sample's one input has no default either: see below
        assert missing.status_code == 400 and missing.json()["error"]["code"] == "UserError"
    health = pair.same("GET", "/health")
    assert health.json()["status"] == "Healthy"
    swagger = pair.same("GET", "/swagger.json").json()
    assert set(swagger["paths"]["/score"]["post"]["requestBody"]["content"]["application/json"]["schema"]
               ["properties"]) == set(request)
    pair.same("POST", "/score", content="not json", headers={"content-type": "text/plain"})
    pair.same("GET", "/score")


def test_a_request_id_is_taken_as_the_flows_run_id(pairs):
    pair = pairs("flow-basic")
    pair.same("POST", "/score", content=pair.sample_request(), headers={**JSON, "x-request-id": "devtui-check-1"})


def test_streaming_gives_the_same_events(pairs):
    pair = pairs("flow-chat")
    headers = {**JSON, "accept": "text/event-stream"}
    events = []
    for client in (pair.ours, pair.theirs):
        with client.stream("POST", "/score", content=pair.sample_request(), headers=headers) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events.append([line for line in response.iter_lines() if line])
    assert events[0] == events[1]
    assert len(events[0]) > 3  # one event per chunk, not one at the end
    answer = "".join(json.loads(line.removeprefix("data: "))["answer"] for line in events[0])
    assert answer == FLOW_CHAT_ANSWER["answer"]
    # A flow without a generator output cannot stream: both refuse alike.
    basic = pairs("flow-basic")
    refused = basic.same("POST", "/score", content=basic.sample_request(), headers=headers)
    assert refused.status_code == 406


def test_response_filtering_matches(pairs):
    pair = pairs("flow-basic", {"PROMPTFLOW_RESPONSE_INCLUDED_FIELDS": FILTER})
    answer = pair.same("POST", "/score", content=pair.sample_request(), headers=JSON).json()
    assert set(answer) == {"result", "characters"}  # an evaluation_only output, asked for by name
