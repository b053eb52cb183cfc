"""The waiting helpers now live in helpers.py; this name stays for modules written against it."""

from helpers import Timeout, async_wait_for, free_port, wait_for  # noqa: F401
