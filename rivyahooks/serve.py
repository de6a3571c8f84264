"""`rivya-hooks serve`: migrate, then run every service role as one process tree.

Each role is started with its Procfile line (rivyahooks/roles.py), through bash, as a
platform starts it; the one supervisor restarts a role that dies (with backoff), stops the
whole tree when one keeps dying, and on SIGTERM or SIGINT stops web first (no new delivery
is taken), then the relay, the worker and outbound (running tasks finish: Celery's warm
shutdown) and beat. A second signal kills everything at once.

Without DATABASE_URL and BROKER_URL the service runs on its embedded defaults: a SQLite
database and a SQLite broker under the data directory, result files under it too unless
STORAGE_URL says otherwise. With them set (PostgreSQL, Redis) the same code runs.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from sqlalchemy.engine import make_url

from rivyahooks.roles import RELEASE, ROLES, SERVICE_ROLES
from rivyahooks.supervisor import CrashLoop, Lines, RestartPolicy, Spec, Supervisor
from rivyahooks_foundation.settings import (
    EXIT_CONFIG,
    FILE_SUFFIX,
    FIX_SETTING,
    Settings,
    SettingsError,
)

EXIT_FAILED = 1
STOP_TIMEOUT_SECONDS = 20.0
WATCH_INTERVAL_SECONDS = 0.2
# The name of serve's own lines among the roles'.
SELF = "serve"


@dataclass(frozen=True)
class ServeOptions:
    data_dir: Path = Path("var")
    roles: Sequence[str] = SERVICE_ROLES
    stop_timeout: float = STOP_TIMEOUT_SECONDS
    migrate: bool = True
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    # Each role's command line; the Procfile's unless a test stands one in.
    commands: Mapping[str, str] = field(default_factory=lambda: dict(ROLES))


def _is_set(environ: Mapping[str, str], name: str) -> bool:
    return any((environ.get(n) or "").strip() for n in (name, name + FILE_SUFFIX))


def role_environment(environ: Mapping[str, str], data_dir: Path) -> dict[str, str]:
    """Return the roles' environment: the embedded defaults under `data_dir` where unset."""
    env = dict(environ)
    data = data_dir.resolve()
    if not _is_set(env, "DATABASE_URL"):
        env["DATABASE_URL"] = f"sqlite:///{data / 'rivya-hooks.sqlite3'}"
    if not _is_set(env, "BROKER_URL"):
        env["BROKER_URL"] = f"sqla+sqlite:///{data / 'celery-broker.sqlite3'}"
    if not _is_set(env, "STORAGE_URL"):
        env["STORAGE_URL"] = f"file://{data / 'results'}"
    env["DATA_DIR"] = str(data)
    # A person runs this on a terminal: readable lines, unless JSON is asked for.
    env.setdefault("LOG_FORMAT", "console")
    # The roles' executables (gunicorn, celery, rivya-hooks) are beside this Python: with
    # pipx only rivya-hooks itself is on PATH.
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", os.defpath)])
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def check_settings(settings: Settings, roles: Sequence[str]) -> None:
    """Raise SettingsError for any setting one of `roles` cannot start with."""
    if "web" in roles:
        from receiver.app import check_settings as check_web

        check_web(settings)
    # Celery's entry point (tasks/worker.py) refuses to start any of these without it.
    if {"worker", "outbound", "beat"} & set(roles):
        settings.require_api_key()


def _config_error(message: str, next_step: str = FIX_SETTING) -> int:
    print(f"error: {message}", file=sys.stderr)
    print(f"next: {next_step}", file=sys.stderr)
    return EXIT_CONFIG


class Signals:
    """The first SIGTERM, SIGINT or SIGHUP asks for a stop; a second one kills at once."""

    def __init__(self, supervisor: Supervisor, lines: Lines) -> None:
        self.supervisor = supervisor
        self.lines = lines
        self.received: str | None = None
        self.forced = False

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.received is None:
            self.received = name
            return
        self.forced = True
        self.lines.say(SELF, "warning", f"{name} again: killing every role now")
        self.supervisor.kill_all()


