"""What request traces cost: the same deployment by `devtui up --detach`, traces off and on, in one run.

    .venv/bin/python benchmarks/traces.py [--duration 6] [--connections 8] [--rounds 2]
    .venv/bin/python benchmarks/traces.py --smoke   # 1 s of load per server, one round, no targets

Cases (each a deployment in a temporary folder, its own DEVTUI_HOME):
  echo     benchmarks/echo/score.py: run(raw) returns json.loads(raw), so the server is all there is
  sklearn  samples/sklearn-regression
  flow     samples/flow-basic: three python nodes, no model call (a python-only flow)
each with max_concurrent_requests_per_instance set to --connections, so no load is refused (429).
Each is started twice, `devtui up --detach` and `devtui up --detach --traces`, one at a time, the
order alternating between rounds; each is driven by wrk with the case's sample request:
  throughput  wrk -t1 -c<connections> -d<duration>s   requests/s
  latency     wrk -t1 -c1 -d<duration>s --latency     the 99th percentile of one request at a time
after a short warm-up that is not counted. The best round of each is reported (load from others on
the machine only ever slows a run down).

Targets (issue 23): traces on cost at most 5% of the throughput and add at most 1 ms at p99, for
echo and sklearn. For a flow the price is prompt flow's own span making, said, not a target.
Results also go to benchmarks/results/traces.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from _common import HERE, REPO, SKLEARN_SAMPLE, VENV_BIN, BenchmarkError, free_port, parse_with_smoke, \
    run_main, targets_line, write_results
from throughput import check_answer, find_wrk, lua_script, run_wrk

FLOW_SAMPLE = REPO / "samples" / "flow-basic"
CASES = ("echo", "sklearn", "flow")
TARGET_SHARE = 0.05  # of the throughput, at most
TARGET_P99_MS = 1.0  # added at p99, at most
MODES = ("off", "on")


def deployment(case: str, work: Path, connections: int) -> tuple[Path, bytes]:
    """The case's deployment folder, made in ``work``, and its request body."""
    settings = f"request_settings:\n  max_concurrent_requests_per_instance: {connections}\n"
    folder = work / case
    if case == "echo":
        folder.mkdir()
        (folder / "deployment.yml").write_text(
            f"name: blue\nendpoint_name: bench-echo\ncode_configuration:\n  code: {HERE / 'echo'}\n"
            f"  scoring_script: score.py\nenvironment:\n  image: python:3.11-slim\n{settings}")
        return folder, (SKLEARN_SAMPLE / "sample-request.json").read_bytes()
    sample = SKLEARN_SAMPLE if case == "sklearn" else FLOW_SAMPLE
    shutil.copytree(sample, folder, ignore=shutil.ignore_patterns("__pycache__", ".promptflow"))
    text = re.sub(r"request_settings:\n(  .*\n)+", "", (folder / "deployment.yml").read_text())
    (folder / "deployment.yml").write_text(text.rstrip("\n") + "\n" + settings)
    return folder, (sample / "sample-request.json").read_bytes()


class Up:
    """`devtui up --detach` of ``folder`` (with --traces when ``traces``), stopped by `devtui down`."""

    def __init__(self, folder: Path, name: str, traces: bool, work: Path):
        self.name, self.env = name, {**os.environ, "DEVTUI_HOME": str(work / "devtui-home")}
        command = [str(VENV_BIN / "devtui"), "up", str(folder), "--detach", "--port", str(free_port()), "-n", name]
        up = subprocess.run(command + (["--traces"] if traces else []), env=self.env, capture_output=True,
                            text=True, timeout=300)
        if up.returncode != 0:
            raise BenchmarkError(f"devtui up failed:\n{up.stdout}{up.stderr}")
        self.url = json.loads(up.stdout)["scoring_uri"]

    def stop(self) -> None:
        subprocess.run([str(VENV_BIN / "devtui"), "down", "-n", self.name], env=self.env, capture_output=True,
                       timeout=120)


