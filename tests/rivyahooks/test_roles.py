"""The Procfile holds exactly the role lines the package carries for `rivya-hooks serve`."""

from __future__ import annotations

from rivyahooks.procfile import procfile_roles
from rivyahooks.roles import RELEASE, ROLES, SERVICE_ROLES, procfile_text
from tests.support.processes import ROOT


def test_the_procfile_is_the_packages_role_lines() -> None:
    assert procfile_roles(ROOT / "Procfile") == ROLES
    assert (ROOT / "Procfile").read_text() == procfile_text()


def test_every_role_is_release_or_a_service_role() -> None:
    assert set(ROLES) == {RELEASE, *SERVICE_ROLES}
