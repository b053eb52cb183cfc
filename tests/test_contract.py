"""Side by side: our scoring server and the reference (azmlinfsrv 1.5.1) must answer alike.

For each scoring script in tests/contract_scripts, both servers run (class-scoped, started
together), get the same requests, and must give the same status, body (parsed JSON where it is
JSON), Content-Type media type and contract headers. Deliberate differences are asserted as such:
our ``x-ms-server-version`` value; on 404/405 and ``GET /`` ours adds the id headers and
``x-ms-run-function-failed``; ours adds ``Allow`` on 405. The last class covers what has no
reference equivalent: init() failures and the endpoint emulation (408, 429).
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from contract_servers import (
    ServerProcess,
    base_env,
    ours_command,
    reference_executable,
    run_to_exit,
    start_ours,
    start_pair,
)
from helpers import free_port, wait_for

SCRIPTS = Path(__file__).resolve().parent / "contract_scripts"
MODEL = SCRIPTS / "model"

ID_HEADERS = ("x-request-id", "x-ms-request-id", "x-ms-client-request-id")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
RUN_FAILED = {"message": "An unexpected error occurred in scoring script. Check the logs for more info."}
INTERNAL_ERROR = {"message": "An unexpected internal error occurred. Check the logs for more info."}

pytestmark = pytest.mark.skipif(not reference_executable().exists(),
                                reason="the reference server (azureml-inference-server-http) is not installed")


# -- sending and comparing --------------------------------------------------------------------

@dataclass
class Pair:
    ours: ServerProcess
    ref: ServerProcess
    client: httpx.Client

    def send(self, method: str, path: str, **kwargs) -> tuple[httpx.Response, httpx.Response]:
        ours = self.client.request(method, self.ours.url + path, **kwargs)
        ref = self.client.request(method, self.ref.url + path, **kwargs)
        return ours, ref


def pair_fixture(name: str, script: Path):
    """A class-scoped fixture: both servers on ``script``, stopped after the class."""

    @pytest.fixture(scope="class", name=name)
    def fixture(tmp_path_factory):
        workdir = tmp_path_factory.mktemp(script.stem)
        ours, ref = start_pair(script, MODEL, workdir)
        client = httpx.Client(timeout=30)
        try:
            yield Pair(ours, ref, client)
        finally:
            client.close()
            ours.stop()
            ref.stop()

    return fixture


def media_type(response: httpx.Response) -> str:
    return response.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def body_of(response: httpx.Response):
    kind = media_type(response)
    if kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json")):
        try:
            return "json", response.json()
        except ValueError:
            pass
    try:
        return "text", response.content.decode("utf-8")
    except UnicodeDecodeError:
        return "bytes", response.content


def describe(name: str, response: httpx.Response) -> str:
    headers = "\n".join(f"    {k}: {v}" for k, v in response.headers.multi_items())
    return f"{name}: {response.status_code}\n{headers}\n    body: {response.content[:600]!r}"


def id_view(response: httpx.Response, sent: httpx.Headers) -> dict[str, str | None]:
    """The id headers, with a generated x-request-id (and the headers that copy it) as a placeholder,
    so two servers' own UUIDs compare equal while echoes compare by value."""
    request_id = response.headers.get("x-request-id")
    generated = "x-request-id" not in sent and request_id is not None and UUID_RE.match(request_id)
    view = {}
    for name in ID_HEADERS:
        value = response.headers.get(name)
        if generated and value == request_id:
            value = "<generated uuid>"
        view[name] = value
    return view


