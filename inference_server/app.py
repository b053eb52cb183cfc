"""The HTTP routes of the scoring server: the azmlinfsrv contract on FastAPI and uvicorn.

``GET /`` is liveness, ``/swagger.json`` serves the documents, ``/score`` calls run(). Every answer
carries the request-id headers; errors are JSON ``{"message": ...}`` with the reference server's
texts. On top of the contract, :class:`Limits` emulates an online endpoint's request_settings:
408 once the request timeout passes (timed where run() is called), 429 beyond the in-flight limit
(``admission.RequestSettings``, answered by :meth:`ScoringApp.refusal`).
How run() is called (on the loop or on threads, timed, through the run gate) is ``run_calls``;
a Response that run() returns with an iterator for its body is streamed (``streaming``).
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from werkzeug import exceptions as wz_exceptions
from werkzeug.datastructures import EnvironHeaders
from werkzeug.wrappers import Response as WerkzeugResponse

from . import amlapi
from .admission import REFUSAL, TICKET, Admission, RequestSettings, Ticket, timed_out
from .ids import id_headers, server_version
from .run_calls import Limits, RunCalls, RunTimeout
from .streaming import StreamedAnswer
from .swagger import Swagger, SwaggerError
from .tracing import OFF
from .user_script import InputError, MethodNotAllowed, UserScript, user_traceback
from .wsgi_bridge import wsgi_environ

__all__ = ["Limits", "ScoreFirst", "ScoringApp", "create_app", "serving", "wsgi_environ"]

logger = logging.getLogger("azmlinfsrv")

RUN_FAILED = "An unexpected error occurred in scoring script. Check the logs for more info."
INTERNAL_ERROR = "An unexpected internal error occurred. Check the logs for more info."
JSON = b"application/json"
HTML = b"text/html; charset=utf-8"
SCORE_METHODS = frozenset({"GET", "POST", "OPTIONS", "HEAD"})


def _headers(request: Request) -> dict[str, str]:
    """The request's headers by lower-case name, the first of a repeated one (as Starlette's
    ``Headers.get``), made once per request: looking up the absent id headers one by one in
    Starlette's list raised and caught a KeyError for each."""
    scope = request.scope
    found = scope.get(_HEADERS)
    if found is None:
        found = scope[_HEADERS] = {k.decode("latin-1"): v.decode("latin-1") for k, v in reversed(scope["headers"])}
    return found


_HEADERS = "devtui.headers"


def _json_response(status: int, payload: Any, headers: list, run_failed: bool = False) -> Response:
    return _response(status, json.dumps(payload).encode(), JSON, headers, run_failed)


def _response(status: int, body: bytes, content_type: bytes | None, headers: list,
              run_failed: bool | None = False) -> Response:
    response = Response.__new__(Response)
    response.status_code = status
    response.body = body
    response.background = None
    raw = [(b"content-length", str(len(body)).encode())]
    if content_type:
        raw.append((b"content-type", content_type))
    if run_failed is not None:
        raw.append((b"x-ms-run-function-failed", b"True" if run_failed else b"False"))
    raw.extend(headers)
    response.raw_headers = raw
    return response


