"""Stored results for tests that read them: files through the production storage code."""

from __future__ import annotations

import hashlib

from sqlalchemy.orm import Session, sessionmaker

from models.generations import Generation, GenerationStatus, insert_output, record_change
from rivyahooks_foundation.settings import Settings
from storage import Storage, open_storage, output_key


def add_generation(
    session: Session, task_id: str, status: GenerationStatus, **fields: object
) -> Generation:
    """Add a generation as if Rivya had reported it, with its place in the feed."""
    generation = Generation(task_id=task_id, status=status, **fields)
    session.add(generation)
    session.flush()
    record_change(session, task_id)
    return generation


def store_output(
    sessions: sessionmaker[Session],
    settings: Settings,
    task_id: str,
    data: bytes,
    *,
    index: int = 0,
    content_type: str = "image/png",
) -> str:
    """Store `data` as an output of an existing generation, as processing does; return its key."""
    sha256 = hashlib.sha256(data).hexdigest()
    storage = open_storage(settings)
    key = output_key(task_id, index, sha256, content_type)
    with storage.staging(f"{task_id}.{index}") as staged:
        staged.write(data)
        storage.commit(staged, key, content_type)
    with sessions.begin() as session:
        insert_output(
            session,
            task_id=task_id,
            index=index,
            content_type=content_type,
            size_bytes=len(data),
            sha256=sha256,
            storage_key=key,
            source_host="cdn",
        )
    return key


def sha256_of(storage: Storage, key: str) -> str:
    """Return the hex sha256 of a stored file, read through the storage in blocks."""
    digest = hashlib.sha256()
    with storage.open(key) as handle:
        while block := handle.read(4 * 1024 * 1024):
            digest.update(block)
    return digest.hexdigest()
