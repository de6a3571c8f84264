"""gunicorn's error and access logs in the service's one log format (rivyahooks.gunicorn_conf).

gunicorn builds this logger in the master before anything else, so the configuration error
its start-up check reports is already a JSON line. Workers inherit the configured handler
when they fork; the Flask app itself never configures logging (tests build it in-process).
"""

from __future__ import annotations

import logging
from typing import Any

from gunicorn import glogging

from rivyahooks_foundation.logconfig import configure_logging
from rivyahooks_foundation.settings import early_value


class GunicornLogger(glogging.Logger):  # type: ignore[misc]
    """gunicorn's logger, writing through the root handler as structured lines."""

    def setup(self, cfg: Any) -> None:
        self.cfg = cfg
        # Read before the settings are checked, so the check's failure is logged this way.
        level = early_value("log_level")
        configure_logging(level, early_value("log_format"), role="web")
        for log in (self.error_log, self.access_log):
            log.handlers[:] = []
            log.propagate = True
        self.error_log.setLevel(level)
        self.access_log.setLevel(logging.INFO)
        self._access_log_enabled = bool(cfg.accesslog)

    @property
    def access_log_enabled(self) -> bool:
        return self._access_log_enabled

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        """Log one request as fields: never its headers, body or query string."""
        if not self._access_log_enabled:
            return
        self.access_log.info(
            "request",
            extra={
                "method": environ.get("REQUEST_METHOD"),
                "path": environ.get("PATH_INFO"),
                "status": resp.status_code,
                "bytes": getattr(resp, "sent", None),
                "duration_ms": round(request_time.total_seconds() * 1000, 2),
                "remote_addr": environ.get("REMOTE_ADDR"),
            },
        )

    def reopen_files(self) -> None:
        # Everything goes to stderr; there is no log file to reopen on USR1.
        return
