"""The scoring server of this checkout against the one of another git revision, in the same run.

    .venv/bin/python benchmarks/compare.py --against 165e6c1 [--scripts echo,sklearn] [--rounds 6]
    .venv/bin/python benchmarks/compare.py --smoke   # against HEAD, one short round, no targets

A refactoring must not slow the request path, and on a small machine with other work running,
requests/s moves by 20 % from one run to the next. So both servers are measured in turns (the
order alternates each round), and each run reports the server's CPU time per request as well: the
CPU seconds its whole process group spent while wrk ran, over the requests answered. That figure
moves far less with the machine's load than requests/s does, so a few percent show.

The other revision's ``inference_server`` is checked out (``git worktree add --detach``) into a
temporary folder, removed at the end, and run with this checkout's Python and packages:
  python -m inference_server --entry_script S --model_dir D --port P   (PYTHONPATH=that folder)
Scripts as in throughput.py: echo (benchmarks/echo) and sklearn (samples/sklearn-regression).
Needs wrk (`apt-get install wrk`) and git.

Target: this checkout's median CPU per request within 5 % of the other's (or less).
Results also go to benchmarks/results/compare.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import (REPO, BenchmarkError, Server, answering, free_port, parse_with_smoke, run_main,
                     targets_line, write_results)
from throughput import check_answer, find_wrk, lua_script, run_wrk, scenarios

WITHIN = 1.05  # this checkout's CPU per request, at most this many times the other's
TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def group_cpu_s(group: int) -> float:
    """CPU seconds (user and system) of the live processes of a process group, from /proc."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group:  # fields from the state on: pgrp is the 3rd, utime and stime the 12th, 13th
            total += int(fields[11]) + int(fields[12])
    return total * TICK_S


class Checkout:
    """``revision``'s tree in a temporary worktree, removed on exit."""

    def __init__(self, revision: str):
        self.revision = revision
        self.folder = Path(tempfile.mkdtemp(prefix="devtui-compare-")) / "tree"

    def __enter__(self) -> Path:
        done = subprocess.run(["git", "worktree", "add", "--detach", str(self.folder), self.revision],
                              cwd=REPO, capture_output=True, text=True)
        if done.returncode != 0:
            raise BenchmarkError(f"git cannot check out {self.revision}: {done.stderr.strip()}")
        print(f"{self.revision} checked out in {self.folder} (removed at the end)", flush=True)
        return self.folder

    def __exit__(self, *exc_info) -> None:
        subprocess.run(["git", "worktree", "remove", "--force", str(self.folder)], cwd=REPO, capture_output=True)
        shutil.rmtree(self.folder.parent, ignore_errors=True)


def measure(tree: Path, script: Path, model_dir: Path, env_extra: dict, body: bytes, work: Path, args) -> dict:
    """One run of the server in ``tree``: requests/s and CPU microseconds per request."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(tree), "AML_APP_ROOT": str(script.parent), **env_extra}
    env.pop("AZUREML_ENTRY_SCRIPT", None)
    env.pop("AZUREML_MODEL_DIR", None)
    command = [sys.executable, "-m", "inference_server", "--entry_script", str(script), "--model_dir", str(model_dir),
               "--port", str(port)]
    server = Server(tree.name, command, work / f"{tree.name}-{port}.log", env=env, cwd=script.parent)
    try:
        base = f"http://127.0.0.1:{port}"
        answering(server, base, f"the server of {tree} on port {port}")
        answer = check_answer(base + "/score", body)
        lua = lua_script(body, work, args.smoke)
        run_wrk(args.wrk, base + "/score", lua, args.warmup, args.connections, 1)
        before = group_cpu_s(server.process.pid)
        result = run_wrk(args.wrk, base + "/score", lua, args.duration, args.connections, 1)
        spent = group_cpu_s(server.process.pid) - before
        requests = result["requests"] or result["requests_per_s"] * args.duration
        return {"requests_per_s": result["requests_per_s"], "cpu_us_per_request": spent / requests * 1e6,
                "answer": answer}
    finally:
        server.stop()


def compare(name: str, trees: dict[str, Path], case: tuple, work: Path, args) -> dict:
    script, model_dir, env_extra = case
    body = (REPO / "samples" / "sklearn-regression" / "sample-request.json").read_bytes()
    runs: dict[str, list[dict]] = {label: [] for label in trees}
    for round_number in range(args.rounds):
        order = list(trees) if round_number % 2 == 0 else list(reversed(trees))
        for label in order:
            runs[label].append(measure(trees[label], script, model_dir, env_extra, body, work, args))
    answers = {label: {r["answer"] for r in results} for label, results in runs.items()}
    if len({frozenset(a) for a in answers.values()}) != 1:
        raise BenchmarkError(f"{name}: the two servers answer differently: {answers}")
    summary = {label: {"median_cpu_us_per_request": statistics.median(r["cpu_us_per_request"] for r in results),
                       "best_requests_per_s": max(r["requests_per_s"] for r in results),
                       "runs": [{k: v for k, v in r.items() if k != "answer"} for r in results]}
               for label, results in runs.items()}
    this, other = (summary[label]["median_cpu_us_per_request"] for label in trees)
    summary["cpu_ratio"] = this / other
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", default="HEAD", help="the git revision to compare with (default HEAD)")
    parser.add_argument("--scripts", default="echo,sklearn", help="comma-separated: echo, sklearn")
    parser.add_argument("--rounds", type=int, default=6, help="runs of each server, in turns (default 6)")
    parser.add_argument("--duration", type=float, default=5, help="seconds of measured load per run (default 5)")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of load before measuring (default 2)")
    parser.add_argument("--connections", type=int, default=8, help="concurrent connections (default 8)")
    parser.add_argument("--check", action="store_true", help="exit 1 when the target is missed")
    args = parse_with_smoke(parser, rounds=1, duration=1, warmup=1, scripts="echo")
    args.wrk = find_wrk()
    with tempfile.TemporaryDirectory(prefix="devtui-compare-") as temporary, Checkout(args.against) as other:
        work = Path(temporary)
        cases = scenarios(work)
        labels = {"this checkout": REPO, args.against: other}
        results = {}
        for name in args.scripts.split(","):
            if name not in cases:
                raise BenchmarkError(f"unknown script {name!r}: echo or sklearn")
            results[name] = compare(name, labels, cases[name], work, args)
    met = True
    print(f"The scoring server of this checkout against {args.against} ({args.rounds} rounds, in turns):")
    for name, summary in results.items():
        for label in labels:
            print(f"  {name:8} {label:14} CPU {summary[label]['median_cpu_us_per_request']:6.0f} us/request (median)  "
                  f"{summary[label]['best_requests_per_s']:7.0f} requests/s (best)")
        ratio = summary["cpu_ratio"]
        met = met and ratio <= WITHIN
        print(f"{name}: this checkout's CPU per request = {ratio:.2f}x {args.against}'s")
    print(f"target (at most {WITHIN:.2f}x): {targets_line(met, args.smoke)}")
    print(write_results("compare", {"against": args.against, "results": results}, smoke=args.smoke))
    return 1 if args.check and not met else 0


if __name__ == "__main__":
    run_main(main)
