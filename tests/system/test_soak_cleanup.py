"""The soak leaves nothing behind when it is interrupted mid-run, as by Ctrl-C.

It makes network namespaces, a bridge, veth pairs, a PostgreSQL cluster and a dozen
processes; a soak stopped halfway that left any of them would break the next run and the
machine's other users. This starts a short soak, interrupts it once its load and chaos are
running, and looks for anything of it: namespaces, links, mounts, processes by name or
still inside one of its namespaces.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.soak import hosts, tools
from tests.support import services
from tests.support.eventually import eventually
from tests.support.processes import ROOT

pytestmark = pytest.mark.slow


def test_interrupted_soak_leaves_nothing(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        services.absent(
            "the soak's cleanup test needs root (network namespaces); CI runs as root",
            "the soak's cleanup test needs root (network namespaces)",
        )
    missing = tools.missing()
    if missing:
        services.absent(f"{missing}; .ci/run installs them", "; ".join(missing))
    output = tmp_path / "soak.out"
    with output.open("wb") as out:
        soak = subprocess.Popen(
            [sys.executable, "-m", "tests.soak", "--minutes", "2", "--rate", "1", "--seed", "7"],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    tag = f"{hosts.PREFIX}{soak.pid}"
    try:
        eventually(
            lambda: "chaos on" in output.read_text() or soak.poll() is not None,
            240,
            "the soak's load and chaos to start",
        )
        assert soak.poll() is None, output.read_text()[-3000:]
        inodes = hosts.namespace_inodes(tag)
        assert len(inodes) == len(hosts.HOSTS)
        soak.send_signal(signal.SIGINT)
        assert soak.wait(180) == 130, output.read_text()[-3000:]
    finally:
        if soak.poll() is None:
            soak.kill()
            soak.wait(30)
            hosts.remove_run(tag)
    left = hosts.what_is_left(tag, inodes)
    assert left == [], f"{left}\n{output.read_text()[-3000:]}"
