"""The commands that act on a running endpoint, from any shell: ``show``, ``list``, ``invoke``,
``logs``, ``traces``, ``down``; and ``validate``, which checks a deployment without running it. They find
endpoints in the registry, and by container labels when a Docker engine answers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

from .. import orphans, registry, traces
from ..logs import follow, tail
from ..record import DeploymentRecord, EndpointRecord
from .errors import BAD_INPUT, CommandError, warn

# -- finding endpoints ---------------------------------------------------------------------------


def _docker(timeout: float = 5, deployment: DeploymentRecord | None = None):
    """A Docker client when an engine answers quickly, else None (the process runtime needs none):
    the engine a deployment's record names (it may have run with --context), else the environment's."""
    from ..runtimes import RuntimeFailure
    from ..runtimes.container.docker_context import EngineAddress
    from ..runtimes.container.docker_engine import connect

    try:
        if deployment is not None and deployment.docker_context:
            return connect(timeout, context=deployment.docker_context)
        if deployment is not None and deployment.docker_host:
            return connect(timeout, address=EngineAddress(deployment.docker_host, "record"))
        return connect(timeout)
    except RuntimeFailure:
        return None


def _records() -> list[EndpointRecord]:
    """Running endpoints: the registry's, plus any found only by container labels."""
    records = registry.running()
    client = _docker()
    if client is not None:
        from ..runtimes.container.docker_engine import endpoints_from_labels

        known = {r.name for r in records}
        records += [r for r in endpoints_from_labels(client) if r.name not in known]
    return records


def _pick(name: str | None) -> EndpointRecord:
    if name:
        record = registry.read(name) or next((r for r in _records() if r.name == name), None)
        if record is None:
            raise CommandError(f"no local endpoint named {name!r} is running; `devtui list` shows those that are")
        return record
    records = _records()
    if not records:
        raise CommandError("no local endpoint is running; start one with `devtui up PATH`")
    if len(records) > 1:
        names = ", ".join(r.name for r in records)
        raise CommandError(f"{len(records)} endpoints are running ({names}); choose one with -n NAME")
    return records[0]


# -- show / list ---------------------------------------------------------------------------------


def cmd_show(args) -> int:
    print(json.dumps(_pick(args.name).shown(), indent=2))
    return 0


def _row(r: EndpointRecord) -> tuple[str, ...]:
    d = r.deployment
    return (r.name, d.name or "", r.provisioning_state or "", d.runtime or "", str(d.revision or "-"),
            r.scoring_uri or "-")


