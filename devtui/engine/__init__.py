"""One local endpoint's engine: its lifecycle and back-off (``engine``), what its runtime reports
turned into events (``revisions``), delivered in order to every subscriber (``emitter``), and the
file watcher with the update ladder (``watch``)."""

from .engine import RESTART_REQUEST, SWAP_REQUEST, Engine, accept_reload_requests, check_port, port_to_reuse
from ..launch import DebugSettings, Launch
from .revisions import ReloadRequest

__all__ = ["RESTART_REQUEST", "SWAP_REQUEST", "DebugSettings", "Engine", "Launch", "ReloadRequest", "accept_reload_requests",
           "check_port", "port_to_reuse"]
