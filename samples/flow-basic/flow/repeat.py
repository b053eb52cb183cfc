from promptflow.core import tool


@tool
def repeat(text: str, count: int) -> str:
    """The text ``count`` times, separated by spaces."""
    return " ".join([text] * count)