def assert_same(ours: httpx.Response, ref: httpx.Response, sent=None,
                reference_omits_ids: bool = False, also: tuple[str, ...] = ()) -> None:
    """The contract comparison. ``reference_omits_ids``: an answer (404, 405, ``GET /``) where the
    reference leaves out id headers or x-ms-run-function-failed that ours adds on purpose."""
    sent = httpx.Headers(sent or {})
    context = "\n" + describe("ours", ours) + "\n" + describe("reference", ref)
    assert ours.status_code == ref.status_code, "status differs" + context
    assert body_of(ours) == body_of(ref), "body differs" + context
    assert media_type(ours) == media_type(ref), "Content-Type differs" + context

    failed = "x-ms-run-function-failed"
    if failed in ref.headers or not reference_omits_ids:
        assert ours.headers.get(failed) == ref.headers.get(failed), f"{failed} differs" + context
    else:
        assert ours.headers.get(failed) in ("True", "False"), f"ours lacks {failed}" + context

    exec_ms = "x-ms-run-fn-exec-ms"
    assert (exec_ms in ours.headers) == (exec_ms in ref.headers), f"{exec_ms} presence differs" + context
    if exec_ms in ours.headers:
        assert float(ours.headers[exec_ms]) >= 0, context

    assert ours.headers.get("x-ms-server-version", "").startswith("devtui-inference-server/"), \
        "ours lacks x-ms-server-version" + context

    ours_ids, ref_ids = id_view(ours, sent), id_view(ref, sent)
    if not sent.get("x-request-id") and ref.status_code != 431:
        assert ref_ids["x-request-id"] in ("<generated uuid>", None), context
    if reference_omits_ids and ref.status_code in (404, 405) and ref_ids["x-request-id"] is None:
        # The reference's routing errors carry no ids; ours still does: echoed when sent (and valid),
        # a UUID otherwise.
        too_long = any(len(sent.get(name, "")) > 100 for name in ID_HEADERS)
        if "x-request-id" not in sent:
            expected = "<generated uuid>"
        else:
            expected = sent["x-request-id"] if 0 < len(sent["x-request-id"]) <= 100 else None
        assert ours_ids["x-request-id"] == expected, "ours lacks x-request-id" + context
        if expected is not None and not too_long:
            assert ours_ids["x-ms-request-id"] is not None, "ours lacks x-ms-request-id" + context
            if "x-ms-client-request-id" in sent:
                assert ours_ids["x-ms-client-request-id"] == sent["x-ms-client-request-id"], context
    else:
        assert ours_ids == ref_ids, "id headers differ" + context

    if ours.status_code == 405 and reference_omits_ids:
        assert "allow" in ours.headers, "ours lacks Allow on 405" + context
    for name in also:
        if reference_omits_ids and ref.status_code in (404, 405) and name not in ref.headers and name in sent:
            # Ours echoes TraceId on routing errors too.
            assert ours.headers.get_list(name) == sent.get_list(name), f"ours does not echo {name}" + context
            continue
        assert ours.headers.get_list(name) == ref.headers.get_list(name), f"{name} differs" + context


def case(method: str, path: str, *, marks=(), id: str, lenient: bool = False, also: tuple[str, ...] = (),
         expect: int | None = None, **kwargs):
    """One request for both servers: ``expect`` is the status both must give (a check on the test)."""
    return pytest.param(method, path, kwargs, lenient, also, expect, id=id, marks=marks)


CASE_ARGS = "method,path,kwargs,lenient,also,expect"


def check_case(pair: Pair, method: str, path: str, kwargs: dict, lenient: bool, also: tuple, expect: int | None):
    ours, ref = pair.send(method, path, **kwargs)
    assert_same(ours, ref, sent=kwargs.get("headers"), reference_omits_ids=lenient, also=also)
    if expect is not None:
        assert ref.status_code == expect, describe("reference", ref)
    return ours, ref


def xfail_difference(reason: str):
    return pytest.mark.xfail(reason=reason, strict=True)


SWAGGER_CASES = [
    case("GET", "/swagger.json", id="swagger-default", expect=200),
    case("GET", "/swagger.json?version=2", id="swagger-2", expect=200),
    case("GET", "/swagger.json?version=2.0", id="swagger-2.0", expect=200),
    case("GET", "/swagger.json?version=3", id="swagger-3", expect=200),
    case("GET", "/swagger.json?version=3.0", id="swagger-3.0", expect=200),
    case("GET", "/swagger.json?version=3.1", id="swagger-3.1", expect=200),
    case("GET", "/swagger.json?version=4", id="swagger-4", expect=404),
    case("GET", "/swagger.json?version=", id="swagger-empty-version", expect=404),
]


