"""deploy/systemd: one unit per Procfile role, each accepted by `systemd-analyze verify`."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
from pathlib import Path

from rivyahooks.procfile import procfile_roles
from tests.support import services
from tests.support.processes import ROOT

UNITS = ROOT / "deploy" / "systemd"
TARGET = UNITS / "rivya-hooks.target"
ROLES = sorted(procfile_roles(ROOT / "Procfile"))


def unit(role: str) -> Path:
    return UNITS / f"rivya-hooks-{role}.service"


def sections(path: Path) -> configparser.ConfigParser:
    # Units repeat keys (Environment=); keep the last, which is enough for these checks.
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


def executables() -> list[str]:
    """Return every program the units' Exec lines start."""
    found = set()
    for path in UNITS.glob("*.service"):
        for line in path.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.startswith("Exec") and value:
                found.add(value.split()[0])
    return sorted(found)


def test_every_procfile_role_has_a_unit_the_target_wants() -> None:
    wanted = sections(TARGET)["Unit"]["Wants"].split()
    assert sorted(p.name for p in UNITS.glob("*.service")) == sorted(unit(r).name for r in ROLES)
    assert sorted(wanted) == sorted(unit(r).name for r in ROLES)


def test_roles_start_after_release_and_share_the_hardening() -> None:
    release = sections(unit("release"))
    assert release["Service"]["Type"] == "oneshot"
    assert release["Service"]["RemainAfterExit"] == "yes"
    hardening = {
        key: value
        for key, value in release["Service"].items()
        if key.startswith(("Protect", "Restrict", "Private", "NoNewPrivileges", "SystemCall"))
        or key in {"User", "Group", "EnvironmentFile", "CapabilityBoundingSet", "UMask"}
    }
    assert hardening["NoNewPrivileges"] == "yes"
    assert hardening["ProtectSystem"] == "strict"
    for role in ROLES:
        parsed = sections(unit(role))
        service = parsed["Service"]
        assert {k: service.get(k) for k in hardening} == hardening, role
        assert parsed["Install"]["WantedBy"] == TARGET.name
        if role != "release":
            assert unit("release").name in parsed["Unit"]["Requires"].split(), role
            assert unit("release").name in parsed["Unit"]["After"].split(), role
            assert service["Restart"] == "always", role


def test_systemd_analyze_verify_accepts_every_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    unshare = shutil.which("unshare")
    if analyze is None or unshare is None:
        message = "systemd-analyze and unshare are needed to verify the units"
        services.absent(message, message)
    # verify checks that each Exec program exists. They live in the install's venv, so they
    # are created in a private mount namespace over an empty /opt: the machine's stays as is.
    stubs = "; ".join(
        f"mkdir -p {Path(p).parent} && printf '#!/bin/sh\\n' > {p} && chmod +x {p}"
        for p in executables()
        if p.startswith("/opt/")
    )
    units = " ".join(str(p) for p in sorted(UNITS.iterdir()))
    script = f"mount -t tmpfs tmpfs /opt && {stubs} && {analyze} verify {units}"
    namespace = ["--mount"] if os.geteuid() == 0 else ["--mount", "--map-root-user"]
    result = subprocess.run(
        [unshare, *namespace, "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "SYSTEMD_LOG_COLOR": "0"},
    )
    # verify exits 0 on unknown keys and only prints a warning: any output is a failure.
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
