from promptflow.core import tool


@tool
def describe(text: str) -> dict:
    """How many words and characters the text has: the flow's outputs pick the fields."""
    return {"words": len(text.split()), "characters": len(text)}
