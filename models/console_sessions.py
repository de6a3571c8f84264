"""The console's sessions, kept server-side: a cookie opens one only while its row says so.

A signed cookie alone cannot be taken back: a copy made before logout would open the
console after it, and a page that polls would keep it alive forever. So the cookie carries
only a random session token; the row (found by the token's hash, so a leaked table opens
nothing) holds the role, when it ends for good, and whether it was ended.

The key that signs the cookie (and keys the token fingerprints) is random and lives here
too, unless CONSOLE_SESSION_KEY gives one: derived from the tokens, anyone who knows one
token and holds a cookie could test guesses of the other offline.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import Index, String, delete, func, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base, BigId, UTCDateTime, utcnow
from models.db import dialect_insert
from models.sealed import SealedBytes

SESSION_KEY_NAME = "console_session_key"
SESSION_KEY_BYTES = 32


class ConsoleSecret(Base):
    """A secret the console generated for itself, by name."""

    __tablename__ = "console_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Sealed under DATA_ENCRYPTION_KEYS when it is set: a leaked backup forges no cookie.
    value: Mapped[bytes] = mapped_column(SealedBytes("console_secrets.value"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ConsoleSession(Base):
    """One logged-in operator: found by the sha256 of the cookie's token, never the token."""

    __tablename__ = "console_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    # The keyed fingerprint of the operator's token: a changed token ends the session.
    token_fingerprint: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Absolute: activity (a polling page) never moves it.
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class ConsoleLoginFailure(Base):
    """A refused login, by client address: what the login rate limit counts."""

    __tablename__ = "console_login_failures"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    address: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_console_login_failures_address_at", "address", "at"),)


def session_key(session: Session) -> bytes:
    """Return the console's signing key, made (once, by whichever process is first) if new."""
    session.execute(
        dialect_insert(session, ConsoleSecret)
        .values(name=SESSION_KEY_NAME, value=secrets.token_bytes(SESSION_KEY_BYTES))
        .on_conflict_do_nothing(index_elements=["name"])
    )
    return session.scalars(
        select(ConsoleSecret.value).where(ConsoleSecret.name == SESSION_KEY_NAME)
    ).one()


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(
    session: Session, *, role: str, token_fingerprint: str, lifetime: dt.timedelta
) -> str:
    """Record a new session; return the token its cookie carries."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        ConsoleSession(
            token_hash=_hash(token),
            role=role,
            token_fingerprint=token_fingerprint,
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    return token


def live_session(session: Session, token: str) -> ConsoleSession | None:
    """Return the session a cookie's token opens: not ended, not past its end."""
    return session.scalars(
        select(ConsoleSession).where(
            ConsoleSession.token_hash == _hash(token),
            ConsoleSession.ended_at.is_(None),
            ConsoleSession.expires_at > utcnow(),
        )
    ).one_or_none()


def end_session(session: Session, token: str) -> None:
    """End the session for good: its cookie, or any copy of it, opens nothing any more."""
    session.execute(
        update(ConsoleSession)
        .where(ConsoleSession.token_hash == _hash(token), ConsoleSession.ended_at.is_(None))
        .values(ended_at=utcnow())
    )


def forget_expired_sessions(session: Session) -> None:
    """Delete the rows of sessions past their end (ended ones included): they open nothing."""
    session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at <= utcnow()))


def login_failures(session: Session, address: str, window: dt.timedelta) -> int:
    """Return how many logins from `address` were refused within the window."""
    since = utcnow() - window
    return int(
        session.scalar(
            select(func.count()).where(
                ConsoleLoginFailure.address == address, ConsoleLoginFailure.at > since
            )
        )
        or 0
    )


def record_login_failure(session: Session, address: str, window: dt.timedelta) -> None:
    """Count a refused login from `address`; forget every failure older than the window."""
    now = utcnow()
    session.execute(delete(ConsoleLoginFailure).where(ConsoleLoginFailure.at <= now - window))
    session.add(ConsoleLoginFailure(address=address[:64], at=now))
