"""Container runtime: `up --detach` to Succeeded with the image built, and save-to-new-answer
reload latency through the sync into the container plus the worker swap.

On a temporary copy of samples/sklearn-regression, with its own DEVTUI_HOME:
1. the first `up --runtime container --detach` (with --cold, after removing devtui's
   images, server layers too, so it includes the image build: wheels come from the host's pip cache);
2. `--starts` more `up`/`down` cycles with the image built: the time to `Succeeded`;
3. with it up, `--saves` saves of score.py written like an editor, each followed by POST /score
   in a tight loop until the answer carries the save's number.

Targets (issue: container runtime): start <= 3 s (the cloud CLI's local mode waits 15 s by design),
median reload <= 300 ms. Needs a Docker engine and the python:3.11-slim image.

`--smoke`: one start and one save, no targets, no results file: does it still run end to end?
`--name` runs the endpoint under another name than the sample's, so that it touches no endpoint of
that name already running on the engine (the tests give a name unique to their run).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from _common import SKLEARN_SAMPLE, VENV_BIN, parse_with_smoke, run_main, summary_stats, targets_line, write_results
from reload import ENDPOINT, case_for, measure, script_text

TARGET_START_S = 3.0
TARGET_RELOAD_MS = 300


def devtui(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "DEVTUI_HOME": str(home)}
    result = subprocess.run([str(VENV_BIN / "devtui"), *args], capture_output=True, text=True, env=env, timeout=900)
    if check and result.returncode != 0:
        raise SystemExit(f"devtui {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


def timed_up(home: Path, deployment: Path, name: str) -> tuple[float, dict]:
    started = time.perf_counter()
    result = devtui(home, "up", str(deployment), "--runtime", "container", "--detach", "-n", name)
    return time.perf_counter() - started, json.loads(result.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--saves", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--starts", type=int, default=3, help="warm up/down cycles to time (default 3)")
    parser.add_argument("--gap", type=float, default=0.2)
    parser.add_argument("--timeout", type=float, default=10)
    parser.add_argument("--poll-interval", type=float, default=0.0)
    parser.add_argument("--cold", action="store_true", help="remove devtui's images (server layers too) first")
    parser.add_argument("--name", default=ENDPOINT, help=f"the endpoint's name (default {ENDPOINT}, the sample's)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parse_with_smoke(parser, saves=1, warmup=0, starts=1, gap=0.0)

    import docker

    client = docker.from_env()
    if args.cold:
        built = [image for role in ("image", "server-layer")
                 for image in client.images.list(filters={"label": f"devtui={role}"})]
        # Deepest first: the engine refuses to remove an image another is built on (a server layer).
        for image in sorted(built, key=lambda image: len(image.history()), reverse=True):
            client.images.remove(image.id, force=True)
    with tempfile.TemporaryDirectory(prefix="devtui-bench-container-") as folder:
        work = Path(folder)
        home = work / "home"
        deployment = work / "deployment"
        shutil.copytree(SKLEARN_SAMPLE, deployment)
        case = case_for("sklearn")
        score_py = deployment / case.edited
        score_py.write_text(script_text(score_py.read_text(), 0))
        try:
            first, _ = timed_up(home, deployment, args.name)
            print(f"first up (image {'built' if args.cold else 'build if needed'}): {first:.2f} s", flush=True)
            devtui(home, "down", "-n", args.name)
            starts = []
            for n in range(args.starts):
                seconds, shown = timed_up(home, deployment, args.name)
                starts.append(seconds)
                print(f"  up --detach to Succeeded, image built: {seconds:.2f} s", flush=True)
                if n < args.starts - 1:
                    devtui(home, "down", "-n", args.name)
            url = shown["scoring_uri"]

            def alive() -> None:
                state = json.loads(devtui(home, "show", "-n", args.name).stdout)["provisioning_state"]
                if state != "Succeeded":
                    raise SystemExit(f"the endpoint is {state}")

            records = measure("devtui", url, score_py, case, args, alive)
        finally:
            devtui(home, "down", "--all", check=False)
    measured = [r["latency_ms"] for r in records if not r["warmup"] and r["latency_ms"] is not None]
    missed = sum(1 for r in records if not r["warmup"] and r["latency_ms"] is None)
    start = summary_stats(starts)
    reload_stats = summary_stats(measured)
    met = start["median"] <= TARGET_START_S and reload_stats["median"] <= TARGET_RELOAD_MS and not missed
    print(f"\ncontainer: up to Succeeded median {start['median']:.2f} s (target <= {TARGET_START_S:.0f} s), "
          f"reload median {reload_stats['median']:.0f} ms p90 {reload_stats['p90']:.0f} ms "
          f"(target <= {TARGET_RELOAD_MS} ms), {missed} missed, first up {first:.1f} s"
          f"{' with a cold build' if args.cold else ''}: {targets_line(met, args.smoke)}")
    print(write_results("container", {"first_up_s": first, "cold": args.cold, "starts_s": starts, "start": start,
                                      "reload": reload_stats, "missed": missed, "records": records}, args.smoke))
    return 1 if args.check and not met else 0


if __name__ == "__main__":
    run_main(main)
