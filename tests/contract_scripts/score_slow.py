"""run() sleeps for the number of seconds in the body: {"sleep": 1}."""

import json
import time


def init():
    pass


def run(raw):
    seconds = json.loads(raw).get("sleep", 0)
    time.sleep(seconds)
    return {"slept": seconds}
