"""The smallest FastAPI server for a score.py, for comparing with ``uvicorn --reload``.

    BENCH_ENTRY_SCRIPT=/path/to/score.py AZUREML_MODEL_DIR=... \
        python -m uvicorn wrapper:app --app-dir benchmarks --reload --reload-dir /path/to --port 8000

It imports the script with importlib, calls init() at startup, and POST /score calls run() with
the body as a str, which is what an undecorated run(raw) gets from the scoring server.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

ENTRY_SCRIPT = os.path.realpath(os.environ["BENCH_ENTRY_SCRIPT"])


def _load():
    folder = os.path.dirname(ENTRY_SCRIPT)
    if folder not in sys.path:
        sys.path.append(folder)
    spec = importlib.util.spec_from_file_location("score", ENTRY_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


score = _load()


@asynccontextmanager
async def lifespan(app: FastAPI):
    score.init()
    yield


app = FastAPI(lifespan=lifespan)


@app.post("/score")
async def run(request: Request):
    body = await request.body()
    return JSONResponse(score.run(body.decode()))
