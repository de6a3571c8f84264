"""The load: new generations at a steady rate, created through Rivya's API as a product does.

Sizes come from the seed: mostly small results (4 KiB to 512 KiB, one or two per generation)
and a handful of 20 to 200 MiB. The simulator takes a result's size and count from its
config, so the load (the only creator) sets them just before each creation.
"""

from __future__ import annotations

import math
import random
import threading
import time
import uuid
from dataclasses import dataclass

import httpx

from rivyahooks_protocol.client import RivyaClient

MODELS = ("rivya-image-1", "rivya-audio-1", "rivya-video-1")
KIB, MIB = 1024, 1024 * 1024


@dataclass
class Created:
    task_id: str
    outputs: int
    size: int
    created: float  # wall clock (time.time) when Rivya answered


@dataclass(frozen=True)
class Planned:
    model: str
    outputs: int
    size: int


def plan(seed: int, count: int) -> list[Planned]:
    """Return what each generation of the run will be (deterministic for a seed)."""
    rng = random.Random(f"load-{seed}")
    large = set(rng.sample(range(count), min(count, max(2, min(6, count // 300 + 3)))))
    planned = []
    for number in range(count):
        if number in large:
            planned.append(Planned("rivya-video-1", 1, rng.randint(20 * MIB, 200 * MIB)))
        else:
            size = int(math.exp(rng.uniform(math.log(4 * KIB), math.log(512 * KIB))))
            planned.append(Planned(rng.choice(MODELS), rng.choice((1, 1, 1, 2)), size))
    return planned


class Load:
    """A thread creating the planned generations at `rate` per second."""

    def __init__(self, api_base: str, api_key: str, rate: float, planned: list[Planned]) -> None:
        self.api_base = api_base
        self.client = RivyaClient(api_base, api_key, timeout_seconds=10, max_attempts=8)
        self.rate = rate
        self.planned = planned
        self.created: list[Created] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-load", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)
        self.client.close()

    def _configure(self, admin: httpx.Client, item: Planned, current: tuple[int, int]) -> None:
        if (item.outputs, item.size) != current:
            admin.post(
                f"{self.api_base}/_sim/config",
                json={"outputs": item.outputs, "output_bytes": item.size},
                timeout=10,
            ).raise_for_status()

    def _run(self) -> None:
        started = time.monotonic()
        current = (0, 0)
        with httpx.Client() as admin:
            for number, item in enumerate(self.planned):
                # The schedule, not the previous call's end: a slow answer is caught up.
                if self._stop.wait(max(0.0, started + number / self.rate - time.monotonic())):
                    return
                try:
                    self._configure(admin, item, current)
                    current = (item.outputs, item.size)
                    generation = self.client.create_generation(
                        item.model, prompt=f"soak {number}", idempotency_key=str(uuid.uuid4())
                    )
                except Exception as exc:
                    self.errors.append(f"generation {number}: {type(exc).__name__}: {exc}")
                    continue
                self.created.append(
                    Created(str(generation["id"]), item.outputs, item.size, time.time())
                )