# -- undecorated run(raw) ---------------------------------------------------------------------

basic = pair_fixture("basic", SCRIPTS / "score_basic.py")

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


class TestUndecoratedRun:
    @pytest.mark.parametrize(CASE_ARGS, [
        case("POST", "/score", json={"kind": "dict"}, id="dict", expect=200),
        case("POST", "/score", json={"kind": "list"}, id="list", expect=200),
        case("POST", "/score", json={"kind": "str"}, id="str", expect=200),
        case("POST", "/score", json={"kind": "none"}, id="none-is-empty-object", expect=200),
        case("POST", "/score", json={"kind": "set"}, id="unserialisable-500", expect=500),
        case("POST", "/score", json={"kind": "raise"}, id="run-raises-500", expect=500),
        case("POST", "/score", content=b"hello world", headers={"Content-Type": "text/plain"},
             id="text-body-as-str", expect=200),
        case("POST", "/score", content="ünïcode ✓".encode(), headers={"Content-Type": "text/plain; charset=utf-8"},
             id="utf8-body", expect=200),
        case("POST", "/score", content=b"", id="empty-body", expect=200),
        case("POST", "/score", content=b"\xff\xfe\x00not utf-8", headers={"Content-Type": "application/octet-stream"},
             id="non-utf8-body-400", expect=400),
        case("POST", "/score", content=b"a=1&b=2", headers=FORM, id="form-urlencoded-body", expect=200),
        case("POST", "/score", files={"file": ("a.txt", b"contents", "text/plain")}, id="multipart-body", expect=200),
        case("GET", "/score", params=[("a", "1"), ("b", "[1,2]"), ("c", "x"), ("c", "y")],
             id="get-query-as-json", expect=200),
        case("GET", "/score?d=null&e=%7B%22k%22%3A%201%7D&f=1.5", id="get-query-json-values", expect=200),
        case("GET", "/score", id="get-no-query", expect=200),
        case("HEAD", "/score", id="head-score-405", expect=405),
        case("OPTIONS", "/score", id="options-score-200-empty", expect=200),
        case("PUT", "/score", content=b"{}", id="put-405", lenient=True, expect=405),
        case("DELETE", "/score", id="delete-405", lenient=True, expect=405),
        case("PATCH", "/score", content=b"{}", id="patch-405", lenient=True, expect=405),
        case("GET", "/nope", id="unknown-path-404", lenient=True, expect=404),
        case("POST", "/score/extra", content=b"{}", id="unknown-subpath-404", lenient=True, expect=404),
        case("GET", "/", id="liveness", lenient=True, expect=200),
        case("HEAD", "/", id="liveness-head", lenient=True, expect=200),
        case("POST", "/", id="liveness-post-405", lenient=True, expect=405),
        case("POST", "/swagger.json", id="swagger-post-405", lenient=True, expect=405),
        *SWAGGER_CASES,
    ])
    def test_same_answer(self, basic, method, path, kwargs, lenient, also, expect):
        check_case(basic, method, path, kwargs, lenient, also, expect)

    def test_answers_are_what_the_contract_says(self, basic):
        ours, _ = basic.send("POST", "/score", json={"kind": "none"})
        assert ours.json() == {}
        ours, _ = basic.send("POST", "/score", json={"kind": "raise"})
        assert ours.json() == RUN_FAILED and ours.headers["x-ms-run-function-failed"] == "True"
        ours, _ = basic.send("POST", "/score", json={"kind": "set"})
        assert ours.json() == INTERNAL_ERROR
        ours, _ = basic.send("GET", "/score", params=[("a", "1"), ("b", "[1,2]"), ("c", "x"), ("c", "y")])
        assert json.loads(ours.json()["raw"]) == {"a": 1, "b": [1, 2], "c": ["x", "y"]}
        ours, _ = basic.send("GET", "/")
        assert (ours.status_code, ours.text) == (200, "Healthy")
        ours, _ = basic.send("OPTIONS", "/score")
        assert (ours.status_code, ours.content) == (200, b"")
        ours, _ = basic.send("GET", "/swagger.json?version=4")
        assert ours.status_code == 404 and "message" in ours.json()
        for method in ("PUT", "DELETE", "PATCH"):
            ours, _ = basic.send(method, "/score")
            assert ours.status_code == 405 and "message" in ours.json()

    @pytest.mark.parametrize("headers", [
        pytest.param({}, id="none-sent"),
        pytest.param({"x-request-id": "my-request-1"}, id="x-request-id"),
        pytest.param({"x-ms-client-request-id": "client-7"}, id="client-request-id"),
        pytest.param({"x-ms-request-id": "legacy-3"}, id="legacy-request-id"),
        pytest.param({"x-ms-request-id": "legacy-3", "x-ms-client-request-id": "client-7"}, id="legacy-and-client"),
        pytest.param({"x-request-id": "rid", "x-ms-request-id": "legacy", "x-ms-client-request-id": "client"},
                     id="all-three"),
        pytest.param({"x-request-id": "r" * 100}, id="x-request-id-100-chars"),
        pytest.param({"x-request-id": "r" * 101}, id="x-request-id-101-chars-431"),
        pytest.param({"x-ms-client-request-id": "c" * 101}, id="client-request-id-101-chars-431"),
        pytest.param({"x-ms-request-id": "l" * 101}, id="legacy-request-id-101-chars-431"),
        pytest.param({"x-request-id": ""}, id="empty-x-request-id"),
        pytest.param({"TraceId": "trace-42"}, id="traceid"),
    ])
    @pytest.mark.parametrize("method,path,lenient", [
        ("POST", "/score", False),
        ("GET", "/swagger.json", False),
        ("GET", "/", True),
        ("GET", "/nope", True),
    ], ids=["score", "swagger", "liveness", "404"])
    def test_request_id_headers(self, basic, headers, method, path, lenient):
        kwargs = {"headers": headers}
        if method == "POST":
            kwargs["json"] = {"kind": "dict"}
        ours, ref = basic.send(method, path, **kwargs)
        assert_same(ours, ref, sent=headers, reference_omits_ids=lenient, also=("traceid",))
        if "x-request-id" in headers and len(headers["x-request-id"]) > 100 and path != "/nope":
            assert ref.status_code == 431
            assert ours.json() == {"message": "x-request-id must not exceed 100 characters"}
        if not headers and path != "/nope":
            assert UUID_RE.match(ours.headers["x-request-id"]) and UUID_RE.match(ref.headers["x-request-id"])

    def test_generated_request_ids_are_fresh(self, basic):
        first, _ = basic.send("POST", "/score", json={"kind": "dict"})
        second, _ = basic.send("POST", "/score", json={"kind": "dict"})
        assert first.headers["x-request-id"] != second.headers["x-request-id"]
        assert uuid.UUID(first.headers["x-request-id"])

    def test_print_and_logging_reach_the_log(self, basic):
        marker = uuid.uuid4().hex
        ours, ref = basic.send("POST", "/score", json={"kind": "dict", "marker": marker})
        assert ours.status_code == ref.status_code == 200
        output = wait_for(lambda: (lambda text: f"CONTRACT-LOG-RUN {marker}" in text and text)(basic.ours.output()),
                          timeout=10, message="run()'s log line in our output")
        assert f"CONTRACT-PRINT-RUN {marker}" in output
        assert "CONTRACT-PRINT-INIT" in output
        assert "CONTRACT-LOG-INIT" in output

    def test_run_traceback_goes_to_the_log_only(self, basic):
        ours, ref = basic.send("POST", "/score", json={"kind": "raise"})
        assert ours.json() == ref.json() == RUN_FAILED
        output = wait_for(lambda: (lambda text: "the scoring script failed on purpose" in text and text)(
            basic.ours.output()), timeout=10, message="run()'s traceback in our output")
        assert "Traceback (most recent call last)" in output
        assert "score_basic.py" in output


