"""deploy/compose.yaml against the full Compose schema, and the shape the kit promises."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rivyahooks.procfile import procfile_roles
from tests.support.compose import docker_compose, project
from tests.support.processes import ROOT

APP_IMAGE = "registry.example/rivya-hooks:1"
FILLED = {
    "POSTGRES_PASSWORD": "example-password",
    "RIVYA_HOOKS_IMAGE": APP_IMAGE,
    "POSTGRES_IMAGE": "local/postgres:test",
    "REDIS_IMAGE": "local/redis:test",
    "NGINX_IMAGE": "local/nginx:test",
}


def resolved(tmp_path: Path, *args: str, values: dict[str, str] = FILLED) -> dict[str, Any]:
    """Return the model the Compose binary resolves, after it validated it."""
    deploy = project(tmp_path, values)
    result = docker_compose(deploy, *args, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_compose_file_is_valid_and_runs_every_role_after_release(tmp_path: Path) -> None:
    services = resolved(tmp_path)["services"]
    roles = procfile_roles(ROOT / "Procfile")
    assert set(roles) <= set(services)
    assert "simulator" not in services  # only with --profile simulator
    for role in roles:
        service = services[role]
        assert service["image"] == APP_IMAGE, role
        assert service["command"] == [role], role
        assert service["volumes"][0]["target"] == "/app/var", role
        if role != "release":
            assert service["depends_on"]["release"]["condition"] == (
                "service_completed_successfully"
            ), role
    assert services["release"]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert services["release"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    # The stack's own database and broker, whatever .env says.
    assert services["web"]["environment"]["DATABASE_URL"] == (
        "postgresql+psycopg://rivya:example-password@postgres:5432/rivyahooks"
    )
    assert services["web"]["environment"]["BROKER_URL"] == "redis://redis:6379/0"
    assert [services[s]["image"] for s in ("postgres", "redis", "proxy")] == [
        "local/postgres:test",
        "local/redis:test",
        "local/nginx:test",
    ]


def test_only_the_proxy_is_public_and_internal_ports_stay_on_loopback(tmp_path: Path) -> None:
    services = resolved(tmp_path, "--profile", "simulator")["services"]
    published = {
        name: [(p.get("host_ip", ""), p["target"]) for p in service.get("ports", [])]
        for name, service in services.items()
        if service.get("ports")
    }
    assert published == {
        "proxy": [("", 8080), ("127.0.0.1", 8081)],
        "simulator": [("127.0.0.1", 8900)],
    }
    assert services["proxy"]["volumes"][0]["target"] == "/etc/nginx/nginx.conf"


def test_the_proxy_restarts_when_compose_recreates_the_web_role(tmp_path: Path) -> None:
    # nginx holds the address `web` had when it started; a new web container has another.
    web = resolved(tmp_path)["services"]["proxy"]["depends_on"]["web"]
    assert web["restart"] is True


def test_a_missing_database_password_stops_compose(tmp_path: Path) -> None:
    deploy = project(tmp_path, {**FILLED, "POSTGRES_PASSWORD": ""})
    result = docker_compose(deploy, "config", "--quiet")
    assert result.returncode != 0
    assert "set POSTGRES_PASSWORD in .env" in result.stderr


@pytest.mark.parametrize("bad", ["    restart_policy: always\n", "    healthcheck: yes\n"])
def test_the_schema_check_catches_a_bad_key(tmp_path: Path, bad: str) -> None:
    """The check above can fail: the binary validates against the Compose schema."""
    deploy = project(tmp_path, FILLED)
    compose = deploy / "compose.yaml"
    compose.write_text(compose.read_text().replace("  web:\n", "  web:\n" + bad, 1))
    result = docker_compose(deploy, "config", "--quiet")
    assert result.returncode != 0
    assert "web" in result.stderr
