"""Which Docker engine devtui talks to, chosen the way the Docker CLI chooses: ``--context NAME``,
else ``DOCKER_HOST``, else ``DOCKER_CONTEXT``, else the current context of the CLI's config
(``currentContext`` in ``$DOCKER_CONFIG/config.json``, ``~/.docker`` by default), else the default
socket; and how to name that engine for a person (``show``, the app's header, error messages).

The context store is read here rather than through ``docker.context.ContextAPI``: the SDK looks
for the store beside ``config.json`` and, when that file does not exist (``docker context create``
does not write it), in a folder named ``contexts`` under the current directory, so it misses
contexts the CLI made. The store's layout is the CLI's: ``contexts/meta/<sha256(name)>/meta.json``
with ``Endpoints.docker.Host``, and the TLS files under ``contexts/tls/<sha256(name)>/docker/``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..base import RuntimeFailure

DEFAULT_HOST = "unix:///var/run/docker.sock"


@dataclass(frozen=True)
class EngineAddress:
    """Where an engine answers, and why that one: ``source`` is ``--context``, ``DOCKER_HOST``,
    ``DOCKER_CONTEXT``, ``current context`` or ``default``."""

    host: str
    source: str
    context: str | None = None  # the context's name, when one was used
    tls: tuple[str | None, str | None, str | None, bool] | None = None  # ca, cert, key, verify

    def describe(self) -> str:
        if self.context:
            return f"context {self.context} at {self.host}"
        if self.source == "DOCKER_HOST":
            return f"DOCKER_HOST {self.host}"
        return f"the default engine at {self.host}"

    def client_kwargs(self) -> dict:
        """What ``docker.DockerClient`` needs to reach it."""
        kwargs: dict = {"base_url": self.host}
        if self.host.startswith("ssh://"):
            kwargs["use_ssh_client"] = True  # as the CLI does: the user's ssh, config and agent
        if self.tls is not None:
            from docker.tls import TLSConfig

            ca, cert, key, verify = self.tls
            kwargs["tls"] = TLSConfig(client_cert=(cert, key) if cert and key else None, ca_cert=ca,
                                      verify=verify and bool(ca))
        return kwargs


def config_folder(environ=os.environ) -> Path:
    return Path(environ.get("DOCKER_CONFIG") or Path.home() / ".docker")


def _current_context(environ) -> str | None:
    try:
        return json.loads((config_folder(environ) / "config.json").read_text()).get("currentContext") or None
    except (OSError, ValueError, AttributeError):
        return None


def _from_environment(environ) -> EngineAddress:
    """DOCKER_HOST with DOCKER_TLS_VERIFY / DOCKER_CERT_PATH, as the SDK's from_env reads them."""
    host = environ["DOCKER_HOST"]
    if environ.get("DOCKER_TLS_VERIFY") or environ.get("DOCKER_CERT_PATH"):
        certs = Path(environ.get("DOCKER_CERT_PATH") or config_folder(environ))
        return EngineAddress(host, "DOCKER_HOST", tls=(str(certs / "ca.pem"), str(certs / "cert.pem"),
                                                       str(certs / "key.pem"), bool(environ.get("DOCKER_TLS_VERIFY"))))
    return EngineAddress(host, "DOCKER_HOST")


def read_context(name: str, source: str, environ=os.environ) -> EngineAddress:
    """The engine of the context ``name``; a RuntimeFailure that says what exists when there is none."""
    if name == "default":  # the CLI's built-in context: DOCKER_HOST, else the default socket
        return EngineAddress(environ.get("DOCKER_HOST") or DEFAULT_HOST, source, context="default")
    store = config_folder(environ) / "contexts"
    key = hashlib.sha256(name.encode()).hexdigest()
    try:
        meta = json.loads((store / "meta" / key / "meta.json").read_text())
        endpoint = meta["Endpoints"]["docker"]
    except (OSError, ValueError, KeyError, TypeError):
        known = ", ".join(sorted(names(environ))) or "none but default"
        via = f" (from {source})" if source != "--context" else ""
        raise RuntimeFailure(f"there is no Docker context named {name!r}{via} in {store} (contexts there: {known}); "
                             "`docker context ls` lists them") from None
    tls_folder = store / "tls" / key / "docker"
    tls = None
    if tls_folder.is_dir():
        files = [str(tls_folder / f) if (tls_folder / f).is_file() else None for f in ("ca.pem", "cert.pem", "key.pem")]
        tls = (*files, not endpoint.get("SkipTLSVerify", False))
    return EngineAddress(endpoint.get("Host") or DEFAULT_HOST, source, context=name, tls=tls)


def names(environ=os.environ) -> list[str]:
    """The contexts in the store (the built-in ``default`` aside)."""
    found = []
    for meta in (config_folder(environ) / "contexts" / "meta").glob("*/meta.json"):
        try:
            found.append(json.loads(meta.read_text())["Name"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return found


def resolve(context: str | None = None, environ=os.environ) -> EngineAddress:
    """The engine to use: an explicit context first, then the environment, then the CLI's config."""
    if context:
        return read_context(context, "--context", environ)
    if environ.get("DOCKER_HOST"):
        return _from_environment(environ)
    if environ.get("DOCKER_CONTEXT"):
        return read_context(environ["DOCKER_CONTEXT"], "DOCKER_CONTEXT", environ)
    current = _current_context(environ)
    if current:
        return read_context(current, "current context", environ)
    return EngineAddress(DEFAULT_HOST, "default")
