"""The tasks' default Rivya and runtime: a simulator whose generations have one output.

A test module that needs another Rivya (the processing and reconcile suites) defines its own
`simulator` and `runtime`, which take precedence over these.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rivyahooks_foundation.settings import Settings
from rivyahooks_simulator.server import Simulator
from tasks.runtime import Runtime
from tests.support.attempts import lifecycle_runtime, one_output_simulator


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    with one_output_simulator() as sim:
        yield sim


@pytest.fixture
def runtime(settings: Settings, simulator: Simulator) -> Iterator[Runtime]:
    with lifecycle_runtime(settings, simulator) as runtime:
        yield runtime
