"""The live results API answers as its OpenAPI document says, whatever it is asked.

schemathesis reads GET /openapi.json from gunicorn serving the app on PostgreSQL, generates
requests for every operation from the document (valid and invalid parameters alike) and
checks every answer: no 5xx, status codes, headers and bodies as documented.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from models.db import make_engine, make_session_factory
from models.generations import GenerationStatus
from rivyahooks_foundation.settings import Settings
from tests.conftest import SECRET, empty_tables
from tests.support.processes import gunicorn
from tests.support.results import add_generation, store_output

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

TOKEN = "contract-token-0123456789"


def seed(settings: Settings) -> None:
    """Generations in every state, one with a stored file, so answers carry real documents."""
    engine = make_engine(settings.database_url)
    empty_tables(engine)
    sessions = make_session_factory(engine)
    with sessions.begin() as session:
        for status in GenerationStatus:
            task_id = "task_done" if status is GenerationStatus.SUCCEEDED else f"task_{status}"
            add_generation(session, task_id, status, model="rivya-image-1")
    store_output(sessions, settings, "task_done", b"contract file " * 100)
    engine.dispose()


@pytest.fixture(scope="module")
def live_api(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir: Path = tmp_path_factory.mktemp("contract")
    settings = Settings(
        database_url=postgres_url,
        webhook_secrets=(SECRET,),
        results_api_tokens=(TOKEN,),
        storage_url=f"file://{workdir / 'results'}",
        # Long-polls answer at once: fuzzing `wait` up to 30 s per request would take hours,
        # and waiting is tested on its own (test_results_api.py, test_feed_follower.py).
        results_feed_max_waiters=0,
    )
    seed(settings)
    with gunicorn(settings, workers=1, threads=4, log=workdir / "web.log") as url:
        yield url


@pytest.fixture(scope="module")
def api_schema(live_api: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{live_api}/openapi.json")


OPERATIONS = [
    "/results",
    "/results/feed",
    "/results/{task_id}",
    "/results/{task_id}/outputs/{index}",
]


@pytest.mark.parametrize("path", OPERATIONS)
def test_every_answer_matches_the_document(api_schema: schemathesis.BaseSchema, path: str) -> None:
    # schemathesis' own pytest loader (from_fixture) does not run under pytest 9, so each
    # operation's strategy is driven by hypothesis here directly.
    operation = api_schema[path]["GET"]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=60,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"})

    check()


def test_the_document_describes_every_results_route(api_schema: schemathesis.BaseSchema) -> None:
    raw = api_schema.raw_schema
    assert raw["openapi"].startswith("3.1")
    assert sorted(raw["paths"]) == sorted(OPERATIONS)
    assert "ErrorBody" in raw["components"]["schemas"]
