"""Install the service as production does and run every Procfile role from that install.

`make check-install` (and so CI) runs this from the test environment:

1. builds the wheel from the files of the checkout (tracked, or new and not ignored);
2. makes a virtual environment without pip in a temporary directory, installs
   requirements/service.txt with --require-hashes, then the wheel with --no-deps: no test
   extras, nothing pip picks on its own (`--newest`, `make check-install-newest`: the wheel
   with the newest dependencies its ranges allow, what `pip install .` gives a user);
3. prepares an app directory holding only the Procfile and deploy/ (what the Procfile names),
   and checks that our packages import from the virtual environment's site-packages;
4. for each setup, embedded (SQLite and the SQLite broker: no DATABASE_URL, no BROKER_URL)
   and PostgreSQL (a postgres:// URL, as Heroku hands it out) + Redis: runs `release` through
   bash as Heroku, honcho and foreman run a line (it must exit 0), then every other role the
   Procfile lists, with the virtual environment's bin first on PATH; posts a delivery signed
   by the `standardwebhooks` package (202) and waits until that generation is processed and
   its files are stored with the simulator's sha256. A second generation is never delivered:
   beat's reconciler must find it and the worker store it;
5. stops each role by SIGTERM to its shell alone (as docker and supervisord stop a process),
   and fails if any process of a role is left, or any process started from the install;
6. then, in an empty directory (no Procfile, no deploy/), runs `rivya-hooks serve` with
   only the Rivya settings (and a free PORT) beyond the setup's database and broker: the
   simulator delivers two generations to it by webhook, both must be stored with the
   simulator's sha256, and SIGTERM to serve alone must end every process within 30 s.

Exit status 0 when every setup passed, 1 otherwise (the output names what failed and shows
the end of each role's log). PostgreSQL and Redis are those of the test suite
(TEST_POSTGRES_URL, TEST_REDIS_URL); outside CI, the second setup is skipped when they do
not answer.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.engine import make_url
from standardwebhooks.webhooks import Webhook

from models.db import make_engine
from models.events import EventSource, EventStatus, WebhookEvent
from models.generations import Generation, GenerationOutput, GenerationStatus
from rivyahooks.procfile import procfile_roles
from rivyahooks_foundation.settings import Settings
from rivyahooks_protocol import contract
from rivyahooks_simulator.config import SimConfig
from rivyahooks_simulator.content import result_bytes_sha256
from rivyahooks_simulator.server import Simulator
from rivyahooks_simulator.state import SimState, now_ms
from tests.support import services
from tests.support.eventually import eventually
from tests.support.processes import ROOT, free_port, group_members, own_redis_database

# What a role run from the install must import from site-packages, never from a checkout.
OUR_PACKAGES = (
    "receiver",
    "tasks",
    "tasks.relay",
    "models",
    "storage",
    "rivyahooks",
    "rivyahooks_foundation",
    "rivyahooks_protocol",
    "rivyahooks_simulator",
)
OUTPUTS = 2
OUTPUT_BYTES = 128 * 1024
REDIS_DB = 12
SETTLE_SECONDS = 90
STOP_SECONDS = 30


class CheckFailed(Exception):
    """The install or one of its roles did not do what production needs."""


def say(message: str) -> None:
    print(f"install-check: {message}", flush=True)


def run(
    command: list[str], what: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> str:
    """Run a command to completion; return its output, or raise naming `what` failed."""
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    if done.returncode != 0:
        raise CheckFailed(f"{what} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout


# --- the install ---------------------------------------------------------------------------


def build_wheel(work: Path) -> Path:
    """Build the wheel from a copy of the files git knows, never from stale build output."""
    listed = run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        "listing the checkout's files",
        cwd=ROOT,
    )
    source = work / "source"
    for name in filter(None, listed.split("\0")):
        path = ROOT / name
        if path.is_file():  # a tracked file deleted in the work tree is not built
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, source / name)
    dist = work / "dist"
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(dist),
            str(source),
        ],
        "building the wheel",
    )
    (wheel,) = dist.glob("rivya_hooks-*.whl")
    return wheel


def install(work: Path, wheel: Path, newest: bool) -> Path:
    """Return a fresh virtual environment holding the service's lock and the wheel only.

    With `newest`, the wheel and the newest releases its ranges allow instead, as
    `pip install rivya-hooks` or `pip install .` gives a user who does not use the lock.
    """
    venv = work / "venv"
    # No pip, no setuptools: only what the lock and the wheel bring (Python 3.12+ venvs and
    # slim images have no setuptools either, so nothing may lean on it unseen).
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], "making the venv")
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install"]
    if newest:
        run([*pip, "--quiet", str(wheel)], "installing the wheel with its newest dependencies")
        return venv
    lock = ROOT / "requirements" / "service.txt"
    run([*pip, "--quiet", "--require-hashes", "-r", str(lock)], "installing the lock")
    run([*pip, "--quiet", "--no-deps", str(wheel)], "installing the wheel")
    return venv


def site_packages(venv: Path) -> Path:
    (path,) = (venv / "lib").glob("python3*/site-packages")
    return path


def check_imports(venv: Path, app: Path, env: dict[str, str]) -> None:
    """Fail unless each of our packages imports, from the venv's site-packages."""
    code = (
        "import importlib, json, sys\n"
        f"names = {list(OUR_PACKAGES)!r}\n"
        "print(json.dumps({n: importlib.import_module(n).__file__ for n in names}))\n"
    )
    output = run([str(venv / "bin" / "python"), "-c", code], "importing our packages", app, env)
    where = json.loads(output)
    inside = site_packages(venv)
    for name, path in where.items():
        if not Path(path).is_relative_to(inside):
            raise CheckFailed(f"{name} was imported from {path}, not from {inside}")


