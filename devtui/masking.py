"""Secrets out of sight: what `show`, the app and the registry file print of environment variables.

A value is masked when its variable's name looks secret (KEY, SECRET, TOKEN, PASSWORD, ...), and
also when the value itself carries a credential under an innocuous name: the userinfo of a URL
(``postgres://user:pass@host/db``), a signature or key in a URL's query (a SAS URL's ``sig=``),
a connection string's ``AccountKey=``/``Password=``, or a string shaped like an access key.
:func:`hidden` names the very text that masking hides, so log lines can be kept from showing it
(``devtui.scrub``).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit, urlunsplit

MASK = "********"
SECRET_WORDS = ("KEY", "SECRET", "TOKEN", "PASSWORD", "PASSWD", "PWD", "CONNECTION_STRING", "CREDENTIAL", "AUTH",
                "SAS", "SIGNATURE", "PRIVATE")
# Query parameters that carry a credential (lower case).
SECRET_PARAMETERS = {"sig", "signature", "token", "access_token", "key", "api_key", "apikey", "code", "password",
                     "secret", "client_secret", "x-amz-signature", "x-amz-credential", "x-amz-security-token"}
# key=value pairs of connection strings (Azure storage, Service Bus, SQL Server, ...).
_CONNECTION_PAIR = re.compile(r"(?i)\b(AccountKey|SharedAccessKey|SharedAccessSignature|Password|Pwd)=([^;]*)")
# Strings shaped like access keys: AWS key ids, GitHub/Slack/OpenAI-style tokens, JWTs, long base64.
_KEY_SHAPES = [
    re.compile(r"^(AKIA|ASIA)[A-Z0-9]{16}$"),
    re.compile(r"^(gh[pousr]_|github_pat_|xox[abpr]-|sk-|sk_live_|rk_live_)[A-Za-z0-9_\-]{16,}$"),
    re.compile(r"^eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+$"),
    re.compile(r"^[A-Za-z0-9+/]{40,}={0,2}$"),  # an Azure storage key is 88 base64 characters
]


def _secret_name(name: str) -> bool:
    return any(word in name.upper() for word in SECRET_WORDS)


def mask(name: str, value: str) -> str:
    """``value`` as it may be shown for the variable ``name``."""
    if _secret_name(name) or looks_like_a_key(value):
        return MASK
    if value.lstrip().startswith("{"):
        return _mask_json(value)
    return _mask_connection_string(_mask_url(value))


def _mask_json(value: str) -> str:
    """A JSON object (a prompt flow connection given inline, say): every value under a secret-looking
    key, or inside ``secrets``/``credentials``, masked; the rest as ``mask`` shows single values."""
    import json

    try:
        data = json.loads(value)
    except ValueError:
        return _mask_connection_string(_mask_url(value))

    def walk(node, secret: bool):
        if isinstance(node, dict):
            return {key: walk(item, _secret_key(key, secret)) for key, item in node.items()}
        if isinstance(node, list):
            return [walk(item, secret) for item in node]
        if secret and node is not None:
            return MASK
        return mask("", node) if isinstance(node, str) else node

    return json.dumps(walk(data, False))


def _secret_key(key: str, inside_secret: bool) -> bool:
    """Whether what is under ``key`` of a mapping is secret: under a secret-looking key, or inside
    ``secrets``/``credentials`` (prompt flow's connections keep their keys there)."""
    return inside_secret or key.lower() in ("secrets", "credentials") or _secret_name(key)


def looks_like_a_key(value: str) -> bool:
    value = value.strip()
    return any(shape.match(value) for shape in _KEY_SHAPES)


def _mask_url(value: str) -> str:
    if "://" not in value:
        return value
    try:
        parts = urlsplit(value)
    except ValueError:
        return value
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{hostport}" if ":" in userinfo else f"{MASK}@{hostport}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(key.lower() in SECRET_PARAMETERS for key, _ in pairs):
            query = "&".join(f"{key}={MASK}" if key.lower() in SECRET_PARAMETERS else f"{key}={val}"
                             for key, val in pairs)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _mask_connection_string(value: str) -> str:
    return _CONNECTION_PAIR.sub(lambda match: f"{match.group(1)}={MASK}", value)


def hidden(name: str, value: str) -> list[str]:
    """The pieces of ``value`` that :func:`mask` hides for the variable ``name``, as they appear in
    the value: the whole value, a URL's password or secret query values, a connection string's keys,
    the secrets of a JSON object. What a log line must not show either."""
    if _secret_name(name) or looks_like_a_key(value):
        return [value]
    if value.lstrip().startswith("{"):
        import json

        try:
            return hidden_in(json.loads(value))
        except ValueError:
            pass
    return _hidden_in_url(value) + [match.group(2) for match in _CONNECTION_PAIR.finditer(value)]


def hidden_in(node, secret: bool = False) -> list[str]:
    """The secret strings of parsed JSON or YAML (a connection's mapping), as :func:`_mask_json` hides them."""
    if isinstance(node, dict):
        return [piece for key, item in node.items() for piece in hidden_in(item, _secret_key(str(key), secret))]
    if isinstance(node, list):
        return [piece for item in node for piece in hidden_in(item, secret)]
    if isinstance(node, (str, int, float)) and not isinstance(node, bool) and secret:
        return [str(node)]
    return hidden("", node) if isinstance(node, str) else []


def _hidden_in_url(value: str) -> list[str]:
    from urllib.parse import unquote_plus

    if "://" not in value:
        return []
    try:
        parts = urlsplit(value)
    except ValueError:
        return []
    pieces = []
    userinfo = parts.netloc.rpartition("@")[0]
    if userinfo:
        pieces.append(userinfo.split(":", 1)[1] if ":" in userinfo else userinfo)
    for pair in parts.query.split("&"):
        key, _, raw = pair.partition("=")
        if unquote_plus(key).lower() in SECRET_PARAMETERS and raw:
            # As written in the URL, and decoded (as a script that parsed the URL would print it).
            pieces += [raw, unquote_plus(raw)]
    return pieces