# -- run(data, request_headers) ---------------------------------------------------------------

with_headers = pair_fixture("with_headers", SCRIPTS / "score_headers.py")


class TestRequestHeadersParameter:
    @pytest.mark.parametrize(CASE_ARGS, [
        case("POST", "/score", content=b"payload",
             headers={"Content-Type": "text/plain", "X-Custom-Header": "hello there"}, id="post", expect=200),
        case("POST", "/score", content=b"payload",
             headers=[("X-Custom-Header", "one"), ("X-Repeat", "1"), ("X-Repeat", "2")], id="repeated-header",
             expect=200),
        case("GET", "/score?x=1", headers={"X-Custom-Header": "on a get"}, id="get", expect=200),
        case("POST", "/score", json={"kind": "dict"}, id="no-custom-header", expect=200),
    ])
    def test_same_answer(self, with_headers, method, path, kwargs, lenient, also, expect):
        ours, _ = check_case(with_headers, method, path, kwargs, lenient, also, expect)
        if "X-Custom-Header" in str(kwargs.get("headers")):
            assert ours.json()["custom"] is not None


# -- @input_schema / @output_schema -----------------------------------------------------------

schema = pair_fixture("schema", SCRIPTS / "score_schema.py")

JSON_CT = {"Content-Type": "application/json"}


