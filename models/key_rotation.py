"""Re-encrypt every stored value under the first data key, in batches, beside a running service.

Rows are read a batch at a time in primary-key order and each one that is in plain text or
under another key is written back sealed under the first key, as a compare-and-set on the
value it read: a row that changed meanwhile (a purge, a concurrent rotation) keeps its
newer state and is counted, never overwritten. Each batch is its own short transaction, so
the receiver's inserts never wait long. Rows already under the first key are skipped, so a
rotation stopped halfway resumes by running again (or from `after`, the last id it printed).
Once a pass is done, every other registered key id that no stored value uses any more is
forgotten (models/data_keys.py), which is what lets the old key be removed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import JSON, Column, Engine, LargeBinary, Table, Text, and_, literal, select, update

from models.apps import App
from models.console_sessions import ConsoleSecret
from models.data_keys import (
    SEALED_COLUMNS,
    SealedColumn,
    check_and_register,
    registered_ids,
    retire,
)
from models.encryption import Keyring, sealed_text_key_id
from models.events import WebhookEvent
from models.outbound import OutboundMessage
from models.sealed import keyring_of

DEFAULT_BATCH = 500


@dataclass
class RotationReport:
    """What a rotation found and did."""

    sealing_id: str
    dry_run: bool
    checked: int = 0
    resealed: int = 0
    # Rows whose value changed between the read and the write: left as they became.
    changed_meanwhile: int = 0
    last_event_row: int = 0
    retired: list[str] = field(default_factory=list)
    still_used: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Return the report as `rivya-hooks keys rotate --json` prints it."""
        return dict(vars(self))


@dataclass(frozen=True)
class _Target:
    table: Table
    key: Column[Any]
    columns: tuple[SealedColumn, ...]


def _targets() -> list[_Target]:
    events: Table = WebhookEvent.__table__  # type: ignore[assignment]
    secrets: Table = ConsoleSecret.__table__  # type: ignore[assignment]
    apps: Table = App.__table__  # type: ignore[assignment]
    messages: Table = OutboundMessage.__table__  # type: ignore[assignment]
    targets = [
        _Target(events, events.c.id, ()),
        _Target(secrets, secrets.c.name, ()),
        _Target(apps, apps.c.id, ()),
        _Target(messages, messages.c.id, ()),
    ]
    return [
        _Target(t.table, t.key, tuple(c for c in SEALED_COLUMNS if c.column.table is t.table))
        for t in targets
    ]


def _resealed(keyring: Keyring, sealed: SealedColumn, raw: Any) -> Any:
    """Return the stored value sealed under the first key, or None when it already is."""
    aad: bytes = sealed.column.type.aad  # type: ignore[attr-defined]
    if raw is None:
        return None  # an optional secret that is not set
    if not sealed.text:
        return keyring.reseal(bytes(raw), aad)
    document = json.loads(raw)
    if isinstance(document, str) and sealed_text_key_id(document) is not None:
        if sealed_text_key_id(document) == keyring.sealing_id:
            return None
        plain = keyring.open_text(document, aad)
    else:
        plain = json.dumps(document, separators=(",", ":")).encode()
    return keyring.seal_text(plain, aad)


def _stored(sealed: SealedColumn, value: Any) -> Any:
    # Bound with the column's plain type: the column's own would seal the sealed value again.
    return literal(value, JSON() if sealed.text else LargeBinary())


def _unchanged(sealed: SealedColumn, raw: Any) -> Any:
    if raw is None:
        return sealed.raw().is_(None)
    return sealed.raw() == (literal(raw, Text()) if sealed.text else literal(raw, LargeBinary()))


def rotate(
    engine: Engine,
    *,
    batch: int = DEFAULT_BATCH,
    dry_run: bool = False,
    after: int = 0,
    on_batch: Callable[[RotationReport], None] | None = None,
) -> RotationReport:
    """Seal every stored value under the engine's first key; return what was done.

    `after`: start past this webhook_events row id (what an interrupted run printed last).
    """
    keyring = keyring_of(engine.dialect)
    if keyring.sealing_id is None:
        raise ValueError("no data key is configured to encrypt with")
    report = RotationReport(sealing_id=keyring.sealing_id, dry_run=dry_run)
    if not dry_run:
        with engine.begin() as connection:
            check_and_register(connection, keyring)
    for target in _targets():
        by_event_row = target.table is WebhookEvent.__table__
        last: Any = after if by_event_row else ""
        while True:
            with engine.begin() as connection:
                rows = connection.execute(
                    select(target.key, *[c.raw() for c in target.columns])
                    .where(target.key > last)
                    .order_by(target.key)
                    .limit(batch)
                ).all()
                if not rows:
                    break
                for row in rows:
                    report.checked += 1
                    key, raws = row[0], row[1:]
                    new = [
                        _resealed(keyring, c, raw)
                        for c, raw in zip(target.columns, raws, strict=True)
                    ]
                    if all(value is None for value in new):
                        continue
                    report.resealed += 1
                    if dry_run:
                        continue
                    changes = {
                        c.column: _stored(c, value)
                        for c, value in zip(target.columns, new, strict=True)
                        if value is not None
                    }
                    moved = connection.execute(
                        update(target.table)
                        .where(
                            target.key == key,
                            and_(
                                *[
                                    _unchanged(c, raw)
                                    for c, raw in zip(target.columns, raws, strict=True)
                                ]
                            ),
                        )
                        .values(changes)
                    ).rowcount
                    if not moved:
                        report.resealed -= 1
                        report.changed_meanwhile += 1
                last = rows[-1][0]
            if by_event_row:
                report.last_event_row = int(last)
            if on_batch is not None:
                on_batch(report)
    if not dry_run:
        with engine.begin() as connection:
            for kid in registered_ids(connection):
                if kid == keyring.sealing_id:
                    continue
                (report.retired if retire(connection, kid) else report.still_used).append(kid)
    return report
