"""The worker's families: task runs, event outcomes, downloads, storage, reconcile, retention."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from rivyahooks_foundation.metrics.families import PREFIX

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
# No labels: the series exists at 0 from the start, so an alert's increase() sees the first.
STORAGE_FULL = Counter(
    f"{PREFIX}_storage_full",
    "Processing attempts ended because the result storage had no room: a full disk or "
    "quota, or a download refused to keep STORAGE_MIN_FREE_BYTES free.",
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
    "Rows removed by retention: kind=events (tombstoned), kind=tombstones (expired), "
    "kind=outbound_messages (with their deliveries) or kind=results (files and rows).",
    ["kind"],
)
