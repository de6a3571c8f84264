"""`keys generate` and doctor's line on encryption at rest."""

from __future__ import annotations

import base64
import json
import os

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from models.data_keys import check_data_keys
from models.encryption import key_id
from rivyahooks.cli import main
from rivyahooks_foundation.settings import Settings, data_keys
from tests.conftest import SECRET

OLD, NEW = os.urandom(32), os.urandom(32)


def test_generate_prints_a_key_the_setting_takes_and_its_id() -> None:
    result = CliRunner().invoke(main, ["keys", "generate"])
    assert result.exit_code == 0
    key = result.stdout.strip()
    (decoded,) = data_keys("DATA_ENCRYPTION_KEYS", key)
    assert len(decoded) == 32
    assert base64.b64decode(key) == decoded
    assert f"key id {key_id(decoded)}" in result.stderr
    assert CliRunner().invoke(main, ["keys", "generate"]).stdout.strip() != key


@pytest.mark.parametrize("command", [["keys"], ["keys", "generate"], ["keys", "rotate"]])
def test_every_keys_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output


def encryption_check(settings: Settings) -> dict[str, object]:
    result = CliRunner().invoke(main, ["doctor", "--json"], env=settings.to_env())
    checks = json.loads(result.stdout)["checks"]
    (found,) = [c for c in checks if c["check"] == "encryption at rest"]
    return dict(found)


def test_doctor_says_where_the_data_stands(postgres_engine: Engine, postgres_url: str) -> None:
    base = Settings(database_url=postgres_url, webhook_secrets=(SECRET,))
    plain = encryption_check(base)
    assert plain["ok"] is True
    assert "stored in plain text" in str(plain["detail"])

    keyed = base.replace(data_encryption_keys=(OLD,))
    check_data_keys(keyed)
    assert encryption_check(keyed) == encryption_check(keyed) | {
        "ok": True,
        "detail": f"encrypting under key id {key_id(OLD)}",
    }
    rotating = encryption_check(base.replace(data_encryption_keys=(NEW, OLD)))
    assert f"rows may still be under {key_id(OLD)}" in str(rotating["detail"])

    missing = encryption_check(base.replace(data_encryption_keys=(NEW,)))
    assert missing["ok"] is False
    assert missing["configuration"] is True
    assert key_id(OLD) in str(missing["detail"])
