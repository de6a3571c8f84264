"""The Procfile's beat line hands a stop signal to celery: no beat outlives its role.

The line is two commands (`mkdir -p var && ... celery beat`). Unless the shell replaces
itself with celery (`exec`), celery runs as the shell's child: a supervisor that signals only
the process it started (docker's PID 1, supervisord, systemd's KillMode=process) kills the
shell and leaves beat running, and a second beat means every schedule fires twice. dash,
Debian's /bin/sh and honcho's shell, never replaces itself on its own; bash does for the last
command, so both shells are tried.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from rivyahooks.procfile import procfile_roles
from rivyahooks_foundation.settings import Settings
from tests.support.eventually import eventually
from tests.support.processes import BIN, ROOT, child_env, group_members

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("shell", ["sh", "bash"])
@pytest.mark.parametrize("stop", ["shell", "group"])
def test_no_beat_outlives_its_shell(shell: str, stop: str, tmp_path: Path) -> None:
    line = procfile_roles(ROOT / "Procfile")["beat"]
    # Embedded defaults: var/ of the working directory holds the database and the broker.
    settings = Settings(rivya_api_key="rvya_sk_beat_test")
    env = child_env(settings, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    log = tmp_path / "beat.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [shell, "-c", line],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    group = process.pid
    try:
        eventually(lambda: b"beat: Starting" in log.read_bytes(), 60, "beat started")
        if stop == "shell":
            os.kill(process.pid, signal.SIGTERM)
        else:
            os.killpg(group, signal.SIGTERM)
        process.wait(30)
        eventually(lambda: not group_members(group), 30, f"beat gone after SIGTERM to the {stop}")
    finally:
        if group_members(group):
            os.killpg(group, signal.SIGKILL)
        process.wait(10)
