"""The web process: the webhook endpoint, the results API, the console and health checks."""

from receiver.app import create_app

__all__ = ["create_app"]
