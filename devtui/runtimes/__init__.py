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
        if deployment.environment.inference_config is not None:
            from .container.own_container import OwnContainerRuntime

            return OwnContainerRuntime(deployment, launch, workdir, sink)
        if deployment.flow is not None:
            from .container.flow_container import FlowContainerRuntime

            return FlowContainerRuntime(deployment, launch, workdir, sink)
        from .container.runtime import ContainerRuntime

        return ContainerRuntime(deployment, launch, workdir, sink)
    raise RuntimeFailure(f"unknown runtime {name!r}: use one of {', '.join(NAMES)}")


__all__ = ["NAMES", "STOP_GRACE_S", "PortInUse", "Runtime", "RuntimeFailure", "RuntimeSink",
           "available", "create"]
