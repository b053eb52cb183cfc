"""Record what the cloud's MLflow scoring script answers under azmlinfsrv, into the reference
files the side-by-side tests compare devtui with (tests/data/mlflow_reference_<model>.json).

The script (`mlflow_score_script.py` in Azure/azureml-assets, beside the MLflow inference image's
Dockerfile) is not on PyPI and its code stays out of this repository: read it, keep a copy outside
the checkout, and pass its path. It imports `azureml.ai.monitoring` (azureml-ai-monitoring, which
the image installs); give a folder holding that package with --pythonpath.

    python tests/mlflow_record.py --script /tmp/mlflow-ref/mlflow_score_script.py \\
        --script-commit SHA --pythonpath /tmp/mlflow-ref/site --work /tmp/mlflow-ref/run

Each model is made by tests/mlflow_models.py, served as the image serves it (AZUREML_MODEL_DIR
holding the model folder, MLFLOW_MODEL_FOLDER its name), and sent every request shape of
`requests_for`. Only headers that do not change from run to run are kept.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib.metadata
import json
import os
import platform
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mlflow_models import KINDS, MODEL_FOLDER, make  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
SCRIPT_PATH = "assets/inference/environments/mlflow-py312-inference/context/mlflow_score_script.py"
KEPT_HEADERS = ("content-type", "x-ms-run-function-failed")
PACKAGES = ("azureml-inference-server-http", "mlflow-skinny", "inference-schema", "azureml-ai-monitoring", "pandas",
            "numpy", "scikit-learn", "lightgbm", "flask", "werkzeug")


def requests_for(model: Path) -> list[dict]:
    """Every request shape of issue 22, built from the model's own input example (two rows)."""
    example = json.loads((model / "input_example.json").read_text())
    columns, rows = example["columns"], example["data"]
    frame = {"columns": columns, "index": list(range(len(rows))), "data": rows}
    reordered = {"columns": columns[::-1], "index": frame["index"], "data": [row[::-1] for row in rows]}
    named = {column: [row[i] for row in rows] for i, column in enumerate(columns)}
    renamed = {**frame, "columns": [f"x{i}" for i in range(len(columns))]}
    fewer = {"columns": columns[:-1], "index": frame["index"], "data": [row[:-1] for row in rows]}
    text = {**frame, "data": [["a lot"] * len(columns) for _ in rows]}

    def post(name: str, body, content_type: str = "application/json") -> dict:
        raw = body if isinstance(body, str) else json.dumps(body)
        return {"name": name, "method": "POST", "path": "/score", "headers": {"Content-Type": content_type}, "body": raw}

    def get(name: str, path: str) -> dict:
        return {"name": name, "method": "GET", "path": path, "headers": {}, "body": ""}

    return [
        post("good", {"input_data": frame}),
        post("reordered-columns", {"input_data": reordered}),
        post("list", {"input_data": rows}),
        post("named-tensors", {"input_data": named}),
        post("split-without-index", {"input_data": {"columns": columns, "data": rows}}),
        post("params", {"input_data": frame, "params": {"top_k": 2}}),
        post("params-not-an-object", {"input_data": frame, "params": [1, 2]}),
        post("missing-input", {"data": rows}),
        post("empty-object", {}),
        get("get-query", "/score?" + urllib.parse.urlencode({"input_data": json.dumps(frame)})),
        get("get-no-query", "/score"),
        get("swagger", "/swagger.json"),
        get("swagger-v3", "/swagger.json?version=3"),
        # "swagger-example" (the swagger's ServiceInput example, posted) is added once the swagger is in.
        post("bad-unknown-columns", {"input_data": renamed}),
        post("bad-missing-column", {"input_data": fewer}),
        post("bad-text-values", {"input_data": text}),
        post("bad-input-is-text", {"input_data": "hello"}),
        post("bad-not-json", "this is not JSON"),
        post("bad-json-array", [1, 2, 3]),
        post("bad-content-type", {"input_data": frame}, content_type="text/plain"),
    ]


def swagger_example(swagger_body: str) -> dict | None:
    """The request the swagger (version 2) documents: its ServiceInput's example, posted."""
    try:
        example = json.loads(swagger_body)["definitions"]["ServiceInput"]["example"]
    except (ValueError, KeyError, TypeError):
        return None
    return {"name": "swagger-example", "method": "POST", "path": "/score",
            "headers": {"Content-Type": "application/json"}, "body": json.dumps(example)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(script: Path, model_dir: Path, pythonpath: str, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "AZUREML_MODEL_DIR": str(model_dir), "MLFLOW_MODEL_FOLDER": MODEL_FOLDER,
           "PYTHONPATH": os.pathsep.join(filter(None, [pythonpath, os.environ.get("PYTHONPATH")]))}
    server = subprocess.Popen([str(Path(sys.executable).parent / "azmlinfsrv"), "--entry_script", str(script),
                               "--model_dir", str(model_dir), "--port", str(port)],
                              env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=model_dir)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"azmlinfsrv exited with {server.returncode}; see {log}")
        try:
            if httpx.get(base + "/", timeout=2).status_code == 200:
                return server, base
        except httpx.HTTPError:
            pass
        time.sleep(0.2)  # polling the server's liveness route, with a deadline
    server.kill()
    raise SystemExit(f"azmlinfsrv did not answer within 120 s; see {log}")


