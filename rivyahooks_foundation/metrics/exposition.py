"""Serve the metrics: the web role's /metrics route, the other roles' own small HTTP server."""

from __future__ import annotations

import logging
import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    start_http_server,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from rivyahooks_foundation.metrics import families  # noqa: F401  (build info exists before a scrape)
from rivyahooks_foundation.metrics.directory import ENV

log = logging.getLogger(__name__)
__all__ = ["CONTENT_TYPE_LATEST", "latest", "process_registry", "serve"]


def process_registry(*extra: Collector) -> CollectorRegistry:
    """Return the registry to expose: every process's files in multiprocess mode."""
    # prometheus-client's own variable, set by the role's entry point (metrics.directory).
    directory = os.environ.get(ENV)
    if directory is None:
        registry = REGISTRY
    else:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    for collector in extra:
        registry.register(collector)
    return registry


def latest(registry: CollectorRegistry) -> bytes:
    """Return the registry's samples in Prometheus's text format."""
    return generate_latest(registry)


def serve(role: str, address: str, port: int, *extra: Collector) -> bool:
    """Serve /metrics on address:port in a background thread; False (logged) if impossible.

    A port of 0 means not served. A port in use is logged as an error, not fatal: the role's
    work matters more than its metrics.
    """
    if port == 0:
        log.info("metrics not served (port 0)", extra={"metrics_role": role})
        return False
    try:
        start_http_server(port, addr=address, registry=process_registry(*extra))
    except OSError as exc:
        log.error(
            "metrics server not started: cannot listen on %s:%d (%s); set another port",
            address,
            port,
            exc.strerror,
            extra={"metrics_role": role},
        )
        return False
    log.info("metrics served on http://%s:%d/metrics", address, port, extra={"metrics_role": role})
    return True