def cmd_list(args) -> int:
    records = _records()
    if args.output == "json":
        print(json.dumps([r.shown() for r in records], indent=2))
        return 0
    if not records:
        print("No local endpoints are running. Start one with `devtui up PATH`.")
        return 0
    rows = [("NAME", "DEPLOYMENT", "STATE", "RUNTIME", "REVISION", "SCORING URI"), *map(_row, records)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


# -- reload --------------------------------------------------------------------------------------


def cmd_reload(args) -> int:
    """Ask the devtui that runs the endpoint for a worker swap (or a full restart), and wait for
    the outcome of the revision it starts."""
    from ..engine import RESTART_REQUEST, SWAP_REQUEST

    record = _pick(args.name)
    if not record.host_pid or not registry.is_alive(record.name):
        raise CommandError(f"endpoint {record.name!r} has no devtui running it (found by its containers only); "
                           f"start it again with `devtui up`, or remove it with `devtui down -n {record.name}`")
    before = record.deployment.latest_revision or 0
    os.kill(record.host_pid, RESTART_REQUEST if args.full else SWAP_REQUEST)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        outcome = _reload_outcome(record.name, before, args.full)
        if outcome is not None:
            print(outcome)
            return 0
        time.sleep(0.05)  # polling the registry record, with a deadline
    raise CommandError(f"no new revision of {record.name!r} within 10 minutes; see `devtui logs -n {record.name}`")


def _reload_outcome(name: str, before: int, full: bool) -> str | None:
    """What the reload came to, once the record shows a revision after ``before``; None until then."""
    current = registry.read(name)
    if current is None:
        raise CommandError(f"endpoint {name!r} stopped")
    revision, last = current.deployment.latest_revision or 0, current.deployment.last_reload
    if revision <= before or current.provisioning_state == "Updating":
        return None
    if current.provisioning_state == "Failed":
        raise CommandError(f"revision {revision} failed; `devtui logs -n {name}` has the traceback")
    if full:
        return f"restarted: revision {revision} is serving" if current.provisioning_state == "Succeeded" else None
    if last is None or last.revision <= before:
        return None
    if not last.ok:
        raise CommandError(f"revision {last.revision} {last.how}; `devtui logs -n {name}` has the traceback, and "
                           "the revision before it keeps serving")
    return f"revision {last.revision} is serving: {last.how} in {last.duration_ms:.0f} ms"


# -- invoke / logs -------------------------------------------------------------------------------


def cmd_invoke(args) -> int:
    import httpx

    record = _pick(args.name)
    deployment = record.deployment
    if args.deployment_name and args.deployment_name != deployment.name:
        raise CommandError(f"endpoint {record.name!r} has no deployment {args.deployment_name!r}; "
                           f"its deployment is {deployment.name!r}", BAD_INPUT)
    if not record.scoring_uri:
        raise CommandError(f"endpoint {record.name!r} is {record.provisioning_state}: it has no scoring URI yet")
    path = Path(args.request_file)
    try:
        body = path.read_bytes()
    except OSError as ex:
        raise CommandError(f"{path}: cannot read the request file: {ex.strerror}", BAD_INPUT) from None
    timeout_ms = deployment.request_settings.request_timeout_ms if deployment.request_settings else 5000
    try:
        answer = httpx.post(record.scoring_uri, content=body, timeout=timeout_ms / 1000 + 10,
                            headers={"content-type": "application/json"})
    except httpx.HTTPError as ex:
        raise CommandError(f"could not reach {record.scoring_uri}: {ex}") from None
    if answer.is_success:
        print(answer.text)
        return 0
    print(f"{answer.status_code} {answer.reason_phrase}", file=sys.stderr)
    print(answer.text)
    return 1


def cmd_logs(args) -> int:
    name = args.name or _pick(None).name
    path = registry.folder(name) / "logs" / f"{args.container}.log"
    if not path.exists() and not registry.is_alive(name):
        return _container_logs(name, args)
    for line in tail(path, args.lines):
        print(line)
    if args.follow:
        sys.stdout.flush()

        async def stream():
            async for line in follow(path, lambda: registry.is_alive(name)):
                print(line, flush=True)

        try:
            asyncio.run(stream())
        except KeyboardInterrupt:
            pass
    return 0


def _container_logs(name: str, args) -> int:
    """The log of an endpoint that left no files here, from its labelled container."""
    client = _docker()
    if client is not None:
        from ..runtimes.container.docker_engine import container_log

        lines = container_log(client, name, args.container)
        if lines is not None:
            for line in lines if args.lines is None else lines[-args.lines:] if args.lines else []:
                print(line)
            return 0
    raise CommandError(f"no logs for endpoint {name!r}: it is not running and has not run here")


# -- traces --------------------------------------------------------------------------------------


def cmd_traces(args) -> int:
    """The requests' traces kept for an endpoint, newest first: a tree each, or a JSON list. With
    ``-f``, oldest first (as a log is followed), JSON one object a line, then each new one as it
    completes, until the endpoint stops."""
    name = args.name or _pick(None).name
    folder = registry.folder(name)
    if not folder.is_dir():
        raise CommandError(f"no local endpoint named {name!r} has run here; `devtui list` shows those that are "
                           "running", BAD_INPUT)
    file, reader = traces.path(folder), traces.TraceReader()
    found = traces.read(file, args.last, reader)
    if not args.follow:
        if args.output == "json":
            print(json.dumps([trace.to_json() for trace in found], indent=2))
        else:
            for trace in found:
                print("\n".join(traces.render_tree(trace)))
        return 0
    for trace in reversed(found):
        _print_trace(trace, args.output)
    sys.stdout.flush()
    try:
        asyncio.run(_follow_traces(name, file, reader, args.output))
    except KeyboardInterrupt:
        pass
    return 0


def _print_trace(trace: traces.Trace, output: str) -> None:
    print(json.dumps(trace.to_json()) if output == "json" else "\n".join(traces.render_tree(trace)), flush=True)


async def _follow_traces(name: str, file: Path, reader: traces.TraceReader, output: str) -> None:
    async for line in follow(file, lambda: registry.is_alive(name)):
        for trace in reader.feed(line):
            _print_trace(trace, output)


# -- down ----------------------------------------------------------------------------------------


def _containers_removed(name: str, purge: bool, deployment: DeploymentRecord | None = None) -> list[str] | None:
    """Containers and volumes labelled for the endpoint, removed even when no registry record
    remains (a killed host); None when no Docker engine answers."""
    from ..runtimes.container.docker_engine import remove_endpoint

    client = _docker(deployment=deployment)
    return remove_endpoint(client, name, volumes=True, images=purge) if client is not None else None


def _signal(pid: int | None, sig: int, group: bool = False) -> None:
    """Signal the process ``pid`` (or its group) if it is still there."""
    if not pid:
        return
    try:
        (os.killpg if group else os.kill)(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        if not group:  # a server's group id may since belong to someone else's processes
            raise


def _stop_host(record: EndpointRecord, timeout: float) -> None:
    """SIGTERM to the devtui that runs the endpoint (it stops everything), SIGKILL if it hangs."""
    _signal(record.host_pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while registry.is_alive(record.name) and time.monotonic() < deadline:
        time.sleep(0.05)
    if registry.is_alive(record.name):
        # The host did not stop in time: end it and its server the hard way.
        for deployment in record.deployments:
            _signal(deployment.pid, signal.SIGKILL, group=True)
        _signal(record.host_pid, signal.SIGKILL)


def _down(name: str, timeout: float = 20, purge: bool = False) -> None:
    record = registry.read(name)
    if record is None:
        removed = _containers_removed(name, purge) or []
        # Processes a killed devtui left behind (a run() that forked) may still hold the port.
        removed += [f"orphaned process {pid}" for pid in orphans.end(name)]
        if removed:
            print(f"Deleted local endpoint {name} (removed {', '.join(removed)}).")
            return
        raise CommandError(f"no local endpoint named {name!r} is running")
    _stop_host(record, timeout)
    containers = "container" in {d.runtime for d in record.deployments}
    if (containers or purge) and _containers_removed(name, purge, record.deployment) is None and containers:
        # The host could not remove them either: say so rather than claim they are gone.
        print(f"warning: the Docker engine ({record.deployment.docker_daemon or 'the default one'}) does not answer: the "
              f"containers of {name} may still run; `devtui down -n {name}` removes them once it answers",
              file=sys.stderr)
    print(f"Deleted local endpoint {name}.")


def cmd_down(args) -> int:
    if args.all:
        for record in _records():
            _down(record.name, purge=args.purge)
        return 0
    _down(args.name or _pick(None).name, purge=args.purge)
    return 0


# -- validate ------------------------------------------------------------------------------------


def cmd_validate(args) -> int:
    from ..launch import Launch
    from .up import load

    d = load(Launch(path=args.path, endpoint_file=args.endpoint_file, name=args.name))
    print(f"{d.deployment_file}: deployment {d.deployment_name!r} of endpoint {d.endpoint_name!r} is valid")
    if d.model:
        print(f"  model:           {d.model.path} (as {d.model.name}:{d.model.version})")
    if d.code_dir:
        print(f"  code:            {d.code_dir}, scoring script {d.scoring_script}")
    if d.flow:
        _print_flow(d.flow)
    if d.mlflow:
        _print_mlflow(d.mlflow)
    _print_environment(d)
    settings = d.request_settings
    print(f"  request timeout: {settings.request_timeout_ms} ms, "
          f"max concurrent: {settings.max_concurrent_requests_per_instance}")
    print(f"  instances:       {d.instance_count} x {d.instance_type or '-'} (shown, not used locally)")
    warn(d.warnings)
    return 0


def _print_flow(flow) -> None:
    served = "served by prompt flow's app" if flow.runtime_image else "in a container of its own"
    print(f"  prompt flow:     {flow.folder / flow.flow_file} ({flow.kind}{', chat' if flow.is_chat else ''}; {served})")
    print(f"  inputs:          {', '.join(i.name for i in flow.inputs) or '-'}; outputs: {', '.join(flow.outputs) or '-'}")
    print(f"  nodes:           {', '.join(f'{n.name} ({n.kind})' for n in flow.nodes) or '-'}")
    for number, include in enumerate(flow.includes):  # additional_includes, and where each comes from
        print(f"  {'includes:' if number == 0 else '':<17}{include}")


def _print_mlflow(model) -> None:
    """A no-code MLflow deployment's model, as its MLmodel says (read without mlflow)."""
    print(f"  MLflow model:    {model.mlmodel} (flavours: {', '.join(model.flavors)}; "
          f"loaded by {model.loader_module}{'; ' + model.model_file.name if model.model_file else ''})")
    signature = model.signature
    if signature is None:
        print("  signature:       none (requests pass through to the model as they are)")
    else:
        print(f"  signature:       inputs ({signature.kind}): {', '.join(map(str, signature.inputs)) or '-'}")
        print(f"                   outputs: {', '.join(map(str, signature.outputs)) or '-'}")
        if signature.params:
            print(f"                   params: {', '.join(map(str, signature.params))}")
    print(f"  input example:   {model.input_example.name if model.input_example else 'none'}")
    if model.python_version:
        print(f"  python:          {model.python_version} (the model was saved with it)")


def _print_environment(d) -> None:
    env = d.environment
    if d.mlflow and env.image is None and env.build_path is None:
        print(f"  environment:     {d.mlflow.environment_file or 'none'} (the model's own; no environment in the YAML)")
        return
    print(f"  environment:     {env.image or ''}{' + ' + str(env.conda_file) if env.conda_file else ''}"
          f"{' build ' + str(env.build_path) if env.build_path else ''}")
    if d.mlflow and d.mlflow.environment_file:
        print(f"                   the model's own: {d.mlflow.environment_file}")
