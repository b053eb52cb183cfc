"""Where the scoring server runs, behind one interface (:class:`~devtui.runtimes.base.Runtime`)."""

from .base import Runtime, RuntimeError_, RuntimeSink


def available() -> list[str]:
    """The runtimes this installation can use, the default first."""
    return ["process"]


def create(name: str, *args, **kwargs) -> Runtime:
    if name == "process":
        from .process import ProcessRuntime

        return ProcessRuntime(*args, **kwargs)
    raise RuntimeError_(f"unknown runtime {name!r}: use 'process'")


__all__ = ["Runtime", "RuntimeError_", "RuntimeSink", "available", "create"]
