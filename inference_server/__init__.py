"""devtui's scoring server: the azureml-inference-server-http (azmlinfsrv) contract on FastAPI
and uvicorn, with a warm supervisor that swaps workers in milliseconds on reload.

It imports nothing from devtui: it runs on the host and inside deployment images alike.
"""

__version__ = "0.1.0"