def exchange(client: httpx.Client, base: str, request: dict) -> dict:
    answer = client.request(request["method"], base + request["path"], headers=request["headers"],
                            content=request["body"].encode() if request["body"] else None)
    headers = {name: answer.headers[name] for name in KEPT_HEADERS if name in answer.headers}
    return {"request": request, "response": {"status": answer.status_code, "headers": headers, "body": answer.text}}


def record(kind: str, script: Path, commit: str, pythonpath: str, work: Path) -> dict:
    model_dir = work / kind
    model = make(kind, model_dir)
    server, base = serve(script, model_dir, pythonpath, work / f"azmlinfsrv-{kind}.log")
    try:
        with httpx.Client(timeout=30) as client:
            exchanges = [exchange(client, base, request) for request in requests_for(model)]
            swagger = next(e for e in exchanges if e["request"]["name"] == "swagger")
            example = swagger_example(swagger["response"]["body"])
            if example is not None:
                exchanges.append(exchange(client, base, example))
    finally:
        server.terminate()
        server.wait(30)
    return {"recorded": _how(kind, script, commit), "model": _model(kind, model), "exchanges": exchanges}


def _how(kind: str, script: Path, commit: str) -> dict:
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "how": (f"tests/mlflow_record.py: the model made by `python tests/mlflow_models.py {kind} DIR`, served by "
                f"`azmlinfsrv --entry_script mlflow_score_script.py --model_dir DIR` with AZUREML_MODEL_DIR=DIR and "
                f"MLFLOW_MODEL_FOLDER={MODEL_FOLDER}, as Azure's MLflow inference image serves it (without the "
                "image: on this machine's Python and packages below); each request sent once with httpx. Only the "
                f"response headers {', '.join(KEPT_HEADERS)} are kept (the others carry request ids and times)."),
        "script": {"repository": "Azure/azureml-assets", "path": SCRIPT_PATH, "commit": commit,
                   "sha256": hashlib.sha256(script.read_bytes()).hexdigest(),
                   "note": ("read through the search tool's stored copy of that commit and run from a copy outside "
                            "this repository; sha256 is of that copy, with the CRLF line endings the stored file has. "
                            "The index also holds b6111a70aa5eccb89b702eb6c1019d39b4871fcd, whose init() makes the "
                            "data collectors without checking ENABLE_MDC: every collector call is inside a try, so "
                            "the answers do not depend on which of the two runs")},
        "date": datetime.date.today().isoformat(),
        "python": platform.python_version(),
        "packages": versions,
    }


def _model(kind: str, model: Path) -> dict:
    import yaml

    mlmodel = yaml.safe_load((model / "MLmodel").read_text())
    return {"kind": kind, "made_by": f"python tests/mlflow_models.py {kind} DIR", "folder": MODEL_FOLDER,
            "flavors": sorted(mlmodel["flavors"]), "signature": mlmodel.get("signature"),
            "input_example": json.loads((model / "input_example.json").read_text())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--script", type=Path, required=True, help="a copy of mlflow_score_script.py")
    parser.add_argument("--script-commit", required=True, help="the azureml-assets commit the copy was read at")
    parser.add_argument("--pythonpath", default="", help="where azureml.ai.monitoring is importable from")
    parser.add_argument("--work", type=Path, required=True, help="an empty folder for the models and the logs")
    parser.add_argument("--out", type=Path, default=DATA)
    parser.add_argument("kinds", nargs="*", default=list(KINDS))
    args = parser.parse_args()
    if Path(args.script).resolve().is_relative_to(Path(__file__).resolve().parent.parent):
        raise SystemExit("keep the cloud's script outside this repository")
    if args.pythonpath:  # so that the versions recorded include what is installed there
        sys.path.append(args.pythonpath)
    args.out.mkdir(parents=True, exist_ok=True)
    for kind in args.kinds:
        data = record(kind, args.script.resolve(), args.script_commit, args.pythonpath, args.work.resolve())
        target = args.out / f"mlflow_reference_{kind}.json"
        target.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        print(f"{target}: {len(data['exchanges'])} exchanges")


if __name__ == "__main__":
    main()
