"""The reconciler behind PgBouncer in transaction pooling: its lock is released for the next run.

A real PgBouncer of the test's own (tests/support/pgbouncer.py) hands its two server
connections out in turn, so a lock tied to one server session shows every time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rivyahooks_foundation.settings import Settings
from rivyahooks_simulator.config import Faults, SimConfig
from rivyahooks_simulator.server import Simulator
from tasks.reconcile import reconcile
from tasks.runtime import Runtime
from tests.support.pgbouncer import pgbouncer


@pytest.fixture
def bounced_url(postgres_url: str, postgres_engine: Any, tmp_path: Path) -> Iterator[str]:
    with pgbouncer(postgres_url, tmp_path / "pgbouncer") as url:
        yield url


@pytest.mark.postgres
def test_one_reconcile_after_another_behind_transaction_pooling(
    bounced_url: str, settings: Settings
) -> None:
    config = SimConfig(queued_seconds=0, processing_seconds=0, failure_ratio=0)
    with Simulator(config=config, faults=Faults(), seed=5).start() as sim:
        sim.wait_terminal(sim.scenario(3))
        runtime = Runtime(
            settings.replace(
                database_url=bounced_url,
                database_pooler="pgbouncer",
                rivya_api_base=sim.url,
                rivya_api_key=sim.api_key,
            )
        )
        try:
            runs = [reconcile(runtime) for _ in range(4)]
        finally:
            runtime.close()
    # Every run took the lock (none was refused as busy), and the first found the three.
    assert [run.stored for run in runs] == [3, 0, 0, 0]