class TestInputSchema:
    @pytest.mark.parametrize(CASE_ARGS, [
        case("POST", "/score", json={"data": [[1, 2, 3]], "label": "x", "factor": 3}, id="good-body", expect=200),
        case("POST", "/score", json={"data": [[1, 2, 3]], "label": "x"}, id="default-omitted", expect=200),
        case("POST", "/score", json={"data": [[1, 2, 3]], "label": "x", "extra": 1}, id="extra-key", expect=200),
        case("POST", "/score", json={"label": "x"}, id="missing-data-400", expect=400),
        case("POST", "/score", json={"data": [[1, 2, 3]]}, id="missing-label-400", expect=400),
        case("POST", "/score", json={"data": "not an array", "label": "x"}, id="bad-data-type", expect=500),
        case("POST", "/score", content=b'{"data": [[1, 2, 3]], "label": "x"}', headers={"Content-Type": "text/plain"},
             id="text-plain-415", expect=415),
        case("POST", "/score", content=b'{"data": [[1, 2, 3]], "label": "x"}', id="no-content-type-415",
             expect=415),
        case("POST", "/score", content=b'{"data": [[1, 2, 3]], "label": "x"}',
             headers={"Content-Type": "application/merge-patch+json"}, id="plus-json-accepted", expect=200),
        case("POST", "/score", content=b'{"data": [[1, 2, 3]], "label": "x"}',
             headers={"Content-Type": "application/json; charset=utf-8"}, id="json-with-charset", expect=200),
        case("POST", "/score", content=b"[1, 2]", headers=JSON_CT, id="array-body-400", expect=400),
        case("POST", "/score", content=b'"text"', headers=JSON_CT, id="string-body-400", expect=400),
        case("POST", "/score", content=b"", headers=JSON_CT, id="empty-body-400", expect=400),
        case("POST", "/score", content=b"{bad json", headers=JSON_CT, id="invalid-json-400", expect=400),
        case("POST", "/score", content=b'{"data": "\xff"}', headers=JSON_CT, id="invalid-utf8-json",
             expect=500),
        case("GET", "/score", params={"data": "[[1, 2, 3]]", "label": "q"}, id="get-with-params", expect=200),
        case("GET", "/score", params={"data": "[[1, 2, 3]]"}, id="get-missing-label-400", expect=400),
        case("OPTIONS", "/score", id="options", expect=200),
        case("PUT", "/score", json={}, id="put-405", lenient=True, expect=405),
        *SWAGGER_CASES,
    ])
    def test_same_answer(self, schema, method, path, kwargs, lenient, also, expect):
        check_case(schema, method, path, kwargs, lenient, also, expect)

    def test_answers_are_what_the_contract_says(self, schema):
        ours, _ = schema.send("POST", "/score", json={"label": "x"})
        assert ours.status_code == 400 and "'data'" in ours.json()["message"]
        ours, _ = schema.send("POST", "/score", json={"data": [[1, 2, 3]], "label": "x"})
        assert ours.json() == {"result": [[2, 4, 6]], "label": "x", "type": "ndarray"}
        ours, _ = schema.send("GET", "/swagger.json?version=3")
        assert ours.json()["components"]["schemas"]["ServiceInput"]["properties"]["data"]


