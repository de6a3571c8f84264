"""Named step boundaries where a fault test can make a real process fail: fault testing only.

Like SQLite's test hooks or PostgreSQL's injection points: production code calls
`reach("worker.fetched")` at each boundary of an event's lifecycle, and nothing happens
unless FAULT_POINTS_DIR is set (it never is in a deployment). The check is one global
lookup when off.

When it is set, a test arms a point by writing a file named after it into that directory,
holding the action:

- `raise`: raise InjectedFault, an exception no code of ours names, standing for any bug;
- `kill`: SIGKILL the process reaching the point, as a crash or an OOM kill would.

A point fires once, in whichever process reaches it first: that process renames the file
to `<point>.fired.<pid>` (a rename succeeds for exactly one process), so a worker restarted
by its supervisor does not die again at the same place, and the test can see it fired.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

# Every point, by the step it follows. Tests arm them by name; reach() refuses other names
# so that a typo in a test cannot arm a point that never fires.
POINTS = frozenset(
    {
        "receiver.verified",  # the delivery is verified and parsed, nothing stored yet
        "receiver.committed",  # the event is committed, the answer not yet sent
        "relay.claimed",  # due events selected (and locked), nothing published
        "relay.published",  # the broker took the batch, the rows are not marked yet
        "relay.marked",  # the rows are marked `enqueued` and committed
        "worker.claimed",  # the claim is committed
        "worker.fetched",  # the generation was fetched from Rivya
        "worker.applied",  # the generation's state is committed
        "worker.downloaded",  # a result is downloaded to a partial file
        "worker.stored",  # a result file is at its key, its row not yet recorded
        "worker.recorded",  # the attempt's output rows are committed, in one transaction
        "worker.finished",  # the outcome is committed, the message not yet acknowledged
        "sweeper.moved",  # the sweeper committed one move of an event
        "reconcile.page_stored",  # a page of the event log is stored, the checkpoint not moved
    }
)

_directory: Path | None = None


class InjectedFault(Exception):
    """Raised at an armed point: stands for any exception our code does not expect."""


def arm(directory: str) -> None:
    """Enable fault points in this process (`directory` empty: disable them)."""
    global _directory
    _directory = Path(directory) if directory else None


def reach(point: str) -> None:
    """Fire the fault armed at `point`, if any; a no-op unless FAULT_POINTS_DIR is set."""
    if _directory is None:
        return
    _fire(_directory, point)


def _fire(directory: Path, point: str) -> None:
    if point not in POINTS:
        raise ValueError(f"unknown fault point {point!r}")
    armed = directory / point
    fired = directory / f"{point}.fired.{os.getpid()}"
    try:
        os.rename(armed, fired)
    except FileNotFoundError:
        return  # not armed, or another process fired it first
    action = fired.read_text().strip()
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise InjectedFault(f"fault injected at {point}")
