"""Keys that neither devtui nor the cloud knows: `enviroment_variables`, `request_timout_ms`. Each
becomes a warning with the closest known name, since a misspelled key is otherwise ignored in
silence and the deployment behaves differently than its author thinks. Keys the cloud's schema
accepts (`instance_type`, `app_insights_enabled`, ...) are not warned about: a YAML that deploys
to the cloud must run here unchanged."""

from __future__ import annotations

import difflib
from typing import Any

from .messages import _dotted
from .models import _STRING_FORM, _Section
from .problems import Problem
from .yaml_lines import _Document


def _unknown_keys(section: _Section, doc: _Document, what: str, path: tuple[Any, ...] = ()) -> list[Problem]:
    """A warning for each key of SECTION (and of the sections in it) that is neither a field nor
    one of its `cloud_keys`. WHAT names the top-level section in the message ("a deployment")."""
    kind = type(section)
    known = {field.alias or name for name, field in kind.model_fields.items()} - {_STRING_FORM}
    warnings = []
    for key in section.model_extra or {}:
        if key not in kind.cloud_keys:
            where = path + (key,)
            warnings.append(Problem(doc.file, doc.line(where), _dotted(where),
                                    _message(str(key), what, sorted(known | kind.cloud_keys))))
    for name in kind.model_fields:
        value = getattr(section, name)
        if isinstance(value, _Section):
            warnings.extend(_unknown_keys(value, doc, _dotted(path + (name,)), path + (name,)))
    return warnings


def _message(key: str, what: str, known: list[str]) -> str:
    message = f"is not a key of {what}, so devtui ignores it"
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"{message}; did you mean {close[0]}?"
    return f"{message}. Check the spelling, or remove it."
