"""Where the scoring server runs, behind one interface (:class:`~devtui.runtimes.base.Runtime`)."""

from .base import Runtime, RuntimeError_, RuntimeSink


NAMES = ("process", "container")


def available() -> list[str]:
    """The runtimes usable here now, the default first: containers need an engine that answers."""
    from .container import connect

    try:
        connect()
    except RuntimeError_:
        return ["process"]
    return list(NAMES)


def create(name: str, *args, **kwargs) -> Runtime:
    if name == "process":
        from .process import ProcessRuntime

        return ProcessRuntime(*args, **kwargs)
    if name == "container":
        from .container import ContainerRuntime

        return ContainerRuntime(*args, **kwargs)
    raise RuntimeError_(f"unknown runtime {name!r}: use one of {', '.join(NAMES)}")


__all__ = ["NAMES", "Runtime", "RuntimeError_", "RuntimeSink", "available", "create"]
