"""The stable views: what they show, and that the README's read-only role reads only them."""

from __future__ import annotations

import hashlib
import re
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

from models.base import Base
from models.db import make_session_factory
from models.generations import GenerationStatus
from models.sql_views import VIEWS
from rivyahooks_foundation.settings import Settings
from tests.support.results import add_generation, store_output

README = Path(__file__).resolve().parents[2] / "README.md"


def seed(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    with sessions.begin() as session:
        add_generation(session, "task_v", GenerationStatus.SUCCEEDED, model="m")
    settings = Settings(storage_url=f"file://{tmp_path}")
    store_output(sessions, settings, "task_v", b"abc")


def test_the_views_show_generations_and_outputs(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    seed(sessions, tmp_path)
    with sessions() as session:
        generation = session.execute(text("SELECT * FROM results_generations")).mappings().one()
        output = session.execute(text("SELECT * FROM results_outputs")).mappings().one()
    assert generation["task_id"] == "task_v"
    assert generation["status"] == "succeeded"
    assert generation["created_at"] is not None
    assert generation["feed_position"] is not None
    assert dict(output) | {"stored_at": None} == {
        "task_id": "task_v",
        "output_index": 0,
        "content_type": "image/png",
        "size_bytes": 3,
        "sha256": hashlib.sha256(b"abc").hexdigest(),
        "storage_key": f"task_v/0000-{hashlib.sha256(b'abc').hexdigest()}.png",
        "stored_at": None,
    }


def readme_role_sql() -> str:
    """Return the README's read-only role example."""
    match = re.search(r"```sql\n(CREATE ROLE results_reader.*?)```", README.read_text(), re.S)
    assert match, "the README has no read-only role example"
    return match.group(1)


@pytest.mark.postgres
def test_the_readme_role_reads_the_views_and_nothing_else(
    postgres_url: str, postgres_engine: Engine, tmp_path: Path
) -> None:
    seed(make_session_factory(postgres_engine), tmp_path)
    role = f"results_reader_{uuid.uuid4().hex[:8]}"
    database = make_url(postgres_url).database
    sql = readme_role_sql().replace("results_reader", role).replace("rivyahooks", str(database))
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        for statement in filter(None, (s.strip() for s in sql.split(";"))):
            connection.execute(text(statement))
    reader = create_engine(make_url(postgres_url).set(username=role, password="change-me"))
    try:
        with reader.connect() as connection:
            for view in VIEWS:
                assert connection.execute(text(f"SELECT count(*) FROM {view}")).scalar() == 1
        for table in Base.metadata.tables:
            with reader.connect() as connection, pytest.raises(ProgrammingError):
                connection.execute(text(f"SELECT 1 FROM {table} LIMIT 1"))
        with reader.connect() as connection, pytest.raises(ProgrammingError):
            connection.execute(text("DELETE FROM results_generations"))
    finally:
        reader.dispose()
        with admin.connect() as connection:
            connection.execute(text(f"DROP OWNED BY {role}"))
            connection.execute(text(f"DROP ROLE {role}"))
        admin.dispose()


def test_no_view_exposes_a_body_header_or_secret(engine: Engine) -> None:
    # Downstream apps read the views with their own role: what end users typed (bodies),
    # delivery headers and the console's secrets must never be among their columns.
    from sqlalchemy import inspect

    inspector = inspect(engine)
    for view in VIEWS:
        columns = {column["name"] for column in inspector.get_columns(view)}
        assert columns, view
        assert not columns & {"body", "headers", "value", "secret_fingerprint"}, view
        definition = (inspector.get_view_definition(view) or "").lower()
        assert "webhook_events" not in definition, view
        assert "console_secrets" not in definition, view
