"""The TUI's widgets, one per module."""

from ._deployment_panel import DeploymentPanel
from ._invoke_panel import Exchange, InvokePanel, json_problem
from ._log_view import LogView
from ._status_bar import StatusBar
from ._traceback_panel import TracebackPanel

__all__ = ["DeploymentPanel", "Exchange", "InvokePanel", "LogView", "StatusBar", "TracebackPanel", "json_problem"]