# -- user swagger files -----------------------------------------------------------------------

user_swagger = pair_fixture("user_swagger", SCRIPTS / "user_swagger" / "score_user_swagger.py")


class TestUserSwaggerFiles:
    @pytest.mark.parametrize(CASE_ARGS, [
        *SWAGGER_CASES,
        case("POST", "/score", content=b"hi", id="score", expect=200),
    ])
    def test_same_answer(self, user_swagger, method, path, kwargs, lenient, also, expect):
        check_case(user_swagger, method, path, kwargs, lenient, also, expect)

    def test_user_files_win(self, user_swagger):
        ours, _ = user_swagger.send("GET", "/swagger.json")
        assert ours.json()["info"]["title"] == "user swagger 2"
        ours, _ = user_swagger.send("GET", "/swagger.json?version=3")
        assert ours.json()["info"]["title"] == "user swagger 3"


# -- @rawhttp ---------------------------------------------------------------------------------

raw = pair_fixture("raw", SCRIPTS / "score_rawhttp.py")


class TestRawHttp:
    @pytest.mark.parametrize(CASE_ARGS, [
        case("POST", "/score?action=upload", files={"file": ("notes.txt", b"file contents\n", "text/plain")},
             data={"field": "value"}, id="multipart-upload", expect=200),
        case("POST", "/score?action=echo", content=bytes(range(256)), headers={"Content-Type": "application/x-bin"},
             id="get-data-echo-bytes", expect=200),
        case("POST", "/score?action=text", id="amlresponse-text-201", expect=201),
        case("POST", "/score?action=headers", id="amlresponse-comma-header", also=("x-multi", "x-single"),
             expect=200),
        case("POST", "/score?action=fail", id="amlresponse-500", expect=500),
        case("POST", "/score?action=json", id="amlresponse-json-str", expect=202),
        case("POST", "/score?action=none", id="amlresponse-none", expect=200),
        case("POST", "/score?action=request-headers", content=b"{}",
             headers={"X-Custom-Header": "raw header", "Content-Type": "application/json"},
             id="request-headers", expect=200),
        case("POST", "/score?action=raise", id="run-raises-500", expect=500),
        case("POST", "/score", content=b"some text", id="dict-result", expect=200),
        case("GET", "/score", params=[("a", "1"), ("a", "2"), ("b", "x")], id="get-args", expect=200),
        case("OPTIONS", "/score?o=1", id="options-reaches-run", expect=200),
        case("HEAD", "/score", id="head-reaches-run", expect=200),
        case("PUT", "/score", id="put-405", lenient=True, expect=405),
        case("GET", "/", id="liveness", lenient=True, expect=200),
    ])
    def test_same_answer(self, raw, method, path, kwargs, lenient, also, expect):
        check_case(raw, method, path, kwargs, lenient, also, expect)

    def test_answers_are_what_the_contract_says(self, raw):
        ours, _ = raw.send("POST", "/score?action=upload", files={"file": ("n.txt", b"abc", "text/plain")})
        assert ours.json()["filename"] == "n.txt" and ours.json()["content"] == "abc"
        ours, _ = raw.send("POST", "/score?action=headers")
        assert ours.headers.get_list("x-multi") == ["alpha", "beta"]
        ours, _ = raw.send("POST", "/score?action=fail")
        assert ours.status_code == 500 and ours.headers["x-ms-run-function-failed"] == "True"
        ours, _ = raw.send("GET", "/score?a=1")
        assert ours.json() == {"method": "GET", "args": {"a": ["1"]}}
        ours, _ = raw.send("POST", "/score?action=echo", content=b"\x00\x01binary")
        assert ours.content == b"\x00\x01binary"


