"""The supervisor stops whole process groups, restarts what asks for it, and reports the rest."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from rivyahooks.supervisor import (
    ChildExited,
    CrashLoop,
    Lines,
    RestartPolicy,
    Spec,
    Supervisor,
    group_members,
    stop_group,
)


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


def watch_until_it_raises(supervisor: Supervisor) -> None:
    while True:
        supervisor.watch()
        time.sleep(0.02)


def test_a_restarted_child_waits_a_growing_backoff_and_a_crash_loop_stops_it() -> None:
    said: list[tuple[str, str]] = []
    policy = RestartPolicy(backoff_seconds=0.2, crash_limit=4, crash_window_seconds=60)
    supervisor = Supervisor(stop_timeout=5, policy=policy, say=lambda *line: said.append(line))
    child = supervisor.start(Spec("flaky", ["sh", "-c", "exit 3"], restart=True))
    began = time.monotonic()
    with pytest.raises(
        CrashLoop, match=r"^flaky exited with 3: 4 exits within 60 s, not restarted"
    ):
        watch_until_it_raises(supervisor)
    # Restarted at once, then after 0.2 s and 0.4 s; the fourth exit is the loop.
    assert child.starts == 4
    assert time.monotonic() - began >= 0.6
    messages = [message for _level, message in said]
    assert messages[0] == "flaky exited with 3; restarting it in 0 s"
    assert "flaky restarted (start #2)" in messages
    supervisor.stop_all()


def test_exits_outside_the_window_do_not_count_towards_a_crash_loop() -> None:
    policy = RestartPolicy(backoff_seconds=0, crash_limit=2, crash_window_seconds=0.3)
    supervisor = Supervisor(stop_timeout=5, policy=policy)
    child = supervisor.start(Spec("slow", ["sh", "-c", "sleep 0.4; exit 1"], restart=True))
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        supervisor.watch()  # never a CrashLoop: each exit is alone in its window
        time.sleep(0.02)
    assert child.starts >= 3
    supervisor.stop_all()


def test_output_is_prefixed_with_the_childs_name() -> None:
    stream = io.StringIO()
    lines = Lines(stream, ["web", "worker"])
    supervisor = Supervisor(stop_timeout=5)
    for name in ("web", "worker"):
        supervisor.start(
            Spec(name, ["sh", "-c", f"echo hello from {name}; echo oops >&2"], output=lines)
        )
    for child in supervisor.children:
        child.process.wait(10)
    supervisor.stop_all()  # reads what is left of each pipe
    written = stream.getvalue().splitlines()
    assert sorted(written) == sorted(
        ["web    | hello from web", "web    | oops", "worker | hello from worker", "worker | oops"]
    )


def test_json_output_sets_the_role_and_wraps_other_lines() -> None:
    stream = io.StringIO()
    lines = Lines(stream, ["web"], as_json=True)
    record = json.dumps({"event": "booted", "level": "info", "role": "cli"})
    lines("web", record.encode() + b"\n")
    lines("web", b"[2026-01-01] plain text\n")
    lines("web", b"[1, 2]\n")
    lines.say("serve", "warning", "web restarted")
    first, second, third, fourth = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first == {"event": "booted", "level": "info", "role": "web"}
    assert (second["event"], second["role"], second["level"]) == (
        "[2026-01-01] plain text",
        "web",
        "info",
    )
    assert third["event"] == "[1, 2]"
    assert (fourth["event"], fourth["level"], fourth["role"]) == (
        "web restarted",
        "warning",
        "serve",
    )


def test_an_ordered_stop_waits_for_each_child_before_the_next(tmp_path: Path) -> None:
    record = tmp_path / "stopped"
    supervisor = Supervisor(stop_timeout=10)
    for name in ("beat", "worker", "web"):
        # Each takes a moment to stop, and writes down when it does.
        script = (
            f"trap 'sleep 0.3; echo {name} >> {record}; exit 0' TERM; while :; do sleep 0.05; done"
        )
        supervisor.start(Spec(name, ["sh", "-c", script]))
    time.sleep(0.3)

    supervisor.stop_all(order=["web", "worker", "beat"])

    assert record.read_text().split() == ["web", "worker", "beat"]


def test_kill_all_cuts_a_stop_short() -> None:
    supervisor = Supervisor(stop_timeout=30)
    child = supervisor.start(Spec("stubborn", ["sh", "-c", "trap '' TERM; sleep 300 & wait"]))
    group = child.process.pid
    while len(group_members(group)) < 2:
        time.sleep(0.02)
    timer = threading.Timer(0.5, supervisor.kill_all)
    timer.start()
    began = time.monotonic()

    supervisor.stop_all()

    timer.join()
    assert time.monotonic() - began < 5
    assert group_members(group) == []
