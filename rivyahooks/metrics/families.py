"""Every metric the service's processes count, named as Prometheus's naming page asks.

Counters end in `_total`, durations are `_seconds`, sizes `_bytes`; every family has help.
Children with fixed label values are resolved once here, so a count on the receiver's hot
path is one call, not a label lookup. The database gauges are not here: beat computes them
(tasks/database_gauges.py).

Which role writes what:
- web: deliveries, signature failures, delivery duration;
- worker: tasks, downloads, event outcomes, reconcile findings, purges;
- relay: publishes and lag (commit to enqueued);
- every role: build info.
"""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

from prometheus_client import Counter, Gauge, Histogram

from rivyahooks.rivya import signatures

PREFIX = "rivyahooks"

# --- web ---------------------------------------------------------------------------------

DELIVERY_OUTCOMES = (
    "accepted",  # stored, to be processed
    "duplicate",  # already stored (or purged: its tombstone answered)
    "quarantined",  # verified but not understood: stored for an operator
    "rejected",  # signature missing, invalid or out of tolerance (401)
    "too_large",  # 413
    "id_mismatch",  # webhook-id and the body's id differ (400)
    "unavailable",  # the database did not answer (503)
)
DELIVERIES = Counter(
    f"{PREFIX}_deliveries",
    "Webhook deliveries answered, by outcome (duplicates are outcome=duplicate).",
    ["outcome"],
)
DELIVERED = {outcome: DELIVERIES.labels(outcome) for outcome in DELIVERY_OUTCOMES}
SIGNATURE_FAILURES = Counter(
    f"{PREFIX}_signature_failures",
    "Deliveries refused by signature verification, by error code.",
    ["code"],
)
# Zeros from the start, so a rate over them exists before the first failure.
for _code in (signatures.MISSING, signatures.INVALID, signatures.OUT_OF_TOLERANCE):
    SIGNATURE_FAILURES.labels(_code)
DELIVERY_DURATION = Histogram(
    f"{PREFIX}_delivery_duration_seconds",
    "Time from the start of handling a delivery to its answer, in the web process.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

# --- worker ------------------------------------------------------------------------------

_SLOW_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
TASKS = Counter(
    f"{PREFIX}_tasks",
    "Celery task runs, by task name and outcome (succeeded, retried, failed).",
    ["task", "outcome"],
)
TASK_DURATION = Histogram(
    f"{PREFIX}_task_duration_seconds",
    "Time one task run took; task=events.process is the processing time of an event.",
    ["task"],
    buckets=_SLOW_BUCKETS,
)
EVENTS_FINISHED = Counter(
    f"{PREFIX}_events_finished",
    "Events that reached a final status in the worker: processed, ignored or dead.",
    ["status"],
)
DOWNLOADS = Counter(
    f"{PREFIX}_downloads",
    "Result file downloads, by outcome (stored, already_stored, expired, failed).",
    ["outcome"],
)
DOWNLOAD_BYTES = Counter(
    f"{PREFIX}_download_bytes", "Bytes of result files downloaded and verified."
)
DOWNLOAD_DURATION = Histogram(
    f"{PREFIX}_download_duration_seconds",
    "Time to download, verify and store one result file.",
    buckets=_SLOW_BUCKETS,
)
RECONCILE_FOUND = Counter(
    f"{PREFIX}_reconcile_found_events",
    "Events the reconciler found in Rivya's event log that no webhook had delivered.",
)
GENERATION_ANOMALIES = Counter(
    f"{PREFIX}_generation_anomalies",
    "Generations Rivya reported succeeded without a result URL.",
)
PURGED = Counter(
    f"{PREFIX}_purged",
    "Rows removed by retention: kind=events (tombstoned) or kind=results (files and rows).",
    ["kind"],
)

# --- relay -------------------------------------------------------------------------------

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

# --- every role --------------------------------------------------------------------------


def _version() -> str:
    try:
        return version("rivya-hooks")
    except PackageNotFoundError:
        return "unknown"


# "max" across processes: every process sets 1, so one series per version.
BUILD_INFO = Gauge(
    f"{PREFIX}_build_info",
    "Always 1; labels name the running version and Python.",
    ["version", "python"],
    multiprocess_mode="max",
)
BUILD_INFO.labels(_version(), platform.python_version()).set(1)
