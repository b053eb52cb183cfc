"""The app's screens besides the main one, one per module."""

from ._help import HelpScreen

__all__ = ["HelpScreen"]
