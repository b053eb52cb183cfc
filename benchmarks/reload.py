"""Hot reload latency: from saving score.py to the first answer that comes from the new code.

    .venv/bin/python benchmarks/reload.py [--case sklearn|heavy|flow] [--saves 20] [--tools devtui,devtui-swap,uvicorn,cold]
    .venv/bin/python benchmarks/reload.py --smoke [--case ...]   # one save per tool, no targets: does it still run?

Cases: sklearn, a copy of samples/sklearn-regression; heavy, the same with a random forest of a few
hundred MB as its model (benchmarks/heavy/make_model.py makes it on first use; init() takes
seconds) and benchmarks/heavy/score.py; flow, a copy of samples/flow-basic whose node repeat.py is
saved (benchmarks/flow_case.py), with its own tools. For each tool in turn:
  devtui       `devtui up --detach --port 0` (its own DEVTUI_HOME): each save changes run() only, so
               it is patched in place (rung 0)
  devtui-swap  the same with `--reload swap`: each save starts a new worker that runs init()
  uvicorn      `python -m uvicorn wrapper:app --app-dir benchmarks --reload --reload-dir <code folder>`
               (benchmarks/wrapper.py: importlib, init() at startup, POST /score calls run(body))
  cold         the scoring server started from nothing to its first answer, 3 times (--cold-starts): a restart
and then, save after save: rewrite score.py so that run() answers {"save": N, "predictions": [...]}
the way editors save (a temporary file, then a rename), and POST /score in a tight loop on one
keep-alive connection until the answer carries N. Latency = time of that answer - time of the write.
Each save waits for the previous one's answer, plus a short think time (--gap). The first three
saves after start are listed on their own (the warm parent is still learning then).

The flow case's tools: devtui (`devtui up` on the copy; a flow is not patched, so every save is a
worker swap that builds prompt flow's serving app afresh) and pf-restart (prompt flow's own serving
app, stopped and started again for each save, as a user of `pf flow serve` does: it has no reload).
Flow targets (issue 10): devtui median <= 300 ms and >= 10x faster than pf-restart.

Targets (issue 9): patch median within 10 ms of the watcher's debounce, whatever the model; swap
p90 <= 100 ms on sklearn; the first swap after up <= 2x the median swap; >= 10x uvicorn --reload.
Results go to benchmarks/results/reload-<case>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import httpx

import flow_case
from _common import (run_main, HERE, SKLEARN_SAMPLE, VENV_BIN, BenchmarkError, Server, free_port, model_dir_for,
                     parse_with_smoke, summary_stats, wait_until, write_results)
from reload_report import report

ENDPOINT = "my-endpoint"  # samples/sklearn-regression/endpoint.yml
# The sample's last line, which the benchmark rewrites to carry the save number.
RETURN_LINE = "    return [round(float(p), digits) for p in predictions]\n"


def script_text(template: str, save: int) -> str:
    return template.replace(
        RETURN_LINE,
        f'    return {{"save": {save}, "predictions": [round(float(p), digits) for p in predictions]}}\n')


@dataclass(frozen=True)
class Case:
    """What a --case deploys and saves, and how an answer tells which save it reflects."""

    name: str
    endpoint: str  # the endpoint's name in the sample's endpoint.yml, as `devtui list` and `down` know it
    edited: str  # the file each save rewrites, relative to the deployment folder
    template: str  # that file's text; text(template, N) is save N's (save 0 is written before start)
    text: Callable[[str, int], str]
    body: bytes  # what is POSTed to /score
    saved: Callable[[object], int | None]  # an answer's JSON -> the save it reflects
    make: Callable[[Path], None]  # a copy of the sample in a new folder

    def save_text(self, save: int) -> str:
        return self.text(self.template, save)


def save_like_an_editor(path: Path, text: str) -> tuple[float, float]:
    """Write a temporary file next to ``path`` and rename it over ``path``.
    Returns (perf_counter, wall clock) taken just before the write started."""
    started, wall = time.perf_counter(), time.time()
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(temporary, stat.S_IMODE(path.stat().st_mode))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return started, wall


def saved_in_answer(data) -> int | None:
    """sklearn and heavy: run() answers {"save": N, "predictions": [...]}."""
    return data.get("save") if isinstance(data, dict) else None


def answer_save(client: httpx.Client, url: str, body: bytes, saved=saved_in_answer) -> int | None:
    """The save number the server answers with, or None when it does not answer (yet)."""
    try:
        response = client.post(url, content=body, headers={"content-type": "application/json"})
    except httpx.TransportError:
        time.sleep(0.001)  # not listening (restarting) or the connection was closed: try again
        return None
    if response.status_code != 200:
        return None
    try:
        data = response.json()
    except ValueError:
        return None
    return saved(data)


def measure(tool: str, url: str, edited: Path, case: Case, args, check_alive,
            after_write: Callable[[], dict] | None = None) -> list[dict]:
    """Save ``args.warmup + args.saves`` times; one record per save (warm-up saves are marked).
    ``after_write`` runs right after each write (a restart), inside the clock; what it returns is
    added to the save's record."""
    records = []
    with httpx.Client(timeout=10.0, limits=httpx.Limits(max_keepalive_connections=1, max_connections=1)) as client:
        # The server answers with save 0 (written before it started) before we change anything.
        wait_until(lambda: answer_save(client, url, case.body, case.saved) == 0, 60, f"{tool} to answer with save 0",
                   interval=0.005, alive=check_alive)
        for n in range(1, args.warmup + args.saves + 1):
            warmup = n <= args.warmup
            started, wall = save_like_an_editor(edited, case.save_text(n))
            extra = after_write() if after_write is not None else {}
            deadline = started + args.timeout
            polls = old = 0
            latency = None
            while True:
                seen = answer_save(client, url, case.body, case.saved)
                now = time.perf_counter()
                polls += 1
                if seen == n:
                    latency = (now - started) * 1000
                    break
                if seen is not None:
                    old += 1
                if now > deadline:
                    check_alive()
                    break
                if args.poll_interval:
                    time.sleep(args.poll_interval)
            records.append({"save": n, "warmup": warmup, "written_at": wall, "latency_ms": latency,
                            "polls": polls, "old_answers": old, **extra})
            status = f"{latency:8.1f} ms" if latency is not None else f" MISSED: no new answer in {args.timeout:.0f} s"
            print(f"  {tool:<8} save {n:3d}: {status}  ({polls} polls, {old} answered by the old code"
                  + "".join(f", {key} {value}" for key, value in extra.items()) + ")"
                  + ("  [warm-up, not counted]" if warmup else ""), flush=True)
            if args.gap:
                time.sleep(args.gap)  # think time between saves, not synchronisation
    return records


