"""The downstream apps results are pushed to: an endpoint URL, the event types it wants, its keys.

An app's signing secret (`whsec_` + base64 of 24 random bytes, the Standard Webhooks form)
is shown once, when it is made, and stored sealed under DATA_ENCRYPTION_KEYS when that is
set. A rotated secret keeps signing beside the new one until `previous_secret_until`, so a
receiver can roll over without refusing a message. An app may also hold an ed25519 key
pair: its messages then carry `v1a,` signatures its receiver checks with the public key.
"""

from __future__ import annotations

import base64
import datetime as dt
import enum
import secrets
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import JSON, Boolean, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base, UTCDateTime, utcnow
from models.sealed import SealedBytes
from rivyahooks_protocol import contract

NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}"
SECRET_BYTES = 24
ED25519_SEED_BYTES = 32


class EventType(enum.StrEnum):
    RESULT_READY = "result.ready"  # succeeded, and every output is stored
    RESULT_FAILED = "result.failed"  # Rivya failed it, or we gave up on it (dead)


ALL_EVENT_TYPES = tuple(EventType)


class App(Base):
    """One endpoint an app receives messages at."""

    __tablename__ = "apps"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[list[str]] = mapped_column(JSON)
    secret: Mapped[bytes] = mapped_column(SealedBytes("apps.secret"))
    previous_secret: Mapped[bytes | None] = mapped_column(SealedBytes("apps.previous_secret"))
    previous_secret_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # The 32-byte ed25519 seed of the app's key pair, when it has one.
    signing_key: Mapped[bytes | None] = mapped_column(SealedBytes("apps.signing_key"))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(300))
    disabled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # The first failed attempt since the last success: five days of it disables the app.
    failing_since: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    def secrets_at(self, now: dt.datetime) -> list[str]:
        """Return the secrets that sign a message sent at `now`: the current one first."""
        current = [self.secret.decode()]
        until = self.previous_secret_until
        if self.previous_secret is not None and until is not None and now < until:
            current.append(self.previous_secret.decode())
        return current

    def wants(self, event_type: str) -> bool:
        return self.enabled and event_type in self.events


def new_app_id() -> str:
    return "app_" + secrets.token_hex(12)


def new_secret() -> str:
    raw = base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()
    return contract.SIGNING_SECRET_PREFIX + raw


def new_signing_key() -> bytes:
    return secrets.token_bytes(ED25519_SEED_BYTES)


def find_app(session: Session, name_or_id: str) -> App | None:
    """Return the app named `name_or_id`, or with that id; None if there is none."""
    column = App.id if name_or_id.startswith("app_") else App.name
    return session.scalars(select(App).where(column == name_or_id)).one_or_none()


def all_apps(session: Session) -> list[App]:
    return list(session.scalars(select(App).order_by(App.name)))


def enabled_apps(session: Session) -> list[App]:
    return list(session.scalars(select(App).where(App.enabled.is_(True)).order_by(App.id)))


def disable(app: App, reason: str, now: dt.datetime) -> None:
    app.enabled = False
    app.disabled_reason = reason[:300]
    app.disabled_at = now


def enable(app: App) -> None:
    app.enabled = True
    app.disabled_reason = None
    app.disabled_at = None
    app.failing_since = None


def rotate_secret(app: App, now: dt.datetime, grace: dt.timedelta) -> str:
    """Give the app a new secret; the old one keeps signing for `grace`. Return the new one."""
    secret = new_secret()
    app.previous_secret = app.secret
    app.previous_secret_until = now + grace
    app.secret = secret.encode()
    return secret


def describe(app: App) -> dict[str, Any]:
    """Return what `apps list/show --json` print of an app (never a secret)."""
    return {
        "id": app.id,
        "name": app.name,
        "url": app.url,
        "events": list(app.events),
        "enabled": app.enabled,
        "disabled_reason": app.disabled_reason,
        "disabled_at": app.disabled_at.isoformat() if app.disabled_at else None,
        "failing_since": app.failing_since.isoformat() if app.failing_since else None,
        "previous_secret_until": (
            app.previous_secret_until.isoformat() if app.previous_secret_until else None
        ),
        "public_key": public_key_of(app),
        "created_at": app.created_at.isoformat(),
    }


def public_key_of(app: App) -> str | None:
    """Return the app's `whpk_` public key, or None when it signs with secrets only."""
    if app.signing_key is None:
        return None
    key = Ed25519PrivateKey.from_private_bytes(app.signing_key).public_key()
    raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return contract.PUBLIC_KEY_PREFIX + base64.b64encode(raw).decode()
