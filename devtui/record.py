"""The stored shape of a running local endpoint: what ``endpoint.json`` holds and ``show`` prints.

One model, written by the host (``cli.views.Recorder`` through ``registry.Claim``), rebuilt from
container labels when the registry files are gone (``runtimes.container.docker_engine.endpoints_from_labels``),
and read by every command. A record keeps exactly the keys it was given: ``dump`` leaves out what
was never set, so a process deployment has a ``pid`` and no ``container_ids``, and the JSON matches
``az ml online-endpoint show --local`` key for key. Missing keys read as their defaults and unknown
keys are kept, so a record written by an older or newer devtui still reads.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from .masking import mask

# What `show` prints, in this order; the rest of a record is devtui's own.
SHOWN = ("name", "auth_mode", "location", "provisioning_state", "scoring_uri", "swagger_uri", "traffic", "tags",
         "properties", "deployments")


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow", validate_assignment=True)

    def dump(self) -> dict[str, Any]:
        """The keys this record was given (or read with), as JSON values."""
        return self.model_dump(mode="json", exclude_unset=True)


class RequestSettingsRecord(_Record):
    request_timeout_ms: int = 5000  # the cloud's default
    max_concurrent_requests_per_instance: int | None = None


class HeldRecord(_Record):
    """A request the debugger holds, whoever sent it."""

    request_id: str = ""
    method: str = ""
    path: str = ""
    trace_id: str = ""


class DebuggerRecord(_Record):
    """The last ``DebuggerChanged``: "listening", "attached", "stopped" (detail says where, ``held``
    which requests wait there) or "failed" (detail says why)."""

    state: str = ""
    host: str = ""
    port: int = 0
    detail: str = ""
    held: list[HeldRecord] = []

    @classmethod
    def of(cls, debugger) -> DebuggerRecord | None:
        """The record of a ``DebuggerChanged`` (None: no debugger); ``held`` only while it holds any."""
        if debugger is None:
            return None
        held = [HeldRecord(request_id=r.request_id, method=r.method, path=r.path, trace_id=r.trace_id)
                for r in debugger.held]
        return cls(state=debugger.state, host=debugger.host, port=debugger.port, detail=debugger.detail,
                   **({"held": held} if held else {}))


class ReloadRecord(_Record):
    """The last reload: which rung of the update ladder applied, and how long it took."""

    revision: int
    ok: bool
    how: str  # "patched run() in place (model kept)", "worker swap (init() changed)", "failed in init"
    duration_ms: float

    @classmethod
    def of(cls, last) -> ReloadRecord | None:
        """From the engine's last ReloadFinished; None before the first reload."""
        if last is None or last.first:
            return None
        return cls(revision=last.revision, ok=last.ok, duration_ms=last.duration_ms,
                   how=last.how if last.ok else f"failed in {last.stage}")


class FlowRecord(_Record):
    """A prompt flow deployment: its flow file, kind (dag, flex, prompty) and nodes ("name (kind)")."""

    file: str
    kind: str
    nodes: list[str] = []
    chat: bool = False


class DeploymentRecord(_Record):
    """The endpoint's one deployment, as ``Engine.describe`` reports it."""

    name: str | None = None
    provisioning_state: str | None = None
    runtime: str | None = None
    revision: int | None = None  # the revision serving, None while none is
    latest_revision: int | None = None
    instance_type: str | None = None
    instance_count: int | None = None
    model: str | None = None
    code: str | None = None
    scoring_script: str | None = None
    flow: FlowRecord | None = None
    environment_variables: dict[str, str] = {}  # secret-looking values already masked
    request_settings: RequestSettingsRecord | None = None
    debugger: DebuggerRecord | None = None
    last_reload: ReloadRecord | None = None
    # What the runtime adds: the process runtime its server's pid, the container runtime its containers.
    pid: int | None = None
    container_ids: list[str] = []
    image: str | None = None
    # The container runtime's Docker engine, for a person ("context NAME at unix:///... (Docker Engine
    # 27.3.1)") and for `down` to find it again; the GPUs asked for (--gpus).
    docker_daemon: str | None = None
    docker_host: str | None = None
    docker_context: str | None = None
    gpus: str | None = None

    @classmethod
    def of(cls, engine) -> DeploymentRecord:
        """What a ``devtui.engine.Engine`` runs, and how it is going: its deployment, its state,
        the revisions, the debugger, and what its runtime adds."""
        d = engine.deployment
        return cls(
            name=d.deployment_name,
            provisioning_state=engine.state,
            runtime=engine.runtime_name,
            revision=engine.serving_revision,
            latest_revision=engine.revision,
            instance_type=d.instance_type,
            instance_count=d.instance_count,
            model=str(d.model.path) if d.model else None,
            code=str(d.code_dir) if d.code_dir else None,
            scoring_script=d.scoring_script,
            flow=(FlowRecord(file=str(d.flow.folder / d.flow.flow_file), kind=d.flow.kind, chat=d.flow.is_chat,
                             nodes=[f"{n.name} ({n.kind})" for n in d.flow.nodes]) if d.flow else None),
            environment_variables={k: mask(k, v) for k, v in d.environment_variables.items()},
            request_settings=RequestSettingsRecord(
                request_timeout_ms=d.request_settings.request_timeout_ms,
                max_concurrent_requests_per_instance=d.request_settings.max_concurrent_requests_per_instance,
            ),
            debugger=DebuggerRecord.of(engine.debugger),
            last_reload=ReloadRecord.of(engine.last_reload),
            **_placed(engine.placement),
        )


def _placed(placement) -> dict:
    """What ``show`` lists of where the server runs (a ``devtui.events.Placement``)."""
    return {"pid": placement.pid, "container_ids": list(placement.container_ids), "image": placement.image,
            "docker_daemon": placement.docker_daemon, "docker_host": placement.docker_host,
            "docker_context": placement.docker_context, "gpus": placement.gpus}


class EndpointRecord(_Record):
    name: str
    auth_mode: str = "key"
    location: str = "local"
    provisioning_state: str | None = None
    scoring_uri: str | None = None
    swagger_uri: str | None = None
    traffic: dict[str, int] = {}
    tags: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    deployments: list[DeploymentRecord] = []
    # devtui's own: the process hosting the engine, the YAML it runs, the folder of its log files;
    # why the host is ending on its own (a port taken as it started), for the `up` that waits on it.
    host_pid: int | None = None
    deployment_file: str | None = None
    logs: str | None = None
    fatal: str | None = None

    @property
    def deployment(self) -> DeploymentRecord:
        """The one deployment a local endpoint has (an empty record while none is known)."""
        return self.deployments[0] if self.deployments else DeploymentRecord()

    def shown(self) -> dict[str, Any]:
        """What ``show`` and ``list -o json`` print: the keys of ``az ml online-endpoint show``."""
        values = self.model_dump(mode="json", include=set(SHOWN) - {"deployments"})
        return {**{key: values[key] for key in SHOWN if key != "deployments"},
                "deployments": [deployment.dump() for deployment in self.deployments]}


def swagger_uri(scoring_uri: str | None) -> str | None:
    """The swagger document next to the scoring route, as azmlinfsrv serves it."""
    return scoring_uri and scoring_uri.rsplit("/", 1)[0] + "/swagger.json"
