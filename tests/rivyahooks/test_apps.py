"""`rivya-hooks apps`: what an operator does with app endpoints, from the command line."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, select, type_coerce
from sqlalchemy.types import LargeBinary

from models.apps import App
from models.data_keys import check_data_keys
from models.db import make_engine, make_session_factory
from models.encryption import MAGIC, key_id
from models.outbound import DeliveryStatus, OutboundCursor, OutboundDelivery
from rivyahooks.cli import main
from rivyahooks_foundation.settings import Settings
from tasks.outbound_fanout import fan_out
from tests.conftest import SECRET
from tests.support.receiving_apps import store_result

KEY, NEW_KEY = os.urandom(32), os.urandom(32)


@pytest.fixture
def base(postgres_engine: Engine, postgres_url: str) -> Settings:
    return Settings(
        database_url=postgres_url,
        webhook_secrets=(SECRET,),
        outbound_allowed_hosts=("127.0.0.1",),
    )


def run(settings: Settings, *args: str) -> Result:
    return CliRunner().invoke(main, ["apps", *args], env=settings.to_env())


def added(settings: Settings, name: str, *extra: str) -> dict[str, object]:
    result = run(settings, "add", name, "--url", "http://127.0.0.1:8080/hooks", "--json", *extra)
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["add"],
        ["list"],
        ["show"],
        ["disable"],
        ["enable"],
        ["rotate-secret"],
        ["remove"],
        ["replay"],
    ],
)
def test_every_apps_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(main, ["apps", *command, "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output


def test_add_prints_the_secret_once_and_list_and_show_never(base: Settings) -> None:
    shown = added(base, "shop", "--events", "result.ready", "--ed25519")
    assert set(shown) >= {"id", "name", "url", "events", "secret", "public_key"}
    assert str(shown["id"]).startswith("app_")
    assert shown["events"] == ["result.ready"]
    secret = str(shown["secret"])
    assert secret.startswith("whsec_")
    assert str(shown["public_key"]).startswith("whpk_")
    for args in (["list"], ["list", "--json"], ["show", "shop"], ["show", "shop", "--json"]):
        result = run(base, *args)
        assert result.exit_code == 0, result.output
        assert "shop" in result.stdout
        assert secret not in result.output
        assert secret.removeprefix("whsec_") not in result.output


def test_bad_input_is_refused_with_exit_2(base: Settings) -> None:
    for args in (
        ["add", "shop", "--url", "https://10.0.0.7/hooks"],
        ["add", "shop", "--url", "http://8.8.8.8/hooks"],
        ["add", "shop", "--url", "http://127.0.0.1/x", "--events", "result.maybe"],
        ["add", "-bad name", "--url", "http://127.0.0.1/x"],
    ):
        result = run(base, *args)
        assert result.exit_code == 2, (args, result.output)
    assert "OUTBOUND_ALLOWED_HOSTS" in run(base, *["add", "s", "--url", "https://10.0.0.7"]).output
    added(base, "shop")
    again = run(base, "add", "shop", "--url", "http://127.0.0.1/x")
    assert again.exit_code == 1
    assert "exists" in again.output
    missing = run(base, "show", "nobody")
    assert missing.exit_code == 1
    assert "apps list" in missing.output


def test_disable_enable_rotate_and_remove(base: Settings, postgres_engine: Engine) -> None:
    first = added(base, "shop")
    assert run(base, "disable", "shop").exit_code == 0
    (listed,) = json.loads(run(base, "list", "--json").stdout)
    assert listed["enabled"] is False
    assert listed["disabled_reason"] == "disabled by an operator"
    refused = run(base, "replay", "shop")
    assert refused.exit_code == 1
    assert "apps enable shop" in refused.output
    assert run(base, "enable", "shop").exit_code == 0
    assert json.loads(run(base, "list", "--json").stdout)[0]["enabled"] is True

    rotated = run(base, "rotate-secret", "shop", "--json")
    assert rotated.exit_code == 0
    document = json.loads(rotated.stdout)
    assert document["secret"] != first["secret"]
    with postgres_engine.connect() as connection:
        app = connection.execute(select(App.secret, App.previous_secret)).one()
    assert (app.secret.decode(), app.previous_secret.decode()) == (
        document["secret"],
        first["secret"],
    )
    assert run(base, "remove", "shop", "--yes").exit_code == 0
    assert json.loads(run(base, "list", "--json").stdout) == []


def test_the_first_app_starts_from_the_feeds_end(base: Settings, postgres_engine: Engine) -> None:

    sessions = make_session_factory(postgres_engine)
    store_result(sessions, "task_before")
    added(base, "shop")
    with postgres_engine.connect() as connection:
        cursor = connection.scalar(select(OutboundCursor.position))
        last = connection.exec_driver_sql("select max(feed_position) from generations").scalar()
    assert cursor == last


def test_replay_dry_run_counts_and_changes_nothing(base: Settings, postgres_engine: Engine) -> None:

    added(base, "shop")
    sessions = make_session_factory(postgres_engine)
    store_result(sessions, "task_a")
    with sessions.begin() as session:
        fan_out(session)
        for delivery in session.scalars(select(OutboundDelivery)):
            delivery.status = DeliveryStatus.FAILED
            delivery.reason = "gave up"
    result = run(base, "replay", "shop", "--failed-only", "--dry-run")
    assert result.exit_code == 0
    assert "would send 1 message(s)" in result.stdout
    with sessions() as session:
        assert session.scalar(select(OutboundDelivery.status)) is DeliveryStatus.FAILED
    assert "sending 1 message(s)" in run(base, "replay", "shop", "--failed-only").stdout
    with sessions() as session:
        assert session.scalar(select(OutboundDelivery.status)) is DeliveryStatus.PENDING


def test_secrets_are_sealed_when_data_encryption_keys_is_set(
    base: Settings, postgres_url: str
) -> None:
    keyed = base.replace(data_encryption_keys=(KEY,))
    check_data_keys(keyed)
    shown = added(keyed, "shop", "--ed25519")
    engine = make_engine(postgres_url)
    try:
        with engine.connect() as connection:
            raw = connection.execute(
                select(
                    type_coerce(App.secret, LargeBinary()),
                    type_coerce(App.signing_key, LargeBinary()),
                )
            ).one()
    finally:
        engine.dispose()
    for value in raw:
        assert bytes(value).startswith(MAGIC)
    assert str(shown["secret"]).encode() not in bytes(raw[0])
    # Opened with the key, the app reads as it was stored.
    (listed,) = json.loads(run(keyed, "list", "--json").stdout)
    assert listed["public_key"] == shown["public_key"]

    # `keys rotate` moves the app's secrets to the new first key; the old key then goes.
    rotating = base.replace(data_encryption_keys=(NEW_KEY, KEY))
    result = CliRunner().invoke(main, ["keys", "rotate", "--json"], env=rotating.to_env())
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["retired"] == [key_id(KEY)]
    rotated = base.replace(data_encryption_keys=(NEW_KEY,))
    (listed,) = json.loads(run(rotated, "list", "--json").stdout)
    assert listed["public_key"] == shown["public_key"]
    engine = make_engine(postgres_url, data_keys=(NEW_KEY,))
    try:
        with make_session_factory(engine)() as session:
            assert session.scalar(select(App.secret)) == str(shown["secret"]).encode()
    finally:
        engine.dispose()
