"""Every long-running process of the soak under the project's one supervisor, shared safely.

rivyahooks.supervisor restarts a child that exits, as a platform restarts a crashed role,
but is used by one thread at a time; the soak's watcher, its chaos and its teardown are
several threads, so they all go through this lock. A role is found by its name
("web1/web"), and the chaos may swap its command (a skewed clock) while it runs.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable

from rivyahooks.supervisor import Child, Spec, Supervisor, signal_group, stop_group

WATCH_INTERVAL = 0.2


class Processes:
    """Named children, watched by a thread that restarts the ones that exit."""

    def __init__(self, stop_timeout: float = 15.0) -> None:
        self._supervisor = Supervisor(stop_timeout)
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="soak-watch", daemon=True)
        self.problems: list[str] = []
        self.on_restart: Callable[[str], None] = lambda name: None

    def start(self, spec: Spec) -> Child:
        with self._lock:
            return self._supervisor.start(spec)

    def child(self, name: str) -> Child:
        with self._lock:
            for child in self._supervisor.children:
                if child.spec.name == name:
                    return child
        raise KeyError(name)

    def names(self) -> list[str]:
        with self._lock:
            return [child.spec.name for child in self._supervisor.children]

    def pid(self, name: str) -> int:
        return self.child(name).process.pid

    def kill(self, name: str) -> int:
        """SIGKILL the role's own process (not its group): a crash; return the pid."""
        with self._lock:
            pid = self.child(name).process.pid
            os.kill(pid, signal.SIGKILL)
            return pid

    def signal_group(self, name: str, sig: int) -> None:
        """Send `sig` to the role's whole process group (SIGSTOP freezes its children too)."""
        with self._lock:
            signal_group(self.child(name).process, sig)

    def replace(self, name: str, spec: Spec) -> None:
        """Stop a child and run `spec` in its place (same name)."""
        with self._lock:
            old = self.child(name)
            stop_group(old.process, timeout=self._supervisor.stop_timeout)
            old.close()
            self._supervisor.children.remove(old)
            self._supervisor.start(spec)

    def begin_watching(self) -> None:
        self._watcher.start()

    def _watch(self) -> None:
        while not self._stopping.wait(WATCH_INTERVAL):
            with self._lock:
                for child in list(self._supervisor.children):
                    if child.process.poll() is None:
                        continue
                    if not child.spec.restart:
                        self.problems.append(child.exited())
                        self._supervisor.children.remove(child)
                        child.close()
                        continue
                    child.restart(self._supervisor.stop_timeout)
                    self.on_restart(child.spec.name)

    def stop_all(self) -> None:
        """Stop watching, then stop every child (SIGCONT first: a stopped one cannot stop)."""
        self._stopping.set()
        if self._watcher.is_alive():
            self._watcher.join(60)
        with self._lock:
            for child in self._supervisor.children:
                signal_group(child.process, signal.SIGCONT)
            self._supervisor.stop_all()
