"""What the YAML says, resolved: model, code, environment, settings, and what is watched."""

from __future__ import annotations

import re
from pathlib import Path

from rich.cells import cell_len
from rich.table import Table
from textual.widgets import Static

from ...masking import mask
from ...spec import FlowSpec, LocalDeployment
from ...engine.watch import brought, roots


def _size(path: Path) -> str:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    total = float(sum(p.stat().st_size for p in files))
    for unit in ("B", "KiB", "MiB", "GiB"):
        if total < 1024 or unit == "GiB":
            return f"{total:.0f} {unit}" if unit == "B" else f"{total:.1f} {unit}"
        total /= 1024
    return ""


def _short(path: Path | None) -> str:
    if path is None:
        return "-"
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _flow_rows(table: Table, flow: FlowSpec) -> None:
    """A prompt flow: its file and kind, its inputs and outputs (the chat's marked), its nodes."""
    table.add_row("flow", f"{_short(flow.folder / flow.flow_file)} ({flow.kind}{', chat' if flow.is_chat else ''})")
    inputs = [f"{i.name}: {i.type}" + (" (chat input)" if i.is_chat_input else " (chat history)"
                                       if i.is_chat_history else "") for i in flow.inputs]
    table.add_row("inputs", "\n".join(inputs) or "-")
    table.add_row("outputs", "\n".join(f"{name} (chat output)" if name == flow.chat_output else name
                                       for name in flow.outputs) or "-")
    table.add_row("nodes", "\n".join(f"{node.name} ({node.kind})" for node in flow.nodes) or "-")
    if flow.includes:  # additional_includes: where each staged file or folder comes from
        table.add_row("includes", "\n".join(f"{i.name} <- {_short(i.source)}" for i in flow.includes))


def _mlflow_rows(table: Table, model) -> None:
    """A no-code MLflow model: its flavours and loader, signature, input example and environment."""
    table.add_row("mlflow", f"{', '.join(model.flavors)} (loaded by {model.loader_module})")
    signature = model.signature
    if signature is None:
        table.add_row("signature", "none: requests go to the model as they are")
    else:
        table.add_row("inputs", "\n".join(map(str, signature.inputs)) or "-")
        table.add_row("outputs", "\n".join(map(str, signature.outputs)) or "-")
        if signature.params:
            table.add_row("params", "\n".join(map(str, signature.params)))
    table.add_row("example", model.input_example.name if model.input_example else "none")


# The widest label ("instances") and the gap after it: the values get the rest of the width.
LABEL_WIDTH = 10


def wrap_value(value: str, width: int) -> str:
    """``value`` in lines of at most ``width`` cells, broken at spaces and after a path's slashes,
    never inside a name (unless one name alone is wider)."""
    lines = []
    for line in value.split("\n"):
        current = ""
        for word in line.split(" "):
            for n, piece in enumerate(re.findall(r"[^/]*/|[^/]+", word) or [""]):
                glue = " " if n == 0 and current else ""
                if current and cell_len(current + glue + piece) > width:
                    lines.append(current)
                    current = piece
                else:
                    current += glue + piece
        lines.append(current)
    return "\n".join(lines)


class _Rows(Table):
    """A label column and a value column whose values are wrapped at ``width``."""

    def __init__(self, width: int) -> None:
        super().__init__(box=None, padding=(0, 1), show_header=False, show_edge=False, collapse_padding=True,
                         pad_edge=False, expand=False)
        self.value_width = width
        self.add_column(style="bold", no_wrap=True)
        self.add_column(overflow="fold")

    def add_row(self, label: str, value: str) -> None:
        super().add_row(label, wrap_value(value, self.value_width))


class DeploymentPanel(Static):
    """What the YAML says; it widens with the terminal (app.tcss) and is drawn again at each
    width, so a path is broken only after one of its slashes."""

    deployment: LocalDeployment | None = None

    def toggle(self) -> None:
        """Hide it if shown, show it if hidden (as the width's breakpoint or an earlier toggle left it)."""
        shown = self.display
        self.set_class(shown, "-hidden")
        self.set_class(not shown, "-shown")

    def on_resize(self) -> None:
        if self.deployment is not None:
            self.show(self.deployment)

    def show(self, d: LocalDeployment) -> None:
        self.deployment = d
        width = self.size.width - LABEL_WIDTH if self.size.width > LABEL_WIDTH * 2 else 1000
        table = _Rows(width)
        if d.model:
            table.add_row("model", f"{_short(d.model.path)} ({_size(d.model.path)}) as {d.model.name}:{d.model.version}")
        else:
            table.add_row("model", "none")
        if d.flow is not None:
            _flow_rows(table, d.flow)
        elif d.mlflow is not None:
            _mlflow_rows(table, d.mlflow)
        else:
            table.add_row("code", _short(d.code_dir))
            table.add_row("script", d.scoring_script or "-")
        env = d.environment
        table.add_row("image", env.image or (f"build {_short(env.build_path)}" if env.build_path else "-"))
        table.add_row("conda", _short(env.conda_file or (d.mlflow.environment_file if d.mlflow else None)))
        variables = "\n".join(f"{k}={mask(k, v)}" for k, v in d.environment_variables.items()) or "-"
        table.add_row("env", variables)
        s = d.request_settings
        table.add_row("requests", f"timeout {s.request_timeout_ms} ms, "
                                  f"max concurrent {s.max_concurrent_requests_per_instance}")
        table.add_row("instances", f"{d.instance_count} x {d.instance_type or '-'} (not used locally)")
        trees, flat = roots(d)
        shared = [f"{_short(source)} (shared)" for source, _ in brought(d)]  # a flow's includes and link targets
        table.add_row("watching", "\n".join([*map(_short, trees), *shared, *(f"{_short(f)} (YAML)" for f in flat)]))
        self.update(table)
