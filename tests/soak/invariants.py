"""The invariants: each a named check with a message that says what broke and where.

They read what the deployment holds (PostgreSQL directly, S3, the feed through the edge) and
what Rivya knows (the simulator's API and its delivery record), and compare. The bytes are
checked against the simulator's deterministic content: the soak is a test, it may know how
Rivya made them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg

from rivyahooks_protocol.client import RivyaClient
from rivyahooks_protocol.timestamps import parse_timestamp
from rivyahooks_simulator.content import result_bytes_sha256
from tests.soak import layout
from tests.soak.layout import Run
from tests.soak.load import Created
from tests.soak.roles import PROCESS_TIME_LIMIT_SECONDS, ops_command
from tests.soak.services import s3_client

OBJECT_PREFIX = "results/"
STAGING_PREFIX = OBJECT_PREFIX + ".staging/"
SHOWN = 8  # examples named per broken invariant


@dataclass
class Verdict:
    name: str
    problems: list[str] = field(default_factory=list)

    @property
    def held(self) -> bool:
        return not self.problems

    def line(self) -> str:
        if self.held:
            return f"held    {self.name}"
        shown = "; ".join(self.problems[:SHOWN])
        more = f" (and {len(self.problems) - SHOWN} more)" if len(self.problems) > SHOWN else ""
        return f"BROKEN  {self.name}: {len(self.problems)}: {shown}{more}"


@dataclass
class Truth:
    """What Rivya says about every generation the load created."""

    status: dict[str, str]
    finished: dict[str, float]  # task id -> Rivya's updated_at (unix seconds) once terminal
    outputs: dict[str, int]


def rivya_truth(run: Run, created: list[Created]) -> Truth:
    status, finished, outputs = {}, {}, {}
    with RivyaClient(run.simulator_url(), run.api_key, max_attempts=10) as client:
        for item in created:
            generation = client.get_generation(item.task_id)
            status[item.task_id] = generation["status"]
            if generation["status"] in ("succeeded", "failed"):
                finished[item.task_id] = parse_timestamp(generation["updated_at"]).timestamp()
            urls = (generation.get("result") or {}).get("urls") or []
            outputs[item.task_id] = len(urls)
    return Truth(status, finished, outputs)


def _rows(run: Run, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(_conninfo(run), connect_timeout=5) as connection:
        return list(connection.execute(query).fetchall())


def _conninfo(run: Run) -> str:
    return f"postgresql://postgres@{run.data}:{layout.POSTGRES_PORT}/{layout.DATABASE}"


def duplicate_rows(run: Run) -> Verdict:
    """No output row written twice (checked while the soak runs, too)."""
    verdict = Verdict("no output row written twice")
    for task_id, index, count in _rows(
        run,
        "SELECT task_id, index, count(*) FROM generation_outputs "
        "GROUP BY task_id, index HAVING count(*) > 1",
    ):
        verdict.problems.append(f"{task_id}/{index} has {count} rows")
    return verdict


def wrong_checksums(run: Run, created: list[Created]) -> Verdict:
    """Every output row's sha256 is the one Rivya's bytes have (checked while it runs, too)."""
    verdict = Verdict("stored checksums match Rivya's bytes")
    sizes = {item.task_id: item.size for item in created}
    for task_id, index, sha256, size in _rows(
        run, "SELECT task_id, index, sha256, size_bytes FROM generation_outputs"
    ):
        if task_id in sizes and sha256 != result_bytes_sha256(task_id, index, sizes[task_id]):
            verdict.problems.append(f"{task_id}/{index}: sha256 {sha256[:12]}, size {size}")
    return verdict


def stored_once_identical(run: Run, created: list[Created], truth: Truth) -> Verdict:
    """Every generation Rivya finished is here in its state, each result stored byte-identical."""
    verdict = Verdict("every finished generation stored once, byte-identical")
    status = dict(_rows(run, "SELECT task_id, status FROM generations"))
    rows: dict[str, list[tuple[int, str, str]]] = {}
    for task_id, index, sha256, key in _rows(
        run, "SELECT task_id, index, sha256, storage_key FROM generation_outputs"
    ):
        rows.setdefault(task_id, []).append((index, sha256, key))
    to_read: list[tuple[str, int, str, str]] = []
    for item in created:
        rivya = truth.status.get(item.task_id)
        if rivya not in ("succeeded", "failed"):
            continue
        ours = status.get(item.task_id)
        if ours != rivya:
            verdict.problems.append(f"{item.task_id}: Rivya {rivya}, stored {ours or 'nothing'}")
            continue
        if rivya == "failed":
            continue
        indexes = sorted(index for index, _, _ in rows.get(item.task_id, []))
        if indexes != list(range(truth.outputs[item.task_id])):
            verdict.problems.append(
                f"{item.task_id}: outputs {indexes}, Rivya has {truth.outputs[item.task_id]}"
            )
            continue
        for index, _sha, key in rows[item.task_id]:
            expected = result_bytes_sha256(item.task_id, index, item.size)
            to_read.append((item.task_id, index, key, expected))
    client = s3_client(run)

    def compare(entry: tuple[str, int, str, str]) -> str | None:
        task_id, index, key, expected = entry
        digest = hashlib.sha256()
        try:
            body = client.get_object(Bucket=layout.BUCKET, Key=OBJECT_PREFIX + key)["Body"]
            for chunk in iter(lambda: body.read(1024 * 1024), b""):
                digest.update(chunk)
        except Exception as exc:  # the harness reports it and goes on
            return f"{task_id}/{index}: object {key} unreadable: {type(exc).__name__}"
        if digest.hexdigest() != expected:
            return f"{task_id}/{index}: object {key} differs from Rivya's bytes"
        return None

    with ThreadPoolExecutor(4) as pool:
        verdict.problems += [p for p in pool.map(compare, to_read) if p]
    return verdict


def feed_exactly_once(run: Run, truth: Truth) -> Verdict:
    """Followed from an empty cursor, the feed lists every finished generation exactly once."""
    verdict = Verdict("every finished generation in the feed exactly once")
    seen: Counter[str] = Counter()
    last: dict[str, dict[str, Any]] = {}
    cursor = ""
    headers = {"Authorization": f"Bearer {run.results_token}"}
    with httpx.Client(headers=headers, timeout=30) as client:
        for _ in range(100_000):
            answer = client.get(
                run.internal_url() + "/results/feed", params={"after": cursor, "limit": 100}
            )
            answer.raise_for_status()
            page = answer.json()
            for entry in page["data"]:
                seen[entry["task_id"]] += 1
                last[entry["task_id"]] = entry
            cursor = page.get("next_cursor") or cursor
            if not page["has_more"]:
                break
    for task_id, count in seen.items():
        if count > 1:
            verdict.problems.append(f"{task_id} listed {count} times")
    for task_id, status in truth.status.items():
        if status not in ("succeeded", "failed"):
            continue
        entry = last.get(task_id)
        if entry is None:
            verdict.problems.append(f"{task_id} ({status} at Rivya) missing from the feed")
        elif entry["status"] != status:
            verdict.problems.append(f"{task_id}: feed says {entry['status']}, Rivya {status}")
        elif status == "succeeded" and not entry.get("results_stored_at"):
            verdict.problems.append(f"{task_id}: in the feed without its results stored")
    return verdict


def events_audit(run: Run) -> Verdict:
    """`rivya-hooks events audit` passes: no event stranded."""
    verdict = Verdict("rivya-hooks events audit passes")
    log = run.logdir / "ops-audit.log"
    before = log.stat().st_size if log.exists() else 0
    status = ops_command(run, "rivya-hooks", "events", "audit", timeout=120, log=log)
    if status != 0:
        text = log.read_bytes()[before:].decode(errors="replace").strip().splitlines()
        verdict.problems += [f"exit {status}", *text[:SHOWN]]
    return verdict


def objects_match_rows(run: Run) -> tuple[Verdict, Verdict]:
    """No object without its row (written twice or abandoned); no upload or staging left.

    An attempt uploads its objects before it commits their rows, and one still under way
    ends (or is killed) within the time limit: only objects older than that count, so a
    check after a settle that timed out does not mistake a running attempt for a leak.
    """
    extra = Verdict("no object written beyond its row")
    orphans = Verdict("no orphan multipart upload or partial file")
    client: Any = s3_client(run)
    objects = [
        item
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=layout.BUCKET)
        for item in page.get("Contents", [])
    ]
    uploads = client.list_multipart_uploads(Bucket=layout.BUCKET).get("Uploads", [])
    # Rows after objects: a row committed meanwhile still matches its object.
    rows = _rows(run, "SELECT storage_key FROM generation_outputs")
    keys = {OBJECT_PREFIX + key for (key,) in rows}
    settled_before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=PROCESS_TIME_LIMIT_SECONDS)
    for item in objects:
        if item["LastModified"] > settled_before:
            continue
        if item["Key"].startswith(STAGING_PREFIX):
            orphans.problems.append(f"staging object {item['Key']}")
        elif item["Key"] not in keys:
            extra.problems.append(f"object {item['Key']} has no row")
    for upload in uploads:
        if upload["Initiated"] <= settled_before:
            orphans.problems.append(f"incomplete upload of {upload['Key']}")
    return extra, orphans


def purged_event_ids(run: Run) -> set[str]:
    """The ids of events retention purged: tombstones in event_keys (or, on a schema before
    that table, event_tombstones)."""
    tables = {name for (name,) in _rows(run, "SELECT tablename FROM pg_tables")}
    if "event_keys" in tables:
        query = "SELECT event_id FROM event_keys WHERE purged_at IS NOT NULL"
    else:
        query = "SELECT event_id FROM event_tombstones"
    return {event_id for (event_id,) in _rows(run, query)}


def deliveries(run: Run) -> list[dict[str, Any]]:
    with RivyaClient(run.simulator_url(), run.api_key, max_attempts=10) as client:
        (endpoint,) = client.list_webhooks()["data"]
        return list(client.list_deliveries(endpoint["id"])["data"])


def deliveries_kept(run: Run, attempts: list[dict[str, Any]]) -> tuple[Verdict, Verdict]:
    """Every event Rivya got a 2xx for is here (or purged, its tombstone here); every event
    Rivya sent was answered 2xx in the end."""
    lost = Verdict("no delivery answered 2xx is missing")
    unanswered = Verdict("every delivered event answered 2xx in the end")
    ours = {event_id for (event_id,) in _rows(run, "SELECT event_id FROM webhook_events")}
    ours |= purged_event_ids(run)
    answered = {a["event_id"] for a in attempts if a["succeeded"]}
    for event_id in sorted(answered - ours):
        lost.problems.append(f"{event_id} answered 2xx, neither stored nor purged")
    # Rivya lists attempts newest first; the one that finished last says how it ended.
    last: dict[str, dict[str, Any]] = {}
    for attempt in sorted(attempts, key=lambda a: (a["finished_at"], a["attempt"])):
        last[attempt["event_id"]] = attempt
    tries = Counter(a["event_id"] for a in attempts)
    for event_id in sorted({a["event_id"] for a in attempts} - answered):
        final = last[event_id]
        why = final["status_code"] or final["error"]
        unanswered.problems.append(
            f"{event_id}: never 2xx ({tries[event_id]} attempts, last: {why})"
        )
    return lost, unanswered


def settled(run: Run, truth: Truth) -> bool:
    """Whether the deployment has caught up: nothing unfinished, every finished generation here."""
    unfinished = _rows(
        run,
        "SELECT count(*) FROM webhook_events WHERE status IN "
        "('received', 'enqueued', 'processing', 'failed')",
    )[0][0]
    if unfinished:
        return False
    done = {t for t, s in truth.status.items() if s in ("succeeded", "failed")}
    stored = dict(
        _rows(
            run,
            "SELECT task_id, status FROM generations "
            "WHERE results_stored_at IS NOT NULL OR status = 'failed'",
        )
    )
    return all(task_id in stored for task_id in done)


def json_lines(verdicts: list[Verdict]) -> str:
    return json.dumps([{"name": v.name, "held": v.held, "problems": v.problems} for v in verdicts])


def run_all(run: Run, created: list[Created], truth: Truth) -> list[Verdict]:
    """Every invariant after the settle, in a fixed order; a check that cannot run is broken."""
    checks: list[tuple[str, Callable[[], Verdict | tuple[Verdict, ...]]]] = [
        ("stored once", lambda: stored_once_identical(run, created, truth)),
        ("feed", lambda: feed_exactly_once(run, truth)),
        ("events audit", lambda: events_audit(run)),
        ("duplicate rows", lambda: duplicate_rows(run)),
        ("checksums", lambda: wrong_checksums(run, created)),
        ("objects and uploads", lambda: objects_match_rows(run)),
        ("deliveries", lambda: deliveries_kept(run, deliveries(run))),
    ]
    verdicts: list[Verdict] = []
    for name, check in checks:
        try:
            result = check()
        except Exception as exc:  # the harness reports it and goes on
            result = Verdict(f"check '{name}' ran", [f"{type(exc).__name__}: {exc}"])
        verdicts += list(result) if isinstance(result, tuple) else [result]
    return verdicts
