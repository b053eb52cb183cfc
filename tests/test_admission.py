"""inference_server/admission.py's RequestSettings, the one request-settings middleware in front of
every kind of worker's app: the score.py app and prompt flow's answer a refused request with the
same message, the score.py app with the headers every answer of its carries (CORS's too), and a
request is released however it ends."""

from __future__ import annotations

import asyncio
import inspect
import json

import httpx
import pytest

from inference_server.admission import Admission, RequestSettings, timed_out, too_many

pytestmark = [pytest.mark.unit, pytest.mark.anyio]


def _script_app(cors_origins: list[str] | None = None):
    from inference_server.app import Limits, create_app
    from inference_server.swagger import Swagger
    from inference_server.user_script import STRING, UserScript

    def run(raw):
        return {"echo": raw}

    parameters = list(inspect.signature(run).parameters.values())
    script = UserScript("score.py", None, lambda: None, run, STRING, parameters, False)
    return create_app(script, Swagger(run, []), Limits(1, 2), cors_origins)


async def _post(app, headers: dict[str, str] | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://scoring", timeout=30) as client:
        return await client.post("/score", content=b'"x"', headers=headers or {})


async def _flow_like(scope, receive, send):
    """An app with no contract of its own for refusals (as prompt flow's)."""
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"answer": 1}'})


async def test_both_kinds_of_app_refuse_beyond_the_limit_with_one_message():
    from inference_server.app import serving

    script = _script_app()
    script_admission = Admission(2)
    flow_admission = Admission(2)
    for admission in (script_admission, flow_admission):
        admission.arrive(), admission.arrive()  # two in flight: the limit
    refused = await _post(serving(script, script_admission), {"x-request-id": "abc"})
    flow_refused = await _post(RequestSettings(_flow_like, flow_admission))
    assert refused.status_code == flow_refused.status_code == 429
    assert refused.json() == flow_refused.json() == {"message": too_many(2, 2)}
    assert refused.headers["x-request-id"] == "abc" and refused.headers["x-ms-run-function-failed"] == "False"
    assert len(script_admission.live) == len(flow_admission.live) == 2  # a refused request never counted


async def test_an_admitted_request_is_answered_and_released():
    from inference_server.app import serving

    admission = Admission(2)
    answer = await _post(serving(_script_app(), admission))
    assert (answer.status_code, answer.json()) == (200, {"echo": '"x"'})
    flow_admission = Admission(2)
    assert (await _post(RequestSettings(_flow_like, flow_admission))).json() == {"answer": 1}
    assert not admission.live and not flow_admission.live


async def test_a_refusal_carries_the_cors_headers_and_a_long_request_id_is_refused_first():
    from inference_server.app import serving

    admission = Admission(2)
    admission.arrive(), admission.arrive()
    app = serving(_script_app(["http://page.example"]), admission)
    refused = await _post(app, {"origin": "http://page.example"})
    assert refused.status_code == 429
    assert refused.headers["access-control-allow-origin"] == "http://page.example"
    too_long = await _post(app, {"x-request-id": "r" * 101})
    assert too_long.status_code == 431


async def test_the_timeout_answers_408_when_no_answer_has_started_and_releases_the_request():
    hold = asyncio.Event()

    async def slow(scope, receive, send):
        await hold.wait()

    admission = Admission(None)
    answer = await _post(RequestSettings(slow, admission, timeout_ms=50, subject="The flow"))
    assert answer.status_code == 408 and answer.json() == {"message": timed_out(50)}
    assert not admission.live
    suspended = RequestSettings(_flow_like, admission, timeout_ms=1, debugging=lambda: True)
    assert json.loads((await _post(suspended)).content) == {"answer": 1}
