"""The start check: a process whose keys cannot open the stored rows stops, naming the key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from models.data_keys import MissingDataKey, check_data_keys, registered_ids, require_data_keys
from models.db import make_engine
from models.encryption import key_id
from receiver import create_app
from rivyahooks.cli import main
from rivyahooks_foundation.settings import Settings
from tests.conftest import SECRET
from tests.support.processes import ROOT

OLD, NEW = os.urandom(32), os.urandom(32)


@pytest.fixture
def base(postgres_engine: Engine, postgres_url: str) -> Settings:
    return Settings(database_url=postgres_url, webhook_secrets=(SECRET,))


def registered(settings: Settings) -> list[str]:
    engine = make_engine(settings.database_url)
    with engine.connect() as connection:
        ids = registered_ids(connection)
    engine.dispose()
    return ids


def test_a_start_registers_the_sealing_key_once(base: Settings) -> None:
    check_data_keys(base)
    assert registered(base) == []  # no key: nothing is sealed, nothing to register
    check_data_keys(base.replace(data_encryption_keys=(OLD,)))
    check_data_keys(base.replace(data_encryption_keys=(OLD,)))
    check_data_keys(base.replace(data_encryption_keys=(NEW, OLD)))
    assert registered(base) == sorted([key_id(OLD), key_id(NEW)])


def test_a_start_without_a_registered_key_fails_naming_it_and_registers_nothing(
    base: Settings,
) -> None:
    check_data_keys(base.replace(data_encryption_keys=(OLD,)))
    with pytest.raises(MissingDataKey, match=key_id(OLD)) as caught:
        check_data_keys(base.replace(data_encryption_keys=(NEW,)))
    assert caught.value.key_id == key_id(OLD)
    assert str(NEW.hex()) not in str(caught.value)
    assert registered(base) == [key_id(OLD)]
    with pytest.raises(MissingDataKey, match=key_id(OLD)):
        check_data_keys(base)  # keys removed altogether


def test_a_database_that_cannot_be_read_yet_is_left_to_its_own_checks(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.sqlite3'}", data_keys=(NEW,))
    require_data_keys(engine)  # no tables: the schema check says so, not this one
    engine.dispose()


def test_the_web_role_and_commands_stop_at_start_naming_the_key(base: Settings) -> None:
    check_data_keys(base.replace(data_encryption_keys=(OLD,)))
    wrong = base.replace(data_encryption_keys=(NEW,))
    with pytest.raises(MissingDataKey, match=key_id(OLD)):
        create_app(wrong)
    for command in (["events", "show", "evt_x"], ["replay", "evt_x"], ["keys", "rotate"]):
        result = CliRunner().invoke(main, command, env=wrong.to_env())
        assert result.exit_code == 2, (command, result.output)
        assert f"key id {key_id(OLD)}" in result.output.splitlines()[0]
    relay = CliRunner().invoke(main, ["relay"], env=wrong.to_env())
    assert relay.exit_code == 2
    assert key_id(OLD) in relay.output


def test_the_worker_stops_at_start_with_one_line_naming_the_key(base: Settings) -> None:
    check_data_keys(base.replace(data_encryption_keys=(OLD,)))
    env = {
        **os.environ,
        **base.replace(data_encryption_keys=(NEW,), rivya_api_key="rvya_sk_test").to_env(),
        "LOG_FORMAT": "console",
    }
    started = subprocess.run(
        [sys.executable, "-c", "import tasks.worker"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode == 2, started.stderr
    errors = [line for line in (started.stdout + started.stderr).splitlines() if line.strip()]
    assert any(key_id(OLD) in line for line in errors), errors
    assert "Traceback" not in started.stderr
