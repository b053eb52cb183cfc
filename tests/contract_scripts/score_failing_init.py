"""init() fails: the server must show the traceback and the model folder, then exit 3."""


def init():
    raise RuntimeError("CONTRACT-INIT-FAILURE: cannot load the model")


def run(raw):
    return raw
