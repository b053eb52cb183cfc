"""run() holds the server until a file appears, for tests of what arrives meanwhile.

{"gate": PATH}: writes PATH.running, then waits (at most 30 s) until PATH exists; with
"stubborn": true it goes on waiting when the request timeout interrupts it (a script that
catches every exception). {"mark": PATH}: writes PATH, so a test knows run() was called.
"""

import json
import os
import time


def init():
    pass


def run(raw):
    request = json.loads(raw)
    if request.get("mark"):
        open(request["mark"], "w").close()
    gate = request.get("gate")
    if not gate:
        return {"gated": False}
    open(gate + ".running", "w").close()
    deadline = time.monotonic() + 30
    while not os.path.exists(gate) and time.monotonic() < deadline:
        try:
            time.sleep(0.01)
        except Exception:
            if not request.get("stubborn"):
                raise
    return {"gated": True}