def server_environment() -> dict:
    """This environment, minus PYTHONDONTWRITEBYTECODE: on a developer's machine Python caches
    bytecode in __pycache__, and a reload must still pick up every save."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


# -- devtui --------------------------------------------------------------------------------------


def devtui(args, work: Path, case: Case, label: str = "devtui",
           extra: tuple[str, ...] = (), home: Path | None = None) -> tuple[list[dict], dict]:
    """``home``: a DEVTUI_HOME to reuse, so a second up of the deployment finds what the first learned."""
    deployment = work / f"{label}-deployment"
    if not deployment.exists():
        case.make(deployment)
    edited = deployment / case.edited
    edited.write_text(case.save_text(0))
    home = home or work / f"{label}-home"
    env = {**server_environment(), "DEVTUI_HOME": str(home)}
    devtui_bin = str(VENV_BIN / "devtui")
    up_done = False
    try:
        print(f"{label}: up --detach {deployment} {' '.join(extra)}", flush=True)
        up = subprocess.run([devtui_bin, "up", str(deployment), "--detach", "--port", "0", *extra], env=env,
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
        up_done = True
        if up.returncode != 0:
            raise BenchmarkError(f"devtui up exited with code {up.returncode}:\n{up.stdout}\n{up.stderr}")
        shown = json.loads(up.stdout)
        url = shown["scoring_uri"]

        def check_alive():
            listed = subprocess.run([devtui_bin, "list", "-o", "json"], env=env, capture_output=True, text=True)
            if listed.returncode != 0 or not any(r["name"] == case.endpoint for r in json.loads(listed.stdout or "[]")):
                log = home / "endpoints" / case.endpoint / "logs" / "inference-server.log"
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:]) if log.exists() else ""
                raise BenchmarkError(f"the devtui endpoint is no longer running; last server log lines:\n{tail}")

        records = measure(label, url, edited, case, args, check_alive)
    finally:
        _devtui_down(devtui_bin, env, home, case.endpoint, waited_for_up=up_done)
    breakdown = _devtui_breakdown(home / "endpoints" / case.endpoint / "logs" / "inference-server.log", records)
    return records, breakdown


def _devtui_down(devtui_bin: str, env: dict, home: Path, endpoint: str, waited_for_up: bool) -> None:
    """`devtui down`, and make sure: an interrupted `up` may claim the endpoint a moment later."""
    deadline = time.monotonic() + (2 if waited_for_up else 15)
    while True:
        down = subprocess.run([devtui_bin, "down", "-n", endpoint], env=env, capture_output=True, text=True)
        if down.returncode == 0:
            print(f"devtui: {down.stdout.strip()}", flush=True)
        listed = subprocess.run([devtui_bin, "list", "-o", "json"], env=env, capture_output=True, text=True)
        alive = listed.returncode == 0 and json.loads(listed.stdout or "[]")
        if down.returncode == 0 and not alive:
            return
        if time.monotonic() > deadline:
            if alive:
                print(f"warning: devtui endpoint still listed after down: {listed.stdout}", file=sys.stderr)
            return
        time.sleep(0.1)


LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) \S \[\d+\] \S+ - (.*)$")


def _devtui_breakdown(log: Path, records: list[dict]) -> dict:
    """Where a save's time goes, from the server's log (timestamps in UTC, millisecond precision):
    write -> supervisor starts the new worker (watcher + debounce + SIGHUP), worker start -> ready
    (fork, import, init), ready -> first new answer (switch-over as the client sees it)."""
    if not log.exists():
        return {}
    starts, readies, patches = [], {}, []
    for line in log.read_text(errors="replace").splitlines():
        match = LOG_LINE.match(line)
        if not match:
            continue
        stamp = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
        stamp += int(match[2]) / 1000
        message = match[3]
        if m := re.match(r"Starting worker \d+ for revision (\d+)", message):
            starts.append((stamp, int(m[1])))
        elif m := re.match(r"Revision (\d+) ready in ([\d.]+) ms", message):
            readies[int(m[1])] = (stamp, float(m[2]))
        elif m := re.match(r"Patched .* in place in ([\d.]+) ms", message):
            patches.append(float(m[1]))
    watch, swap, switch = [], [], []
    for record in records:
        if record["latency_ms"] is None or record["warmup"]:
            continue
        written = record["written_at"]
        start = next(((t, rev) for t, rev in starts if t >= written - 0.001), None)
        if start is None or start[1] not in readies:
            continue
        ready_at, ready_ms = readies[start[1]]
        answered = written + record["latency_ms"] / 1000
        watch.append((start[0] - written) * 1000)
        swap.append(ready_ms)
        switch.append((answered - ready_at) * 1000)
        record.update(revision=start[1], watch_ms=round(watch[-1], 1), worker_ready_ms=ready_ms,
                      switch_ms=round(switch[-1], 1))
    if not watch:
        return {"patch_itself_ms": summary_stats(patches)} if patches else {}
    return {"write_to_worker_start_ms": summary_stats(watch), "worker_start_to_ready_ms": summary_stats(swap),
            "ready_to_first_new_answer_ms": summary_stats(switch),
            "note": "log timestamps have 1 ms resolution; the first and last columns carry that error"}


# -- the samples -----------------------------------------------------------------------------------


def make_sample(heavy: bool, folder: Path, small: bool = False) -> None:
    """A copy of samples/sklearn-regression; ``heavy``: with a random forest of a few hundred MB as
    its model (init() takes seconds) and benchmarks/heavy/score.py as its script. ``small``: a
    forest of two trees, made in the copy, for a smoke run (the large one takes minutes to make)."""
    shutil.copytree(SKLEARN_SAMPLE, folder, symlinks=True)
    if heavy:
        from heavy.make_model import make

        target = folder / "model" / "forest.joblib"
        if small:
            make(trees=2, model=target)
            return
        model = make()
        try:
            os.link(model, target)
        except OSError:
            shutil.copy2(model, target)


def case_for(name: str, small: bool = False) -> Case:
    if name == "flow":
        sample = flow_case.FLOW_SAMPLE
        return Case(name, flow_case.ENDPOINT, flow_case.EDITED, (sample / flow_case.EDITED).read_text(),
                    flow_case.node_text, (sample / "sample-request.json").read_bytes(), flow_case.saved,
                    flow_case.make_copy)
    source = HERE / "heavy" / "score.py" if name == "heavy" else SKLEARN_SAMPLE / "onlinescoring" / "score.py"
    return Case(name, ENDPOINT, "onlinescoring/score.py", source.read_text(), script_text,
                (SKLEARN_SAMPLE / "sample-request.json").read_bytes(), saved_in_answer,
                lambda folder: make_sample(name == "heavy", folder, small))


def cold_restarts(work: Path, case: Case, count: int) -> list[float]:
    """The scoring server started from nothing to its first answer: what a restart costs."""
    folder = work / "cold-deployment"
    case.make(folder)
    code = folder / "onlinescoring"
    (folder / case.edited).write_text(case.save_text(0))
    env = {**server_environment(), "AZUREML_MODEL_DIR": str(model_dir_for(folder, work / "cold-models")),
           "LOG_LEVEL": "INFO", "PREDICTION_ROUND_DIGITS": "2"}
    times = []
    for n in range(count):
        port = free_port()
        started = time.perf_counter()
        server = Server("cold", [sys.executable, "-m", "inference_server", "--entry_script", "score.py", "--port",
                                 str(port)], work / f"cold-{n}.log", env=env, cwd=code)
        try:
            with httpx.Client(timeout=10.0) as client:
                wait_until(lambda: answer_save(client, f"http://127.0.0.1:{port}/score", case.body) == 0, 120,
                           "the cold server's first answer", interval=0.005, alive=server.check_alive)
            times.append((time.perf_counter() - started) * 1000)
            print(f"  cold     start {n + 1}: {times[-1]:8.1f} ms", flush=True)
        finally:
            server.stop()
    return times


# -- uvicorn --reload ----------------------------------------------------------------------------


def uvicorn_reload(args, work: Path, case: Case) -> list[dict]:
    deployment = work / "uvicorn-deployment"
    case.make(deployment)
    code = deployment / "onlinescoring"
    score_py = deployment / case.edited
    score_py.write_text(case.save_text(0))
    port = free_port()
    env = {**server_environment(), "AZUREML_MODEL_DIR": str(model_dir_for(deployment, work / "uvicorn-models")),
           "AML_APP_ROOT": str(code), "AZUREML_ENTRY_SCRIPT": "score.py", "BENCH_ENTRY_SCRIPT": str(score_py),
           # The deployment's environment_variables, as devtui sets them.
           "LOG_LEVEL": "INFO", "PREDICTION_ROUND_DIGITS": "2"}
    command = [sys.executable, "-m", "uvicorn", "wrapper:app", "--app-dir", str(HERE), "--reload",
               "--reload-dir", str(code), "--host", "127.0.0.1", "--port", str(port)]
    print(f"uvicorn: {' '.join(command[1:])}", flush=True)
    server = Server("uvicorn --reload", command, work / "uvicorn.log", env=env, cwd=code)
    try:
        return measure("uvicorn", f"http://127.0.0.1:{port}/score", score_py, case, args, server.check_alive)
    finally:
        server.stop()
        print("uvicorn: stopped (reloader and worker)", flush=True)


# -- prompt flow's app, restarted -------------------------------------------------------------------


def pf_restart(args, work: Path, case: Case) -> list[dict]:
    """Prompt flow's serving app stopped and started again in a new process after every save."""
    deployment = work / "pf-restart-deployment"
    case.make(deployment)
    edited = deployment / case.edited
    edited.write_text(case.save_text(0))
    port = free_port()
    app = flow_case.RestartedApp(deployment, work, port)
    print(f"pf-restart: {' '.join(app.command[1:])}, again after every save", flush=True)
    app.start()
    try:
        return measure("pf-restart", f"http://127.0.0.1:{port}/score", edited, case, args, app.check_alive,
                       after_write=app.restart)
    finally:
        app.stop()
        print("pf-restart: stopped", flush=True)


