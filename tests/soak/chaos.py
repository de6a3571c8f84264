"""Run the schedule: each fault in a thread of its own, injected, held, then undone.

Faults overlap when one lasts longer than the gap to the next, as real incidents do. Each
records its window (wall-clock start and end of the damage) for the figures, and every undo
is retried until it holds (bounded): a fault left in place would fail the settle, not the
fault. The one sleep here is a fault's duration, which is the point of the fault.
"""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis

from tests.soak.layout import Run
from tests.soak.roles import ops_command, role_spec
from tests.soak.schedule import PURGE_AGE_SECONDS, Fault
from tests.soak.services import Postgres, wait_for

UNDO_TIMEOUT = 120.0
# Longer than the longest database outage the schedule makes, overlaps included.
PURGE_RECONCILE_TRIES_SECONDS = 240.0


@dataclass
class Window:
    fault: Fault
    start: float  # time.time()
    end: float | None = None
    error: str | None = None


class Chaos:
    def __init__(
        self, run: Run, postgres: Postgres, schedule: list[Fault], say: Callable[[str], None]
    ) -> None:
        self.run = run
        self.postgres = postgres
        self.schedule = schedule
        self.say = say
        self.windows: list[Window] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._driver = threading.Thread(target=self._drive, name="soak-chaos", daemon=True)
        self.started_wall = 0.0

    def start(self) -> None:
        self.started_wall = time.time()
        self._started = time.monotonic()
        self._driver.start()

    def finished(self) -> bool:
        return not self._driver.is_alive() and not any(t.is_alive() for t in self._threads)

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        self._driver.join(max(0.0, deadline - time.monotonic()))
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))
        return self.finished()

    def stop(self) -> None:
        """Stop scheduling; faults under way are cut short and undone."""
        self._stop.set()
        self.wait(UNDO_TIMEOUT + 30)

    def _drive(self) -> None:
        for fault in self.schedule:
            if self._stop.wait(max(0.0, self._started + fault.at - time.monotonic())):
                return
            thread = threading.Thread(target=self._apply, args=(fault,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _apply(self, fault: Fault) -> None:
        window = Window(fault, time.time())
        with self._lock:
            self.windows.append(window)
        self.say(f"fault {fault.describe()}")
        try:
            self._action(fault.kind)(fault)
        except Exception as exc:
            window.error = f"{type(exc).__name__}: {exc}"
            self.say(f"fault #{fault.number:02d} {fault.kind}: {window.error}")
        window.end = time.time()
        self.say(
            f"fault #{fault.number:02d} {fault.kind} over after {window.end - window.start:.1f} s"
        )

    def _action(self, kind: str) -> Callable[[Fault], None]:
        actions: dict[str, Callable[[Fault], None]] = {
            "kill": self._kill,
            "stop": self._stop_role,
            "pg-restart": self._pg_restart,
            "pg-read-only": self._pg_read_only,
            "redis-restart": self._redis_restart,
            "partition": self._partition,
            "s3-full": self._s3_full,
            "clock-skew": self._clock_skew,
            "purge-reconcile": self._purge_reconcile,
        }
        return actions[kind]

    def _hold(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def _retry(self, what: str, action: Callable[[], object]) -> None:
        deadline = time.monotonic() + UNDO_TIMEOUT
        while True:
            try:
                action()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)

    # --- the kinds ------------------------------------------------------------------

    def _kill(self, fault: Fault) -> None:
        self.run.processes.kill(fault.target)

    def _stop_role(self, fault: Fault) -> None:
        self.run.processes.signal_group(fault.target, signal.SIGSTOP)
        try:
            self._hold(fault.duration)
        finally:
            self.run.processes.signal_group(fault.target, signal.SIGCONT)

    def _pg_restart(self, fault: Fault) -> None:
        self.postgres.stop(fault.detail)
        self._retry("start PostgreSQL", self.postgres.start)

    def _pg_read_only(self, fault: Fault) -> None:
        self._retry("make PostgreSQL read-only", lambda: self.postgres.set_read_only(True))
        try:
            self._hold(fault.duration)
        finally:
            self._retry("make PostgreSQL writable", lambda: self.postgres.set_read_only(False))

    def _redis_restart(self, fault: Fault) -> None:
        self.run.processes.kill("data/redis")
        wait_for("Redis back", lambda: redis.Redis.from_url(self.run.broker_url()).ping(), 60)

    def _partition(self, fault: Fault) -> None:
        host = self.run.network[fault.target]
        table = f"soak_partition_{fault.number}"
        data = self.run.data
        rules = (
            f"table inet {table} {{\n"
            f"  chain out {{ type filter hook output priority 0; ip daddr {data} drop; }}\n"
            f"  chain in {{ type filter hook input priority 0; ip saddr {data} drop; }}\n"
            "}\n"
        )
        subprocess.run(
            host.exec("nft", "-f", "-"),
            input=rules,
            text=True,
            check=True,
            capture_output=True,
            timeout=20,
        )
        try:
            self._hold(fault.duration)
        finally:
            self._retry(
                "heal the partition",
                lambda: subprocess.run(
                    host.exec("nft", "delete", "table", "inet", table),
                    check=True,
                    capture_output=True,
                    timeout=20,
                ),
            )

    def _s3_full(self, fault: Fault) -> None:
        self.run.s3_full_flag.touch()
        try:
            self._hold(fault.duration)
        finally:
            self.run.s3_full_flag.unlink(missing_ok=True)

    def _clock_skew(self, fault: Fault) -> None:
        name = f"{fault.target}/worker"
        self.run.processes.replace(name, role_spec(self.run, fault.target, "worker", fault.detail))
        try:
            self._hold(fault.duration)
        finally:
            self.run.processes.replace(name, role_spec(self.run, fault.target, "worker"))

    def _purge_reconcile(self, fault: Fault) -> None:
        """A purge of events seconds old while a reconcile re-reads the log since the start.

        Both are started again, together, until both succeed in the same round, as an operator
        would: beat runs its own reconcile every 30 s and a second one refuses to start
        ("another reconcile is running"), and a command that meets a database outage of
        another fault exits 1 with one error line. Failing for longer than any outage of the
        schedule is the fault's failure.
        """
        since = dt.datetime.fromtimestamp(self.started_wall - 60, dt.UTC).isoformat()
        log = self.run.logdir / "ops-purge-reconcile.log"
        deadline = time.monotonic() + PURGE_RECONCILE_TRIES_SECONDS
        while True:
            statuses = self._purge_and_reconcile(since, log)
            done = len(statuses) == 2 and not any(statuses.values())
            if done or time.monotonic() > deadline or self._stop.is_set():
                break
            self._hold(2)
        if not done:
            raise RuntimeError(f"exit statuses {statuses} (see {log})")

    def _purge_and_reconcile(self, since: str, log: Path) -> dict[str, int]:
        statuses: dict[str, int] = {}

        def purge() -> None:
            statuses["purge"] = ops_command(
                self.run,
                sys.executable,
                "-m",
                "tests.soak.purge",
                str(PURGE_AGE_SECONDS),
                timeout=120,
                log=log,
            )

        def reconcile() -> None:
            statuses["reconcile"] = ops_command(
                self.run, "rivya-hooks", "reconcile", "--since", since, timeout=120, log=log
            )

        both = [threading.Thread(target=purge), threading.Thread(target=reconcile)]
        for thread in both:
            thread.start()
        for thread in both:
            thread.join(150)
        return statuses
