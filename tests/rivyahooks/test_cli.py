"""The operator commands, run as an operator would, against a real database and the simulator."""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, delete, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.wrappers import Request, Response

from models.base import utcnow
from models.events import EventSource, EventStatus, WebhookEvent
from models.generations import Generation
from models.inbox import insert_event
from models.migrate import upgrade
from models.outbound import DeliveryStatus, OutboundDelivery
from rivyahooks.cli import main
from rivyahooks_foundation.settings import Settings
from rivyahooks_protocol import contract
from rivyahooks_simulator.config import SimConfig
from rivyahooks_simulator.server import Simulator
from tests.support import services
from tests.support.httpserver import serving
from tests.support.outbound import add_app, add_delivery, add_message
from tests.support.processes import own_redis_database


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in group.commands.items():
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from all_commands(command, (*prefix, name))


@pytest.mark.parametrize("path", list(all_commands(main)), ids=" ".join)
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    config = SimConfig(queued_seconds=0, processing_seconds=0, failure_ratio=0, output_bytes=1024)
    with Simulator(config=config, seed=3).start() as sim:
        yield sim


@pytest.fixture
def run(settings: Settings, simulator: Simulator):  # type: ignore[no-untyped-def]
    env = settings.replace(rivya_api_base=simulator.url, rivya_api_key=simulator.api_key).to_env()

    def invoke(*args: str, **extra_env: str) -> click.testing.Result:
        return CliRunner().invoke(main, list(args), env={**env, **extra_env})

    return invoke


def store(sessions: sessionmaker[Session], event_id: str, **values: object) -> None:
    with sessions.begin() as session:
        insert_event(
            session,
            event_id=event_id,
            body=values.pop("body", b"{}"),
            source=EventSource.WEBHOOK,
            **values,
        )


