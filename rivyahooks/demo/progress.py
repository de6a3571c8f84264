"""What the demo tells the person watching it, and its waits for the service to catch up."""

from __future__ import annotations

import time
from collections.abc import Callable

import click
import httpx


def say(message: str) -> None:
    """Print one line of progress on stderr, so stdout holds only the results."""
    click.echo(f"demo: {message}", err=True)


def wait_until(
    what: str, ready: Callable[[], bool], watch: Callable[[], None], timeout: float
) -> None:
    """Wait for `ready`, calling `watch` between tries so a dead role ends the wait at once."""
    deadline = time.monotonic() + timeout
    while not ready():
        watch()
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.25)


def http_ok(url: str) -> bool:
    """Return whether `url` answers without a server error."""
    try:
        return httpx.get(url, timeout=1).status_code < 500
    except httpx.TransportError:
        return False
