"""A script whose folder holds swagger2.json and swagger3.json: they replace the generated ones."""


def init():
    pass


def run(raw):
    return {"raw": raw}