def test_events_list_show_and_stats(run, sessions: sessionmaker[Session]) -> None:  # type: ignore[no-untyped-def]
    store(sessions, "evt_a", event_type=contract.EVENT_GENERATION_SUCCEEDED, task_id="task_a")
    store(sessions, "evt_b", status=EventStatus.QUARANTINED, status_reason="body is not JSON")

    listed = run("events", "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert {e["event_id"] for e in json.loads(listed.output)} == {"evt_a", "evt_b"}

    only = run("events", "list", "--status", "quarantined", "--json")
    assert [e["event_id"] for e in json.loads(only.output)] == ["evt_b"]

    shown = run("events", "show", "evt_a")
    assert shown.exit_code == 0
    assert "task_a" in shown.output

    missing = run("events", "show", "evt_nope")
    assert missing.exit_code == 1
    assert "no event 'evt_nope'" in missing.output

    stats = json.loads(run("stats", "--json").output)
    assert stats["events"] == 2
    assert stats["by_status"]["quarantined"] == 1
    assert stats["oldest_unprocessed"]["event_id"] == "evt_a"


def test_replay_dry_run_changes_nothing_then_replay_stores_for_the_relay(  # type: ignore[no-untyped-def]
    run, sessions: sessionmaker[Session]
) -> None:
    body = json.dumps(
        {"id": "evt_q", "type": contract.EVENT_GENERATION_FAILED, "data": {"id": "task_q"}}
    ).encode()
    # Stored as quarantined by an older version of the code that could not read it.
    store(sessions, "evt_q", body=body, status=EventStatus.QUARANTINED, status_reason="old code")
    store(sessions, "evt_junk", body=b"not json", status=EventStatus.QUARANTINED)

    dry = run("replay", "--status", "quarantined", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    plan = {e["event_id"]: e["to"] for e in json.loads(dry.output)["events"]}
    assert plan == {"evt_q": "received", "evt_junk": "quarantined"}
    with sessions() as session:
        assert {e.status for e in session.scalars(select(WebhookEvent))} == {
            EventStatus.QUARANTINED
        }

    # The broker is unreachable: replay only writes rows, so it works all the same.
    done = run("replay", "evt_q", "evt_junk", BROKER_URL="redis://127.0.0.1:9/0")
    assert done.exit_code == 0, done.output
    assert "1 event(s) replayed" in done.output
    assert "the relay publishes them" in done.output
    with sessions() as session:
        rows = {e.event_id: e for e in session.scalars(select(WebhookEvent))}
    assert rows["evt_q"].status is EventStatus.RECEIVED
    assert rows["evt_q"].next_attempt_at is not None
    assert rows["evt_q"].task_id == "task_q"
    assert rows["evt_junk"].status is EventStatus.QUARANTINED


def test_replay_needs_ids_or_status(run) -> None:  # type: ignore[no-untyped-def]
    result = run("replay")
    assert result.exit_code == 2
    assert "give event ids or --status" in result.output


def test_submit_records_the_generation(run, sessions: sessionmaker[Session]) -> None:  # type: ignore[no-untyped-def]
    result = run(
        "submit", "--model", "rivya-image-1", "--prompt", "a fox", "--param", "steps=20", "--json"
    )
    assert result.exit_code == 0, result.output
    task_id = json.loads(result.output)["generation"]["id"]
    with sessions() as session:
        generation = session.scalars(select(Generation)).one()
    assert generation.task_id == task_id
    assert generation.submitted_at is not None


@pytest.mark.parametrize("task_id", ["task_1\n", "", "task 1", "t" * 256, 42])
def test_submit_refuses_an_id_it_could_not_store(  # type: ignore[no-untyped-def]
    run, sessions: sessionmaker[Session], task_id: object
) -> None:
    def answer(request: Request) -> Response:
        body = {"id": task_id, "status": "queued", "model": "rivya-image-1"}
        return Response(json.dumps(body), status=201, mimetype="application/json")

    with serving(answer) as odd_rivya:
        result = run("submit", "--model", "rivya-image-1", RIVYA_API_BASE=odd_rivya)
    assert result.exit_code == 1
    assert "a generation id this service cannot store" in result.output
    with sessions() as session:
        assert session.scalars(select(Generation)).all() == []


def test_webhooks_register_prints_the_secret_once_with_the_next_step(  # type: ignore[no-untyped-def]
    run, simulator: Simulator
) -> None:
    result = run("webhooks", "register", "--url", "https://hooks.example/webhooks/rivya")
    assert result.exit_code == 0, result.output
    assert "whsec_" in result.output
    assert "RIVYA_WEBHOOK_SECRETS" in result.output
    status = run("webhooks", "status", "--json")
    (endpoint,) = json.loads(status.output)["endpoints"]
    assert endpoint["url"] == "https://hooks.example/webhooks/rivya"
    assert "signing_secret" not in endpoint or not endpoint["signing_secret"]


def test_doctor_passes_then_names_a_bad_key(run, simulator: Simulator) -> None:  # type: ignore[no-untyped-def]
    simulator.register_endpoint("http://127.0.0.1:9/webhooks/rivya")
    # A secret as Rivya makes them: random bytes (doctor flags the suite's readable one).
    random_secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    good = run("doctor", "--json", RIVYA_WEBHOOK_SECRETS=random_secret)
    report = json.loads(good.output)
    assert good.exit_code == 0, good.output
    assert {c["check"] for c in report["checks"]} >= {
        "database",
        "broker",
        "rivya key",
        "clock skew",
        "endpoint",
    }

    bad = run("doctor", RIVYA_API_KEY="rvya_sk_wrong", RIVYA_WEBHOOK_SECRETS=random_secret)
    assert bad.exit_code == 1
    assert "FAIL rivya key" in bad.output
    assert "rvya_sk_wrong" not in bad.output


def test_reconcile_command_prints_a_summary(run, simulator: Simulator) -> None:  # type: ignore[no-untyped-def]
    simulator.wait_terminal(simulator.scenario(3))
    result = run("reconcile", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["events_missing"] == 3
    assert summary["dry_run"] is True


def test_bad_setting_exits_2_naming_the_variable(run) -> None:  # type: ignore[no-untyped-def]
    result = run("stats", RIVYA_WEBHOOK_SECRETS="whsec_not base64!!")
    assert result.exit_code == 2
    assert "RIVYA_WEBHOOK_SECRETS" in result.output
    assert "not base64!!" not in result.output


def test_settings_shows_values_but_never_a_secret(run, tmp_path) -> None:  # type: ignore[no-untyped-def]
    key_file = tmp_path / "key"
    key_file.write_text("rvya_sk_kept_in_a_file")
    result = run(
        "settings",
        "--json",
        RIVYA_API_KEY="",
        RIVYA_API_KEY_FILE=str(key_file),
        RESULTS_API_TOKENS="t0ken-value-0123456789,other-value-0123456789",
        LOG_LEVEL="DEBUG",
    )
    assert result.exit_code == 0, result.output
    shown = {row["variable"]: row["value"] for row in json.loads(result.output)}
    assert shown["RIVYA_API_KEY"] == "(set)"
    assert shown["RESULTS_API_TOKENS"] == "(set)"
    assert shown["LOG_LEVEL"] == "DEBUG"
    assert "rvya_sk_kept_in_a_file" not in result.output
    assert "t0ken-value" not in result.output
    assert "other-value" not in result.output


def test_events_audit_names_every_stranded_event_and_why(  # type: ignore[no-untyped-def]
    run, sessions: sessionmaker[Session]
) -> None:
    now = utcnow()
    long_ago = now - dt.timedelta(hours=2)  # past the default one-hour visibility window
    soon = now + dt.timedelta(minutes=5)
    cases: dict[str, dict[str, object]] = {
        # scheduled: something acts on each without an operator
        "ok_received": {"status": EventStatus.RECEIVED, "next_attempt_at": now},
        "ok_failed": {"status": EventStatus.FAILED, "next_attempt_at": soon},
        "ok_enqueued": {"status": EventStatus.ENQUEUED, "enqueued_at": now},
        "ok_running": {
            "status": EventStatus.PROCESSING,
            "claim_token": "a" * 32,
            # within two minutes: a lease further ahead is parked
            "lease_expires_at": now + dt.timedelta(minutes=1),
        },
        "ok_done": {"status": EventStatus.PROCESSED, "next_attempt_at": None},
        "ok_quarantined": {"status": EventStatus.QUARANTINED, "next_attempt_at": None},
        # stranded
        "bad_received": {"status": EventStatus.RECEIVED, "next_attempt_at": None},
        "bad_enqueued": {"status": EventStatus.ENQUEUED, "enqueued_at": long_ago},
        "bad_lapsed": {
            "status": EventStatus.PROCESSING,
            "claim_token": "b" * 32,
            "lease_expires_at": long_ago,
        },
        "bad_unclaimed": {"status": EventStatus.PROCESSING, "next_attempt_at": None},
    }
    for event_id, values in cases.items():
        store(sessions, event_id)
        with sessions.begin() as session:
            session.execute(
                update(WebhookEvent).where(WebhookEvent.event_id == event_id).values(**values)
            )

    result = run("events", "audit", "--json")

    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["unfinished_checked"] == 8
    why = {item["event_id"]: item["why"] for item in report["stranded"]}
    assert set(why) == {"bad_received", "bad_enqueued", "bad_lapsed", "bad_unclaimed"}
    assert "relay will never publish it" in why["bad_received"]
    assert "presumed lost" in why["bad_enqueued"]
    assert "lease expired" in why["bad_lapsed"]
    assert "without a claim" in why["bad_unclaimed"]
    assert "4 stranded event(s)" in result.stderr

    with sessions.begin() as session:
        session.execute(delete(WebhookEvent).where(WebhookEvent.event_id.like("bad_%")))
    clean = run("events", "audit")
    assert clean.exit_code == 0, clean.output
    assert "ok: every event is finished or scheduled" in clean.output


def test_events_audit_names_stuck_outbound_deliveries_in_text_and_json(  # type: ignore[no-untyped-def]
    run, sessions: sessionmaker[Session]
) -> None:
    now = utcnow()
    with sessions.begin() as session:
        shop, quiet = add_app(session, "shop"), add_app(session, "quiet")
        add_delivery(
            session, add_message(session), shop, DeliveryStatus.PENDING, next_attempt_at=now
        )
        stuck = add_delivery(session, add_message(session), shop, DeliveryStatus.PENDING)
        add_delivery(
            session,
            add_message(session),
            quiet,
            DeliveryStatus.PENDING,
            next_attempt_at=now - dt.timedelta(minutes=10),
        )
        stuck_id, message_id = stuck.id, stuck.message_id

    result = run("events", "audit", "--json")

    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["stranded"] == []
    outbound = report["outbound"]
    assert outbound["open"] == {"pending": 3}
    assert [(i["delivery_id"], i["message_id"], i["app"]) for i in outbound["stranded"]] == [
        (stuck_id, message_id, "shop")
    ]
    assert [i["app"] for i in outbound["parked"]] == ["quiet"]
    assert "1 stranded outbound delivery(ies), 1 parked" in result.stderr

    text = run("events", "audit")
    assert text.exit_code == 1, text.output
    assert "ok: every event is finished or scheduled" in text.output
    assert "open outbound deliveries checked: 3 (3 pending)" in text.output
    assert f"STRANDED delivery {stuck_id} ({message_id} to shop, pending): pending without" in (
        text.output
    )
    assert "start the relay" in text.output

    with sessions.begin() as session:
        session.execute(delete(OutboundDelivery).where(OutboundDelivery.app_id == quiet.id))
        session.execute(
            update(OutboundDelivery)
            .where(OutboundDelivery.id == stuck_id)
            .values(next_attempt_at=now + dt.timedelta(hours=2))
        )
    clean = run("events", "audit")
    assert clean.exit_code == 0, clean.output
    assert "ok: every outbound delivery is delivered, scheduled, or given up" in clean.output


# No other suite uses this Redis database.
AUDIT_REDIS_DB = 15


@pytest.mark.redis
def test_events_audit_names_every_parked_event_why_and_the_next_step(  # type: ignore[no-untyped-def]
    run, sessions: sessionmaker[Session], redis_url: str
) -> None:
    import redis

    now = utcnow()
    ago = now - dt.timedelta(minutes=5)
    cases: dict[str, dict[str, object]] = {
        # something acts on each within two minutes
        "ok_running": {
            "status": EventStatus.PROCESSING,
            "claim_token": "a" * 32,
            "lease_expires_at": now + dt.timedelta(minutes=1),
        },
        "ok_backing_off": {
            "status": EventStatus.FAILED,
            "next_attempt_at": now + dt.timedelta(minutes=4),
        },
        "ok_just_enqueued": {"status": EventStatus.ENQUEUED, "enqueued_at": now},
        # parked: nothing acts on them for longer
        "parked_lease": {
            "status": EventStatus.PROCESSING,
            "claim_token": "b" * 32,
            "lease_expires_at": now + dt.timedelta(minutes=25),
        },
        "parked_overdue": {"status": EventStatus.FAILED, "next_attempt_at": ago},
        "parked_lost": {"status": EventStatus.ENQUEUED, "enqueued_at": ago},
    }
    for event_id, values in cases.items():
        store(sessions, event_id)
        with sessions.begin() as session:
            session.execute(
                update(WebhookEvent).where(WebhookEvent.event_id == event_id).values(**values)
            )

    # The broker holds nothing (restarted empty): the message of `parked_lost` is gone. A
    # Redis database of this test's own: the shared one is flushed by tests running meanwhile.
    broker = own_redis_database(redis_url, AUDIT_REDIS_DB)
    result = run("events", "audit", "--json", BROKER_URL=broker)

    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["stranded"] == []
    assert report["broker_messages"] == 0
    parked = {item["event_id"]: item for item in report["parked"]}
    assert set(parked) == {"parked_lease", "parked_overdue", "parked_lost"}
    assert "nothing takes it back before then" in parked["parked_lease"]["why"]
    assert "no relay is publishing" in parked["parked_overdue"]["why"]
    assert "the broker lost its message" in parked["parked_lost"]["why"]
    assert "events replay parked_lost" in parked["parked_lost"]["next_step"]
    assert "3 parked event(s)" in result.stderr

    text = run("events", "audit", BROKER_URL=broker)
    assert text.exit_code == 1, text.output
    assert "PARKED parked_overdue (failed): failed, due since" in text.output
    assert "start the relay" in text.output

    # A message on the broker for the one enqueued event: it is not lost.
    client = redis.Redis.from_url(broker)
    client.lpush("celery", b"{}")
    client.close()
    with sessions.begin() as session:
        session.execute(delete(WebhookEvent).where(WebhookEvent.event_id != "parked_lost"))
    held = run("events", "audit", "--json", BROKER_URL=broker)
    assert held.exit_code == 0, held.output
    assert json.loads(held.stdout)["broker_messages"] == 1


def test_a_database_failing_mid_command_is_one_error_line_not_a_traceback() -> None:
    # As when PostgreSQL goes read-only while a purge or a reconcile runs: the command
    # opened the database fine, then a write was refused.
    with services.new_postgres_database("rivyahooks_readonly") as url:
        upgrade(url)
        admin = create_engine(services.POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        name = make_url(url).database
        with admin.connect() as connection:
            connection.execute(
                text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
            )
        admin.dispose()
        settings = Settings(database_url=url, outbound_allowed_hosts=("127.0.0.1",))
        result = CliRunner().invoke(
            main,
            ["apps", "add", "shop", "--url", "http://127.0.0.1:8080/hooks"],
            env=settings.to_env(),
        )
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "the database failed while the command ran: cannot execute INSERT in a read-only" in (
        result.output
    )
    assert "run the command again once it is back" in result.output
