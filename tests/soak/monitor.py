"""What the soak watches while it runs: recovery after each fault, and the running invariants.

Once a second it looks, for every fault that has ended, for the first event processed after
the end (the recovery time of the figures); every 20 s it runs the invariants that must hold
at every moment, not only after the settle (no output row twice, no wrong checksum).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from collections.abc import Callable

import psycopg

from tests.soak import invariants
from tests.soak.chaos import Chaos
from tests.soak.layout import Run
from tests.soak.load import Load

RUNNING_CHECK_SECONDS = 20.0


class Monitor:
    def __init__(self, run: Run, chaos: Chaos, load: Load) -> None:
        self.run = run
        self.chaos = chaos
        self.load = load
        self.recovery: dict[int, float] = {}  # fault number -> seconds to the first event
        self.running_problems: dict[str, list[str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-monitor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)

    def _run(self) -> None:
        next_check = time.monotonic() + RUNNING_CHECK_SECONDS
        while not self._stop.wait(1.0):
            self._guard(self._recoveries)
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + RUNNING_CHECK_SECONDS
                self._guard(self._running_invariants)

    @staticmethod
    def _guard(step: Callable[[], None]) -> None:
        # The database is one of the things under attack; look again next time.
        with contextlib.suppress(psycopg.Error, OSError):
            step()

    def _recoveries(self) -> None:
        pending = [
            w for w in list(self.chaos.windows) if w.end and w.fault.number not in self.recovery
        ]
        if not pending:
            return
        conninfo = invariants._conninfo(self.run)
        with psycopg.connect(conninfo, connect_timeout=3) as connection:
            for window in pending:
                assert window.end is not None
                end = dt.datetime.fromtimestamp(window.end, dt.UTC)
                first = connection.execute(
                    "SELECT min(finished_at) FROM webhook_events "
                    "WHERE status = 'processed' AND finished_at > %s",
                    (end,),
                ).fetchone()
                if first and first[0] is not None:
                    moment = first[0] if first[0].tzinfo else first[0].replace(tzinfo=dt.UTC)
                    self.recovery[window.fault.number] = (moment - end).total_seconds()

    def _running_invariants(self) -> None:
        for verdict in (
            invariants.duplicate_rows(self.run),
            invariants.wrong_checksums(self.run, list(self.load.created)),
        ):
            if not verdict.held:
                self.running_problems.setdefault(verdict.name, verdict.problems)
