"""The audit's outbound half: each way a delivery can be stuck is named, a healthy set passes."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session, sessionmaker

from models.base import utcnow
from models.outbound import DeliveryStatus
from models.outbound_audit import PARKED_AFTER, Windows, audit_deliveries
from tests.support.outbound import add_app, add_delivery, add_message

WINDOWS = Windows(visibility=dt.timedelta(hours=1), sweep=dt.timedelta(minutes=1), max_in_flight=2)


def _store(
    sessions: sessionmaker[Session], cases: dict[str, tuple[str, DeliveryStatus, dict[str, object]]]
) -> dict[int, str]:
    """Store each case's delivery to its app (made once); return case names by delivery id."""
    names: dict[int, str] = {}
    with sessions.begin() as session:
        apps = {
            "shop": add_app(session, "shop"),
            "busy": add_app(session, "busy"),
            "off": add_app(session, "off", enabled=False),
            "quiet": add_app(session, "quiet"),
        }
        for name, (app, status, values) in cases.items():
            delivery = add_delivery(session, add_message(session), apps[app], status, **values)
            names[delivery.id] = name
    return names


def test_audit_names_each_stuck_delivery_and_why(sessions: sessionmaker[Session]) -> None:
    now = utcnow()
    long_ago = now - dt.timedelta(hours=2)
    names = _store(
        sessions,
        {
            # scheduled, delivered, or given up with a reason
            "ok_due_now": ("shop", DeliveryStatus.PENDING, {"next_attempt_at": now}),
            "ok_retry_later": (
                "shop",
                DeliveryStatus.PENDING,
                {"next_attempt_at": now + dt.timedelta(hours=5)},
            ),
            "ok_enqueued": ("shop", DeliveryStatus.ENQUEUED, {"enqueued_at": now}),
            "ok_sending": (
                "busy",
                DeliveryStatus.SENDING,
                {"lease_until": now + dt.timedelta(seconds=60)},
            ),
            # lapsed, but within a sweep interval: the next sweep takes it back
            "ok_just_lapsed": (
                "busy",
                DeliveryStatus.SENDING,
                {"lease_until": now - dt.timedelta(seconds=20)},
            ),
            # due long ago, but its app has OUTBOUND_MAX_IN_FLIGHT in flight: it waits for them
            "ok_app_full": (
                "busy",
                DeliveryStatus.PENDING,
                {"next_attempt_at": now - dt.timedelta(minutes=30)},
            ),
            # held while its app is disabled, until an operator enables it
            "ok_app_off": ("off", DeliveryStatus.PENDING, {"next_attempt_at": long_ago}),
            "ok_delivered": ("shop", DeliveryStatus.DELIVERED, {"finished_at": now}),
            "ok_given_up": (
                "shop",
                DeliveryStatus.FAILED,
                {"finished_at": now, "reason": "gave up after 8 attempts; last: answered 500"},
            ),
            # stranded
            "bad_pending": ("shop", DeliveryStatus.PENDING, {"next_attempt_at": None}),
            "bad_enqueued": ("shop", DeliveryStatus.ENQUEUED, {"enqueued_at": long_ago}),
            "bad_lapsed": (
                "shop",
                DeliveryStatus.SENDING,
                {"lease_until": now - dt.timedelta(minutes=5)},
            ),
            "bad_no_reason": ("shop", DeliveryStatus.FAILED, {"finished_at": now}),
            # parked: its app is enabled with nothing in flight, yet no relay published it
            "parked_overdue": (
                "quiet",
                DeliveryStatus.PENDING,
                {"next_attempt_at": now - PARKED_AFTER - dt.timedelta(minutes=1)},
            ),
        },
    )

    with sessions() as session:
        report = audit_deliveries(session, now, WINDOWS)

    assert report.ok is False
    assert dict(report.open) == {"pending": 6, "enqueued": 2, "sending": 3}
    why = {names[item.delivery_id]: item.why for item in report.stranded}
    assert set(why) == {"bad_pending", "bad_enqueued", "bad_lapsed", "bad_no_reason"}
    assert "relay will never publish it" in why["bad_pending"]
    assert "presumed lost" in why["bad_enqueued"]
    assert "more than a sweep interval ago" in why["bad_lapsed"]
    assert "without a reason" in why["bad_no_reason"]
    assert {item.app for item in report.stranded} == {"shop"}
    assert {item.status for item in report.stranded} == {"pending", "enqueued", "sending", "failed"}
    parked = {names[item.delivery_id]: item for item in report.parked}
    assert set(parked) == {"parked_overdue"}
    assert "no relay is publishing" in parked["parked_overdue"].why
    assert "start the relay" in parked["parked_overdue"].next_step


def test_audit_passes_deliveries_that_are_each_delivered_scheduled_or_given_up(
    sessions: sessionmaker[Session],
) -> None:
    now = utcnow()
    _store(
        sessions,
        {
            "due": ("shop", DeliveryStatus.PENDING, {"next_attempt_at": now}),
            "enqueued": ("shop", DeliveryStatus.ENQUEUED, {"enqueued_at": now}),
            "sending": (
                "shop",
                DeliveryStatus.SENDING,
                {"lease_until": now + dt.timedelta(seconds=60)},
            ),
            "delivered": ("shop", DeliveryStatus.DELIVERED, {"finished_at": now}),
            "given_up": (
                "off",
                DeliveryStatus.FAILED,
                {"finished_at": now, "reason": "app disabled by an operator"},
            ),
        },
    )
    with sessions() as session:
        report = audit_deliveries(session, now, WINDOWS)
    assert report.ok, (report.stranded, report.parked)
    assert report.checked == 3
