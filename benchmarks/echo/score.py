"""The smallest scoring script: the server's own overhead is all that is left to measure."""

import json


def init():
    pass


def run(raw_data):
    return json.loads(raw_data)
