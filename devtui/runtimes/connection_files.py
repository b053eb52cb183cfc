"""A prompt flow's connection files (``--connections``) while the flow runs: what changed in them
since they were last read, said by connection and key, never by value. The server reads the files
afresh in each new worker, so a change needs a swap (and, in a container, the files copied in
again); the runtime also hides the new secrets in the log from then on."""

from __future__ import annotations

from pathlib import Path

from ..spec.connections import connection_documents


def _keys(documents: list | None) -> dict[str, dict[str, object]]:
    """connection name -> {dotted key: value} (configs.base, secrets.key, api_key, ...)."""
    found: dict[str, dict[str, object]] = {}
    for document in documents or []:
        for connection in document if isinstance(document, list) else [document]:
            if not isinstance(connection, dict):
                continue
            keys: dict[str, object] = {}
            for key, value in connection.items():
                if isinstance(value, dict):
                    keys.update({f"{key}.{inner}": item for inner, item in value.items()})
                else:
                    keys[str(key)] = value
            found[str(connection.get("name"))] = keys
    return found


class ConnectionFiles:
    """The files as last read; ``changes()`` says what differs now, and remembers it."""

    def __init__(self, files: tuple[Path, ...]):
        self.files = files
        self.seen = {file: _keys(connection_documents(file)) for file in files}

    def changes(self) -> list[str]:
        """One line per changed file, naming the connections and keys that changed."""
        lines = []
        for file in self.files:
            now = _keys(connection_documents(file))
            before, self.seen[file] = self.seen[file], now
            changed = []
            for name in sorted(set(before) | set(now)):
                old, new = before.get(name, {}), now.get(name, {})
                keys = sorted(key for key in set(old) | set(new) if old.get(key) != new.get(key))
                if keys:
                    changed.append(f"{name} ({', '.join(keys)})" if name in before and name in now
                                   else f"{name} ({'added' if name in now else 'removed'})")
            if changed:
                lines.append(f"Connections file {file} changed: {'; '.join(changed)}. The flow is reloaded with "
                             "the new values (secrets stay hidden in the log).")
        return lines
