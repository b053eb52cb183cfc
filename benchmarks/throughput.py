"""Throughput and latency of the devtui scoring server against azmlinfsrv, one worker each.

    .venv/bin/python benchmarks/throughput.py [--duration 6] [--connections 8] [--rounds 2]
    .venv/bin/python benchmarks/throughput.py --smoke   # 1 s of load per server, one round, no targets

Servers (started and stopped here, one at a time, on a free port):
  devtui     python -m inference_server --entry_script S --model_dir D --port P   (its defaults)
  devtui up  `devtui up --detach` of a deployment of the script: request_settings emulated (408 after
             request_timeout_ms, 429 past 2 x max_concurrent_requests_per_instance, set to
             --connections), run() one call at a time as in the cloud, its log pumped into devtui's
             log files, as a user runs it
  azmlinfsrv azmlinfsrv --entry_script S --model_dir D --port P --worker_count 1
Scripts:
  echo       benchmarks/echo/score.py: init() does nothing, run(raw) returns json.loads(raw)
  sklearn    samples/sklearn-regression (the model, score.py and its sample-request.json)
Both get the same POST /score body (the sample's sample-request.json) from the same load generator:
  wrk -t1 -c<connections> -d<duration>s --latency -s post.lua http://127.0.0.1:P/score
after a short warm-up run of wrk that is not counted. Each server is measured --rounds times (the
order alternates) and its best run is reported. Needs wrk (`apt-get install wrk`).

Targets: requests/s >= 2.5x azmlinfsrv on echo and >= 2x on sklearn; devtui up within 10% of the
standalone server, and >= 2.5x azmlinfsrv on sklearn.
Results also go to benchmarks/results/throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from _common import (run_main, HERE, SKLEARN_SAMPLE, VENV_BIN, BenchmarkError, Server, answering, free_port, model_dir_for,
                     parse_with_smoke, targets_line, write_results)

TARGETS = {"echo": 2.5, "sklearn": 2.0}
UP_SHARE = 0.9  # a deployment run by `devtui up` (request_settings emulated) within 10% of the standalone server
UP_TARGETS = {"sklearn": 2.5}  # and this many times azmlinfsrv
SERVERS = ("devtui", "devtui up", "azmlinfsrv")


# -- wrk -----------------------------------------------------------------------------------------


def find_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchmarkError("wrk is not installed; this benchmark drives the servers with it. Install it with "
                             "`sudo apt-get install wrk` (Debian/Ubuntu) or `brew install wrk` (macOS).")
    return wrk


# A smoke run's wrk stops loading after this many answers (its thread stops; wrk still reports
# after its whole -d, the shortest being 1 s): enough to prove the pipeline, at a tenth of the CPU.
SMOKE_ANSWERS = 200


def lua_script(body: bytes, folder: Path, smoke: bool = False) -> Path:
    """A wrk script that POSTs ``body`` as JSON on every request (``smoke``: SMOKE_ANSWERS of them)."""
    text = body.decode()
    level = "=" * next(n for n in range(1, 100) if f"]{'=' * n}]" not in text)
    path = folder / "post.lua"
    stop = ("answered = 0\nfunction response(status, headers, body)\n  answered = answered + 1\n"
            f"  if answered >= {SMOKE_ANSWERS} then wrk.thread:stop() end\nend\n") if smoke else ""
    path.write_text('wrk.method = "POST"\n'
                    'wrk.headers["Content-Type"] = "application/json"\n'
                    f"wrk.body = [{level}[{text}]{level}]\n" + stop)
    return path


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(value: str, unit: str) -> float:
    return float(value) * UNITS[unit]


def parse_wrk(output: str) -> dict:
    """Requests/sec, the latency percentiles and the error counts of wrk's --latency output."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    if not rps:
        raise BenchmarkError(f"cannot read wrk's output:\n{output}")
    result = {"requests_per_s": float(rps[1])}
    for pct, value, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.M):
        result[f"p{pct}_ms"] = _ms(value, unit)
    total = re.search(r"^\s+(\d+) requests in", output, re.M)
    result["requests"] = int(total[1]) if total else None
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    result["non_2xx"] = int(non2xx[1]) if non2xx else 0
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    result["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"), map(int, socket_errors.groups()))) \
        if socket_errors else {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    return result


def run_wrk(wrk: str, url: str, lua: Path, duration: float, connections: int, threads: int) -> dict:
    command = [wrk, f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", "--latency", "-s", str(lua), url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60)
    if done.returncode != 0:
        raise BenchmarkError(f"{' '.join(command)} exited with code {done.returncode}:\n{done.stdout}{done.stderr}")
    return parse_wrk(done.stdout)


# -- servers -------------------------------------------------------------------------------------


class Deployment:
    """`devtui up --detach` of a deployment of ``script`` (request_settings on: 408 and 429 are
    emulated, as a user runs it), stopped by `devtui down`."""

    def __init__(self, script: Path, work: Path, connections: int):
        self.env = {**os.environ, "DEVTUI_HOME": str(work / "devtui-up-home")}
        folder = work / f"deployment-{script.parent.name}"
        # The cloud answers 429 past 2 x max_concurrent_requests_per_instance in flight: with one
        # per connection, the load is never refused (this measures speed). run() still runs one
        # call at a time, as in the cloud with the default WORKER_COUNT.
        settings = f"request_settings:\n  max_concurrent_requests_per_instance: {connections}\n"
        if script.parent.parent == SKLEARN_SAMPLE:
            shutil.copytree(SKLEARN_SAMPLE, folder, dirs_exist_ok=True)
            text = (folder / "deployment.yml").read_text()
            (folder / "deployment.yml").write_text(re.sub(r"request_settings:\n(  .*\n)+", settings, text))
        else:
            folder.mkdir(exist_ok=True)
            (folder / "deployment.yml").write_text(
                f"name: blue\nendpoint_name: bench-{script.parent.name}\ncode_configuration:\n"
                f"  code: {script.parent}\n  scoring_script: {script.name}\nenvironment:\n  image: python:3.11-slim\n"
                + settings)
        up = subprocess.run([str(VENV_BIN / "devtui"), "up", str(folder), "--detach", "--port", str(free_port()),
                             "-n", f"bench-{script.parent.name}"], env=self.env, capture_output=True, text=True,
                            timeout=300)
        if up.returncode != 0:
            raise BenchmarkError(f"devtui up failed:\n{up.stdout}{up.stderr}")
        self.name = f"bench-{script.parent.name}"
        self.url = json.loads(up.stdout)["scoring_uri"]

    def stop(self) -> None:
        subprocess.run([str(VENV_BIN / "devtui"), "down", "-n", self.name], env=self.env, capture_output=True,
                       timeout=120)


def start_server(kind: str, script: Path, model_dir: Path, env_extra: dict, work: Path,
                 connections: int) -> tuple[Server, str]:
    if kind == "devtui up":
        deployment = Deployment(script, work, connections)
        return deployment, deployment.url
    port = free_port()
    env = {**os.environ, "AML_APP_ROOT": str(script.parent), **env_extra}
    env.pop("AZUREML_ENTRY_SCRIPT", None)
    env.pop("AZUREML_MODEL_DIR", None)
    if kind == "devtui":
        command = [sys.executable, "-m", "inference_server"]
    else:
        command = [str(VENV_BIN / "azmlinfsrv"), "--worker_count", "1"]
    command += ["--entry_script", str(script), "--model_dir", str(model_dir), "--port", str(port)]
    log = work / f"{kind}-{script.parent.name}-{port}.log"
    server = Server(kind, command, log, env=env, cwd=script.parent)
    base = f"http://127.0.0.1:{port}"
    answering(server, base, f"{kind} on port {port}")
    return server, base + "/score"


def check_answer(url: str, body: bytes) -> str:
    answer = httpx.post(url, content=body, headers={"content-type": "application/json"}, timeout=30)
    if answer.status_code != 200:
        raise BenchmarkError(f"POST {url} answered {answer.status_code}: {answer.text[:500]}")
    return answer.text


# -- main ----------------------------------------------------------------------------------------


def scenarios(work: Path) -> dict:
    empty = work / "empty-model-dir"
    empty.mkdir()
    sklearn_env = {"LOG_LEVEL": "INFO", "PREDICTION_ROUND_DIGITS": "2"}  # the deployment's environment_variables
    return {
        "echo": (HERE / "echo" / "score.py", empty, {}),
        "sklearn": (SKLEARN_SAMPLE / "onlinescoring" / "score.py", model_dir_for(SKLEARN_SAMPLE, work), sklearn_env),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=6, help="seconds of measured load per run (default 6)")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of load before measuring (default 2)")
    parser.add_argument("--connections", type=int, default=8, help="concurrent connections (default 8)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="measure each server this many times, alternating the order, and report the best run "
                             "(default 2; other load on the machine only ever slows a run down)")
    parser.add_argument("--scripts", default="echo,sklearn", help="comma-separated: echo, sklearn")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (server logs)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parse_with_smoke(parser, duration=1.0, warmup=0.0, rounds=1)
    wanted = [s.strip() for s in args.scripts.split(",") if s.strip()]
    if not set(wanted) <= set(TARGETS):
        parser.error("--scripts takes echo and/or sklearn")
    wrk = find_wrk()
    body = (SKLEARN_SAMPLE / "sample-request.json").read_bytes()

    work = Path(tempfile.mkdtemp(prefix="devtui-bench-throughput-"))
    lua = lua_script(body, work, args.smoke)
    runs: dict = {name: {kind: [] for kind in SERVERS} for name in wanted}
    try:
        all_scenarios = scenarios(work)
        for name in wanted:
            script, model_dir, env_extra = all_scenarios[name]
            answers = {}
            for round_ in range(args.rounds):
                order = SERVERS if round_ % 2 == 0 else SERVERS[::-1]
                for kind in order:
                    server, url = start_server(kind, script, model_dir, env_extra, work, args.connections)
                    try:
                        answers[kind] = check_answer(url, body)
                        if args.warmup:
                            run_wrk(wrk, url, lua, args.warmup, args.connections, args.threads)
                        result = run_wrk(wrk, url, lua, args.duration, args.connections, args.threads)
                    finally:
                        server.stop()
                    runs[name][kind].append(result)
                    errors = result["non_2xx"] + sum(result["socket_errors"].values())
                    p50, p99 = result.get("p50_ms", float("nan")), result.get("p99_ms", float("nan"))
                    print(f"  {name:<8}{kind:<11} round {round_ + 1}: {result['requests_per_s']:9.1f} req/s  "
                          f"p50 {p50:7.2f} ms  p99 {p99:7.2f} ms"
                          + (f"  ({result['non_2xx']} non-2xx, socket errors {result['socket_errors']})"
                             if errors else ""), flush=True)
            if len(set(json.dumps(json.loads(a), sort_keys=True) for a in answers.values())) != 1:
                raise BenchmarkError(f"{name}: the servers answer differently: {answers}")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    table: dict = {}
    print()
    print(f"{'script':<9}{'server':<12}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
    for name in wanted:
        table[name] = {}
        for kind in SERVERS:
            results = runs[name][kind]
            # With several rounds: the best one by requests/s, reported whole (p50/p99 of that run).
            chosen = max(results, key=lambda r: r["requests_per_s"])
            errors = sum(r["non_2xx"] + sum(r["socket_errors"].values()) for r in results)
            table[name][kind] = {**chosen, "errors": errors, "rounds": results}
            print(f"{name:<9}{kind:<12}{chosen['requests_per_s']:>10.1f}{chosen.get('p50_ms', float('nan')):>10.2f}"
                  f"{chosen.get('p99_ms', float('nan')):>10.2f}{errors:>8}")
    parts, met = [], True
    ratios = {}
    for name in wanted:
        ours, up, theirs = (table[name][kind] for kind in SERVERS)
        ratio = ours["requests_per_s"] / theirs["requests_per_s"]
        up_ratio, up_share = up["requests_per_s"] / theirs["requests_per_s"], up["requests_per_s"] / ours["requests_per_s"]
        ratios[name] = {"devtui": round(ratio, 2), "devtui up": round(up_ratio, 2),
                        "devtui up / devtui": round(up_share, 2)}
        ok = (ratio >= TARGETS[name] and up_share >= UP_SHARE and up_ratio >= UP_TARGETS.get(name, 0)
              and ours["errors"] == 0 and up["errors"] == 0)
        met = met and ok
        up_target = f"target {UP_TARGETS[name]:g}x, " if name in UP_TARGETS else ""
        parts.append(f"{name} {ratio:.1f}x azmlinfsrv (target {TARGETS[name]:g}x), devtui up {up_ratio:.1f}x "
                     f"azmlinfsrv ({up_target}{up_share:.0%} of the standalone server, target >= {UP_SHARE:.0%})")
    line = "throughput: " + ", ".join(parts) + f": {targets_line(met, args.smoke)}"
    if any(table[n][kind]["errors"] for n in wanted for kind in ("devtui", "devtui up")):
        line += "; devtui answered with errors (see the table)"
    print("\n" + line)
    print(write_results("throughput", {
        "load": {"tool": "wrk", "connections": args.connections, "threads": args.threads,
                 "duration_s": args.duration, "warmup_s": args.warmup, "rounds": args.rounds,
                 "body": "samples/sklearn-regression/sample-request.json"},
        "results": table, "ratios": ratios, "targets": {**TARGETS, "devtui up": {**UP_TARGETS, "share": UP_SHARE}},
        "targets_met": met, "summary": line}, args.smoke))
    return 1 if args.check and not met else 0


if __name__ == "__main__":
    run_main(main)
