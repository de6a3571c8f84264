"""Which data keys stored rows are sealed under, so a process can check its keys at start.

Finding that out from the rows themselves means reading every body; a start must be
cheap. So every process that may seal registers its sealing key's id here at start,
before it writes a row under it, and `keys rotate` removes an id only once no row uses it.
The table is then a superset of the ids in use, and the start check is one read of a few
rows: a registered id that the process's keys do not hold stops it, naming that id.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    LargeBinary,
    String,
    Text,
    cast,
    delete,
    exists,
    func,
    literal,
    select,
    type_coerce,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column

from models.apps import App
from models.base import Base, UTCDateTime, utcnow
from models.console_sessions import ConsoleSecret
from models.db import dialect_insert, make_engine
from models.encryption import MAGIC, Keyring, text_pattern
from models.events import WebhookEvent
from models.outbound import OutboundMessage
from models.sealed import keyring_of
from rivyahooks_foundation.settings import Settings, SettingsError


class DataKey(Base):
    """The id of a data key some stored row may be sealed under (never the key)."""

    __tablename__ = "data_keys"

    key_id: Mapped[str] = mapped_column(String(8), primary_key=True)
    registered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class MissingDataKey(SettingsError):
    """Stored rows are sealed under a key this process is not configured with."""

    def __init__(self, key_id: str) -> None:
        super().__init__(
            f"DATA_ENCRYPTION_KEYS does not hold key id {key_id}, which stored data is "
            "encrypted under: add that key back (the first key encrypts, every key decrypts)"
        )
        self.key_id = key_id


@dataclass(frozen=True)
class SealedColumn:
    """A column whose values may be sealed: bytes, or JSON holding sealed text."""

    column: ColumnElement[object]
    text: bool

    def raw(self) -> ColumnElement[object]:
        """Return the column as stored, bypassing its type's sealing."""
        if self.text:
            return cast(self.column, Text)
        return type_coerce(self.column, LargeBinary())

    def under(self, kid: str) -> ColumnElement[bool]:
        """Return the condition that the stored value is sealed under key `kid`."""
        if self.text:
            return cast(self.column, Text).like(text_pattern(kid))
        prefix = MAGIC + bytes.fromhex(kid)
        stored = type_coerce(self.column, LargeBinary())
        return func.substr(stored, 1, len(prefix)) == literal(prefix, LargeBinary())

    def plain(self) -> ColumnElement[bool]:
        """Return the condition that the stored value is not sealed at all."""
        if self.text:
            return ~cast(self.column, Text).like('"rh1:%')
        stored = type_coerce(self.column, LargeBinary())
        return func.substr(stored, 1, len(MAGIC)) != literal(MAGIC, LargeBinary())


# Every sealed column: a new secret the service stores joins this list.
SEALED_COLUMNS = (
    SealedColumn(WebhookEvent.__table__.c.body, text=False),
    SealedColumn(WebhookEvent.__table__.c.headers, text=True),
    SealedColumn(ConsoleSecret.__table__.c.value, text=False),
    SealedColumn(App.__table__.c.secret, text=False),
    SealedColumn(App.__table__.c.previous_secret, text=False),
    SealedColumn(App.__table__.c.signing_key, text=False),
    SealedColumn(OutboundMessage.__table__.c.payload, text=False),
)


def registered_ids(connection: Connection) -> list[str]:
    """Return the ids of every key stored rows may be sealed under."""
    return list(connection.scalars(select(DataKey.key_id).order_by(DataKey.key_id)))


def check_and_register(connection: Connection, keyring: Keyring) -> None:
    """Raise MissingDataKey for a registered id `keyring` lacks; else register its first key.

    Checked before registering: a process started with the wrong keys leaves no trace.
    """
    held = set(keyring.ids)
    for kid in registered_ids(connection):
        if kid not in held:
            raise MissingDataKey(kid)
    if keyring.sealing_id is not None:
        connection.execute(
            dialect_insert(connection, DataKey)
            .values(key_id=keyring.sealing_id, registered_at=utcnow())
            .on_conflict_do_nothing(index_elements=["key_id"])
        )


def require_data_keys(engine: Engine) -> None:
    """Check the engine's keys against the stored rows at start (see check_and_register).

    A database that cannot be read yet (down, not migrated) is left to the checks that
    say so; the keys are checked on the next start.
    """
    try:
        with engine.begin() as connection:
            check_and_register(connection, keyring_of(engine.dialect))
    except MissingDataKey:
        raise
    except SQLAlchemyError:
        return


def check_data_keys(settings: Settings) -> None:
    """Raise MissingDataKey (a SettingsError) when DATA_ENCRYPTION_KEYS cannot open stored rows.

    What every role and command that reads or writes sealed columns runs at start.
    """
    engine = make_engine(
        settings.database_url,
        transaction_pooling=settings.transaction_pooling,
        data_keys=settings.data_encryption_keys,
    )
    try:
        require_data_keys(engine)
    finally:
        engine.dispose()


def in_use(connection: Connection, kid: str) -> bool:
    """Return True if any stored value is sealed under key `kid` (reads every sealed row)."""
    return any(
        connection.scalar(select(exists().where(sealed.under(kid)))) for sealed in SEALED_COLUMNS
    )


def plain_values(connection: Connection) -> int:
    """Return how many stored values are in plain text (reads every sealed row)."""
    total = 0
    for sealed in SEALED_COLUMNS:
        table = sealed.column.table
        total += int(
            connection.scalar(select(func.count()).select_from(table).where(sealed.plain())) or 0
        )
    return total


def retire(connection: Connection, kid: str) -> bool:
    """Forget key `kid` if no stored value uses it any more; return whether it was forgotten."""
    if in_use(connection, kid):
        return False
    connection.execute(delete(DataKey).where(DataKey.key_id == kid))
    return True
