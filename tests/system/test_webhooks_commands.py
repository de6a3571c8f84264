"""`webhooks rotate`, `test` and `status` against the simulator and a real web role.

The commands run as the installed `rivya-hooks`; the web role is gunicorn with the
Procfile's line on the suite's database; Rivya is the simulator, delivering over HTTP.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from rivyahooks_foundation.settings import Settings
from rivyahooks_protocol.signatures import fingerprint
from rivyahooks_simulator.config import SimConfig
from rivyahooks_simulator.server import Simulator
from tests.support.processes import BIN, child_env, free_port, gunicorn

pytestmark = pytest.mark.slow


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    with Simulator(config=SimConfig(queued_seconds=0, processing_seconds=0)).start() as sim:
        yield sim


@pytest.fixture
def ours(settings: Settings, simulator: Simulator) -> Settings:
    """This service's settings: the simulator as Rivya, one secret of its own."""
    return settings.replace(
        rivya_api_base=simulator.url,
        rivya_api_key=simulator.api_key,
        webhook_secrets=(new_secret(),),
    )


@pytest.fixture
def web(ours: Settings, tmp_path: Path) -> Iterator[str]:
    with gunicorn(ours, workers=1, threads=2, log=tmp_path / "web.log") as url:
        yield url


def command(settings: Settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "rivya-hooks"), "webhooks", *args],
        env=child_env(settings, **env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_test_event_arrives_verified(ours: Settings, simulator: Simulator, web: str) -> None:
    (secret,) = ours.webhook_secrets
    simulator.register_endpoint(f"{web}/webhooks/rivya", secret=secret)
    done = command(ours, "test", "--timeout", "30")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "arrived after" in done.stdout
    assert f"verified by secret #1 (fingerprint {fingerprint(secret)})" in done.stdout
    assert secret not in done.stdout + done.stderr

    status = command(ours, "status", "--json")
    assert status.returncode == 0, status.stderr
    (use,) = json.loads(status.stdout)["secrets"]
    assert (use["position"], use["fingerprint"], use["deliveries"]) == (1, fingerprint(secret), 1)


def test_a_test_event_signed_with_another_secret_names_the_fingerprints_tried(
    ours: Settings, simulator: Simulator, web: str
) -> None:
    simulator.register_endpoint(f"{web}/webhooks/rivya", secret=new_secret())
    done = command(ours, "test", "--timeout", "30")
    assert done.returncode == 1, done.stdout + done.stderr
    (error,) = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert "rejected the signature (HTTP 401)" in error
    assert f"fingerprints tried: #1 {fingerprint(ours.webhook_secrets[0])}" in error
    assert "next: set the endpoint's secret" in done.stderr


def test_a_wrong_url_is_named(ours: Settings, simulator: Simulator, web: str) -> None:
    (secret,) = ours.webhook_secrets
    simulator.register_endpoint(f"{web}/hooks/rivya", secret=secret)
    done = command(ours, "test", "--timeout", "30")
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"delivered it to {web}/hooks/rivya and got HTTP 404" in done.stderr
    assert "the URL registered is not this service's /webhooks/rivya" in done.stderr


def test_nothing_arriving_is_said_after_the_timeout(ours: Settings, simulator: Simulator) -> None:
    url = f"http://127.0.0.1:{free_port()}/webhooks/rivya"  # nothing listens there
    simulator.register_endpoint(url, secret=ours.webhook_secrets[0])
    done = command(ours, "test", "--timeout", "3", "--json")
    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is False
    assert report["cause"].startswith(f"nothing arrived: Rivya could not deliver to {url}")


def test_rotate_prints_the_new_secret_once_and_what_to_set(
    ours: Settings, simulator: Simulator, web: str
) -> None:
    (old,) = ours.webhook_secrets
    endpoint = simulator.register_endpoint(f"{web}/webhooks/rivya", secret=old)
    done = command(ours, "rotate")
    assert done.returncode == 0, done.stdout + done.stderr
    new = simulator.state.endpoints[endpoint["id"]].secret
    assert new != old
    assert done.stdout.count(new) == 1
    assert old not in done.stdout + done.stderr
    assert 'RIVYA_WEBHOOK_SECRETS="<new secret>,$RIVYA_WEBHOOK_SECRETS"' in done.stdout
    assert f"fingerprint {fingerprint(new)}" in done.stdout
    assert f"once the old one ({fingerprint(old)})" in done.stdout

    # Until the web role has the new secret, the test says which fingerprints it tried.
    before = command(ours, "test", "--timeout", "30")
    assert before.returncode == 1
    assert "rejected the signature" in before.stderr

    both = ours.replace(webhook_secrets=(new, old))
    with gunicorn(both, workers=1, threads=2) as rotated_web:
        simulator.state.endpoints[endpoint["id"]].url = f"{rotated_web}/webhooks/rivya"
        after = command(both, "test", "--timeout", "30", "--json")
    assert after.returncode == 0, after.stdout + after.stderr
    report = json.loads(after.stdout)
    assert (report["ok"], report["secret_position"]) == (True, 1)


def test_rotate_json_and_its_failures(ours: Settings, simulator: Simulator) -> None:
    none = command(ours, "rotate")
    assert none.returncode == 1
    assert "error: no active endpoint is registered at Rivya" in none.stderr
    assert "next: register one" in none.stderr

    first = simulator.register_endpoint("http://127.0.0.1:9/webhooks/rivya")
    simulator.register_endpoint("http://127.0.0.1:9/other/webhooks/rivya")
    several = command(ours, "rotate")
    assert several.returncode == 2
    assert "choose one with --endpoint ID" in several.stderr

    unknown = command(ours, "rotate", "--endpoint", "whend_missing")
    assert unknown.returncode == 1
    assert "Traceback" not in unknown.stderr

    done = command(ours, "rotate", "--endpoint", first["id"], "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["signing_secret"] == simulator.state.endpoints[first["id"]].secret
    assert report["fingerprint"] == fingerprint(report["signing_secret"])
    assert report["previous_fingerprints"] == [fingerprint(ours.webhook_secrets[0])]
