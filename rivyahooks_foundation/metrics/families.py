"""What every role exports, and the prefix every family's name starts with.

Each role's own families are in a module of their own (web, worker, relay), so a role's
/metrics shows only what it counts. Names follow Prometheus's naming page: counters end in
`_total` (the client adds it), durations are `_seconds`, sizes `_bytes`; every family has
help. The database gauges are beat's (tasks/database_gauges.py).
"""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

from prometheus_client import Gauge

PREFIX = "rivyahooks"


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
