"""The Procfile: each role's command line, as a platform (Heroku, honcho, foreman) reads it."""

from __future__ import annotations

from pathlib import Path


def procfile_roles(path: Path) -> dict[str, str]:
    """Return the Procfile's commands by role."""
    roles: dict[str, str] = {}
    for line in path.read_text().splitlines():
        role, sep, command = line.partition(":")
        if sep and role.strip() and not line.startswith("#"):
            roles[role.strip()] = command.strip()
    return roles
