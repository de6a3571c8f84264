"""The image of deploy/Dockerfile, run role by role as an operator would, end to end.

The containers use the host's network: the machine's PostgreSQL, the test's Redis and the
simulator (in this process) listen on loopback only, and host networking reaches them
without opening any of them to a bridge. Debian's nginx runs the kit's configuration in
front of the web container. (test_compose_stack.py runs the same image on compose's own
network, with PostgreSQL, Redis and nginx in containers.)
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, create_engine, inspect, select
from sqlalchemy.orm import Session

from models.events import EventStatus, WebhookEvent
from models.generations import GenerationOutput
from rivyahooks.procfile import procfile_roles
from rivyahooks_foundation.settings import Settings
from rivyahooks_simulator.config import SimConfig
from rivyahooks_simulator.content import result_bytes_sha256
from rivyahooks_simulator.server import Simulator
from tests.conftest import SECRET, make_event, reference_signed
from tests.support import services
from tests.support.containers import containers, podman
from tests.support.eventually import eventually
from tests.support.nginx import nginx_proxy
from tests.support.processes import ROOT, free_port, own_redis_database

pytestmark = [pytest.mark.container, pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

REDIS_DB = 12
OUTPUTS = 2
OUTPUT_BYTES = 96 * 1024
IMAGE_USER_ID = "10001"
ROLES = procfile_roles(ROOT / "Procfile")
LONG_RUNNING = [role for role in ROLES if role != "release"]


def env_file(settings: Settings, path: Path) -> Path:
    path.write_text("".join(f"{key}={value}\n" for key, value in settings.to_env().items()))
    return path


def pid_one(name: str) -> list[str]:
    cmdline = podman("exec", name, "cat", "/proc/1/cmdline").stdout
    return [word for word in cmdline.split("\0") if word]


def test_the_entrypoint_runs_roles_commands_or_explains(app_image: str) -> None:
    unknown = podman("run", "--rm", app_image, "no-such-role", check=False)
    assert unknown.returncode == 2
    for role in ROLES:
        assert role in unknown.stderr
    who = podman("run", "--rm", app_image, "id", "-u")
    assert who.stdout.strip() == IMAGE_USER_ID
    helped = podman("run", "--rm", app_image, "rivya-hooks", "--help")
    assert "Usage: rivya-hooks" in helped.stdout


@pytest.fixture
def image_db(empty_postgres: str) -> Iterator[Engine]:
    """An engine on the empty database the containers migrate and use; disposed even on a
    failure, so no connection is left for the garbage collector to warn about."""
    engine = create_engine(empty_postgres)
    yield engine
    engine.dispose()


def test_release_then_every_role_stores_a_signed_delivery_through_the_proxy(
    app_image: str, image_db: Engine, empty_postgres: str, redis_url: str, tmp_path: Path
) -> None:
    engine = image_db
    config = SimConfig(
        queued_seconds=0.05,
        processing_seconds=0.1,
        failure_ratio=0.0,
        outputs=OUTPUTS,
        output_bytes=OUTPUT_BYTES,
    )
    data = tmp_path / "var"
    data.mkdir()
    with (
        Simulator(config=config, seed=11).start() as sim,
        containers(tmp_path / "logs") as started,
    ):
        # STORAGE_URL keeps its default, file://var/results: /app/var/results in the image.
        settings = Settings(
            database_url=empty_postgres,
            broker_url=own_redis_database(redis_url, REDIS_DB),
            webhook_secrets=(SECRET,),
            rivya_api_base=sim.url,
            rivya_api_key=sim.api_key,
            download_allowed_hosts=("127.0.0.1",),
            process_retry_base_seconds=0.2,
            # The host's network: ports of their own, not the defaults other runs may hold.
            worker_metrics_port=free_port(),
            outbound_metrics_port=free_port(),
            beat_metrics_port=free_port(),
        )
        env = env_file(settings, tmp_path / "env")

        assert not inspect(engine).has_table("webhook_events")
        release = started.run("release", env_file=env, detach=False)
        release_name = started.names[-1]
        assert release.returncode == 0, release.stderr
        assert inspect(engine).has_table("webhook_events")

        port = free_port()
        per_role = {
            "web": {"HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": "2"},
            "worker": {"WORKER_CONCURRENCY": "2"},
        }
        names = {}
        for role in LONG_RUNNING:
            run = started.run(
                role, env_file=env, env=per_role.get(role), volumes=[f"{data}:/app/var:U"]
            )
            assert run.returncode == 0, run.stderr
            names[role] = started.names[-1]

        web = f"http://127.0.0.1:{port}"
        eventually(lambda: services.reachable(web), 60, "the web container listening")
        # outbound is a Celery worker too, pinged under its own node name.
        for role in ("web", "worker", "outbound"):
            eventually(
                lambda role=role: (
                    podman("healthcheck", "run", names[role], check=False).returncode == 0
                ),
                90,
                f"the {role} container's health check",
            )
        for port_of_role in (
            settings.worker_metrics_port,
            settings.outbound_metrics_port,
            settings.beat_metrics_port,
        ):
            metrics = f"http://127.0.0.1:{port_of_role}/metrics"
            text = eventually(
                lambda url=metrics: services.reachable(url) and httpx.get(url, timeout=5).text,
                60,
                f"{metrics} answering",
            )
            assert "rivyahooks_build_info" in text
        for role, name in names.items():
            # The role's own process is PID 1, so a stop signal reaches it (not a shell).
            assert Path(pid_one(name)[0]).name not in {"sh", "bash", "dash"}, role
            assert podman("exec", name, "id", "-u").stdout.strip() == IMAGE_USER_ID, role

        (task_id,) = sim.scenario(1, outputs=OUTPUTS)
        sim.wait_terminal([task_id], timeout=30)
        with nginx_proxy(f"127.0.0.1:{port}", tmp_path / "nginx") as proxy:
            body, headers = reference_signed(make_event(task_id=task_id))
            answer = httpx.post(
                proxy.public_url + "/webhooks/rivya", content=body, headers=headers, timeout=10
            )
            assert answer.status_code == 202, answer.text

            def outputs() -> list[GenerationOutput]:
                with Session(engine) as session:
                    rows = session.scalars(
                        select(GenerationOutput).where(GenerationOutput.task_id == task_id)
                    ).all()
                return list(rows) if len(rows) == OUTPUTS else []

            stored = sorted(eventually(outputs, 90, "both outputs stored"), key=lambda o: o.index)

        for output in stored:
            sha256 = result_bytes_sha256(task_id, output.index, OUTPUT_BYTES)
            assert output.sha256 == sha256
            path = data / "results" / output.storage_key
            assert hashlib.sha256(path.read_bytes()).hexdigest() == sha256

        # The outputs are recorded before the event's own finish commits: wait for that too.
        def event_status() -> tuple[str | None, EventStatus] | None:
            with Session(engine) as session:
                (event,) = session.scalars(select(WebhookEvent)).all()
            done = event.status is EventStatus.PROCESSED
            return (event.task_id, event.status) if done else None

        assert eventually(event_status, 30, "the event processed") == (
            task_id,
            EventStatus.PROCESSED,
        )

        # Every role stops cleanly on the runtime's stop signal, well within its timeout.
        for role, name in reversed(names.items()):
            started_at = time.monotonic()
            podman("stop", "--time", "30", name, timeout=60)
            state = podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
            assert (role, state) == (role, "0")
            assert time.monotonic() - started_at < 25, role
        # Every log line each container wrote, from start to stop, is one JSON object. (Only
        # release, a command, prints its result for people on stdout.)
        for name in started.names:
            logs = podman("logs", name)
            written = logs.stderr if name == release_name else logs.stdout + logs.stderr
            for line in written.splitlines():
                assert isinstance(json.loads(line), dict), (name, line)
