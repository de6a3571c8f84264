"""The web role's families: what happened to each delivery.

Children with fixed label values are resolved once here, so a count on the receiver's hot
path is one call, not a label lookup.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from rivyahooks_foundation.metrics.families import PREFIX
from rivyahooks_protocol import signatures

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
