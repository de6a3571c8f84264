"""Child processes, each in a process group of its own: start them, watch them, stop them all.

Each child leads a new session, so the terminal's signals (Ctrl-C, a closed terminal) never
reach it: only its supervisor stops it. A stop signals the child's whole process group, so
what the child started goes too (a shell's command, gunicorn's and a prefork worker's
children), and whatever is left when the timeout has passed gets SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO

STOP_TIMEOUT_SECONDS = 15.0
# After SIGKILL only a process stuck in the kernel is still there; waiting longer won't help.
KILL_WAIT_SECONDS = 5.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class ChildExited(RuntimeError):
    """A child that is not restarted exited while the supervisor was watching it."""


@dataclass(frozen=True)
class Spec:
    """One child: its command, its environment, where its output goes, whether to restart it."""

    name: str
    command: Sequence[str]
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    # stdout and stderr are appended to this file; without one they are discarded.
    log: Path | None = None
    # Start it again whenever it exits, as a platform restarts a crashed role.
    restart: bool = False


class Child:
    """A started child: its spec, its current process, and how many times it was started."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.starts = 0
        # A copy: a caller changing its dictionary later must not change what a restart runs.
        self._env = None if spec.env is None else dict(spec.env)
        # Kept open across restarts, so every run of the child writes to the same log.
        self._out: IO[bytes] | int = (
            open(spec.log, "ab")  # noqa: SIM115 (closed by close())
            if spec.log
            else subprocess.DEVNULL
        )
        try:
            self.process = self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> subprocess.Popen[bytes]:
        self.starts += 1
        return subprocess.Popen(
            list(self.spec.command),
            cwd=self.spec.cwd,
            env=self._env,
            stdout=self._out,
            stderr=self._out,
            start_new_session=True,
        )

    def restart(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """Stop what is left of the last run's process group, then start the child again."""
        stop_group(self.process, timeout=timeout)
        self.process = self._start()

    def exited(self) -> str:
        """Say how the child's process exited, and where its output went."""
        where = f"; see {self.spec.log}" if self.spec.log else ""
        return f"{self.spec.name} exited with {self.process.returncode}{where}"

    def close(self) -> None:
        """Close the child's log (once it is stopped)."""
        if not isinstance(self._out, int):
            self._out.close()


class Supervisor:
    """Children started, watched and stopped together; one thread at a time uses it."""

    def __init__(self, stop_timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        self.stop_timeout = stop_timeout
        self.children: list[Child] = []

    def start(self, spec: Spec) -> Child:
        """Start a child in a session and process group of its own."""
        child = Child(spec)
        self.children.append(child)
        return child

    def watch(self) -> None:
        """Restart the children that exited and ask for it; raise ChildExited for any other."""
        for child in self.children:
            if child.process.poll() is None:
                continue
            if not child.spec.restart:
                raise ChildExited(child.exited())
            child.restart(self.stop_timeout)

    def stop_all(self) -> None:
        """Stop every child, last started first: SIGTERM to each group, then SIGKILL.

        Every group gets SIGTERM before any wait, so the children stop side by side within
        one timeout rather than one timeout each.
        """
        children, self.children = self.children, []
        for child in reversed(children):
            signal_group(child.process, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for child in children:
            if not wait_group(child.process, max(0.1, deadline - time.monotonic())):
                signal_group(child.process, signal.SIGKILL)
                wait_group(child.process, KILL_WAIT_SECONDS)
            child.close()


def stop_group(
    process: subprocess.Popen[bytes],
    sig: int = signal.SIGTERM,
    timeout: float = STOP_TIMEOUT_SECONDS,
) -> None:
    """Send `sig` to the process group `process` leads; SIGKILL what is left after `timeout`."""
    signal_group(process, sig)
    if not wait_group(process, timeout):
        signal_group(process, signal.SIGKILL)
        wait_group(process, KILL_WAIT_SECONDS)


def signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    """Send `sig` to the process group `process` leads, if anything of it is still there."""
    # Once the leader is reaped and the group is empty, its number is free for another
    # process's group: only a group with a member left is certainly still this one.
    if process.poll() is None or group_members(process.pid):
        with suppress(ProcessLookupError):  # the last member exited meanwhile
            os.killpg(process.pid, sig)


def wait_group(process: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait until `process` and every member of its group have exited; return whether they did."""
    deadline = time.monotonic() + timeout
    try:
        process.wait(max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return False
    while group_members(process.pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def group_members(pgid: int) -> list[int]:
    """Return the live processes of a process group (zombies excluded), read from /proc.

    A child orphaned by its shell keeps the group, so an empty group after a role stopped
    means nothing of that role survived. Without /proc (not Linux) the group is asked
    with signal 0, which cannot name the members nor tell a zombie from a live process.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        except PermissionError:
            pass  # there, but not ours to signal
        return [pgid]
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        # The command name may hold spaces and parentheses; the fields after the last ')'
        # are fixed: state, ppid, pgrp, ...
        state, _ppid, pgrp = stat.rsplit(")", 1)[1].split()[:3]
        if int(pgrp) == pgid and state != "Z":
            members.append(int(entry.name))
    return members


def exit_on_stop_signals() -> None:
    """Turn SIGTERM and SIGHUP into SystemExit(128 + signal), so `finally` stops the children.

    Only the supervisor can stop its children, so its own `kill` or a closed terminal must
    stop them as Ctrl-C does. Call it from the main thread only.
    """
    for stop_signal in STOP_SIGNALS:
        signal.signal(stop_signal, _exit_on_signal)


def ignore_stop_signals() -> None:
    """Ignore SIGTERM and SIGHUP, so a second one cannot cut a stop short (main thread only)."""
    for stop_signal in STOP_SIGNALS:
        signal.signal(stop_signal, signal.SIG_IGN)


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)
