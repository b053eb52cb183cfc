"""A no-code MLflow deployment (samples/mlflow-sklearn): the first `up` to Succeeded, a model save
to its new answer, and throughput against azmlinfsrv running the cloud's MLflow scoring script.

    .venv/bin/python benchmarks/mlflow.py [--saves 10] [--ups 3] [--duration 6] [--cloud-script PATH]
    .venv/bin/python benchmarks/mlflow.py --smoke   # one of each, 200 answers of load, no targets

- up: `devtui up --detach` of a copy of the sample, until it prints Succeeded; then `devtui down`.
- save: with the deployment running, model.pkl is saved over with a model fitted again (two
  fits, alternately), and the same request is sent until its answer is the new model's: the time
  from the save to that answer (rung 2: the model staged again, then a worker swap).
- throughput: wrk on POST /score with the sample's request, one worker each:
    devtui      python -m inference_server, AZUREML_MODEL_DIR and MLFLOW_MODEL_FOLDER set (as devtui up)
    azmlinfsrv  azmlinfsrv --entry_script mlflow_score_script.py --worker_count 1, the same variables
  The cloud's script (Azure/azureml-assets, assets/inference/environments/mlflow-py312-inference/
  context/mlflow_score_script.py) is not ours to ship: pass a copy with --cloud-script (or
  DEVTUI_MLFLOW_CLOUD_SCRIPT); it imports azureml-ai-monitoring, which --cloud-path (a folder put
  on PYTHONPATH) can hold. Without it, devtui's throughput is measured alone and the ratio is not.
  Each server's CPU time per request is reported beside its requests/s (its process group's CPU
  seconds while wrk ran, over the requests answered, as compare.py measures it): it moves far less
  with the machine's load than requests/s.

Targets: a model save is served within 1 s (median); throughput >= 2x azmlinfsrv's.
Results also go to benchmarks/results/mlflow.json. Needs wrk and the mlflow extra (`make install`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from _common import (REPO, VENV_BIN, BenchmarkError, Server, answering, free_port, parse_with_smoke, run_main,
                     targets_line, wait_until, write_results)
from compare import group_cpu_s
from throughput import find_wrk, lua_script, run_wrk

SAMPLE = REPO / "samples" / "mlflow-sklearn"
SAVE_TARGET_MS = 1000
THROUGHPUT_TARGET = 2.0


def copy_sample(work: Path) -> Path:
    if not (SAMPLE / "model" / "MLmodel").is_file():
        raise BenchmarkError(f"{SAMPLE / 'model'} is not made yet: run `make install` (it runs make_model.py)")
    folder = work / "mlflow-sklearn"
    shutil.copytree(SAMPLE, folder)
    return folder


def fits(work: Path) -> list[bytes]:
    """Two pickles of the sample's model fitted again, differently: what a retrain saves."""
    import cloudpickle
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    features, target = load_diabetes(return_X_y=True, as_frame=True)
    return [cloudpickle.dumps(Ridge(alpha=alpha).fit(features, target)) for alpha in (0.01, 1.0)]


