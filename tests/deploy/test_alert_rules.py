"""The shipped alert rules load, fire on the trouble they name, and name metrics we export."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session, sessionmaker

from models.base import utcnow
from models.reconcile import ReconcileState
from tasks.database_gauges import DatabaseGauges
from tasks.reconcile import STATE_NAME
from tests.support import services
from tests.support.outbound import add_app

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def promtool() -> str:
    return services.installed("promtool", "Debian package `prometheus`", ".ci/run installs it")


@pytest.mark.parametrize(
    "arguments", [["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"]]
)
def test_promtool_passes(arguments: list[str]) -> None:
    result = subprocess.run(
        [promtool(), *arguments], cwd=RULES, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_metric_the_rules_use_is_one_we_export(sessions: sessionmaker[Session]) -> None:
    import rivyahooks_foundation.metrics.outbound
    import rivyahooks_foundation.metrics.relay
    import rivyahooks_foundation.metrics.web
    import rivyahooks_foundation.metrics.worker  # noqa: F401  (every role's families, in one registry)

    with sessions.begin() as session:
        # With a reconcile run on record, beat's collector yields every gauge it has.
        session.add(ReconcileState(name=STATE_NAME, last_run_at=utcnow(), checkpoint=utcnow()))
        # With an app, the per-app gauges have a sample.
        add_app(session, "shop")
    registry = CollectorRegistry()
    registry.register(DatabaseGauges(sessions, interval_seconds=60))
    exported = {
        family.name
        for text in (generate_latest(REGISTRY), generate_latest(registry))
        for family in text_string_to_metric_families(text.decode())
    }
    used = set(re.findall(r"\brivyahooks_[a-z_]+", (RULES / "alerts.yml").read_text()))
    suffixes = ("_total", "_bucket", "_count", "_sum")
    unknown = {
        name
        for name in used
        if name not in exported and not any(name.removesuffix(s) in exported for s in suffixes)
    }
    assert unknown == set()
