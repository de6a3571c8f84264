"""The simulated Rivya account: keys, generations, events, endpoints, deliveries, files.

One `SimState` holds everything behind one re-entrant lock; HTTP handlers and the delivery
threads take the lock briefly and never do network I/O while holding it.

Generations move queued -> processing -> terminal by time: each one gets its deadlines at
creation, and `advance` (called by a ticker thread and before every read) applies the
transitions that are due, so the state is right whether or not anybody is looking.
"""

from __future__ import annotations

import base64
import bisect
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rivyahooks_protocol import contract
from rivyahooks_simulator.catalog import FAILURE_CODES, MODELS_BY_ID
from rivyahooks_simulator.config import SimConfig
from rivyahooks_simulator.faults import FaultInjector
from rivyahooks_simulator.urls import ResultURLSigner

JSON = dict[str, Any]
REQUEST_LOG_MAX = 100_000


def now_ms() -> int:
    """Return the current time in unix milliseconds."""
    return time.time_ns() // 1_000_000


def iso_ms(ms: int | None) -> str | None:
    """Return unix milliseconds as Rivya's ISO-8601 UTC time, e.g. 2026-05-11T10:00:00.123Z."""
    if ms is None:
        return None
    moment = datetime.fromtimestamp(ms // 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_iso_ms(value: str) -> int:
    """Return an ISO-8601 time as unix milliseconds; ValueError if it is not one."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def new_id(prefix: str) -> str:
    """Return a random object id with Rivya's prefix style."""
    return prefix + secrets.token_hex(12)


def new_signing_secret() -> str:
    """Return a fresh `whsec_` secret: base64 of 24 random bytes."""
    return contract.SIGNING_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


class ApiProblem(Exception):
    """An API error answered with Rivya's envelope."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


@dataclass
class ApiKey:
    key: str
    scopes: frozenset[str]
    status: str = "active"  # active | revoked | expired


@dataclass
class Generation:
    id: str
    model: str
    category: str
    prompt: str | None
    params: JSON | None
    client_request_id: str | None
    created_ms: int
    processing_at_ms: int
    done_at_ms: int
    outcome: str
    error: JSON | None
    reserved_credits: int
    outputs: int
    output_bytes: int
    status: str = "queued"
    updated_ms: int = 0
    final_credits: int = 0


@dataclass
class Endpoint:
    id: str
    name: str
    url: str
    event_types: list[str]
    secret: str
    scheme: str
    created_ms: int
    updated_ms: int
    status: str = "active"
    last_success_ms: int | None = None
    last_failure_ms: int | None = None
    failure_count: int = 0
    disabled_ms: int | None = None
    revoked_ms: int | None = None


@dataclass
class DeliveryAttempt:
    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    attempt: int
    duplicate: bool
    started_ms: int
    finished_ms: int
    status_code: int | None
    error: str | None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass
class StoredEvent:
    id: str
    type: str
    created_ms: int
    payload: JSON
    # Per endpoint: pending | delivered | failed.
    outcomes: dict[str, str] = field(default_factory=dict)

    @property
    def delivery_status(self) -> str:
        values = self.outcomes.values()
        if any(v == "delivered" for v in values):
            return "delivered"
        if values and all(v == "failed" for v in values):
            return "failed"
        return "pending"


class EventList:
    """Events in creation order, with positions for cursors and creation times for bisect."""

    def __init__(self) -> None:
        self.items: list[StoredEvent] = []
        self.times: list[int] = []
        self.positions: dict[str, int] = {}

    def append(self, event: StoredEvent) -> None:
        self.positions[event.id] = len(self.items)
        self.items.append(event)
        self.times.append(event.created_ms)

    def insert(self, event: StoredEvent) -> None:
        """Put an event at its place by creation time, behind any created later."""
        at = bisect.bisect_right(self.times, event.created_ms)
        self.items.insert(at, event)
        self.times.insert(at, event.created_ms)
        for position in range(at, len(self.items)):
            self.positions[self.items[position].id] = position

    def rebuild(self, events: list[StoredEvent]) -> None:
        self.items = events
        self.times = [e.created_ms for e in events]
        self.positions = {e.id: i for i, e in enumerate(events)}

    def page(
        self, limit: int, starting_after: str | None, created_after_ms: int | None, oldest_ms: int
    ) -> tuple[list[StoredEvent], bool]:
        """Return up to `limit` events newest first, and whether older ones remain."""
        # Newest first: walk down from `end` (exclusive) to `floor` (inclusive).
        end = len(self.items)
        if starting_after is not None:
            end = self.positions[starting_after]
        floor_ms = oldest_ms if created_after_ms is None else max(oldest_ms, created_after_ms + 1)
        floor = bisect.bisect_left(self.times, floor_ms)
        start = max(floor, end - limit)
        page = self.items[start:end][::-1]
        return page, start > floor


class SimState:
    """Everything the simulated account holds."""

    def __init__(self, config: SimConfig, injector: FaultInjector) -> None:
        self.lock = threading.RLock()
        self.config = config
        self.injector = injector
        self.public_url = ""
        self.signer = ResultURLSigner()
        self.api_keys: dict[str, ApiKey] = {}
        self.credits = config.initial_credits
        self.generations: dict[str, Generation] = {}
        self._active: set[str] = set()
        self.idempotency: dict[tuple[str, str], tuple[str, str]] = {}
        self.events = EventList()
        self.events_by_type: dict[str, EventList] = {t: EventList() for t in contract.EVENT_TYPES}
        self.test_events: dict[str, StoredEvent] = {}
        self.endpoints: dict[str, Endpoint] = {}
        self.deliveries: dict[str, list[DeliveryAttempt]] = {}
        self.files: dict[str, JSON] = {}
        self.requests: deque[JSON] = deque(maxlen=REQUEST_LOG_MAX)
        self.counters: Counter[str] = Counter()
        # Called with (event, endpoint ids) when an event must be delivered.
        self.on_event: Callable[[StoredEvent, list[str]], None] = lambda event, ids: None

    # --- keys ----------------------------------------------------------------------

    def add_api_key(self, key: str, scopes: Iterable[str] | None, status: str = "active") -> None:
        """Add a key; None scopes means every scope."""
        chosen = frozenset(contract.SCOPES if scopes is None else scopes)
        unknown = chosen - set(contract.SCOPES)
        if unknown:
            raise ValueError(f"unknown scopes: {sorted(unknown)}")
        with self.lock:
            self.api_keys[key] = ApiKey(key, chosen, status)

    def authenticate(self, header: str | None, scope: str) -> ApiKey:
        """Return the key of an Authorization header that has `scope`, or raise ApiProblem."""
        if not header:
            raise ApiProblem(401, contract.ERROR_API_KEY_MISSING, "No API key was sent.")
        kind, _, token = header.partition(" ")
        with self.lock:
            key = self.api_keys.get(token.strip()) if kind.lower() == "bearer" else None
        if key is None:
            raise ApiProblem(401, contract.ERROR_API_KEY_INVALID, "The API key is not valid.")
        if key.status == "revoked":
            raise ApiProblem(401, contract.ERROR_API_KEY_REVOKED, "The API key was revoked.")
        if key.status == "expired":
            raise ApiProblem(401, contract.ERROR_API_KEY_EXPIRED, "The API key has expired.")
        if scope not in key.scopes:
            raise ApiProblem(
                403, contract.ERROR_SCOPE_DENIED, f"The API key lacks the {scope} scope."
            )
        return key

    # --- generations ---------------------------------------------------------------

    def create_generation(
        self,
        model: str,
        prompt: str | None = None,
        params: JSON | None = None,
        client_request_id: str | None = None,
        *,
        outcome: str | None = None,
        outputs: int | None = None,
        output_bytes: int | None = None,
        created_ms: int | None = None,
    ) -> Generation:
        """Create a generation, reserve its credits and decide how it will end."""
        info = MODELS_BY_ID[model]
        cfg = self.config
        if outcome is None:
            failed = self.injector.chance(cfg.failure_ratio)
            outcome = "failed" if failed else "succeeded"
        error = None
        if outcome == "failed" and not self.injector.chance(0.1):
            # The contract allows a null error on a failed generation; keep it rare.
            code = self.injector.choice(sorted(FAILURE_CODES))
            error = {"code": code, "message": FAILURE_CODES[code]}
        created = now_ms() if created_ms is None else created_ms
        processing_at = created + int(cfg.queued_seconds * 1000)
        generation = Generation(
            id=new_id("task_"),
            model=model,
            category=info["category"],
            prompt=prompt,
            params=params,
            client_request_id=client_request_id,
            created_ms=created,
            processing_at_ms=processing_at,
            done_at_ms=processing_at + int(cfg.processing_seconds * 1000),
            outcome=outcome,
            error=error,
            reserved_credits=int(info["base_credits"]),
            outputs=cfg.outputs if outputs is None else outputs,
            output_bytes=cfg.output_bytes if output_bytes is None else output_bytes,
            updated_ms=created,
        )
        with self.lock:
            if self.credits < generation.reserved_credits:
                raise ApiProblem(
                    contract.INSUFFICIENT_CREDITS_STATUS,
                    contract.ERROR_INSUFFICIENT_CREDITS,
                    "Not enough credits for this generation.",
                )
            self.credits -= generation.reserved_credits
            self.generations[generation.id] = generation
            self._active.add(generation.id)
            self.counters["generations_created"] += 1
        return generation

    def advance(self, now: int | None = None, only: str | None = None) -> None:
        """Apply every status transition that is due (of one generation, or of all)."""
        current = now_ms() if now is None else now
        with self.lock:
            ids = list(self._active) if only is None else [only] if only in self._active else []
            for task_id in ids:
                self._advance_one(self.generations[task_id], current)

    def _advance_one(self, gen: Generation, now: int) -> None:
        if gen.status == "queued" and now >= gen.processing_at_ms:
            gen.status = "processing"
            gen.updated_ms = gen.processing_at_ms
        if gen.status == "processing" and now >= gen.done_at_ms:
            gen.status = gen.outcome
            gen.updated_ms = gen.done_at_ms
            if gen.outcome == "succeeded":
                gen.final_credits = gen.reserved_credits
            else:
                self.credits += gen.reserved_credits  # refunded
                gen.final_credits = 0
            self._active.discard(gen.id)
            self._emit(gen, now)

    def _emit(self, gen: Generation, now: int) -> None:
        event_type = (
            contract.EVENT_GENERATION_SUCCEEDED
            if gen.status == "succeeded"
            else contract.EVENT_GENERATION_FAILED
        )
        # The log is ordered by creation; never let a clock step make it go backwards.
        last = self.events.times[-1] if self.events.times else 0
        created = max(now, last)
        late = self.injector.chance(self.injector.faults.late_write_ratio)
        if late:
            created = now - int(self.injector.faults.late_write_seconds * 1000)
        event = StoredEvent(
            id=new_id("evt_"),
            type=event_type,
            created_ms=created,
            payload=self.event_envelope("", event_type, created, self.generation_json(gen)),
        )
        event.payload["id"] = event.id
        if late:
            self.events.insert(event)
            self.events_by_type[event_type].insert(event)
            self.counters["events_written_late"] += 1
        else:
            self.events.append(event)
            self.events_by_type[event_type].append(event)
        self.counters["events_emitted"] += 1
        targets = [
            e.id
            for e in self.endpoints.values()
            if e.status == "active" and event_type in e.event_types
        ]
        for endpoint_id in targets:
            event.outcomes[endpoint_id] = "pending"
        if targets:
            self.on_event(event, targets)

    @staticmethod
    def event_envelope(event_id: str, event_type: str, created_ms: int, data: JSON) -> JSON:
        """Return an event as delivered: the confirmed head, then object and data."""
        return {
            "id": event_id,
            "type": event_type,
            "api_version": contract.API_VERSION,
            "created_at": iso_ms(created_ms),
            "object": contract.EVENT_OBJECT,
            contract.EVENT_DATA_KEY: data,
        }

    def generation_json(self, gen: Generation) -> JSON:
        """Return the public generation object, minting fresh result URLs."""
        result = None
        if gen.status == "succeeded":
            urls = [self.result_url(gen.id, index) for index in range(gen.outputs)]
            result = {"primary_url": urls[0] if urls else None, "urls": urls}
        return {
            "id": gen.id,
            "status": gen.status,
            "model": gen.model,
            "reserved_credits": gen.reserved_credits,
            "final_credits": gen.final_credits,
            "created_at": iso_ms(gen.created_ms),
            "updated_at": iso_ms(gen.updated_ms),
            "result": result,
            "error": gen.error if gen.status == "failed" else None,
        }

    def result_url(self, task_id: str, index: int) -> str:
        """Return a signed result URL valid for the configured TTL (or already expired)."""
        now = time.time()
        if self.injector.chance(self.injector.faults.expire_early_ratio):
            expires = int(now) - 1
        else:
            expires = int(now + self.config.url_ttl_seconds)
        return self.signer.url(self.public_url, task_id, index, expires)

    # --- event log -----------------------------------------------------------------

    def seed_events(
        self, count: int, older_than_seconds: float, spacing_ms: int, delivery_status: str
    ) -> int:
        """Add `count` terminal generations and their events in the past, oldest last."""
        newest = now_ms() - int(older_than_seconds * 1000)
        seeded: list[StoredEvent] = []
        with self.lock:
            for i in range(count):
                created = newest - i * spacing_ms
                failed = self.injector.chance(self.config.failure_ratio)
                gen = Generation(
                    id=new_id("task_"),
                    model="rivya-image-1",
                    category="image",
                    prompt="seeded",
                    params=None,
                    client_request_id=None,
                    created_ms=created - 1000,
                    processing_at_ms=created - 500,
                    done_at_ms=created,
                    outcome="failed" if failed else "succeeded",
                    error={"code": "model_timeout", "message": FAILURE_CODES["model_timeout"]}
                    if failed
                    else None,
                    reserved_credits=4,
                    outputs=self.config.outputs,
                    output_bytes=self.config.output_bytes,
                    status="failed" if failed else "succeeded",
                    updated_ms=created,
                    final_credits=0 if failed else 4,
                )
                self.generations[gen.id] = gen
                event_type = (
                    contract.EVENT_GENERATION_FAILED
                    if failed
                    else contract.EVENT_GENERATION_SUCCEEDED
                )
                event_id = new_id("evt_")
                data = self.generation_json(gen)
                event = StoredEvent(
                    event_id,
                    event_type,
                    created,
                    self.event_envelope(event_id, event_type, created, data),
                    {"seeded-history": delivery_status},
                )
                seeded.append(event)
            merged = sorted(self.events.items + seeded, key=lambda e: e.created_ms)
            self.events.rebuild(merged)
            for event_type, events in self.events_by_type.items():
                events.rebuild([e for e in merged if e.type == event_type])
            self.counters["events_seeded"] += count
        return count

    def event_page(
        self,
        limit: int,
        starting_after: str | None,
        created_after_ms: int | None,
        type_: str | None,
    ) -> tuple[list[JSON], bool]:
        """Return one page of the event log as JSON objects, and has_more."""
        oldest = now_ms() - contract.EVENTS_RETENTION_DAYS * 86_400_000
        with self.lock:
            events = self.events if type_ is None else self.events_by_type[type_]
            if starting_after is not None and starting_after not in events.positions:
                raise ApiProblem(
                    400,
                    contract.ERROR_VALIDATION_FAILED,
                    "starting_after is not an event id of this list.",
                )
            page, has_more = events.page(limit, starting_after, created_after_ms, oldest)
            return [dict(e.payload, delivery_status=e.delivery_status) for e in page], has_more

    def find_event(self, event_id: str) -> StoredEvent | None:
        """Return a logged or test event by id."""
        with self.lock:
            position = self.events.positions.get(event_id)
            if position is not None:
                return self.events.items[position]
            return self.test_events.get(event_id)

    # --- endpoints -----------------------------------------------------------------

    def endpoint_json(self, endpoint: Endpoint, *, with_secret: bool = False) -> JSON:
        """Return the public endpoint object; the secret itself only when asked."""
        body: JSON = {
            "id": endpoint.id,
            "object": contract.WEBHOOK_ENDPOINT_OBJECT,
            "name": endpoint.name,
            "url": endpoint.url,
            "event_types": list(endpoint.event_types),
            "status": endpoint.status,
            "secret_preview": contract.SIGNING_SECRET_PREFIX + "..." + endpoint.secret[-4:],
            "last_success_at": iso_ms(endpoint.last_success_ms),
            "last_failure_at": iso_ms(endpoint.last_failure_ms),
            "failure_count": endpoint.failure_count,
            "created_at": iso_ms(endpoint.created_ms),
            "updated_at": iso_ms(endpoint.updated_ms),
            "disabled_at": iso_ms(endpoint.disabled_ms),
            "revoked_at": iso_ms(endpoint.revoked_ms),
        }
        if with_secret:
            body["signing_secret"] = endpoint.secret
        return body

    def add_endpoint(
        self,
        name: str,
        url: str,
        event_types: list[str],
        secret: str | None = None,
        scheme: str | None = None,
    ) -> Endpoint:
        """Register an endpoint."""
        created = now_ms()
        endpoint = Endpoint(
            id=new_id("whend_"),
            name=name,
            url=url,
            event_types=list(event_types),
            secret=secret or new_signing_secret(),
            scheme=scheme or self.config.scheme,
            created_ms=created,
            updated_ms=created,
        )
        with self.lock:
            self.endpoints[endpoint.id] = endpoint
            self.deliveries[endpoint.id] = []
        return endpoint

    def get_endpoint(self, endpoint_id: str) -> Endpoint:
        """Return an endpoint or raise not_found."""
        with self.lock:
            endpoint = self.endpoints.get(endpoint_id)
        if endpoint is None:
            raise ApiProblem(404, contract.ERROR_NOT_FOUND, "No such webhook endpoint.")
        return endpoint

    def record_attempt(self, attempt: DeliveryAttempt, final: bool) -> None:
        """Store one delivery attempt and update the endpoint and event outcome."""
        with self.lock:
            self.deliveries.setdefault(attempt.endpoint_id, []).append(attempt)
            self.counters["deliveries_attempted"] += 1
            endpoint = self.endpoints.get(attempt.endpoint_id)
            event = self.find_event(attempt.event_id)
            if attempt.succeeded:
                self.counters["deliveries_succeeded"] += 1
                if endpoint is not None:
                    endpoint.last_success_ms = attempt.finished_ms
                if event is not None:
                    event.outcomes[attempt.endpoint_id] = "delivered"
            else:
                self.counters["deliveries_failed"] += 1
                if endpoint is not None:
                    endpoint.last_failure_ms = attempt.finished_ms
                    endpoint.failure_count += 1
                delivered = (
                    event is not None and event.outcomes.get(attempt.endpoint_id) == "delivered"
                )
                if event is not None and final and not delivered:
                    event.outcomes[attempt.endpoint_id] = "failed"

    def mark_dropped(self, event_id: str, endpoint_id: str) -> None:
        """Record a delivery the fault injector swallowed: never sent, reported failed."""
        with self.lock:
            self.counters["deliveries_dropped"] += 1
            event = self.find_event(event_id)
            if event is not None:
                event.outcomes[endpoint_id] = "failed"

    # --- request log and summary ---------------------------------------------------

    def log_request(self, entry: JSON) -> None:
        """Append to the request log."""
        with self.lock:
            self.requests.append(entry)

    def summary(self) -> JSON:
        """Return counts for `GET /_sim/state`."""
        with self.lock:
            by_status = Counter(g.status for g in self.generations.values())
            return {
                "generations": {s: by_status.get(s, 0) for s in contract.GENERATION_STATUSES},
                "events": len(self.events.items),
                "events_emitted": self.counters["events_emitted"],
                "events_seeded": self.counters["events_seeded"],
                "events_written_late": self.counters["events_written_late"],
                "endpoints": len(self.endpoints),
                "deliveries": {
                    "attempted": self.counters["deliveries_attempted"],
                    "succeeded": self.counters["deliveries_succeeded"],
                    "failed": self.counters["deliveries_failed"],
                    "dropped": self.counters["deliveries_dropped"],
                    "duplicated": self.counters["deliveries_duplicated"],
                },
                "credits": self.credits,
                "requests_logged": len(self.requests),
            }
