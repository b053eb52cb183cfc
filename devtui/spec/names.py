"""Names and references: Azure's rule for endpoint and deployment names (with a suggested fix),
and telling a registered asset or a URL from a local path."""

from __future__ import annotations

import re

_NAME_PATTERN = re.compile(r"^[A-Za-z](?:[-A-Za-z0-9]*[A-Za-z0-9])?$")
_URL_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _name_problem(name: str, kind: str) -> str | None:
    """Why NAME breaks Azure's rule for endpoint/deployment names, with a fix; None if it is fine."""
    if 3 <= len(name) <= 32 and _NAME_PATTERN.match(name):
        return None
    message = (
        f"{name!r} is not a valid {kind} name: {_why_invalid(name)}. Azure needs 3-32 letters, digits and hyphens, "
        "starting with a letter and not ending with a hyphen."
    )
    suggestion = _suggested_name(name)
    if suggestion is not None:
        message += f" Rename it, e.g. {suggestion!r}."
    else:
        message += " Rename it."
    return message


def _why_invalid(name: str) -> str:
    if len(name) < 3:
        return f"it has {len(name)} character{'s' if len(name) != 1 else ''}, at least 3 are needed"
    if len(name) > 32:
        return f"it has {len(name)} characters, at most 32 are allowed"
    if not name[0].isascii() or not name[0].isalpha():
        return "it must start with a letter"
    if name.endswith("-"):
        return "it must not end with a hyphen"
    bad = sorted({c for c in name if not (c.isascii() and (c.isalnum() or c == "-"))})
    return f"it contains {', '.join(repr(c) for c in bad)}; only letters, digits and hyphens are allowed"


def _suggested_name(name: str) -> str | None:
    """A valid name close to NAME, or None when cleaning it up leaves nothing usable."""
    suggestion = re.sub(r"[^A-Za-z0-9-]+", "-", name).lstrip("-0123456789")[:32].rstrip("-")
    if suggestion != name and 3 <= len(suggestion) and _NAME_PATTERN.match(suggestion):
        return suggestion
    return None


def _is_registered(reference: str) -> bool:
    # `azureml:name:1`, `azureml://registries/...` and full ARM ids all name workspace assets.
    return reference.startswith("azureml:") or reference.lower().startswith("/subscriptions/")
