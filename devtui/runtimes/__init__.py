"""Where the scoring server runs, behind one interface (:class:`~devtui.runtimes.base.Runtime`)."""

from .base import STOP_GRACE_S, PortInUse, Runtime, RuntimeFailure, RuntimeSink

NAMES = ("process", "container")


def available(timeout: float = 5, context: str | None = None) -> list[str]:
    """The runtimes usable here now, the default first: containers need an engine that answers
    (the one ``context`` names, else the environment's). Blocking (it asks the engine): call it
    from a thread in an event loop."""
    from .container.docker_engine import connect

    try:
        connect(timeout, context)
    except RuntimeFailure:
        return ["process"]
    return list(NAMES)


def create(deployment, launch, workdir, sink) -> Runtime:
    """The runtime ``launch.runtime`` names, for ``deployment``; its constructor does no I/O."""
    name = launch.runtime
    if name == "process":
        from .process import ProcessRuntime

        return ProcessRuntime(deployment, launch, workdir, sink)
    if name == "container":
        return _container(deployment, launch, workdir, sink)
    raise RuntimeFailure(f"unknown runtime {name!r}: use one of {', '.join(NAMES)}")


def _container(deployment, launch, workdir, sink) -> Runtime:
    """The container runtime, composed with the server the deployment runs and how its readiness
    is learned: a bring-your-own image (``inference_config``, a flow on its own image included) is
    run as it is and probed; a prompt flow, a no-code MLflow model or a score.py runs devtui's server, which says it itself."""
    from .container import readiness, specs
    from .container.runtime import ContainerRuntime

    if deployment.environment.inference_config is not None:
        spec, ready = specs.OwnImage, readiness.Probes
    elif deployment.flow is not None:
        spec, ready = specs.FlowServer, readiness.ServerEvents
    elif deployment.mlflow is not None:
        spec, ready = specs.MlflowServer, readiness.ServerEvents
    else:
        spec, ready = specs.ScriptServer, readiness.ServerEvents
    return ContainerRuntime(deployment, launch, workdir, sink, spec(deployment, launch, workdir), ready)


__all__ = ["NAMES", "STOP_GRACE_S", "PortInUse", "Runtime", "RuntimeFailure", "RuntimeSink",
           "available", "create"]
