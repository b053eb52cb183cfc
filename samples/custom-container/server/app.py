"""A minimal bring-your-own scoring server: a linear model served with http.server.

GET /live and GET /ready answer 200 (ready once the model is loaded); POST /predict takes
{"data": [[x1, ...], ...]} and returns {"predictions": [...]}.
"""

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL_PATH = os.path.join(os.environ["AZUREML_MODEL_DIR"], os.environ.get("MODEL_FILE", "model/weights.json"))
with open(MODEL_PATH) as f:
    MODEL = json.load(f)
print(f"loaded {len(MODEL['coefficients'])} coefficients from {MODEL_PATH}", flush=True)


def predict(rows):
    return [round(MODEL["intercept"] + sum(c * x for c, x in zip(MODEL["coefficients"], row)), 2) for row in rows]


class Handler(BaseHTTPRequestHandler):
    def answer(self, status, payload):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path in ("/live", "/ready"):
            self.answer(200, {"status": "ok"})
        else:
            self.answer(404, {"message": "not found"})

    def do_POST(self):
        if self.path != "/predict":
            self.answer(404, {"message": "not found"})
            return
        try:
            rows = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))["data"]
            self.answer(200, {"predictions": predict(rows)})
        except (ValueError, KeyError, TypeError) as ex:
            self.answer(400, {"message": f"expected {{'data': [[...]]}}: {ex}"})

    def log_message(self, format, *args):
        print(f"{self.command} {self.path} -> {args[1] if len(args) > 1 else ''}", flush=True)


ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
