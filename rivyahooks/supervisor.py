"""Child processes, each in a process group of its own: start them, watch them, stop them all.

Each child leads a new session, so the terminal's signals (Ctrl-C, a closed terminal) never
reach it: only its supervisor stops it. A stop signals the child's whole process group, so
what the child started goes too (a shell's command, gunicorn's and a prefork worker's
children), and whatever is left when the timeout has passed gets SIGKILL.

A child that asks for it is restarted when it exits: at once the first time, then after a
backoff that doubles; one that exits too often within a window is a crash loop, and the
supervisor gives up on it (CrashLoop). A child's output goes to a log file, or line by line
to an output function (`Lines`: every child's lines on one stream, prefixed with its name or
as JSON records with a `role`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TextIO

STOP_TIMEOUT_SECONDS = 15.0
# After SIGKILL only a process stuck in the kernel is still there; waiting longer won't help.
KILL_WAIT_SECONDS = 5.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class ChildExited(RuntimeError):
    """A child that is not restarted exited while the supervisor was watching it."""


class CrashLoop(ChildExited):
    """A restarted child exited too often within the policy's window; it is not restarted."""


# What receives a child's output: its name and one line (bytes, with its line end).
Output = Callable[[str, bytes], None]


@dataclass(frozen=True)
class Spec:
    """One child: its command, its environment, where its output goes, whether to restart it."""

    name: str
    command: Sequence[str]
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    # stdout and stderr are appended to this file; without one (nor `output`) discarded.
    log: Path | None = None
    # Start it again whenever it exits, as a platform restarts a crashed role.
    restart: bool = False
    # Without a log: every line of stdout and stderr, with the child's name, to this.
    output: Output | None = None


@dataclass(frozen=True)
class RestartPolicy:
    """When an exited child is started again, and when the supervisor gives up on it."""

    # The first exit restarts at once; the next ones wait this, doubling up to the maximum.
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 30.0
    # This many exits within the window is a crash loop: CrashLoop, no more restarts.
    crash_limit: int = 5
    crash_window_seconds: float = 60.0

    def delay(self, recent_exits: int) -> float:
        """Return how long to wait before the restart after `recent_exits` exits in the window."""
        if recent_exits <= 1:
            return 0.0
        return float(min(self.max_backoff_seconds, self.backoff_seconds * 2 ** (recent_exits - 2)))


class Child:
    """A started child: its spec, its current process, and how many times it was started."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.starts = 0
        # Times (monotonic) of the exits within the restart policy's window.
        self.exits: deque[float] = deque()
        # When an exited child is due to start again (monotonic); None while it runs.
        self.restart_due: float | None = None
        self._pump: threading.Thread | None = None
        # A copy: a caller changing its dictionary later must not change what a restart runs.
        self._env = None if spec.env is None else dict(spec.env)
        # Kept open across restarts, so every run of the child writes to the same log.
        self._out: IO[bytes] | int = (
            open(spec.log, "ab")  # noqa: SIM115 (closed by close())
            if spec.log
            else subprocess.PIPE
            if spec.output
            else subprocess.DEVNULL
        )
        try:
            self.process = self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> subprocess.Popen[bytes]:
        self.starts += 1
        process = subprocess.Popen(
            list(self.spec.command),
            cwd=self.spec.cwd,
            env=self._env,
            stdout=self._out,
            stderr=subprocess.STDOUT if self._out == subprocess.PIPE else self._out,
            start_new_session=True,
        )
        if process.stdout is not None and self.spec.output is not None:
            self._pump = threading.Thread(
                target=_pump,
                args=(process.stdout, self.spec.name, self.spec.output),
                name=f"output of {self.spec.name}",
                daemon=True,
            )
            self._pump.start()
        return process

    def restart(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """Stop what is left of the last run's process group, then start the child again."""
        stop_group(self.process, timeout=timeout)
        self._finish_pump()
        self.restart_due = None
        self.process = self._start()

    def count_exit(self, now: float, window: float) -> int:
        """Record an exit at `now`; return the exits within the last `window` seconds."""
        self.exits.append(now)
        while self.exits and self.exits[0] <= now - window:
            self.exits.popleft()
        return len(self.exits)

    def _finish_pump(self) -> None:
        # The pipe ends when the last process of the group holding it has gone: read the rest.
        if self._pump is not None:
            self._pump.join(KILL_WAIT_SECONDS)
            self._pump = None

    def exited(self) -> str:
        """Say how the child's process exited, and where its output went."""
        where = f"; see {self.spec.log}" if self.spec.log else ""
        return f"{self.spec.name} exited with {self.process.returncode}{where}"

    def close(self) -> None:
        """Close the child's log (once it is stopped)."""
        self._finish_pump()
        if not isinstance(self._out, int):
            self._out.close()


def _pump(stream: IO[bytes], name: str, output: Output) -> None:
    """Hand every line of a child's output to `output` until the pipe ends."""
    with stream:
        for line in iter(stream.readline, b""):
            output(name, line)


