"""The VS Code side of debugging: the attach configuration devtui writes into .vscode/launch.json.

launch.json is JSON with comments, and people keep their own configurations (and comments) in
it, so the file is edited as text: devtui's configuration (matched by name) is replaced in place,
or added at the end of ``configurations``; nothing else in the file changes, and writing it twice
changes nothing. It is written whole, atomically, and never through a symbolic link that leads
out of the folder devtui was started in.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import tempfile
from pathlib import Path


class LaunchJsonError(Exception):
    """launch.json cannot be read; it is left as it is."""


def attach_configuration(endpoint: str, host: str, port: int, local_root: str | None,
                         remote_root: str | None, mappings: list[tuple[str, str]] | None = None) -> dict:
    """``mappings``, (localRoot, remoteRoot) pairs, replace the one of local_root and remote_root
    (a flow's additional_includes map each to its source)."""
    configuration = {
        "name": f"devtui: attach to {endpoint}",
        "type": "debugpy",
        "request": "attach",
        "connect": {"host": host, "port": port},
        "justMyCode": True,
        # Each reload is a new worker process; VS Code follows it into the same session.
        "subProcess": True,
    }
    if mappings is None:
        mappings = [(local_root, remote_root)] if local_root and remote_root else []
    if mappings:
        configuration["pathMappings"] = [{"localRoot": local, "remoteRoot": remote} for local, remote in mappings]
    return configuration


def _spans(text: str):
    """Yield (kind, start, end) for strings and comments, so structure is read outside them."""
    for match in re.finditer(r'"(?:\\.|[^"\\])*"|//[^\n]*|/\*.*?\*/', text, re.DOTALL):
        kind = "string" if match.group().startswith('"') else "comment"
        yield kind, match.start(), match.end()


def strip_jsonc(text: str) -> str:
    """JSON with comments and trailing commas, as plain JSON (same length, positions kept)."""
    chars = list(text)
    for kind, start, end in _spans(text):
        if kind == "comment":
            for i in range(start, end):
                if chars[i] != "\n":
                    chars[i] = " "
    plain = "".join(chars)
    # A trailing comma before } or ] becomes a space (strings are left alone).
    masked = _mask_strings(plain)
    for match in reversed(list(re.finditer(r",(\s*[}\]])", masked))):
        plain = plain[:match.start()] + " " + plain[match.start() + 1:]
    return plain


def _mask_strings(text: str) -> str:
    chars = list(text)
    for kind, start, end in _spans(text):
        if kind == "string":
            for i in range(start + 1, end - 1):
                chars[i] = "x"
    return "".join(chars)


def _matching(masked: str, start: int) -> int:
    """The index of the bracket closing the one at ``start``."""
    depth = 0
    for i in range(start, len(masked)):
        if masked[i] in "[{":
            depth += 1
        elif masked[i] in "]}":
            depth -= 1
            if depth == 0:
                return i
    raise LaunchJsonError("unbalanced brackets")


def merge_launch_json(folder: Path, configuration: dict) -> Path:
    """Write ``configuration`` into ``folder/.vscode/launch.json``; returns the path.

    Links under ``folder`` (``.vscode`` or ``launch.json``) are followed only while they stay in it."""
    path = folder / ".vscode" / "launch.json"
    target = _target_inside(folder, path)
    text = target.read_text(encoding="utf-8") if target.exists() else None
    merged = merged_launch_json(text, configuration, path)
    if merged is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(target, merged)
    return path


def merged_launch_json(text: str | None, configuration: dict, path: Path) -> str | None:
    """launch.json's ``text`` (None: no file) with ``configuration`` in it; None when it is there as
    it is. ``path`` is for messages."""
    rendered = json.dumps(configuration, indent=4)
    if text is None or not text.strip():
        body = "\n".join("        " + line for line in rendered.splitlines())
        return '{\n    "version": "0.2.0",\n    "configurations": [\n' + body + "\n    ]\n}\n"
    plain = strip_jsonc(text)
    try:
        document = json.loads(plain)
    except json.JSONDecodeError as ex:
        raise LaunchJsonError(f"{path}:{ex.lineno}: not valid JSON ({ex.msg}); left unchanged") from None
    if not isinstance(document, dict):
        raise LaunchJsonError(f"{path}: the top level is not an object; left unchanged")
    masked = _mask_strings(plain)
    open_bracket = _configurations_bracket(plain, masked)
    if open_bracket is None:
        # No configurations yet: add the key right after the opening brace.
        brace = masked.index("{")
        body = "\n".join("        " + line for line in rendered.splitlines())
        return text[:brace + 1] + f'\n    "configurations": [\n{body}\n    ],' + text[brace + 1:]
    close_bracket = _matching(masked, open_bracket)
    objects = _objects(masked, open_bracket, close_bracket)
    for start, end in objects:
        try:
            existing = json.loads(strip_jsonc(text[start:end]))
        except json.JSONDecodeError:
            continue
        if existing.get("name") == configuration["name"]:
            if existing == configuration:
                return None  # already there, as it is
            indent = _indent(text, start, "        ")
            return text[:start] + rendered.replace("\n", "\n" + indent) + text[end:]
    if not objects:
        addition = "\n        " + rendered.replace("\n", "\n        ") + "\n    "
        return text[:open_bracket + 1] + addition + text[close_bracket:]
    last_start, last_end = objects[-1]
    indent = _indent(text, last_start, "        ")
    comma = "" if masked[last_end:close_bracket].strip().startswith(",") else ","
    addition = comma + "\n" + indent + rendered.replace("\n", "\n" + indent)
    return text[:last_end] + addition + text[last_end:]


def _configurations_bracket(plain: str, masked: str) -> int | None:
    """Where the ``configurations`` array opens: its key is a string (outside comments) followed
    by a colon and an opening bracket."""
    for kind, start, end in _spans(plain):
        if kind == "string" and plain[start:end] == '"configurations"':
            key = re.compile(r"\s*:\s*\[").match(masked, end)
            if key is not None:
                return key.end() - 1
    return None


def _objects(masked: str, open_bracket: int, close_bracket: int) -> list[tuple[int, int]]:
    """The text spans of the objects directly in the array between the brackets."""
    objects, i = [], open_bracket + 1
    while i < close_bracket:
        if masked[i] == "{":
            end = _matching(masked, i)
            objects.append((i, end + 1))
            i = end + 1
        else:
            i += 1
    return objects


def _indent(text: str, start: int, default: str) -> str:
    """The whitespace before ``start`` on its line, when only whitespace is there."""
    before = text[text.rfind("\n", 0, start) + 1:start]
    return before if not before.strip() else default


# -- where to write --------------------------------------------------------------------------------


def _target_inside(folder: Path, path: Path) -> Path:
    """The file to write for ``path``: itself, or where the links on the way lead while they stay
    in ``folder``. A project may carry a link (a cloned repository, an archive) that leads to any
    file of the user's, and devtui must not create or rewrite that."""
    root = folder.resolve()
    for link in (path.parent, path):
        if not link.is_symlink():
            continue
        try:
            target = link.resolve(strict=False)
        except (OSError, RuntimeError) as ex:  # a loop
            raise LaunchJsonError(f"{link} is a symbolic link that cannot be followed ({ex}); launch.json was not "
                                  "written: replace the link with a file of its own") from None
        if not target.is_relative_to(root):
            raise LaunchJsonError(
                f"{link} is a symbolic link to {target}, outside {root}; devtui does not write through it, so "
                "launch.json was not written: replace the link with a file (or folder) of its own, or add the "
                "attach configuration to your launch.json yourself")
    try:
        target = path.resolve(strict=False)
    except (OSError, RuntimeError) as ex:
        raise LaunchJsonError(f"{path} cannot be followed ({ex}); launch.json was not written") from None
    if not target.is_relative_to(root):  # the links above say which one; this holds whatever the way
        raise LaunchJsonError(f"{path} leads to {target}, outside {root}; launch.json was not written")
    return target


def _write_atomically(path: Path, text: str) -> None:
    """Write a new file beside ``path`` and rename it over ``path``: a reader (VS Code) sees the old
    text or the new, never half of it, and a link put at ``path`` meanwhile is replaced, never
    followed (the temporary file is created with O_EXCL and O_NOFOLLOW)."""
    try:
        mode = stat.S_IMODE(os.stat(path, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        mode = 0o644
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".devtui")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), mode)
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