def measure(wrk: str, case: str, mode: str, folder: Path, lua: Path, body: bytes, work: Path, args) -> dict:
    server = Up(folder, f"bench-traces-{case}-{mode}", mode == "on", work)
    try:
        check_answer(server.url, body)
        if args.warmup:
            run_wrk(wrk, server.url, lua, args.warmup, args.connections, args.threads)
        throughput = run_wrk(wrk, server.url, lua, args.duration, args.connections, args.threads)
        latency = run_wrk(wrk, server.url, lua, args.duration, 1, 1)
    finally:
        server.stop()
    errors = sum(r["non_2xx"] + sum(r["socket_errors"].values()) for r in (throughput, latency))
    return {"requests_per_s": throughput["requests_per_s"], "p99_ms": latency.get("p99_ms", float("nan")),
            "p50_ms": latency.get("p50_ms", float("nan")), "errors": errors}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=6, help="seconds of measured load per run (default 6)")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of load before measuring (default 2)")
    parser.add_argument("--connections", type=int, default=8, help="concurrent connections (default 8)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds, the order alternating; the best is kept")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated: {', '.join(CASES)}")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parse_with_smoke(parser, duration=1.0, warmup=0.0, rounds=1)
    wanted = [c.strip() for c in args.cases.split(",") if c.strip()]
    if not set(wanted) <= set(CASES):
        parser.error(f"--cases takes {', '.join(CASES)}")
    wrk = find_wrk()
    work = Path(tempfile.mkdtemp(prefix="devtui-bench-traces-"))
    runs: dict = {case: {mode: [] for mode in MODES} for case in wanted}
    try:
        for case in wanted:
            folder, body = deployment(case, work, args.connections)
            lua = lua_script(body, work / case, args.smoke)
            for round_ in range(args.rounds):
                for mode in MODES if round_ % 2 == 0 else MODES[::-1]:
                    result = measure(wrk, case, mode, folder, lua, body, work, args)
                    runs[case][mode].append(result)
                    print(f"  {case:<8}traces {mode:<4}round {round_ + 1}: {result['requests_per_s']:9.1f} req/s  "
                          f"one at a time: p50 {result['p50_ms']:6.2f} ms  p99 {result['p99_ms']:6.2f} ms"
                          + (f"  ({result['errors']} errors)" if result["errors"] else ""), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report(wanted, runs, args)


def report(wanted: list[str], runs: dict, args) -> int:
    print(f"\n{'case':<9}{'traces':<8}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
    table: dict = {}
    for case in wanted:
        table[case] = {}
        for mode in MODES:
            best = {"requests_per_s": max(r["requests_per_s"] for r in runs[case][mode]),
                    "p50_ms": min(r["p50_ms"] for r in runs[case][mode]),
                    "p99_ms": min(r["p99_ms"] for r in runs[case][mode]),
                    "errors": sum(r["errors"] for r in runs[case][mode]), "rounds": runs[case][mode]}
            table[case][mode] = best
            print(f"{case:<9}{mode:<8}{best['requests_per_s']:>10.1f}{best['p50_ms']:>10.2f}{best['p99_ms']:>10.2f}"
                  f"{best['errors']:>8}")
    parts, met, costs = [], True, {}
    for case in wanted:
        off, on = table[case]["off"], table[case]["on"]
        share = 1 - on["requests_per_s"] / off["requests_per_s"]
        added = on["p99_ms"] - off["p99_ms"]
        costs[case] = {"throughput_share": round(share, 3), "p99_added_ms": round(added, 2)}
        if case == "flow":  # prompt flow's own span making: said, not a target
            parts.append(f"flow {share:.0%} of throughput, {added:+.2f} ms at p99 (the price, not a target)")
            continue
        met = met and share <= TARGET_SHARE and added <= TARGET_P99_MS and off["errors"] + on["errors"] == 0
        parts.append(f"{case} {share:.0%} of throughput (target <= {TARGET_SHARE:.0%}), {added:+.2f} ms at p99 "
                     f"(target <= {TARGET_P99_MS:g} ms)")
    line = "traces: " + ", ".join(parts) + f": {targets_line(met, args.smoke)}"
    print("\n" + line)
    print(write_results("traces", {
        "load": {"tool": "wrk", "connections": args.connections, "threads": args.threads, "duration_s": args.duration,
                 "warmup_s": args.warmup, "rounds": args.rounds},
        "results": table, "costs": costs, "targets": {"throughput_share": TARGET_SHARE, "p99_added_ms": TARGET_P99_MS},
        "targets_met": met, "summary": line}, args.smoke))
    return 1 if args.check and not met else 0


if __name__ == "__main__":
    run_main(main)
