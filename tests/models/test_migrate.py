"""Models and migrations agree, on both databases, and the operator commands say so."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from sqlalchemy import text

from models.db import make_engine
from models.migrate import current_revision, drift, head_revision, upgrade
from rivyahooks_foundation.settings import Settings
from tests.support.processes import BIN, ROOT, child_env


@pytest.fixture
def empty_sqlite(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'fresh.sqlite3'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest) -> str:
    name = "empty_sqlite" if request.param == "sqlite" else "empty_postgres"
    return str(request.getfixturevalue(name))


def test_upgrade_leaves_no_drift(fresh_url: str) -> None:
    engine = make_engine(fresh_url)
    try:
        assert current_revision(engine) is None
        upgrade(fresh_url)
        assert current_revision(engine) == head_revision()
        assert drift(engine) == []
    finally:
        engine.dispose()


def test_drift_is_detected(fresh_url: str) -> None:
    # Guards the test above against passing vacuously: a schema change shows up as drift.
    upgrade(fresh_url)
    engine = make_engine(fresh_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("ALTER TABLE webhook_events ADD COLUMN stray INTEGER"))
        # Alembic's diff: (operation, schema, table, column); only the stray column differs.
        assert [(op, table, column.name) for op, _schema, table, column in drift(engine)] == [
            ("remove_column", "webhook_events", "stray")
        ]
    finally:
        engine.dispose()


def rivya_hooks(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    """Run the operator command as the Procfile release role does, in its own process."""
    env = child_env(Settings(database_url=database_url))
    return subprocess.run(
        [str(BIN / "rivya-hooks"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_upgrade_then_check(empty_postgres: str) -> None:
    # PostgreSQL only: the commands are the same for SQLite, and each run costs a process.
    before = rivya_hooks("db", "check", database_url=empty_postgres)
    assert before.returncode == 1, before.stderr
    upgraded = rivya_hooks("db", "upgrade", database_url=empty_postgres)
    assert upgraded.returncode == 0, upgraded.stderr
    checked = rivya_hooks("db", "check", database_url=empty_postgres)
    assert checked.returncode == 0, checked.stderr
