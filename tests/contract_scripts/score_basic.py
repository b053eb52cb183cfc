"""Undecorated run(raw): the body (or the query as JSON) arrives as a str.

The body picks what run() returns: {"kind": "dict" | "list" | "str" | "none" | "set" | "raise"}.
print() and logging in init() and run() must reach the server's log.
"""

import json
import logging

logger = logging.getLogger(__name__)


def init():
    print("CONTRACT-PRINT-INIT")
    logging.info("CONTRACT-LOG-INIT")


def run(raw):
    try:
        data = json.loads(raw)
    except ValueError:
        return {"raw": raw}
    if not isinstance(data, dict) or "kind" not in data:
        return {"raw": raw}
    kind = data["kind"]
    print(f"CONTRACT-PRINT-RUN {data.get('marker', '')}")
    logger.info(f"CONTRACT-LOG-RUN {data.get('marker', '')}")
    if kind == "dict":
        return {"answer": 42, "nested": {"values": [1.5, None, True]}, "text": "héllo"}
    if kind == "list":
        return [1, "two", {"three": 3}]
    if kind == "str":
        return "just a string"
    if kind == "none":
        return None
    if kind == "set":
        return {1, 2, 3}
    if kind == "raise":
        raise ValueError("the scoring script failed on purpose")
    return {"unknown kind": kind}
