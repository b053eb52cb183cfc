from dataclasses import dataclass


@dataclass
class Reply:
    message: str
    length: int


class Greeter:
    """Greets by name. The greeting is init config: set once when the flow is loaded (served, it
    comes from the PF_FLOW_INIT_CONFIG environment variable, a JSON object), not per request."""

    def __init__(self, greeting: str):
        self.greeting = greeting

    def __call__(self, name: str) -> Reply:
        message = f"{self.greeting}, {name.strip()}!"
        return Reply(message=message, length=len(message))
