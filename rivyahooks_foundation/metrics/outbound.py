"""Outbound webhooks' families the sending workers count: attempts by outcome, their latency,
apps disabled by their failures.

The backlog, overdue and disabled-now gauges are the database's: beat yields them with the
others (tasks/database_gauges.py), fresh each time, so a removed app's series goes with it.
A gauge here would live in each process's metric files, where a label cannot be removed.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

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
