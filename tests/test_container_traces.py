"""Request traces in the container runtime (issue 23): the server in the container sends its spans
as events in its log, devtui's log pump hands them to the engine, and they are kept per endpoint as
in the process runtime. A real Docker engine."""

from __future__ import annotations

import json
import secrets

import httpx

from helpers import devtui, wait_for
from test_container import up_detached


def test_a_request_in_a_container_is_traced_with_its_id(sample, endpoint, docker_client):
    name = endpoint("ct-traces")
    folder = sample("sklearn-regression")
    shown = json.loads(up_detached(folder, name, "--traces").stdout)
    request_id = f"req-{secrets.token_hex(6)}"
    answer = httpx.post(shown["scoring_uri"], content=(folder / "sample-request.json").read_bytes(),
                        headers={"content-type": "application/json", "x-request-id": request_id}, timeout=30)
    assert answer.status_code == 200, answer.text

    def traced() -> dict | None:
        found = json.loads(devtui("traces", "-n", name, "-o", "json").stdout)
        return next((t for t in found if t["request_id"] == request_id), None)

    trace = wait_for(traced, timeout=30, message="the request's trace")
    assert trace["status_code"] == 200
    spans = {s["name"]: s for s in trace["spans"]}
    assert set(spans) == {"POST /score", "run"}
    assert spans["run"]["parent_span_id"] == spans["POST /score"]["span_id"]
    devtui("down", "-n", name)
    # Kept after the endpoint is down, as its logs are.
    assert traced() is not None
