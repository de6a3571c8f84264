"""The chaos schedule: which fault, where, when and for how long, all from the seed.

The same seed and length give the same schedule, printed at the start, so a failing run can
be replayed. Kinds are dealt from a shuffled deck, reshuffled when empty, so a short run
still sees every kind once before any repeats.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from tests.soak.roles import LEASE_SECONDS, PLACEMENT

KINDS = (
    "kill",  # SIGKILL a role's process; the supervisor starts it again
    "stop",  # SIGSTOP a role's process group for longer than a lease, then SIGCONT
    "pg-restart",  # pg_ctl stop -m fast|immediate, then start
    "pg-read-only",  # default_transaction_read_only on, then off
    "redis-restart",  # Redis killed, started again empty
    "partition",  # a host cut from the data host (nft drop both ways)
    "s3-full",  # object storage refuses every write
    "clock-skew",  # a worker host's roles run under faketime
    "purge-reconcile",  # a purge of events seconds old while the reconciler re-reads the log
)
FIRST_AT = 10.0
GAP = (10.0, 30.0)
PARTITION_HOSTS = ("web1", "web2", "worker1", "worker2", "ops")
WORKER_HOSTS = ("worker1", "worker2")
ROLES = tuple(f"{host}/{role}" for host, roles in PLACEMENT.items() for role in roles)
# Past the lease: the claim lapses while the process still lives, and wakes up later.
STOP_SECONDS = LEASE_SECONDS + 10
PURGE_AGE_SECONDS = 60


@dataclass(frozen=True)
class Fault:
    number: int
    at: float  # seconds after the load started
    kind: str
    target: str
    duration: float
    detail: str = ""

    def describe(self) -> str:
        extra = f" {self.detail}" if self.detail else ""
        lasting = f" for {self.duration:.0f} s" if self.duration else ""
        return f"#{self.number:02d} t+{self.at:5.1f}s {self.kind} {self.target}{extra}{lasting}"


def make_schedule(seed: int, seconds: float) -> list[Fault]:
    """Return the faults of a run of `seconds` seconds."""
    rng = random.Random(f"chaos-{seed}")
    faults: list[Fault] = []
    deck: list[str] = []
    at = FIRST_AT
    while at < seconds:
        if not deck:
            deck = list(KINDS)
            rng.shuffle(deck)
        faults.append(_fault(rng, len(faults) + 1, at, deck.pop()))
        at += rng.uniform(*GAP)
    return faults


def _fault(rng: random.Random, number: int, at: float, kind: str) -> Fault:
    if kind == "kill":
        return Fault(number, at, kind, rng.choice(ROLES), 0)
    if kind == "stop":
        return Fault(number, at, kind, rng.choice(ROLES), STOP_SECONDS)
    if kind == "pg-restart":
        return Fault(number, at, kind, "data/postgres", 0, rng.choice(("fast", "immediate")))
    if kind == "pg-read-only":
        return Fault(number, at, kind, "data/postgres", rng.uniform(20, 60))
    if kind == "redis-restart":
        return Fault(number, at, kind, "data/redis", 0)
    if kind == "partition":
        return Fault(number, at, kind, rng.choice(PARTITION_HOSTS), rng.uniform(10, 60))
    if kind == "s3-full":
        return Fault(number, at, kind, "data/s3", rng.uniform(20, 60))
    if kind == "clock-skew":
        return Fault(
            number,
            at,
            kind,
            rng.choice(WORKER_HOSTS),
            rng.uniform(60, 90),
            rng.choice(("+5s", "-5s")),
        )
    if kind == "purge-reconcile":
        return Fault(number, at, kind, "ops", 0, f"purge older than {PURGE_AGE_SECONDS} s")
    raise ValueError(kind)
