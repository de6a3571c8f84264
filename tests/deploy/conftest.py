"""Fixtures of the deployment kit's tests: the images, built once per session."""

from __future__ import annotations

import pytest

from tests.support.containers import (
    APP_IMAGE,
    SERVICE_IMAGES,
    build_app_image,
    build_service_images,
    require_podman,
)

# --- images (podman) -----------------------------------------------------------------------

BUILD_SECONDS: dict[str, float] = {}


@pytest.fixture(scope="session")
def app_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The image of deploy/Dockerfile, built on the local base, once per session."""
    require_podman()
    log = tmp_path_factory.mktemp("build") / "app-image.log"
    BUILD_SECONDS["app image (deploy/Dockerfile)"] = build_app_image(log)
    return APP_IMAGE


@pytest.fixture(scope="session")
def service_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Local stand-ins for compose.yaml's postgres, redis and nginx images."""
    require_podman()
    log = tmp_path_factory.mktemp("build") / "service-images.log"
    BUILD_SECONDS["postgres, redis, nginx stand-ins"] = build_service_images(log)
    return SERVICE_IMAGES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for what, seconds in BUILD_SECONDS.items():
        terminalreporter.write_line(f"rivya-hooks: built the {what} in {seconds:.0f} s")