class ScoringApp:
    def __init__(self, script: UserScript, swagger: Swagger, limits: Limits):
        self.script = script
        self.swagger = swagger
        self.limits = limits
        self.admission = Admission(limits.max_in_flight, timed=limits.timeout_ms is not None)
        self.runs = RunCalls(script, limits)
        self.run_gate = self.runs.gate  # every run() call passes it: a patch applies between calls
        self.server_version = server_version()
        self.after_first_run: Callable[[], None] | None = None
        self.tracer = OFF  # tracing.RequestTracer in a worker with traces on

    # -- headers -------------------------------------------------------------------------------

    def _ids(self, request: Request) -> tuple[list, Response | None]:
        """The id headers to answer with, or the 431 answer for an id over the limit."""
        out, refused = id_headers(_headers(request), self.server_version)
        return out, (_json_response(431, {"message": refused}, out) if refused else None)

    # -- routes --------------------------------------------------------------------------------

    async def liveness(self, request: Request) -> Response:
        ids, refused = self._ids(request)
        if refused:
            return refused
        if request.method == "OPTIONS":
            return _response(200, b"", HTML, ids + [(b"allow", b"GET, HEAD, OPTIONS")])
        return _response(200, b"Healthy", HTML, ids)

    async def swagger_json(self, request: Request) -> Response:
        started = time.perf_counter()
        ids, refused = self._ids(request)
        if refused:
            return refused
        if request.method == "OPTIONS":
            return _response(200, b"", HTML, ids + [(b"allow", b"GET, HEAD, OPTIONS")])
        try:
            response = _json_response(200, self.swagger.get(request.query_params.get("version", "2")), ids)
        except SwaggerError as ex:
            response = _json_response(404, {"message": str(ex)}, ids)
        self._access_log(request, response, started)
        return response

    async def score(self, request: Request) -> Response:
        started = time.perf_counter()
        ids, refused = self._ids(request)
        if refused:
            return refused
        # Counted and admitted by the request settings (admission); served without them, nothing counts.
        ticket = request.scope.get(TICKET) or Ticket(time.monotonic(), 0, True)
        span, response = self.tracer.begin(request.method, "/score"), None
        try:
            response = await self._score(request, ids, ticket)
        except Exception:
            # Answered here rather than by Starlette's error middleware, which re-raises and
            # makes uvicorn drop the client's keep-alive connection.
            logger.error(f"Encountered Exception: {traceback.format_exc()}")
            response = _json_response(500, {"message": INTERNAL_ERROR}, ids)
        finally:  # None: cancelled, the client went away before its answer
            self.tracer.end(span, None if response is None else response.status_code, ids, started)
        self._access_log(request, response, started)
        if self.after_first_run is not None:
            hook, self.after_first_run = self.after_first_run, None
            hook()
        return response

    async def _score(self, request: Request, ids: list, ticket: Ticket) -> Response:
        body = await request.body()
        scope = request.scope
        try:
            arguments = self.script.arguments(
                request.method, request.query_params.multi_items() if scope["query_string"] else [], body,
                _headers(request).get("content-type", ""), lambda: amlapi.AMLRequest(wsgi_environ(scope, body)))
        except InputError as ex:
            return _json_response(ex.status, {"message": ex.message}, ids)
        except MethodNotAllowed:
            if request.method == "OPTIONS":
                return _response(200, b"", HTML, ids)
            return _json_response(405, {"message": "Method not allowed"}, ids)

        headers = dict(EnvironHeaders(wsgi_environ(scope, body, headers_only=True))) \
            if self.script.wants_headers else {}
        try:
            output, elapsed_ms = await self.runs.call(arguments, headers, ticket)
        except RunTimeout as timeout:
            limits = self.limits
            logger.error(f"run() did not finish within {limits.timeout_ms} ms; answered {limits.timeout_status}"
                         if timeout.ran else f"The request waited {limits.timeout_ms} ms behind other run() calls; "
                         f"answered {limits.timeout_status} without calling run()")
            if limits.timeout_status == 408:
                return _json_response(408, {"message": timed_out(limits.timeout_ms)}, ids)
            return _json_response(500, {"message": f"Scoring timeout after {limits.timeout_ms} ms"}, ids, True)
        except Exception:
            logger.error(f"Encountered Exception: {user_traceback()}")
            return _json_response(500, {"message": RUN_FAILED}, ids, True)
        answer = None
        try:
            answer = self._answer(output, elapsed_ms, ids)
            return answer
        finally:
            if not isinstance(answer, StreamedAnswer):  # a stream leaves once its last chunk is made
                self.run_gate.leave()

    def _answer(self, output: Any, elapsed_ms: float, ids: list) -> Response:
        """The answer for run()'s output: made while the call still counts in the run gate."""
        exec_ms = (b"x-ms-run-fn-exec-ms", f"{elapsed_ms:.3f}".encode())
        if isinstance(output, WerkzeugResponse):
            return self._passthrough(output, ids + [exec_ms])
        try:
            payload = json.dumps(output if output is not None else {}).encode()
        except (TypeError, ValueError):
            logger.error(f"Encountered Exception: {traceback.format_exc()}")
            return _json_response(500, {"message": INTERNAL_ERROR}, ids)
        return _response(200, payload, JSON, ids + [exec_ms])

    def _passthrough(self, output: WerkzeugResponse, extra: list) -> Response:
        """A Response run() returned (AMLResponse or Flask's), sent as it is; streamed when its
        body is an iterator, as the reference server's gunicorn sends it."""
        headers = [(k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in output.headers.items()
                   if k.lower() not in ("content-length", "x-ms-run-function-failed")]
        failed = output.status_code >= 500 or output.headers.get("x-ms-run-function-failed") == "True"
        if output.is_streamed:
            return StreamedAnswer(output, headers + [(b"x-ms-run-function-failed", str(failed).encode())] + extra,
                                  self.runs)
        return _response(output.status_code, output.get_data(), None, headers + extra, failed)

    def _access_log(self, request: Request, response: Response, started: float) -> None:
        if not logger.isEnabledFor(logging.INFO):
            return
        scope = request.scope
        query = scope["query_string"]
        path = f"{scope['path']}?{query.decode('latin-1')}" if query else scope["path"]
        elapsed = (time.perf_counter() - started) * 1000
        # The record is made here rather than by logger.info(), which walks the stack for the
        # caller's file and line (not in the log's format): a sixth of the line's cost, per request.
        logger.handle(logger.makeRecord(logger.name, logging.INFO, __file__, 0, f"{scope['method']} {path} "
                                        f"{response.status_code} {elapsed:.3f}ms {_size(response)}", None, None))

    async def refusal(self, scope, receive, send) -> None:
        """The answer to a request the request settings refuse (``admission.REFUSAL`` in its scope),
        with the headers every answer carries; a request id over the limit is refused first."""
        started = time.perf_counter()
        request = Request(scope, receive, send)
        ids, response = self._ids(request)
        if response is None:
            status, message = scope[REFUSAL]
            response = _json_response(status, {"message": message}, ids)
            self._access_log(request, response, started)
        await response(scope, receive, send)

    # -- errors --------------------------------------------------------------------------------

    async def http_error(self, request: Request, exc: HTTPException) -> Response:
        ids, _ = self._ids(request)
        known = {404: wz_exceptions.NotFound, 405: wz_exceptions.MethodNotAllowed}.get(exc.status_code)
        message = known.description if known else exc.detail
        extra = [(k.lower().encode(), v.encode()) for k, v in (exc.headers or {}).items()]
        return _json_response(exc.status_code, {"message": message}, ids + extra)

    async def internal_error(self, request: Request, exc: Exception) -> Response:
        logger.error(f"Encountered Exception: {''.join(traceback.format_exception(exc))}")
        ids, _ = self._ids(request)
        return _json_response(500, {"message": INTERNAL_ERROR}, ids)


def _size(response: Response) -> int | str:
    """The body's length for the access line; "N/A" for a stream, as the reference server says."""
    return "N/A" if isinstance(response, StreamedAnswer) else len(response.body)


def create_app(script: UserScript, swagger: Swagger, limits: Limits, cors_origins: list[str] | None = None,
               after_first_run: Callable[[], None] | None = None,
               debugging: Callable[[], bool] | None = None, tracer=OFF) -> FastAPI:
    """``after_first_run`` is called once, after the first run() call has been answered;
    ``debugging`` says whether a debugger is attached (the request timeout waits then);
    ``tracer`` makes each request's spans (``tracing.RequestTracer``; OFF: none)."""
    scoring = ScoringApp(script, swagger, limits)
    scoring.after_first_run = after_first_run
    scoring.runs.debugging = debugging
    scoring.tracer = tracer
    scoring.runs.traced = tracer.run if tracer.enabled else None
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    # Starlette-level routes: the handlers read the request themselves, so FastAPI's dependency
    # resolution stays off the request path.
    app.add_route("/", scoring.liveness, methods=["GET", "HEAD", "OPTIONS"])
    app.add_route("/swagger.json", scoring.swagger_json, methods=["GET", "HEAD", "OPTIONS"])
    app.add_route("/score", scoring.score, methods=["GET", "POST", "OPTIONS", "HEAD"])
    app.add_exception_handler(HTTPException, scoring.http_error)
    app.add_exception_handler(Exception, scoring.internal_error)
    refusal = scoring.refusal
    if cors_origins:
        from starlette.middleware.cors import CORSMiddleware
        app.add_middleware(CORSMiddleware, allow_origins=cors_origins, allow_methods=["GET", "POST"])
        # A refused request's answer carries the CORS headers too: a browser reads it as a 429.
        refusal = CORSMiddleware(refusal, allow_origins=cors_origins, allow_methods=["GET", "POST"])
        logger.info(f"Enabling CORS for the following origins: {', '.join(cors_origins)}")

    async def refused(scope, receive, send) -> None:
        # A method /score does not take is the router's 405, refused or not.
        await (refusal if scope["method"] in SCORE_METHODS else app)(scope, receive, send)

    app.state.refusal = refused
    app.state.scoring = scoring
    app.state.run_gate = scoring.run_gate  # the worker holds it to apply a patch between run() calls
    return app


class ScoreFirst:
    """The app, with ``/score`` answered first: a scoring request goes straight to its handler,
    past Starlette's router and its error, exception and exit-stack middleware (a tenth of a
    sklearn request's CPU, for a route that catches its own errors). Everything else goes to the
    app. Not used with CORS, whose middleware must see ``/score`` too."""

    def __init__(self, app: FastAPI):
        self.app = app
        self.scoring: ScoringApp = app.state.scoring

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] != "/score" or scope["method"] not in SCORE_METHODS:
            await self.app(scope, receive, send)
            return
        response = None
        try:
            request = Request(scope, receive, send)
            try:
                response = await self.scoring.score(request)
            except Exception as ex:
                response = await self.scoring.internal_error(request, ex)
            if isinstance(response, StreamedAnswer):
                await response(scope, receive, send)  # until its end, or until the client leaves
                return
            # The response has its whole body (made by _response): sent as Starlette would send it.
            await send({"type": "http.response.start", "status": response.status_code,
                        "headers": response.raw_headers})
            await send({"type": "http.response.body", "body": response.body})
        finally:
            if isinstance(response, StreamedAnswer):
                response.abandon()  # never sent (a failure on the way): its generator is closed all the same


def serving(app: FastAPI, admission: Admission | None = None):
    """What uvicorn serves for APP: with ``/score`` first unless middleware must see every request;
    with ``admission``, behind the endpoint's request settings (``admission.RequestSettings``)."""
    served = app if app.user_middleware else ScoreFirst(app)
    return RequestSettings(served, admission, refusal=app.state.refusal) if admission is not None else served
