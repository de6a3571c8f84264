"""The supervisor stops whole process groups, restarts what asks for it, and reports the rest."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from rivyahooks.supervisor import ChildExited, Spec, Supervisor, group_members, stop_group


def test_stop_all_leaves_nothing_of_a_group_behind() -> None:
    supervisor = Supervisor(stop_timeout=10)
    # A shell with a child of its own in the background: the grandchild keeps the group.
    child = supervisor.start(Spec("shell", ["sh", "-c", "sleep 300 & exec sleep 300"]))
    group = child.process.pid
    while len(group_members(group)) < 2:
        time.sleep(0.02)

    supervisor.stop_all()

    assert child.process.returncode == -signal.SIGTERM
    assert group_members(group) == []
    assert supervisor.children == []


def test_a_group_that_ignores_sigterm_is_killed_after_the_timeout() -> None:
    supervisor = Supervisor(stop_timeout=0.5)
    # Ignored at exec, SIGTERM stays ignored in the shell and in its background sleep.
    child = supervisor.start(Spec("stubborn", ["sh", "-c", "trap '' TERM; sleep 300 & wait"]))
    group = child.process.pid
    while len(group_members(group)) < 2:
        time.sleep(0.02)
    began = time.monotonic()

    supervisor.stop_all()

    assert time.monotonic() - began < 5
    assert child.process.returncode == -signal.SIGKILL
    assert group_members(group) == []


def test_stopping_a_leader_that_already_exited_stops_what_it_left() -> None:
    process = subprocess.Popen(
        ["sh", "-c", "sleep 300 & echo started"],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == b"started\n"
    process.wait(10)
    process.stdout.close()
    assert group_members(process.pid), "the orphaned sleep keeps the group"

    stop_group(process, timeout=10)

    assert group_members(process.pid) == []


def test_watch_restarts_a_restarted_child_and_reports_any_other(tmp_path: Path) -> None:
    supervisor = Supervisor(stop_timeout=5)
    restarted = supervisor.start(Spec("restarted", ["true"], restart=True))
    restarted.process.wait(10)
    supervisor.watch()
    assert restarted.starts == 2

    log = tmp_path / "failing.log"
    failing = supervisor.start(Spec("failing", ["sh", "-c", "echo broken; exit 3"], log=log))
    failing.process.wait(10)
    with pytest.raises(ChildExited, match=rf"^failing exited with 3; see {log}$"):
        supervisor.watch()
    supervisor.stop_all()
    assert log.read_text() == "broken\n"
