"""A Runtime shared by the outbound role's threads builds each resource once."""

from __future__ import annotations

import threading

from rivyahooks_foundation.settings import Settings
from tasks.runtime import Runtime


def test_threads_starting_together_share_one_engine_and_client() -> None:
    runtime = Runtime(Settings(database_url="sqlite://"))
    start = threading.Barrier(8)
    seen: list[tuple[int, int]] = []

    def first_task() -> None:
        start.wait()
        seen.append((id(runtime.sessions), id(runtime.outbound)))

    threads = [threading.Thread(target=first_task) for _ in range(8)]
    try:
        for each in threads:
            each.start()
        for each in threads:
            each.join()
        assert len(seen) == 8
        assert set(seen) == {(id(runtime.sessions), id(runtime.outbound))}
    finally:
        runtime.close()