# -- ours only: no reference equivalent -------------------------------------------------------

class TestOursOnly:
    def test_init_failure_exits_3_with_traceback_and_model_tree(self):
        script = SCRIPTS / "score_failing_init.py"
        result = run_to_exit(ours_command(script, MODEL, free_port()), _ours_env(script), script.parent)
        assert result.returncode == 3, result.stdout
        assert "Traceback (most recent call last)" in result.stdout
        assert "CONTRACT-INIT-FAILURE: cannot load the model" in result.stdout
        assert "score_failing_init.py" in result.stdout
        for entry in ("model/", "sub/", "config.json", "weights.txt"):
            assert entry in result.stdout, f"model tree lacks {entry}:\n{result.stdout}"

    def test_syntax_error_exits_3_with_traceback(self, tmp_path):
        script = tmp_path / "score_broken.py"
        script.write_text("def init():\n    pass\n\ndef run(raw:\n    return raw\n", encoding="utf-8")
        result = run_to_exit(ours_command(script, None, free_port()), _ours_env(script), tmp_path)
        assert result.returncode == 3, result.stdout
        assert "SyntaxError" in result.stdout
        assert "score_broken.py" in result.stdout

    def test_request_timeout_answers_408_and_keeps_serving(self, tmp_path):
        script = SCRIPTS / "score_slow.py"
        server = start_ours(script, MODEL, tmp_path, "--request-timeout-ms", "300", name="ours-timeout")
        try:
            with httpx.Client(timeout=30) as client:
                slow = client.post(server.url + "/score", json={"sleep": 1})
                assert slow.status_code == 408, describe("ours", slow)
                assert media_type(slow) == "application/json"
                assert isinstance(slow.json().get("message"), str) and slow.json()["message"]
                assert UUID_RE.match(slow.headers["x-request-id"])
                fast = client.post(server.url + "/score", json={"sleep": 0})
                assert fast.status_code == 200, describe("ours", fast)
                assert fast.json() == {"slept": 0}
        finally:
            server.stop()

    def test_max_concurrent_requests_answers_429_beyond_twice_the_limit(self, tmp_path):
        script = SCRIPTS / "score_slow.py"
        server = start_ours(script, MODEL, tmp_path, "--max-concurrent-requests", "1", name="ours-429")
        count = 5
        barrier = threading.Barrier(count)
        answers: list[httpx.Response | BaseException] = [None] * count

        def call(index: int) -> None:
            try:
                with httpx.Client(timeout=30) as client:
                    barrier.wait(timeout=10)
                    answers[index] = client.post(server.url + "/score", json={"sleep": 1})
            except BaseException as ex:  # reported by the assertions below
                answers[index] = ex

        try:
            threads = [threading.Thread(target=call, args=(i,)) for i in range(count)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=30)
            assert not any(thread.is_alive() for thread in threads)
        finally:
            server.stop()
        errors = [a for a in answers if not isinstance(a, httpx.Response)]
        assert not errors, errors
        statuses = sorted(a.status_code for a in answers)
        assert set(statuses) <= {200, 429}, statuses
        assert 200 in statuses and 429 in statuses, statuses
        for answer in answers:
            if answer.status_code == 429:
                assert media_type(answer) == "application/json"
                assert answer.json()["message"]
            else:
                assert answer.json() == {"slept": 1}


def _ours_env(script: Path) -> dict[str, str]:
    env = base_env(script)
    env.pop("PYTHONPATH", None)
    return env
