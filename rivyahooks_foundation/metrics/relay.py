"""The relay's families: publishes to the broker and how long events waited for them."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from rivyahooks_foundation.metrics.families import PREFIX

RELAY_PUBLISHED = Counter(
    f"{PREFIX}_relay_published",
    "Events the relay handed to the broker, by outcome (published, failed).",
    ["outcome"],
)
RELAY_LAG = Histogram(
    f"{PREFIX}_relay_lag_seconds",
    "Time from an event's commit (or its retry's due time) to its publish to the broker.",
    buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600),
)
BROKER_LOSSES = Counter(
    f"{PREFIX}_relay_broker_losses",
    "Times the relay found the broker had lost its messages and published them again.",
)
