"""The console in a real browser: Debian's Chromium driven by Playwright, against the Procfile's
gunicorn, the relay, a real Celery worker, Redis and the simulator over HTTP.

One operator's night, in order: refused without a token, log in, watch a delivery arrive,
open a dead event's timeline, fail a replay with a forged CSRF token, replay it for real and
watch it end `processed`; then a read-only operator who sees everything and may replay
nothing. Every page visited is saved as a screenshot under var/screenshots/console/.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models.events import EventStatus, WebhookEvent
from models.operator_actions import OperatorAction
from rivyahooks_foundation.settings import Settings
from rivyahooks_simulator.config import Faults, SimConfig
from rivyahooks_simulator.server import Simulator
from tests.conftest import make_event, signed_delivery
from tests.support import services
from tests.support.eventually import eventually
from tests.support.processes import ROOT, celery_worker, gunicorn, own_redis_database, relay

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
# The machine running the tests may have no network: nothing of Chromium's own may phone out.
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
REDIS_DB = 12
ADMIN_TOKEN = "browser-admin-" + uuid.uuid4().hex
READONLY_TOKEN = "browser-readonly-" + uuid.uuid4().hex
SCREENSHOTS = ROOT / "var" / "screenshots" / "console"
# Long enough for a worker on a busy 2-core machine; each wait returns as soon as it holds.
SLOW = 60.0


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    if shutil.which(CHROMIUM) is None:
        message = "Chromium is not installed (apt-get install chromium chromium-driver)"
        services.absent(message + "; .ci/run installs it", message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    config = SimConfig(
        queued_seconds=0, processing_seconds=0, outputs=1, output_bytes=4096, failure_ratio=0
    )
    with Simulator(config=config, faults=Faults(), seed=12).start() as sim:
        yield sim


@pytest.fixture
def service(
    settings: Settings, redis_url: str, simulator: Simulator, tmp_path: Path
) -> Iterator[str]:
    """gunicorn with the console open, the relay and a worker; yield the web base URL.

    The receiver and a replay only write rows: the relay publishes them to the worker.
    """
    served = settings.replace(
        broker_url=own_redis_database(redis_url, REDIS_DB),
        rivya_api_base=simulator.url,
        rivya_api_key=simulator.api_key,
        download_allowed_hosts=("127.0.0.1",),
        rivya_max_attempts=1,
        process_max_attempts=1,  # the first failure makes an event dead
        console_admin_token=ADMIN_TOKEN,
        console_readonly_token=READONLY_TOKEN,
        console_secure_cookie=False,  # plain http on 127.0.0.1: local development
    )
    with (
        gunicorn(served, workers=1, threads=4, log=tmp_path / "web.log") as url,
        relay(served, log=tmp_path / "relay.log") as relay_role,
        celery_worker(served, concurrency=2, log=tmp_path / "worker.log"),
    ):
        yield url
        # Restarted if it died, which would hide a crash: it must have run all along.
        assert relay_role.starts == 1, f"the relay restarted; see {tmp_path / 'relay.log'}"


def status_of(sessions: sessionmaker[Session], event_id: str) -> EventStatus | None:
    with sessions() as session:
        return session.scalars(
            select(WebhookEvent.status).where(WebhookEvent.event_id == event_id)
        ).one_or_none()


def deliver(url: str, task_id: str) -> str:
    """Send a signed delivery for `task_id` as Rivya would; return the event id."""
    event = make_event(task_id=task_id)
    body, headers = signed_delivery(event)
    response = httpx.post(f"{url}/webhooks/rivya", content=body, headers=headers, timeout=10)
    assert response.status_code == 202, response.text
    return str(event["id"])


def shoot(page: object, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]


def forged_post(page: object, path: str, csrf: str | None) -> int:
    """POST from inside the page (its cookies, its origin); return the status."""
    form = {"csrf_token": csrf} if csrf is not None else {}
    return int(
        page.evaluate(  # type: ignore[attr-defined]
            """async ([path, form]) => {
                const body = new URLSearchParams(form);
                const r = await fetch(path, {method: "POST", body, redirect: "manual"});
                return r.status;
            }""",
            [path, form],
        )
    )


def test_operator_logs_in_watches_and_replays(
    chromium: object,
    service: str,
    simulator: Simulator,
    sessions: sessionmaker[Session],
) -> None:
    browser = chromium
    good, broken, other = simulator.scenario(3, outcome="succeeded")
    simulator.wait_terminal([good, broken, other])

    # Without a token: every page leads to the login form, and a POST is refused.
    anonymous = browser.new_context().new_page()  # type: ignore[attr-defined]
    anonymous.goto(f"{service}/console/events")
    assert anonymous.url.startswith(f"{service}/console/login")
    anonymous.fill("#token", "not-the-token-" + "x" * 24)
    anonymous.click("button[type=submit]")
    assert "That token opens nothing here." in anonymous.inner_text("main")
    shoot(anonymous, "login-refused")
    assert forged_post(anonymous, "/console/dead/replay", None) == 403

    # Log in as admin: the overview.
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()  # type: ignore[attr-defined]
    # The pages' own scripts (htmx, uPlot) must run under the strict CSP without complaint.
    page_errors: list[str] = []
    page.on("console", lambda m: page_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))
    page.goto(f"{service}/console/")
    page.fill("#token", ADMIN_TOKEN)
    page.click("button[type=submit]")
    page.wait_for_selector("#figures")
    assert page.url == f"{service}/console/"
    page.wait_for_selector("#rate-chart[data-drawn=true]")
    shoot(page, "overview")

    # A delivery appears in the open events list by itself, then is processed.
    page.goto(f"{service}/console/events")
    delivered = deliver(service, good)
    page.wait_for_selector(f"tr[data-event-id='{delivered}']", timeout=SLOW * 1000)
    eventually(lambda: status_of(sessions, delivered) is EventStatus.PROCESSED, SLOW, "processed")
    page.wait_for_selector(
        f"tr[data-event-id='{delivered}'] .status-processed", timeout=SLOW * 1000
    )
    shoot(page, "events")

    # Rivya fails every call: two deliveries end dead after their one attempt.
    simulator.set_faults(api_error_ratio=1.0)
    dead_one, dead_two = deliver(service, broken), deliver(service, other)
    for event_id in (dead_one, dead_two):
        eventually(lambda e=event_id: status_of(sessions, e) is EventStatus.DEAD, SLOW, "dead")
    simulator.set_faults(api_error_ratio=0.0)

    page.goto(f"{service}/console/dead")
    page.click(f"tr[data-event-id='{dead_one}'] a")
    page.wait_for_selector("#timeline")
    timeline = page.inner_text("#timeline")
    assert "received via webhook" in timeline
    assert "gave up after 1 attempts" in timeline
    shoot(page, "event-dead")

    # A replay with a forged CSRF token is refused and changes nothing.
    page.eval_on_selector("form:has(#replay) input[name=csrf_token]", "e => e.value = 'forged'")
    page.click("#replay")
    assert "CSRF" in page.inner_text("main")
    shoot(page, "replay-bad-csrf")
    assert status_of(sessions, dead_one) is EventStatus.DEAD

    # The real replay: the timeline records who, and the event ends processed.
    page.goto(f"{service}/console/events/{dead_one}")
    page.click("#replay")
    assert "Replay: dead → received" in page.inner_text("main")
    # The open page follows the event until it ends: no reload.
    page.wait_for_selector("#event-status.status-processed", timeout=SLOW * 1000)
    assert status_of(sessions, dead_one) is EventStatus.PROCESSED
    assert "replay by admin" in page.inner_text("#timeline")
    shoot(page, "event-replayed")
    with sessions() as session:
        (action,) = session.scalars(select(OperatorAction)).all()
    assert (action.event_id, action.role) == (dead_one, "admin")
    assert ADMIN_TOKEN not in json.dumps([action.token_fingerprint, action.detail, action.action])

    # The batch preview lists what would run, without running it.
    page.goto(f"{service}/console/dead/preview")
    assert dead_two in page.inner_text("#replay-plan")
    shoot(page, "replay-preview")
    assert status_of(sessions, dead_two) is EventStatus.DEAD

    page.goto(f"{service}/console/generations/{broken}")
    page.wait_for_selector("figure.output")
    shoot(page, "generation")
    page.goto(f"{service}/console/generations")
    shoot(page, "generations")

    # A refused replay logs a 400 in the console; nothing else may have failed.
    assert [e for e in page_errors if "400" not in e] == []

    # Read-only: sees the dead event, has no replay button, and a POST is refused.
    readonly = browser.new_context().new_page()  # type: ignore[attr-defined]
    readonly.goto(f"{service}/console/login")
    readonly.fill("#token", READONLY_TOKEN)
    readonly.click("button[type=submit]")
    readonly.goto(f"{service}/console/events/{dead_two}")
    assert readonly.query_selector("#replay") is None
    assert "needs the admin token" in readonly.inner_text("main")
    shoot(readonly, "event-readonly")
    csrf = readonly.get_attribute("form.who input[name=csrf_token]", "value")
    assert forged_post(readonly, f"/console/events/{dead_two}/replay", csrf) == 403
    assert status_of(sessions, dead_two) is EventStatus.DEAD
    with sessions() as session:
        assert len(session.scalars(select(OperatorAction)).all()) == 1