def serve(options: ServeOptions, environ: Mapping[str, str] | None = None) -> int:
    """Run the service until a stop signal or a crash loop; return the exit status."""
    env = role_environment(os.environ if environ is None else environ, options.data_dir)
    try:
        settings = Settings.from_env(env)
        check_settings(settings, options.roles)
    except SettingsError as exc:
        return _config_error(str(exc))
    options.data_dir.mkdir(parents=True, exist_ok=True)
    names = [RELEASE, *options.roles, SELF]
    lines = Lines(sys.stdout, names, as_json=settings.log_format == "json")
    supervisor = Supervisor(
        stop_timeout=options.stop_timeout,
        policy=options.policy,
        say=lambda level, message: lines.say(SELF, level, message),
    )
    signals = Signals(supervisor, lines)
    signals.install()

    def spec(role: str, restart: bool) -> Spec:
        command = ["bash", "-c", options.commands[role]]
        return Spec(role, command, env=env, restart=restart, output=lines)

    status = 0
    try:
        where = make_url(settings.database_url).render_as_string(hide_password=True)
        lines.say(SELF, "info", f"database {where}; result files {settings.storage_url}")
        if options.migrate:
            status = _release(supervisor, spec(RELEASE, False), signals, lines)
        if status == 0 and signals.received is None:
            for role in options.roles:
                supervisor.start(spec(role, True))
            lines.say(SELF, "info", f"started {', '.join(options.roles)}; SIGTERM or Ctrl-C stops")
            if "web" in options.roles:
                lines.say(
                    SELF,
                    "info",
                    f"web listens on port {env.get('PORT', '8000')}: Rivya delivers to "
                    "/webhooks/rivya, the console is at /console/",
                )
            status = _watch(supervisor, signals, lines)
    finally:
        if supervisor.children:
            why = signals.received or "a role keeps dying"
            order = ", ".join(SERVICE_ROLES)
            lines.say(SELF, "info", f"{why}: stopping {order} in that order")
            supervisor.stop_all(order=SERVICE_ROLES)
            if signals.forced:
                lines.say(SELF, "warning", "stopped at once: running tasks were cut short")
            else:
                lines.say(SELF, "info", "every role stopped")
    if signals.forced:
        print("error: stopped at once on a second signal", file=sys.stderr)
        print(
            "next: tasks cut short are taken up again once their lease lapses; run serve again",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return status


def _release(supervisor: Supervisor, spec: Spec, signals: Signals, lines: Lines) -> int:
    """Run the release role (migrations) to its end; return the exit status for serve."""
    child = supervisor.start(spec)
    while child.process.poll() is None and signals.received is None:
        time.sleep(WATCH_INTERVAL_SECONDS)
    if signals.received is not None:
        return 0  # serve stops it with the rest
    supervisor.children.remove(child)
    child.close()
    code = child.process.returncode
    if code == 0:
        return 0
    lines.say(SELF, "error", f"release (the migrations) exited with {code}; nothing started")
    if code == EXIT_CONFIG:
        return _config_error("the release role refused a setting (its line above says which)")
    print(f"error: the migrations failed (release exited with {code})", file=sys.stderr)
    print(
        "next: see release's lines above; `rivya-hooks db check` shows where the database is",
        file=sys.stderr,
    )
    return EXIT_FAILED


def _watch(supervisor: Supervisor, signals: Signals, lines: Lines) -> int:
    """Watch the roles until a stop signal (0) or a crash loop (1)."""
    while signals.received is None:
        try:
            supervisor.watch()
        except CrashLoop as exc:
            role = str(exc).split(" ", 1)[0]
            lines.say(SELF, "error", f"{role} keeps dying: {exc}")
            print(f"error: {role} keeps dying ({exc}); every role was stopped", file=sys.stderr)
            print(
                f"next: see {role}'s lines above for the cause, fix it, then run serve again",
                file=sys.stderr,
            )
            return EXIT_FAILED
        time.sleep(WATCH_INTERVAL_SECONDS)
    lines.say(SELF, "info", f"{signals.received} received")
    return 0
