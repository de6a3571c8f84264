"""What operators did through the console: who (by role and token fingerprint) and when."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base, BigId, UTCDateTime, utcnow


class OperatorAction(Base):
    __tablename__ = "operator_actions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    action: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str | None] = mapped_column(String(255), index=True)
    # `admin` or `readonly`, and a fingerprint of the token used: never the token.
    role: Mapped[str] = mapped_column(String(16))
    token_fingerprint: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(Text)


def record_action(
    session: Session,
    *,
    action: str,
    role: str,
    token_fingerprint: str,
    event_id: str | None = None,
    detail: str | None = None,
) -> None:
    """Add one operator action to the session (committed with the change it describes)."""
    session.add(
        OperatorAction(
            at=utcnow(),
            action=action,
            event_id=event_id,
            role=role,
            token_fingerprint=token_fingerprint,
            detail=detail,
        )
    )
