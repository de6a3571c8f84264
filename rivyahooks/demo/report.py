"""The demo's report: every generation checked against Rivya, and the results API in use."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from models.events import EventSource, WebhookEvent
from models.generations import Generation, GenerationOutput
from rivyahooks.output import table
from rivyahooks_foundation.settings import Settings
from rivyahooks_protocol.client import RivyaClient


@dataclass
class Report:
    """The demo's table, and every generation that does not match Rivya's own record."""

    text: str
    problems: list[str]


def check_generations(
    settings: Settings,
    sessions: sessionmaker[Session],
    client: RivyaClient,
    task_ids: list[str],
    sim_state: dict[str, Any],
) -> Report:
    """Check every generation against Rivya's record and the stored files; return the table."""
    problems: list[str] = []
    root = settings.storage_root()
    files = bytes_stored = verified = 0
    failed_codes: dict[str, int] = {}
    with sessions() as session:
        # Generations (not events) by the way their outcome first reached us.
        by_source = dict(
            session.execute(
                select(WebhookEvent.source, func.count(func.distinct(WebhookEvent.task_id)))
                .where(WebhookEvent.task_id.in_(task_ids))
                .group_by(WebhookEvent.source)
            ).all()
        )
        for task_id in task_ids:
            truth = client.get_generation(task_id)
            row = session.scalars(select(Generation).where(Generation.task_id == task_id)).one()
            if row.status.value != truth["status"]:
                problems.append(
                    f"{task_id}: stored {row.status.value}, Rivya says {truth['status']}"
                )
                continue
            if truth["status"] == "failed":
                code = (truth.get("error") or {}).get("code") or "unknown"
                failed_codes[code] = failed_codes.get(code, 0) + 1
                if row.error_code != code:
                    problems.append(f"{task_id}: error {row.error_code}, Rivya says {code}")
                continue
            outputs = list(
                session.scalars(select(GenerationOutput).where(GenerationOutput.task_id == task_id))
            )
            urls = truth["result"]["urls"]
            expected = len(urls)
            if len(outputs) != expected:
                problems.append(f"{task_id}: {len(outputs)} of {expected} outputs stored")
            for output in outputs:
                files += 1
                data = (root / output.storage_key).read_bytes()
                bytes_stored += len(data)
                actual = hashlib.sha256(data).hexdigest()
                if not 0 <= output.index < expected:
                    problems.append(f"{task_id}/{output.index}: Rivya has no such output")
                    continue
                truth_sha = _served_sha256(urls[output.index])
                if truth_sha is None:
                    problems.append(f"{task_id}/{output.index}: Rivya did not serve the file")
                elif actual == output.sha256 == truth_sha:
                    verified += 1
                else:
                    problems.append(f"{task_id}/{output.index}: checksum mismatch")
    deliveries = sim_state["deliveries"]
    by_webhook = by_source.get(EventSource.WEBHOOK, 0)
    by_reconcile = by_source.get(EventSource.RECONCILE, 0)
    # Every successful delivery beyond the first of an event was answered 2xx and dropped here.
    with sessions() as session:
        webhook_events = session.scalar(
            select(func.count()).where(WebhookEvent.source == EventSource.WEBHOOK)
        )
    duplicates = deliveries["succeeded"] - (webhook_events or 0)
    rows = [
        ["generations", len(task_ids)],
        ["delivered by webhook", by_webhook],
        ["recovered by reconcile", by_reconcile],
        ["deliveries dropped by the simulator", deliveries["dropped"]],
        ["duplicates suppressed", duplicates],
        ["files stored", files],
        ["bytes stored", bytes_stored],
        ["checksums verified", f"{verified}/{files}"],
        [
            "failed generations",
            sum(failed_codes.values()),
        ],
    ]
    rows += [[f"  error {code}", n] for code, n in sorted(failed_codes.items())]
    if by_webhook + by_reconcile < len(task_ids):
        problems.append("fewer events than generations")
    return Report(table(rows, ["what", "count"]), problems)


def _served_sha256(url: str) -> str | None:
    """Return the sha256 of the file Rivya serves at `url`, or None if it did not serve it.

    The demo runs the simulator as a process of its own and knows it only over HTTP, as the
    service does; the bytes fetched again are an independent check of the bytes stored.
    """
    digest = hashlib.sha256()
    with httpx.stream("GET", url, timeout=30) as response:
        if response.status_code != 200:
            return None
        for chunk in response.iter_bytes():
            digest.update(chunk)
    return digest.hexdigest()


def results_api_example(web_url: str, token: str) -> str:
    """Read the results as an app does; return the two requests and what they answered."""
    auth = {"Authorization": f"Bearer {token}"}
    feed_url = f"{web_url}/results/feed?after=&limit=1"
    page = httpx.get(feed_url, headers=auth, timeout=10).json()
    (entry,) = page["data"]
    listing = httpx.get(f"{web_url}/results?status=succeeded&limit=1", headers=auth, timeout=10)
    output = listing.json()["data"][0]["outputs"][0]
    file_url = f"{web_url}{output['url']}"
    answer = httpx.get(file_url, headers=auth, timeout=10)
    return "\n".join(
        [
            "",
            "How an app reads its results (a token of RESULTS_API_TOKENS; the web role serves):",
            f'  curl -H "Authorization: Bearer $TOKEN" "{feed_url}"',
            f'  -> {{"data": [{{"task_id": "{entry["task_id"]}", "status": "{entry["status"]}", '
            f'"outputs": [...], "cursor": "{entry["cursor"]}", ...}}], '
            f'"next_cursor": "{page["next_cursor"]}", '
            f'"has_more": {str(page["has_more"]).lower()}}}',
            f'  curl -OJ -H "Authorization: Bearer $TOKEN" "{file_url}"',
            f"  -> {answer.status_code}, {len(answer.content)} bytes, "
            f"{answer.headers.get('Content-Type')}, ETag {answer.headers.get('ETag')}, "
            f"saved as {output['filename']}",
            f"  (TOKEN={token} in this demo; the API's description: {web_url}/openapi.json)",
        ]
    )
