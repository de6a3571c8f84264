"""The command loads the simulator only for `simulate`: the demo knows it only over HTTP."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.processes import ROOT


@pytest.mark.parametrize("module", ["rivyahooks.cli", "rivyahooks.demo.run"])
def test_importing_the_command_loads_no_simulator(module: str) -> None:
    # A process of its own: this one has long imported the simulator for other tests.
    probe = (
        f"import sys, {module}\n"
        "print(sorted(m for m in sys.modules if m.startswith('rivyahooks_simulator')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout == "[]\n"
