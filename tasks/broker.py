"""Celery configuration shared by every process that talks to the broker.

The worker and beat (tasks.celery_app) and the relay (tasks.publisher) must agree on
serialization and transport options, so both build their config here.
"""

from __future__ import annotations

from typing import Any

from rivyahooks_foundation.settings import Settings


def celery_config(settings: Settings) -> dict[str, Any]:
    """Return the Celery settings every process shares."""
    transport: dict[str, Any] = {}
    if settings.broker_url.startswith(("redis://", "rediss://")):
        transport = {
            # A message not acknowledged within this window goes back to the queue; it must
            # exceed the longest task, or a slow download would run twice at once.
            "visibility_timeout": settings.task_visibility_timeout_seconds,
            # Bounded waits, so a broker outage stalls the relay seconds, not minutes.
            "socket_timeout": 5,
            "socket_connect_timeout": 2,
        }
    return {
        "broker_url": settings.broker_url,
        "broker_transport_options": transport,
        "broker_connection_timeout": 2,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "task_ignore_result": True,
        "enable_utc": True,
        "broker_connection_retry_on_startup": True,
    }


def ping(settings: Settings, timeout: float = 3) -> None:
    """Raise if the broker cannot be reached within about `timeout` seconds."""
    from kombu.connection import Connection

    config = celery_config(settings)
    with Connection(  # type: ignore[no-untyped-call]
        settings.broker_url,
        transport_options=config["broker_transport_options"],
        connect_timeout=timeout,
    ) as connection:
        connection.ensure_connection(max_retries=1, timeout=timeout)
