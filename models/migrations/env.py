"""Alembic environment: migrations run online against the URL set by models.migrate."""

from __future__ import annotations

from alembic import context

from models.base import Base
from models.db import make_engine
from models.sql_views import not_a_view

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url is not None
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            compare_type=True,
            # Views are made by hand-written migrations; autogenerate must not drop them.
            include_name=not_a_view,
            # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `rivya-hooks db upgrade`")
run_migrations_online()