def app_directory(parent: Path, name: str) -> Path:
    """Return a directory holding what a deployment ships beside the install: Procfile, deploy/."""
    app = parent / name
    app.mkdir()
    shutil.copy2(ROOT / "Procfile", app / "Procfile")
    shutil.copytree(ROOT / "deploy", app / "deploy")
    return app


def base_env(venv: Path, home: Path) -> dict[str, str]:
    """Return an environment like a platform's: the venv's bin first, no test settings."""
    test_bin = str(Path(sys.executable).parent)
    system_path = [
        p for p in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep) if p != test_bin
    ]
    return {
        "PATH": os.pathsep.join([str(venv / "bin"), *system_path]),
        "HOME": str(home),
        "LANG": "C.UTF-8",
    }


# --- roles ---------------------------------------------------------------------------------


@dataclass
class Role:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 25) -> str:
        text = self.log.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(f"    {self.name}| {line}" for line in text)


@dataclass
class Roles:
    app: Path
    env: dict[str, str]
    started: list[Role] = field(default_factory=list)

    def spawn(self, name: str, line: str) -> Role:
        """Run a Procfile line as a platform does: through bash, in a session of its own."""
        log = self.app / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                ["bash", "-c", line],
                cwd=self.app,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return Role(name, process, log)

    def release(self, line: str) -> None:
        role = self.spawn("release", line)
        try:
            status = role.process.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(role.process.pid, signal.SIGKILL)
            role.process.wait(10)
            raise CheckFailed(f"release did not finish within 120 s:\n{role.tail()}") from None
        if status != 0:
            raise CheckFailed(f"release exited with {status}:\n{role.tail()}")

    def start(self, name: str, line: str) -> None:
        self.started.append(self.spawn(name, line))

    def check_alive(self) -> None:
        for role in self.started:
            if role.process.poll() is not None:
                raise CheckFailed(f"{role.name} exited with {role.process.returncode}")

    def stop(self) -> list[str]:
        """Stop every role by SIGTERM to its shell only; return what did not stop cleanly."""
        problems = []
        for role in self.started:
            if role.process.poll() is None:
                os.kill(role.process.pid, signal.SIGTERM)
        for role in self.started:
            group = role.process.pid
            try:
                role.process.wait(STOP_SECONDS)
                eventually(
                    lambda group=group: not group_members(group),
                    STOP_SECONDS,
                    f"{role.name} gone",
                )
            except (subprocess.TimeoutExpired, TimeoutError):
                left = [describe(pid) for pid in group_members(group)]
                problems.append(f"{role.name} left running after SIGTERM: {left}")
                os.killpg(group, signal.SIGKILL)
                role.process.wait(10)
        return problems

    def tails(self) -> str:
        return "\n".join(role.tail() for role in self.started)


