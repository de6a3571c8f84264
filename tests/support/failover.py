"""A failover onto a read-only standby, played on a test's own PostgreSQL database.

The database's default becomes read-only and its sessions end, as when a primary is replaced
by a standby: every new connection can read but not write. Only the database the test made
is touched, never the shared server's settings.
"""

from __future__ import annotations

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.support import services


def set_read_only(database_url: str, read_only: bool) -> None:
    """Make the database read-only (or writable again) and end every session on it."""
    name = make_url(database_url).database
    if not name or name == "test":
        raise ValueError("only a test's own database may be made read-only")
    admin = create_engine(services.POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            value = "on" if read_only else "off"
            connection.execute(
                text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = {value}')
            )
            # Sessions keep the setting they started with: end them, as a failover does.
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
    finally:
        admin.dispose()
