"""devtui: run an Azure ML online deployment on this machine, with hot reload."""

__version__ = "0.1.0"