class Supervisor:
    """Children started, watched and stopped together; one thread at a time uses it.

    `say` receives what the supervisor does on its own (a restart, a crash loop, a stop),
    as (level, message).
    """

    def __init__(
        self,
        stop_timeout: float = STOP_TIMEOUT_SECONDS,
        policy: RestartPolicy | None = None,
        say: Callable[[str, str], None] | None = None,
    ) -> None:
        self.stop_timeout = stop_timeout
        self.policy = policy or RestartPolicy()
        self.children: list[Child] = []
        self._say = say or (lambda _level, _message: None)
        # The children of a stop in progress, so that kill_all reaches them too.
        self._stopping: list[Child] = []

    def start(self, spec: Spec) -> Child:
        """Start a child in a session and process group of its own."""
        child = Child(spec)
        self.children.append(child)
        return child

    def watch(self) -> None:
        """Restart the children that exited and ask for it, after their backoff.

        Raise ChildExited for a child that exited and is not restarted, CrashLoop for one
        that exited `crash_limit` times within the window.
        """
        now = time.monotonic()
        for child in self.children:
            if child.restart_due is not None:
                if now >= child.restart_due:
                    self._restart(child)
                continue
            if child.process.poll() is None:
                continue
            if not child.spec.restart:
                raise ChildExited(child.exited())
            recent = child.count_exit(now, self.policy.crash_window_seconds)
            if recent >= self.policy.crash_limit:
                raise CrashLoop(
                    f"{child.exited()}: {recent} exits within "
                    f"{self.policy.crash_window_seconds:.0f} s, not restarted again"
                )
            delay = self.policy.delay(recent)
            self._say("warning", f"{child.exited()}; restarting it in {delay:.0f} s")
            child.restart_due = now + delay
            if delay == 0:
                self._restart(child)

    def _restart(self, child: Child) -> None:
        child.restart(self.stop_timeout)
        self._say("info", f"{child.spec.name} restarted (start #{child.starts})")

    def stop_all(self, order: Sequence[str] = ()) -> None:
        """Stop every child: SIGTERM to each group, then SIGKILL what is left at the timeout.

        The children named in `order` are stopped first, one after the other in that order,
        each waited for before the next gets SIGTERM; the rest then stop side by side, last
        started first. The timeout is for the whole stop, never one timeout per child.
        """
        children, self.children = self.children, []
        self._stopping = children
        deadline = time.monotonic() + self.stop_timeout
        by_name = {child.spec.name: child for child in children}
        sequence = [by_name[name] for name in order if name in by_name]
        rest = [child for child in children if child not in sequence]
        try:
            for child in sequence:
                self._say("info", f"stopping {child.spec.name}")
                signal_group(child.process, signal.SIGTERM)
                self._wait_or_kill(child, deadline)
            for child in reversed(rest):
                signal_group(child.process, signal.SIGTERM)
            for child in rest:
                self._wait_or_kill(child, deadline)
        finally:
            for child in children:
                child.close()
            self._stopping = []

    def _wait_or_kill(self, child: Child, deadline: float) -> None:
        if not wait_group(child.process, max(0.1, deadline - time.monotonic())):
            self._say("warning", f"{child.spec.name} still running at the timeout: SIGKILL")
            signal_group(child.process, signal.SIGKILL)
            wait_group(child.process, KILL_WAIT_SECONDS)

    def kill_all(self) -> None:
        """SIGKILL every child's group at once, those of a stop in progress too.

        Safe from a signal handler while stop_all runs: its waits then end at once.
        """
        for child in [*self.children, *self._stopping]:
            signal_group(child.process, signal.SIGKILL)


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


class Lines:
    """Every child's output on one stream, a whole line at a time, marked with its name.

    Plain text: `web    | line`. As JSON (`as_json`), one object per line with `role` set to
    the child's name: a line that is already a JSON object keeps its fields, any other line
    becomes the `event` of a new record.
    """

    def __init__(self, stream: TextIO, names: Sequence[str], as_json: bool = False) -> None:
        self.stream = stream
        self.as_json = as_json
        self.width = max((len(name) for name in names), default=0)
        self._lock = threading.Lock()

    def __call__(self, name: str, line: bytes) -> None:
        self.write(name, line.decode("utf-8", "replace").rstrip("\r\n"))

    def say(self, name: str, level: str, message: str) -> None:
        """Write a line of the supervisor's own under `name`, at `level`."""
        if self.as_json:
            self._emit(json.dumps(_record(message, level, name)))
        else:
            self.write(name, message)

    def write(self, name: str, text: str) -> None:
        if not self.as_json:
            self._emit(f"{name.ljust(self.width)} | {text}")
            return
        try:
            record = json.loads(text)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            record = _record(text, "info", name)
        record["role"] = name
        self._emit(json.dumps(record))

    def _emit(self, text: str) -> None:
        with self._lock:
            try:
                self.stream.write(text + "\n")
                self.stream.flush()
            except (OSError, ValueError):  # a closed terminal or pipe: nobody reads any more
                pass


def _record(event: str, level: str, role: str) -> dict[str, str]:
    moment = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(moment))
    return {
        "timestamp": f"{stamp}.{int((moment % 1) * 1000):03d}Z",
        "level": level,
        "event": event,
        "role": role,
    }
