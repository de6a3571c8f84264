"""Outbound webhooks' families: messages by outcome, attempt latency, backlog, disabled apps.

The backlog and disabled gauges are the database's (beat computes them with the others,
tasks/database_gauges.py); the counters are the sending workers'.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from rivyahooks_foundation.metrics.families import PREFIX

OUTBOUND_MESSAGES = Counter(
    f"{PREFIX}_outbound_attempts",
    "Attempts to deliver a message to an app, by outcome (delivered, retry, failed).",
    ["outcome"],
)
OUTBOUND_ATTEMPT_SECONDS = Histogram(
    f"{PREFIX}_outbound_attempt_seconds",
    "Time from sending a message to an app's endpoint until its answer (or the timeout).",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60),
)
OUTBOUND_DISABLED = Counter(
    f"{PREFIX}_outbound_apps_disabled",
    "Apps disabled by their failures (410 Gone, or failing every attempt for days).",
)
OUTBOUND_BACKLOG = Gauge(
    f"{PREFIX}_outbound_backlog",
    "Messages not yet delivered nor given up, by app.",
    ["app"],
    multiprocess_mode="mostrecent",
)
OUTBOUND_APPS_DISABLED = Gauge(
    f"{PREFIX}_outbound_apps_disabled_now",
    "Apps disabled right now (by an operator or by their failures).",
    multiprocess_mode="mostrecent",
)
