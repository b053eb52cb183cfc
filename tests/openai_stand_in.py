"""A stand-in for OpenAI's chat completions API on 127.0.0.1, for flows that call a model: it answers
``POST /v1/chat/completions`` with a completion whose text is the last user message, prefixed, and
refuses a request without the expected API key (401, as OpenAI does). It records every request's
body, so a test can see what the flow sent. Started and stopped by the test (a context manager)."""

from __future__ import annotations

import http.server
import json
import threading


class OpenAIStandIn:
    def __init__(self, api_key: str, prefix: str = "stand-in says: "):
        self.api_key, self.prefix = api_key, prefix
        self.requests: list[dict] = []
        stand_in = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                if self.path != "/v1/chat/completions":
                    return self._answer(404, {"error": {"message": f"no route {self.path}"}})
                if self.headers.get("authorization") != f"Bearer {stand_in.api_key}":
                    return self._answer(401, {"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}})
                stand_in.requests.append(body)
                text = stand_in.prefix + next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
                self._answer(200, {
                    "id": f"chatcmpl-{len(stand_in.requests)}", "object": "chat.completion", "created": 0,
                    "model": body.get("model", "stand-in"),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": text}}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

            def _answer(self, status: int, document: dict) -> None:
                data = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass  # quiet: the test reads self.requests

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> OpenAIStandIn:
        self.thread.start()
        return self

    def __exit__(self, *_) -> None:
        self.server.shutdown()
        self.server.server_close()
