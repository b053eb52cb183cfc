"""The VS Code side of debugging: the attach configuration devtui writes into .vscode/launch.json.

launch.json is JSON with comments, and people keep their own configurations (and comments) in
it, so the file is edited as text: devtui's configuration (matched by name) is replaced in place,
or added at the end of ``configurations``; nothing else in the file changes, and writing it twice
changes nothing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path


class LaunchJsonError(Exception):
    """launch.json cannot be read; it is left as it is."""


def attach_configuration(endpoint: str, host: str, port: int, local_root: str | None,
                         remote_root: str | None) -> dict:
    configuration = {
        "name": f"devtui: attach to {endpoint}",
        "type": "debugpy",
        "request": "attach",
        "connect": {"host": host, "port": port},
        "justMyCode": True,
        # Each reload is a new worker process; VS Code follows it into the same session.
        "subProcess": True,
    }
    if local_root and remote_root:
        configuration["pathMappings"] = [{"localRoot": local_root, "remoteRoot": remote_root}]
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
    """Write ``configuration`` into ``folder/.vscode/launch.json``; returns the path."""
    path = folder / ".vscode" / "launch.json"
    rendered = json.dumps(configuration, indent=4)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        body = "\n".join("        " + line for line in rendered.splitlines())
        path.write_text('{\n    "version": "0.2.0",\n    "configurations": [\n' + body + "\n    ]\n}\n")
        return path
    text = path.read_text()
    plain = strip_jsonc(text)
    try:
        document = json.loads(plain) if plain.strip() else {}
    except json.JSONDecodeError as ex:
        raise LaunchJsonError(f"{path}:{ex.lineno}: not valid JSON ({ex.msg}); left unchanged") from None
    if not isinstance(document, dict):
        raise LaunchJsonError(f"{path}: the top level is not an object; left unchanged")
    masked = _mask_strings(plain)
    key = None
    for kind, start, end in _spans(plain):
        # The key is a string (outside comments) followed by a colon and an opening bracket.
        if kind == "string" and plain[start:end] == '"configurations"':
            key = re.compile(r"\s*:\s*\[").match(masked, end)
            if key is not None:
                break
    if key is None:
        # No configurations yet: add the key right after the opening brace.
        brace = masked.index("{")
        body = "\n".join("        " + line for line in rendered.splitlines())
        insert = f'\n    "configurations": [\n{body}\n    ],'
        path.write_text(text[:brace + 1] + insert + text[brace + 1:])
        return path
    open_bracket = key.end() - 1
    close_bracket = _matching(masked, open_bracket)
    # Top-level objects in the array, with their text spans.
    objects, i = [], open_bracket + 1
    while i < close_bracket:
        if masked[i] == "{":
            end = _matching(masked, i)
            objects.append((i, end + 1))
            i = end + 1
        else:
            i += 1
    indent = "        "
    for start, end in objects:
        try:
            existing = json.loads(strip_jsonc(text[start:end]))
        except json.JSONDecodeError:
            continue
        if existing.get("name") == configuration["name"]:
            line_start = text.rfind("\n", 0, start) + 1
            indent = text[line_start:start] if not text[line_start:start].strip() else indent
            replacement = rendered.replace("\n", "\n" + indent)
            if json.loads(strip_jsonc(text[start:end])) == configuration:
                return path  # already there, as it is
            path.write_text(text[:start] + replacement + text[end:])
            return path
    if objects:
        last_start, last_end = objects[-1]
        line_start = text.rfind("\n", 0, last_start) + 1
        if not text[line_start:last_start].strip():
            indent = text[line_start:last_start]
        between = masked[last_end:close_bracket]
        comma = "" if between.strip().startswith(",") else ","
        addition = comma + "\n" + indent + rendered.replace("\n", "\n" + indent)
        path.write_text(text[:last_end] + addition + text[last_end:])
    else:
        addition = "\n" + indent + rendered.replace("\n", "\n" + indent) + "\n    "
        path.write_text(text[:open_bracket + 1] + addition + text[close_bracket:])
    return path