def describe(pid: int) -> str:
    try:
        return f"{pid} " + Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return str(pid)


def processes_mentioning(marker: str) -> list[str]:
    """Return the live processes whose command line mentions `marker` (a directory of ours)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            command = describe(int(entry.name))
            if marker in command:
                found.append(command)
    return found


# --- one setup, end to end -----------------------------------------------------------------


@dataclass
class Setup:
    name: str
    # Settings given to the roles beyond the Rivya ones; empty means the embedded defaults.
    env: dict[str, str]
    database_url: str  # how this script reads the same database


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def signed_delivery(secret: str, envelope: dict[str, object]) -> tuple[bytes, dict[str, str]]:
    """Sign with the Standard Webhooks reference package, not with our own code."""
    body = json.dumps(envelope)
    now = dt.datetime.now(dt.UTC)
    event_id = str(envelope["id"])
    headers = {
        "Content-Type": "application/json",
        "webhook-id": event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(event_id, now, body),
    }
    return body.encode(), headers


def stored(engine: Engine, root: Path, task_id: str) -> bool:
    """Return True once the generation succeeded with every file stored; check their bytes."""
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        generation = session.scalars(
            select(Generation).where(Generation.task_id == task_id)
        ).one_or_none()
        if generation is None or generation.status is not GenerationStatus.SUCCEEDED:
            return False
        outputs = list(
            session.scalars(select(GenerationOutput).where(GenerationOutput.task_id == task_id))
        )
    if len(outputs) < OUTPUTS:
        return False
    for output in outputs:
        data = (root / output.storage_key).read_bytes()
        truth = result_bytes_sha256(task_id, output.index, OUTPUT_BYTES)
        if len(data) != OUTPUT_BYTES or hashlib.sha256(data).hexdigest() != truth:
            raise CheckFailed(f"{task_id}/{output.index}: stored bytes differ from Rivya's")
        if output.sha256 != truth:
            raise CheckFailed(f"{task_id}/{output.index}: recorded sha256 differs from Rivya's")
    return True


def event_row(engine: Engine, event_id: str) -> WebhookEvent | None:
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        return session.scalars(
            select(WebhookEvent).where(WebhookEvent.event_id == event_id)
        ).one_or_none()


def exercise(setup: Setup, venv: Path, work: Path) -> None:
    """Run the Procfile's roles from the install on one setup; raise CheckFailed on a fault."""
    app = app_directory(work, setup.name)
    home = work / f"{setup.name}-home"
    home.mkdir()
    sim = Simulator(
        config=SimConfig(
            queued_seconds=0.1,
            processing_seconds=0.2,
            failure_ratio=0.0,
            outputs=OUTPUTS,
            output_bytes=OUTPUT_BYTES,
        )
    ).start()
    secret = new_secret()
    port = free_port()
    env = base_env(venv, home)
    check_imports(venv, app, env)
    env.update(setup.env)
    env.update(
        RIVYA_API_BASE=sim.url,
        RIVYA_API_KEY=sim.api_key,
        RIVYA_WEBHOOK_SECRETS=secret,
        RIVYA_DOWNLOAD_ALLOWED_HOSTS="127.0.0.1",
        # Beat runs the reconciler soon, so the undelivered generation is found quickly.
        RECONCILE_INTERVAL_SECONDS="2",
        RECONCILE_POLL_AFTER_SECONDS="0",
        HOST="127.0.0.1",
        PORT=str(port),
        WEB_CONCURRENCY="2",
        WORKER_CONCURRENCY="2",
    )
    roles = Roles(app, env)
    lines = procfile_roles(app / "Procfile")
    started = time.monotonic()
    try:
        roles.release(lines["release"])
        for name, line in lines.items():
            if name != "release":
                roles.start(name, line)
        say(f"{setup.name}: release exited 0; started {', '.join(r.name for r in roles.started)}")
        base = f"http://127.0.0.1:{port}"

        def answering() -> bool:
            roles.check_alive()
            try:
                return httpx.get(base + "/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        eventually(answering, 60, "the web role answering /healthz", interval=0.2)

        delivered, undelivered = sim.scenario(2, outcome="succeeded")
        sim.wait_terminal([delivered, undelivered])
        # An event id of our own: the simulator's event for this generation stays in its log,
        # where the reconciler finds it as a second event for the same generation.
        event_id = f"evt_{uuid.uuid4().hex}"
        envelope = SimState.event_envelope(
            event_id, contract.EVENT_GENERATION_SUCCEEDED, now_ms(), sim.generation(delivered)
        )
        body, headers = signed_delivery(secret, envelope)
        answer = httpx.post(base + "/webhooks/rivya", content=body, headers=headers, timeout=10)
        if answer.status_code != 202:
            raise CheckFailed(f"the delivery was answered {answer.status_code}: {answer.text}")

        engine = make_engine(setup.database_url)
        root = app / Settings().storage_root()
        try:

            def settled(task_id: str) -> bool:
                roles.check_alive()
                return stored(engine, root, task_id)

            eventually(
                lambda: settled(delivered),
                SETTLE_SECONDS,
                "the delivered generation processed and its files stored",
                interval=0.25,
            )
            eventually(
                lambda: settled(undelivered),
                SETTLE_SECONDS,
                "the undelivered generation found by beat's reconciler and its files stored",
                interval=0.25,
            )
            row = event_row(engine, event_id)
            if row is None or row.source is not EventSource.WEBHOOK:
                raise CheckFailed(f"the delivered event is not stored as a webhook: {row}")
            if row.status is not EventStatus.PROCESSED:
                raise CheckFailed(f"the delivered event is {row.status.value}, not processed")
        finally:
            engine.dispose()
        roles.check_alive()
        say(
            f"{setup.name}: delivery answered 202, processed; {2 * OUTPUTS} files stored with "
            f"Rivya's sha256 (one generation found by beat's reconciler) "
            f"in {time.monotonic() - started:.1f} s"
        )
    except (CheckFailed, TimeoutError) as exc:
        raise CheckFailed(f"{setup.name}: {exc}\n{roles.tails()}") from None
    finally:
        problems = roles.stop()
        sim.stop()
        left = processes_mentioning(str(work))
        if left:
            problems.append(f"processes of the install still running: {left}")
        if problems:
            raise CheckFailed(f"{setup.name}: " + "; ".join(problems))
    say(f"{setup.name}: every role stopped on SIGTERM to its shell; nothing left running")


def exercise_serve(setup: Setup, venv: Path, work: Path) -> None:
    """Run `rivya-hooks serve` from the install in an empty directory; raise CheckFailed."""
    app = work / f"{setup.name}-serve"
    app.mkdir()
    home = work / f"{setup.name}-serve-home"
    home.mkdir()
    sim = Simulator(
        config=SimConfig(
            queued_seconds=0.1,
            processing_seconds=0.2,
            failure_ratio=0.0,
            outputs=OUTPUTS,
            output_bytes=OUTPUT_BYTES,
        )
    ).start()
    secret = new_secret()
    port = free_port()
    env = base_env(venv, home)
    env.update(setup.env)
    env.update(
        RIVYA_API_KEY=sim.api_key,
        RIVYA_API_BASE=sim.url,
        RIVYA_WEBHOOK_SECRETS=secret,
        RIVYA_DOWNLOAD_ALLOWED_HOSTS="127.0.0.1",
        PORT=str(port),  # the default 8000 may be taken on a shared machine
    )
    log = app / "serve.log"
    started = time.monotonic()
    with log.open("wb") as out:
        serve = subprocess.Popen(
            [str(venv / "bin" / "rivya-hooks"), "serve"],
            cwd=app,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def tail() -> str:
        text = log.read_text(errors="replace").splitlines()[-40:]
        return "\n".join(f"    serve| {line}" for line in text)

    def running() -> None:
        if serve.poll() is not None:
            raise CheckFailed(f"serve exited with {serve.returncode}")

    problems = []
    try:
        base = f"http://127.0.0.1:{port}"

        def answering() -> bool:
            running()
            try:
                return httpx.get(base + "/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        eventually(answering, 90, "serve's web role answering /healthz", interval=0.2)
        sim.register_endpoint(base + "/webhooks/rivya", secret=secret)
        task_ids = sim.scenario(2, outcome="succeeded")
        database_url = setup.database_url.replace(str(work / "embedded"), str(app))
        engine = make_engine(database_url)
        root = app / "var" / "results"
        try:
            for task_id in task_ids:
                eventually(
                    lambda task_id=task_id: (running(), stored(engine, root, task_id))[1],
                    SETTLE_SECONDS,
                    f"{task_id} delivered to serve, processed and its files stored",
                    interval=0.25,
                )
        finally:
            engine.dispose()
        say(
            f"{setup.name}: serve stored {len(task_ids) * OUTPUTS} files of {len(task_ids)} "
            f"delivered generations with Rivya's sha256 in {time.monotonic() - started:.1f} s"
        )
    except (CheckFailed, TimeoutError) as exc:
        problems.append(f"serve: {exc}\n{tail()}")
    finally:
        stopping = time.monotonic()
        if serve.poll() is None:
            serve.send_signal(signal.SIGTERM)
        try:
            status = serve.wait(STOP_SECONDS)
            if status != 0 and not problems:
                problems.append(f"serve exited with {status} on SIGTERM\n{tail()}")
        except subprocess.TimeoutExpired:
            problems.append(f"serve still running {STOP_SECONDS} s after SIGTERM\n{tail()}")
        left = processes_mentioning(str(work))
        if left:
            problems.append(f"processes of serve still running: {left}")
            for line in left:
                with suppress(ProcessLookupError, ValueError):
                    os.kill(int(line.split()[0]), signal.SIGKILL)
        sim.stop()
    if problems:
        raise CheckFailed(f"{setup.name}: " + "; ".join(problems))
    say(
        f"{setup.name}: serve stopped every role on SIGTERM in "
        f"{time.monotonic() - stopping:.1f} s; nothing left running"
    )


@contextmanager
def postgres_database() -> Iterator[tuple[str, str]]:
    """Yield a new empty PostgreSQL database: its URL as Heroku hands it out, and ours."""
    admin = create_engine(services.POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"rivyahooks_install_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(services.POSTGRES_ADMIN_URL).set(database=name)
        ours = url.render_as_string(hide_password=False)
        platform = url.set(drivername="postgres").render_as_string(hide_password=False)
        yield platform, ours
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def services_answer() -> bool:
    missing = [
        name
        for name, url in (
            ("PostgreSQL", services.POSTGRES_ADMIN_URL),
            ("Redis", services.REDIS_URL),
        )
        if not services.reachable(url)
    ]
    if not missing:
        return True
    message = f"{' and '.join(missing)} not reachable"
    if services.IN_CI:
        raise CheckFailed(f"postgres+redis: {message}; CI must run this setup")
    say(f"postgres+redis: SKIPPED, {message}")
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.production_install",
        description="Install the service as production does and run every Procfile role.",
    )
    parser.add_argument(
        "--newest",
        action="store_true",
        help="install the newest dependencies pyproject.toml's ranges allow instead of the "
        "lock (what `pip install .` gives); not reproducible, so CI does not run it",
    )
    newest = parser.parse_args(argv).newest
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="rivya-hooks-install-") as temporary:
        work = Path(temporary)
        try:
            wheel = build_wheel(work)
            built = time.monotonic()
            say(f"built {wheel.name} in {built - began:.1f} s")
            venv = install(work, wheel, newest)
            what = (
                "the wheel and the newest dependencies its ranges allow"
                if newest
                else "requirements/service.txt (--require-hashes) and the wheel (--no-deps)"
            )
            say(f"installed {what} into a new venv in {time.monotonic() - built:.1f} s")
            default = Settings()
            embedded = Setup(
                "embedded",
                {},
                f"sqlite:///{work / 'embedded' / make_url(default.database_url).database}",
            )
            exercise(embedded, venv, work)
            exercise_serve(embedded, venv, work)
            if services_answer():
                with postgres_database() as (platform_url, database_url):
                    broker_url = own_redis_database(f"{services.REDIS_URL}/0", REDIS_DB)
                    setup = Setup(
                        "postgres+redis",
                        {"DATABASE_URL": platform_url, "BROKER_URL": broker_url},
                        database_url,
                    )
                    exercise(setup, venv, work)
                    exercise_serve(setup, venv, work)
        except CheckFailed as exc:
            say(f"FAILED: {exc}")
            return 1
    say(f"passed in {time.monotonic() - began:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