# -- the command line ----------------------------------------------------------------------------


TOOLS = ("devtui", "devtui-swap", "uvicorn", "cold")
FLOW_TOOLS = ("devtui", "pf-restart")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", choices=["sklearn", "heavy", "flow"], default="sklearn",
                        help="sklearn: the sample; heavy: a random forest of a few hundred MB (init() takes seconds); "
                             "flow: samples/flow-basic, a node saved")
    parser.add_argument("--saves", type=int, default=20, help="saves per tool (default 20)")
    parser.add_argument("--warmup", type=int, default=0,
                        help="saves before the measured ones, not counted (default 0: the first saves after up "
                             "are listed on their own)")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds to wait for one save's new answer before counting it as missed (default 30)")
    parser.add_argument("--poll-interval", type=float, default=0.0,
                        help="seconds between polls (default 0: a tight loop)")
    parser.add_argument("--gap", type=float, default=0.2,
                        help="think time in seconds after each new answer, before the next save (default 0.2)")
    parser.add_argument("--cold-starts", type=int, default=3, help="starts of the cold tool (default 3)")
    parser.add_argument("--tools", help=f"comma-separated, of: {', '.join(TOOLS)} (default: all); "
                                        f"with --case flow: {', '.join(FLOW_TOOLS)} (default: both)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, copies)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parse_with_smoke(parser, saves=1, warmup=0, gap=0.0, cold_starts=1)
    known = FLOW_TOOLS if args.case == "flow" else TOOLS
    args.tool_list = [t.strip() for t in (args.tools or ",".join(known)).split(",") if t.strip()]
    if not set(args.tool_list) <= set(known):
        parser.error(f"--tools takes {', '.join(known)}" + (" with --case flow" if args.case == "flow" else ""))
    return args


def run_flow_tools(args, work: Path, case: Case) -> dict:
    tools: dict = {}
    for tool in args.tool_list:
        if tool == "devtui":
            # A flow is never patched in place: every save is a worker swap that builds the app afresh.
            records, breakdown = devtui(args, work, case)
            tools["devtui (flow swap)"] = {"records": records, "breakdown": breakdown}
        else:
            tools["prompt flow restart"] = {"records": pf_restart(args, work, case)}
    return tools


def run_tools(args, work: Path, case: Case) -> dict:
    if case.name == "flow":
        return run_flow_tools(args, work, case)
    tools: dict = {}
    for tool in args.tool_list:
        if tool == "devtui":
            records, breakdown = devtui(args, work, case)
            tools["devtui (patch)"] = {"records": records, "breakdown": breakdown}
        elif tool == "devtui-swap":
            home = work / "devtui-swap-home"
            records, breakdown = devtui(args, work, case, "devtui-swap", ("--reload", "swap"), home)
            tools["swap, first up ever"] = {"records": records, "breakdown": breakdown}
            # The same deployment again: the warm parent starts from what the first up learned.
            records, breakdown = devtui(args, work, case, "devtui-swap", ("--reload", "swap"), home)
            tools["devtui --reload swap"] = {"records": records, "breakdown": breakdown}
        elif tool == "uvicorn":
            tools["uvicorn --reload"] = {"records": uvicorn_reload(args, work, case)}
        else:
            times = cold_restarts(work, case, args.cold_starts)
            tools["cold restart"] = {"records": [{"save": n + 1, "warmup": False, "latency_ms": t}
                                                 for n, t in enumerate(times)]}
    return tools


def main() -> int:
    args = parse_args()
    case = case_for(args.case, small=args.smoke)
    if case.save_text(1) == case.template:
        raise BenchmarkError(f"{case.edited} no longer has the line a save rewrites; update RETURN_LINE "
                             f"({'benchmarks/flow_case.py' if case.name == 'flow' else 'benchmarks/reload.py'})")
    work = Path(tempfile.mkdtemp(prefix="devtui-bench-reload-"))
    results: dict = {"case": args.case, "saves": args.saves, "warmup_saves": args.warmup, "gap_s": args.gap,
                     "poll_interval_s": args.poll_interval, "load_average": {"start": os.getloadavg()}}
    try:
        results["tools"] = run_tools(args, work, case)
    finally:
        # Other work on the machine slows every tool; the figures are only comparable with this beside them.
        results["load_average"]["end"] = os.getloadavg()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    met = report(results, args.smoke)
    print(write_results(f"reload-{args.case}", results, args.smoke))
    return 1 if args.check and not met else 0


if __name__ == "__main__":
    run_main(main)
