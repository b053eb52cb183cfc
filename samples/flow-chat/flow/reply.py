from collections.abc import Iterator

from promptflow.core import tool


@tool
def reply(question: str, earlier: list) -> Iterator[str]:
    """Answer word by word, as an LLM would stream tokens. The answer counts the turns and
    quotes the previous question, so it shows whether the history arrived."""
    if earlier:
        text = f'Question {len(earlier) + 1}: "{question}". Before that you asked "{earlier[-1]}".'
    else:
        text = f'Question 1: "{question}". Nothing asked before.'
    for index, word in enumerate(text.split(" ")):
        yield word if index == 0 else " " + word
