"""deploy/compose.yaml brought up with podman-compose, simulator included, end to end.

PostgreSQL, Redis and nginx run from local stand-ins of their images (Debian's packages on
the local base: registries are out of reach here), selected through the image variables an
operator would use. Debian's podman-compose 1.0.3 ignores profiles and depends_on
conditions, so it starts the simulator too and runs the services in the file's dependency
order without waiting; the stack is built to cope (release retries until PostgreSQL
answers, the roles retry their connections). The Compose binary checks the same file
against the full schema in test_compose_file.py.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rivyahooks_simulator.content import result_bytes_sha256
from tests.conftest import SECRET
from tests.support import compose
from tests.support.containers import APP_IMAGE, podman
from tests.support.eventually import eventually
from tests.support.processes import free_port

pytestmark = [pytest.mark.container, pytest.mark.slow]

TOKEN = "compose-test-results-token"


class Stack:
    def __init__(self, project: str, deploy: Path, ports: dict[str, int]) -> None:
        self.project = project
        self.deploy = deploy
        self.public = f"http://127.0.0.1:{ports['PUBLIC_PORT']}"
        self.internal = f"http://127.0.0.1:{ports['INTERNAL_PORT']}"

    def container(self, service: str) -> str:
        return f"{self.project}_{service}_1"

    def state(self, service: str) -> str:
        return podman(
            "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", self.container(service)
        ).stdout.strip()

    def rivya_hooks(self, *args: str) -> Any:
        """Run an operator command in the web container; return its JSON output."""
        result = podman("exec", self.container("web"), "rivya-hooks", *args, "--json")
        return json.loads(result.stdout)

    def answers(self, url: str, status: int = 200, **headers: str) -> httpx.Response | None:
        try:
            response = httpx.get(url, headers=headers, timeout=5)
        except httpx.TransportError:
            return None
        return response if response.status_code == status else None


def podman_compose(stack_dir: Path, project: str, *args: str) -> subprocess.CompletedProcess[str]:
    binary = compose.tool("podman-compose", "apt-get install podman-compose")
    return subprocess.run(
        [binary, "-p", project, *args],
        cwd=stack_dir,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture
def stack(app_image: str, service_images: dict[str, str], tmp_path: Path) -> Iterator[Stack]:
    ports = {name: free_port() for name in ("PUBLIC_PORT", "INTERNAL_PORT", "SIMULATOR_PORT")}
    deploy = compose.project(
        tmp_path,
        {
            "POSTGRES_PASSWORD": uuid.uuid4().hex,
            "RIVYA_HOOKS_IMAGE": APP_IMAGE,
            "POSTGRES_IMAGE": service_images["postgres"],
            "REDIS_IMAGE": service_images["redis"],
            "NGINX_IMAGE": service_images["nginx"],
            # What .env.example says to set for the simulator profile.
            "RIVYA_API_BASE": "http://simulator:8900",
            "RIVYA_DOWNLOAD_ALLOWED_HOSTS": "simulator",
            "RIVYA_API_KEY": "rvya_sk_compose_test",
            "RIVYA_WEBHOOK_SECRETS": SECRET,
            "RESULTS_API_TOKEN": TOKEN,
            "WEB_CONCURRENCY": "2",
            "WORKER_CONCURRENCY": "2",
            **{name: str(port) for name, port in ports.items()},
        },
    )
    project = f"rivyatest{uuid.uuid4().hex[:8]}"
    up = podman_compose(deploy, project, "up", "-d")
    try:
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        yield Stack(project, deploy, ports)
    finally:
        listed = podman("ps", "--all", "--format", "{{.Names}}", check=False).stdout.split()
        for name in (n for n in listed if n.startswith(project + "_")):
            logs = podman("logs", name, check=False)
            (tmp_path / f"{name}.log").write_text(logs.stdout + logs.stderr)
        down = podman_compose(deploy, project, "down", "--volumes")
        # A container in a restart loop can come back between podman-compose's stop and rm;
        # whatever of the project is left goes by force, then its network and volumes.
        label = f"label=io.podman.compose.project={project}"
        for name in podman(
            "ps", "--all", "--filter", label, "--format", "{{.Names}}"
        ).stdout.split():
            podman("rm", "--force", name, check=False)
        podman("network", "rm", f"{project}_default", check=False)
        for volume in podman("volume", "ls", "--format", "{{.Name}}").stdout.split():
            if volume.startswith(project + "_"):
                podman("volume", "rm", "--force", volume, check=False)
        assert down.returncode == 0, down.stderr[-3000:]


def test_the_stack_stores_what_the_simulator_delivers(stack: Stack) -> None:
    eventually(lambda: stack.state("release") == "exited 0", 120, "release exiting 0")
    eventually(lambda: stack.answers(stack.public + "/healthz"), 120, "the public /healthz")
    eventually(lambda: stack.answers(stack.internal + "/readyz"), 120, "the internal /readyz")

    submitted = stack.rivya_hooks("submit", "--model", "rivya-image-1", "--prompt", "compose")
    task_id = submitted["generation"]["id"]

    def stored() -> dict[str, Any] | None:
        answer = stack.answers(
            f"{stack.internal}/results/{task_id}", Authorization=f"Bearer {TOKEN}"
        )
        document = None if answer is None else answer.json()
        # The status is recorded first; results_stored_at once every file is stored.
        return document if document and document["results_stored_at"] else None

    result = eventually(stored, 120, "the generation's files stored")
    assert result["status"] == "succeeded"
    (output,) = result["outputs"]
    sha256 = result_bytes_sha256(task_id, output["index"], output["size_bytes"])
    assert output["sha256"] == sha256
    volume = podman("volume", "inspect", "--format", "{{.Mountpoint}}", f"{stack.project}_data")
    path = Path(volume.stdout.strip()) / "results" / output["storage_key"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sha256

    # It came through nginx as a webhook, not from the reconciler's polling.
    events = stack.rivya_hooks("events", "list")
    assert [(e["task_id"], e["source"], e["status"]) for e in events] == [
        (task_id, "webhook", "processed")
    ]
    # The results API is not public.
    assert httpx.get(f"{stack.public}/results/{task_id}", timeout=5).status_code == 404
