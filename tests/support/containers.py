"""podman for the tests of the deployment kit: build images, run containers, clean up.

Registries are out of reach on the machines that run these tests, so images build on a
base made locally from Debian packages (.ci/containers makes it). Without podman or that
base the tests are skipped with the reason, and fail in CI.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.support import services
from tests.support.processes import ROOT

BASE_IMAGE = "localhost/debian-python:bookworm"
APP_IMAGE = "localhost/rivya-hooks:test"
SERVICE_IMAGES = {
    role: f"localhost/rivya-hooks-test-{role}" for role in ("postgres", "redis", "nginx")
}
SERVICE_CONTAINERFILE = ROOT / "tests" / "deploy" / "images" / "Containerfile"


def require_podman() -> str:
    """Return podman's path once it and the base image are there; else skip (fail in CI)."""
    podman = shutil.which("podman")
    if podman is None:
        reason = "podman is not installed"
    elif subprocess.run([podman, "image", "exists", BASE_IMAGE], check=False).returncode:
        reason = f"the base image {BASE_IMAGE} is missing"
    else:
        return podman
    services.absent(
        f"{reason}; .ci/containers must run before the tests in CI",
        f"{reason}: run `.ci/containers` as root to build and run the kit's images",
    )


def podman(
    *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run podman; on failure raise with its output."""
    result = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"podman {' '.join(args)} exited {result.returncode}:\n{result.stderr[-3000:]}"
        )
    return result


def build(tag: str, containerfile: Path, context: Path, log: Path, *extra: str) -> float:
    """Build an image (docker format: OCI drops HEALTHCHECK); return the seconds it took."""
    started = time.monotonic()
    with open(log, "w") as out:
        result = subprocess.run(
            ["podman", "build", "--format", "docker", "-f", str(containerfile), "-t", tag,
             "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", *extra, str(context)],
            stdout=out, stderr=subprocess.STDOUT, timeout=900, check=False,
        )  # fmt: skip
    assert result.returncode == 0, f"building {tag} failed:\n{log.read_text()[-4000:]}"
    return time.monotonic() - started


def build_app_image(log: Path) -> float:
    return build(APP_IMAGE, ROOT / "deploy" / "Dockerfile", ROOT, log)


def build_service_images(log: Path) -> float:
    """Build the postgres, redis and nginx stand-ins; return the seconds it took."""
    return sum(
        build(tag, SERVICE_CONTAINERFILE, SERVICE_CONTAINERFILE.parent, log, "--target", role)
        for role, tag in SERVICE_IMAGES.items()
    )


class Containers:
    """Containers started by one test, removed (logs kept) when it ends."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.names: list[str] = []

    def run(
        self,
        role: str,
        *,
        env_file: Path,
        env: dict[str, str] | None = None,
        volumes: Sequence[str] = (),
        detach: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Run the app image with `role` as its command, on the host's network."""
        name = f"rivya-test-{role}-{uuid.uuid4().hex[:8]}"
        self.names.append(name)
        args = ["run", "--name", name, "--network", "host", "--env-file", str(env_file)]
        # The health check runs on demand (`podman healthcheck run`); podman's timer for it
        # needs systemd, which these machines may not run.
        args += ["--health-interval", "disable"]
        for key, value in (env or {}).items():
            args += ["--env", f"{key}={value}"]
        for volume in volumes:
            args += ["--volume", volume]
        args += ["--detach"] if detach else []
        return podman(*args, APP_IMAGE, role, timeout=timeout, check=False)

    def remove_all(self) -> None:
        for name in self.names:
            logs = podman("logs", name, check=False)
            (self.logs / f"{name}.log").write_text(logs.stdout + logs.stderr)
            podman("rm", "--force", "--time", "5", name, check=False)


@contextmanager
def containers(logs: Path) -> Iterator[Containers]:
    logs.mkdir(parents=True, exist_ok=True)
    started = Containers(logs)
    try:
        yield started
    finally:
        started.remove_all()