def devtui(*args: str, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run([str(VENV_BIN / "devtui"), *args], env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise BenchmarkError(f"devtui {' '.join(args)} exited with {done.returncode}:\n{done.stdout}{done.stderr}")
    return done


def measure_ups(folder: Path, env: dict, count: int) -> list[float]:
    times = []
    for n in range(count):
        name = f"bench-mlflow-up-{n}"
        started = time.perf_counter()
        devtui("up", str(folder), "--detach", "-n", name, env=env)
        times.append((time.perf_counter() - started) * 1000)
        devtui("down", "-n", name, env=env, timeout=120)
    return times


def measure_saves(folder: Path, env: dict, count: int, pickles: list[bytes]) -> list[float]:
    name = "bench-mlflow-save"
    up = devtui("up", str(folder), "--detach", "-n", name, env=env)
    url = json.loads(up.stdout)["scoring_uri"]
    body = (folder / "sample-request.json").read_bytes()
    times = []
    try:
        with httpx.Client(timeout=30) as client:
            def answer() -> str:
                return client.post(url, content=body, headers={"content-type": "application/json"}).text

            for n in range(count):
                before = answer()
                started = time.perf_counter()
                (folder / "model" / "model.pkl").write_bytes(pickles[n % 2])
                wait_until(lambda: answer() != before, 60, "the saved model's answer", interval=0.005)
                times.append((time.perf_counter() - started) * 1000)
    finally:
        devtui("down", "-n", name, env=env, timeout=120)
    return times


def start(kind: str, folder: Path, work: Path, cloud_script: Path | None, cloud_path: str) -> tuple[Server, str]:
    port = free_port()
    models = work / f"models-{kind}"
    models.mkdir()
    shutil.copytree(folder / "model", models / "model")  # mlflow refuses a model folder that is a link
    env = {**os.environ, "AZUREML_MODEL_DIR": str(models), "MLFLOW_MODEL_FOLDER": "model"}
    env.pop("AZUREML_ENTRY_SCRIPT", None)
    if kind == "devtui":
        command = [sys.executable, "-m", "inference_server", "--port", str(port)]
    else:
        command = [str(VENV_BIN / "azmlinfsrv"), "--entry_script", str(cloud_script), "--port", str(port),
                   "--worker_count", "1"]
        if cloud_path:
            env["PYTHONPATH"] = os.pathsep.join(p for p in (cloud_path, env.get("PYTHONPATH")) if p)
    server = Server(kind, command, work / f"{kind}-{port}.log", env=env, cwd=work)
    base = f"http://127.0.0.1:{port}"
    answering(server, base, kind, timeout=180)
    return server, base + "/score"


def measure_throughput(folder: Path, work: Path, args, cloud_script: Path | None) -> dict:
    wrk = find_wrk()
    body = (folder / "sample-request.json").read_bytes()
    lua = lua_script(body, work, args.smoke)
    kinds = ("devtui", "azmlinfsrv") if cloud_script else ("devtui",)
    results, answers = {}, {}
    for kind in kinds:
        server, url = start(kind, folder, work, cloud_script, args.cloud_path)
        try:
            answers[kind] = json.loads(httpx.post(url, content=body, headers={"content-type": "application/json"},
                                                  timeout=60).text)
            if args.warmup:
                run_wrk(wrk, url, lua, args.warmup, args.connections, 1)
            before = group_cpu_s(server.process.pid)
            results[kind] = run_wrk(wrk, url, lua, args.duration, args.connections, 1)
            spent = group_cpu_s(server.process.pid) - before
        finally:
            server.stop()
        requests = results[kind].get("requests") or results[kind]["requests_per_s"] * args.duration
        results[kind]["cpu_us_per_request"] = spent / requests * 1e6
        print(f"  {kind:<11}{results[kind]['requests_per_s']:9.1f} req/s  p50 {results[kind].get('p50_ms', 0):7.2f} ms"
              f"  p99 {results[kind].get('p99_ms', 0):7.2f} ms  CPU {results[kind]['cpu_us_per_request']:6.0f} us/request",
              flush=True)
    if len({json.dumps(a, sort_keys=True) for a in answers.values()}) != 1:
        raise BenchmarkError(f"the servers answer differently: {answers}")
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ups", type=int, default=3, help="first ups to time (default 3)")
    parser.add_argument("--saves", type=int, default=10, help="model saves to time (default 10)")
    parser.add_argument("--duration", type=float, default=6, help="seconds of measured load (default 6)")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of load before measuring (default 2)")
    parser.add_argument("--connections", type=int, default=8, help="concurrent connections (default 8)")
    parser.add_argument("--cloud-script", type=Path, default=os.environ.get("DEVTUI_MLFLOW_CLOUD_SCRIPT"),
                        help="a copy of the cloud's mlflow_score_script.py, for azmlinfsrv")
    parser.add_argument("--cloud-path", default=os.environ.get("DEVTUI_MLFLOW_CLOUD_PATH", ""),
                        help="a folder put on azmlinfsrv's PYTHONPATH (azureml-ai-monitoring, which the script imports)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parse_with_smoke(parser, ups=1, saves=2, duration=1.0, warmup=0.0)
    cloud_script = args.cloud_script if args.cloud_script and Path(args.cloud_script).is_file() else None

    work = Path(tempfile.mkdtemp(prefix="devtui-bench-mlflow-"))
    env = {**os.environ, "DEVTUI_HOME": str(work / "home")}
    try:
        folder = copy_sample(work)
        ups = measure_ups(folder, env, args.ups)
        print(f"  up to Succeeded: median {statistics.median(ups):.0f} ms over {len(ups)}", flush=True)
        saves = measure_saves(folder, env, args.saves, fits(work))
        print(f"  save to new answer: median {statistics.median(saves):.0f} ms, max {max(saves):.0f} ms "
              f"over {len(saves)}", flush=True)
        throughput = measure_throughput(folder, work, args, cloud_script)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    save_ms = statistics.median(saves)
    met = save_ms <= SAVE_TARGET_MS
    parts = [f"up to Succeeded {statistics.median(ups) / 1000:.1f} s",
             f"save to new answer {save_ms:.0f} ms (target {SAVE_TARGET_MS} ms)"]
    ratio = None
    if "azmlinfsrv" in throughput:
        ratio = throughput["devtui"]["requests_per_s"] / throughput["azmlinfsrv"]["requests_per_s"]
        met = met and ratio >= THROUGHPUT_TARGET
        cpu = throughput["azmlinfsrv"]["cpu_us_per_request"] / throughput["devtui"]["cpu_us_per_request"]
        parts.append(f"throughput {ratio:.1f}x azmlinfsrv running the cloud's script (target {THROUGHPUT_TARGET:g}x), "
                     f"azmlinfsrv's CPU per request {cpu:.1f}x devtui's")
    else:
        met = False
        parts.append(f"throughput {throughput['devtui']['requests_per_s']:.0f} req/s; the ratio needs --cloud-script")
    line = "mlflow: " + ", ".join(parts) + f": {targets_line(met, args.smoke)}"
    print("\n" + line)
    print(write_results("mlflow", {
        "ups_ms": ups, "saves_ms": saves, "throughput": throughput, "ratio": ratio,
        "targets": {"save_ms": SAVE_TARGET_MS, "throughput": THROUGHPUT_TARGET}, "targets_met": met,
        "summary": line}, args.smoke))
    return 1 if args.check and not met else 0


if __name__ == "__main__":
    run_main(main)
