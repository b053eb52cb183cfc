"""The container runtime: a storage-initializer and an inference-server container on a Docker or
Podman engine (``runtime.py``), composed with what the server is (``specs.py``) and how its readiness
is learned (``readiness.py``); the images it runs (``images.py``, ``flow_image.py``, ``wheels.py``),
the volumes it fills (``storage.py``), the engine it reaches (``docker_engine.py``,
``docker_context.py``, ``gpus.py``) and the log it follows (``log_pump.py``, ``server_log.py``,
``outbox.py``). Nothing is imported here: the CLI's parser reads ``gpus`` without the Docker SDK."""
