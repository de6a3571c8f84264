"""Process-wide logging: one line per record, key=value pairs, never a secret."""

from __future__ import annotations

import logging
import sys


def configure_logging(level: str = "INFO") -> None:
    """Send this process's logs to stderr in one consistent format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s", "%Y-%m-%dT%H:%M:%S")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request at INFO: one line per download and API call would drown
    # the lines that matter, and costs the worker measurable CPU.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
