"""Request traces for a prompt flow: prompt flow's own spans (the flow, each node, each LLM,
embedding or function call, with its ``inputs``, ``output``, ``llm.usage.*``, ``node_name`` and
``span_type``), under a SERVER span per scoring request, sent to devtui like a score.py's.

Prompt flow makes its spans with the OpenTelemetry API on whatever tracer provider is set, and
instruments the OpenAI client itself (``promptflow-tracing``'s injector, which its executor applies
on every run); what it leaves off since 1.17.1 is making them (``PF_DISABLE_TRACING``, true unless
set). So a worker with traces on sets the SDK's provider up first (``tracing.start``, after the
fork: the warm parent never has one), turns prompt flow's tracing on, and keeps prompt flow's own
exporters off: devtui forwards the spans to a collector itself, after hiding the secrets in them.
"""

from __future__ import annotations

import os
import time

from .ids import ensure_request_id
from .tracing import OFF

# Prompt flow's switches (promptflow.tracing._utils and promptflow.core._serving.constants).
DISABLE_TRACING = "PF_DISABLE_TRACING"
BUILTIN_EXPORTERS_DISABLE = "PF_BUILTIN_TRACE_EXPORTERS_DISABLE"
SCORING_PATH = "/score"


def turn_on_prompt_flow_tracing() -> None:
    """Before the app is built: prompt flow makes its spans; its serving app adds no exporter of its
    own (it would send them, secrets and all, to OTEL_EXPORTER_OTLP_*: devtui sends them masked)."""
    os.environ[DISABLE_TRACING] = "false"
    os.environ[BUILTIN_EXPORTERS_DISABLE] = "true"


class TracedRequests:
    """ASGI middleware: a SERVER span around each scoring request (``tracing.RequestTracer``),
    current while prompt flow runs the flow, so the flow's span is its child. It carries the
    request's ``x-request-id`` and ``x-ms-client-request-id``, its status (none: the client went away
    before an answer started) and duration."""

    def __init__(self, app, tracer=OFF):
        self.app, self.tracer = app, tracer

    async def __call__(self, scope, receive, send):
        if not self.tracer.enabled or scope["type"] != "http" or scope["path"] != SCORING_PATH:
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        # Prompt flow neither makes one nor answers one: as the scoring server does, the request
        # gets one, which prompt flow's spans carry and the answer says, so its trace is found.
        scope, send, made = ensure_request_id(scope, send)
        ids = [(name, value) for name, value in scope["headers"] if name.startswith(b"x-")]
        answer: dict = {"status": None}

        async def sending(message):
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
                # An id the app answers with is the request's, as the client sees it.
                ids.extend((name.lower(), value) for name, value in message.get("headers") or ()
                           if name.lower().startswith(b"x-") and (name.lower(), value) != made)
            await send(message)

        begun = self.tracer.begin(scope["method"], SCORING_PATH)
        try:
            await self.app(scope, receive, sending)
        finally:
            self.tracer.end(begun, answer["status"], ids, started)
