from promptflow.core import tool


@tool
def clean(text: str) -> str:
    """Collapse runs of whitespace and trim the ends."""
    return " ".join(text.split())
