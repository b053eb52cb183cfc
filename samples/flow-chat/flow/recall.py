from promptflow.core import tool


@tool
def recall(chat_history: list) -> list:
    """The questions asked so far, oldest first. Each turn of a chat history is
    {"inputs": {"question": ...}, "outputs": {"answer": ...}}."""
    return [turn["inputs"]["question"] for turn in chat_history]
