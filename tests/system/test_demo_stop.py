"""A demo kept running for the console stops every role when it is killed, not only on Ctrl-C.

Each role runs in a session of its own, so the terminal's signals never reach them: only
the demo can stop them. A `kill` of the demo (SIGTERM) or a closed terminal (SIGHUP) must
end in the same clean stop as Ctrl-C, or the web role, relay, worker, beat and simulator
keep running, holding their ports, with nobody left to stop them.
"""

from __future__ import annotations

import os
import pty
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.support.eventually import eventually
from tests.support.processes import BIN, ROOT, processes_in

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGHUP], ids=["TERM", "HUP"])
def test_a_killed_demo_leaves_no_role_running(stop_signal: int, tmp_path: Path) -> None:
    # The demo works in its current directory (var/demo), from the Procfile found there.
    workdir = tmp_path.resolve()
    shutil.copy(ROOT / "Procfile", workdir / "Procfile")
    shutil.copytree(ROOT / "deploy", workdir / "deploy")
    log = workdir / "demo.out"
    # --keep-running applies only on a terminal: give the demo one for its standard input.
    terminal, other_end = pty.openpty()
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    with log.open("wb") as out:
        demo = subprocess.Popen(
            [str(BIN / "rivya-hooks"), "demo", "--generations", "4", "--keep-running"],
            cwd=workdir,
            env=env,
            stdin=other_end,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    os.close(other_end)
    try:
        eventually(
            lambda: b"Ctrl-C stops them" in log.read_bytes() or demo.poll() is not None,
            240,
            "the demo kept running for the console",
        )
        assert demo.poll() is None, log.read_text()
        assert len(processes_in(workdir)) > 1, "the roles run in the demo's directory"

        demo.send_signal(stop_signal)

        assert demo.wait(60) == 128 + stop_signal
        assert "stopping everything the demo started" in log.read_text()
        eventually(lambda: not processes_in(workdir), 30, "every role of the demo gone")
    finally:
        for pid in processes_in(workdir):
            os.kill(pid, signal.SIGKILL)
        os.close(terminal)
