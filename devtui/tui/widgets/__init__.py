"""The TUI's widgets, one per module."""

from ._answer_view import AnswerView
from ._app_footer import AppFooter
from ._chat_panel import ChatPanel, ChatTurn
from ._deployment_panel import DeploymentPanel
from ._failure_panel import FailurePanel
from ._history_list import HistoryList
from ._invoke_panel import InvokePanel
from ._log_filter import LogFilter
from ._log_lines import LogLines
from ._log_view import LogView
from ._progress_line import ProgressLine
from ._request_editor import RequestEditor
from ._status_bar import StatusBar
from ._traces_panel import TracesPanel
from ._waterfall import Waterfall

__all__ = ["AnswerView", "AppFooter", "ChatPanel", "ChatTurn", "DeploymentPanel", "FailurePanel", "HistoryList",
           "InvokePanel", "LogFilter", "LogLines", "LogView", "ProgressLine", "RequestEditor", "StatusBar",
           "TracesPanel", "Waterfall"]
