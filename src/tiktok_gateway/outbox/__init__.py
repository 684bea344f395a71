"""The store: events durably kept until TikTok has them, behind small contracts.

* `Outbox`: the core operations of delivery. A record is claimable when it is pending and
  its `available_at` has passed. Claiming pushes `available_at` forward by the lease, so a
  crashed process's claims become claimable again when the lease runs out. `mark_failed`
  with `retry_at=None` dead-letters. Dedup happens in `put`, in the same transaction that
  stores the events.
* `RecordReader`: the read side (inspector, backlog, dashboards).
* `TelemetryStore`: counters per minute, the request log, both legs of events (pairing) and
  alert incidents.
* `LimiterFactory`: a rate limiter per access token, shared by every process on the store.

`open_store(url)` gives all four as one `Store`. Backends: `memory://` (tests),
`sqlite:///path` (the default) and `postgresql://`; each is one module with an
`open_store(url, options)` of its own, named in `BACKENDS`, and all pass one contract suite.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from ..exceptions import ConfigError
from ..pairing import Leg, PixelOnlyGroup, ServerGroup
from ..ratelimit import Limiter

PENDING, SENT, DEAD = "pending", "sent", "dead"


@dataclass(frozen=True)
class NewEvent:
    """An event ready for TikTok, hashed; `payload` is the 2.0 `data[]` item as JSON."""

    destination: str
    event_name: str
    event_id: str
    event_time: int
    payload: str
    test_event_code: str = ""
    order_id: str = ""
    inbound: str | None = None  # the event as received, personal data hashed (inspector)
    sampled: bool = False  # keep payload and inbound after delivery (inspector sampling)
    source: str = ""  # browser, server, webhook or ga4: who sent it (merge.outranks)
    delay: float = 0.0  # seconds before it may be claimed: the merge window of a purchase
    user_agent: str = ""  # the shopper's, for pairing's browser breakdown (not stored apart)

    @property
    def dedup_key(self) -> tuple[str, str, str, str]:
        return (self.destination, self.event_name, self.event_id, self.test_event_code)

    @property
    def order_key(self) -> tuple[str, str, str, str] | None:
        """One order's event is sent once for good, whatever its event_id (None: no order)."""
        if not self.order_id:
            return None
        return (self.destination, self.event_name, self.order_id, self.test_event_code)


@dataclass(frozen=True)
class CopyRecord:
    """A copy of an event received after the first: merged into it before delivery, or
    late (the first was already sent or in flight), with the match keys it added or would
    have added."""

    record_id: int | None
    destination: str
    event_name: str
    event_id: str
    order_id: str
    source: str
    merged: bool
    added: tuple[str, ...]
    received_at: float

    @property
    def outcome(self) -> str:
        return "merged" if self.merged else "late duplicate"


@dataclass(frozen=True)
class OrderChange:
    """A shop platform said an order was cancelled, voided or refunded: recorded against the
    order (never sent to TikTok), for the inspector and the gap report."""

    order_id: str
    change: str
    platform: str
    at: float


@dataclass(frozen=True)
class Outcome:
    """What TikTok (or the network) answered for a request."""

    code: int | None
    message: str
    request_id: str | None = None

    def as_json(self) -> str:
        return json.dumps({"code": self.code, "message": self.message,
                           "request_id": self.request_id})


@dataclass(slots=True)
class OutboxRecord:
    """One stored event with its delivery state. Read-only by convention, not frozen: a claim
    builds a thousand at a time, and a frozen dataclass's `__init__` costs four times as much
    (stores replace a record, `dataclasses.replace`, and never change one in place)."""

    id: int
    destination: str
    event_name: str
    event_id: str
    event_time: int
    payload: str
    test_event_code: str = ""
    state: str = PENDING
    attempts: int = 0
    created_at: float = 0.0
    available_at: float = 0.0
    last_result: str | None = None
    order_id: str = ""
    inbound: str | None = None
    sampled: bool = False
    finished_at: float | None = None

    @property
    def data(self) -> dict[str, Any]:
        value: dict[str, Any] = orjson.loads(self.payload)
        return value

    @property
    def result(self) -> dict[str, Any] | None:
        return json.loads(self.last_result) if self.last_result else None


@dataclass(frozen=True)
class RecordQuery:
    """What to look for with `find`; None matches anything."""

    event_id: str | None = None
    order_id: str | None = None
    event_name: str | None = None
    state: str | None = None
    destination: str | None = None
    since: float | None = None
    test_only: bool = False
    inspectable: bool = False  # only records the inspector can show (sampled, test, or dead)
    # Case-insensitive: records whose event_id or order_id starts with it.
    prefix: str | None = None
    limit: int = 100

    def matches_ids(self, event_id: str, order_id: str) -> bool:
        if self.prefix is None:
            return True
        prefix = self.prefix.lower()
        return event_id.lower().startswith(prefix) or order_id.lower().startswith(prefix)

    def matches(self, record: OutboxRecord) -> bool:
        return self.matches_ids(record.event_id, record.order_id) and all((
            self.event_id is None or record.event_id == self.event_id,
            self.order_id is None or record.order_id == self.order_id,
            self.event_name is None or record.event_name == self.event_name,
            self.state is None or record.state == self.state,
            self.destination is None or record.destination == self.destination,
            self.since is None or record.created_at >= self.since,
            not self.test_only or bool(record.test_event_code),
            not self.inspectable or record.inbound is not None or record.state == DEAD,
        ))


PARTIAL_REJECTS = "partial_rejects"
FILTERED, REJECTED = "filtered", "rejected"


@dataclass(frozen=True)
class DroppedEvent:
    """An event received but not queued: a destination's filter dropped it (`filtered`,
    with the filter's reason), or ingest refused it (`rejected`, with the first field at
    fault). Ids and the reason; a rejected one also keeps a copy with nothing personal in it
    (`payload`, see identity.redacted)."""

    at: float
    destination: str
    event_name: str
    event_id: str
    order_id: str
    state: str
    reason: str
    test: bool
    source: str
    payload: str = ""


@dataclass(frozen=True)
class RequestLog:
    """One request to TikTok, as the tag-health pages show it."""

    at: float
    destination: str
    events: int
    test: bool
    # delivered, partial, retry, rejected; or PARTIAL_REJECTS: not a request of its own but
    # the events one partial answer refused for one reason (`events` of them).
    outcome: str
    code: int | None
    message: str
    request_id: str | None
    http_status: int | None
    latency: float


CounterKey = tuple[int, str, str, str]  # (minute, destination, event_name, counter name)
FIRING, RESOLVED = "firing", "resolved"


@dataclass(frozen=True)
class AlertRecord:
    """One incident of one alert rule for one destination."""

    rule: str
    destination: str
    state: str  # FIRING or RESOLVED
    since: float
    resolved_at: float | None
    message: str


class TelemetryStore(Protocol):
    """Counters per minute and the request log, shared by every process on the store."""

    async def add(self, counters: dict[CounterKey, int], requests: Sequence[RequestLog],
                  dropped: Sequence[DroppedEvent] = (), legs: Sequence[Leg] = ()) -> None:
        """Write counters (added up), request log rows, dropped records and legs (the first
        report of a destination, side and event_id stands)."""
        ...

    async def dropped(self, query: RecordQuery) -> list[DroppedEvent]:
        """Filtered and rejected events matching the query's ids, prefix, destination, state
        and time, newest first."""
        ...

    async def counters(self, since: float) -> list[tuple[int, str, str, str, int]]: ...

    async def requests(self, since: float, limit: int = 10_000) -> list[RequestLog]: ...

    async def pair_counts(self, start: float, end: float, mode: str = "all",
                          ) -> tuple[list[ServerGroup], list[PixelOnlyGroup]]:
        """Server legs received in [start, end) grouped with their pixel legs (test ones
        only in mode test or all), and the pixel legs no server leg matches (mode live or
        all): see pairing.py."""
        ...

    async def pixel_reporting(self, destinations: Sequence[str], since: float) -> set[str]:
        """The destinations with a pixel leg received since `since`: /tt.js reports for them."""
        ...

    async def legs_of(self, event_id: str, order_id: str = "",
                      destination: str | None = None) -> list[Leg]:
        """The legs of one event_id, or of any event of the order, oldest first."""
        ...

    async def open_alert(self, rule: str, destination: str, at: float, message: str) -> bool:
        """Open an incident unless one is firing: True only for the caller that opened it."""
        ...

    async def close_alert(self, rule: str, destination: str, at: float) -> AlertRecord | None:
        """Resolve the firing incident, if any: the incident, for its caller only."""
        ...

    async def alerts(self, since: float, limit: int = 200) -> list[AlertRecord]:
        """Firing incidents and those resolved since `since`, newest first."""
        ...


@dataclass(frozen=True)
class OutboxStats:
    """Every kept event counted by state, in total and per destination."""
    pending: int = 0
    sent: int = 0
    dead: int = 0
    oldest_pending_at: float | None = None
    by_destination: dict[str, dict[str, int]] = field(default_factory=dict)

    @classmethod
    def from_counts(cls, rows: Iterable[tuple[str, str, int]],
                    oldest_pending_at: float | None) -> OutboxStats:
        """From (destination, state, count) rows."""
        totals = {PENDING: 0, SENT: 0, DEAD: 0}
        by_destination: dict[str, dict[str, int]] = {}
        for destination, state, count in rows:
            totals[state] += count
            by_destination.setdefault(destination, {PENDING: 0, SENT: 0, DEAD: 0})[state] = count
        return cls(totals[PENDING], totals[SENT], totals[DEAD], oldest_pending_at, by_destination)


@dataclass(frozen=True)
class Backlog:
    """The part of OutboxStats that health checks, gauges, backpressure and the dashboard
    read every few seconds: waiting and dead events, not the delivered ones kept."""
    pending: int = 0
    dead: int = 0
    oldest_pending_at: float | None = None
    by_destination: dict[str, dict[str, int]] = field(default_factory=dict)

    @classmethod
    def of(cls, stats: OutboxStats) -> Backlog:
        by_destination = {name: {PENDING: per.get(PENDING, 0), DEAD: per.get(DEAD, 0)}
                          for name, per in stats.by_destination.items()
                          if per.get(PENDING) or per.get(DEAD)}
        return cls(stats.pending, stats.dead, stats.oldest_pending_at, by_destination)


class Outbox(Protocol):
    """The core operations of delivery; the contract tests run against each backend."""

    async def put(self, events: Sequence[NewEvent],
                  counters: dict[CounterKey, int] | None = None) -> list[bool]:
        """Store events durably; True for each stored, False for a duplicate in the window.

        `counters` are added in the same transaction, as are "duplicate" counts, so the
        dashboard's totals survive a crash exactly as the events do.
        """
        ...

    async def claim(self, limit: int, lease: float) -> list[OutboxRecord]:
        """Lease up to `limit` due records of one destination and test code, oldest first."""
        ...

    async def mark_sent(self, ids: Sequence[int], outcome: Outcome) -> None:
        """Mark delivered, and count them ("delivered") in the same transaction."""
        ...

    async def mark_failed(self, ids: Sequence[int], outcome: Outcome,
                          retry_at: float | None) -> None:
        """Count a failed attempt; retry at `retry_at`, or dead-letter when it is None.

        Counted as "retried" or "dead" in the same transaction.
        """
        ...

    async def replay(self, destination: str | None = None, since: float | None = None,
                     ids: Sequence[int] | None = None) -> int:
        """Queue dead letters again (of a destination, dead-lettered since, or by id); count them."""
        ...

    async def merge(self, copies: Sequence[NewEvent]) -> list[bool]:
        """Fold copies that `put` found to be duplicates into their first event.

        True for a copy merged into a pending event no worker holds (its match keys added,
        see `merge.py`), False for a late one; each is kept as a `CopyRecord` and counted
        ("merged" or "late_duplicate").
        """
        ...

    async def record_change(self, change: OrderChange) -> None:
        """Keep an order's change (as long as order keys are kept)."""
        ...

    async def erase(self, hashes: Sequence[str]) -> int:
        """Delete every record holding one of a customer's hashes (an erasure request), and
        what it left behind where the backend can reach it; count the records."""
        ...

    async def close(self) -> None: ...


class RecordReader(Protocol):
    """The read side: what the inspector, health checks and dashboards look at."""

    async def find(self, query: RecordQuery) -> list[OutboxRecord]:
        """Records matching a query, newest first."""
        ...

    async def get(self, id: int) -> OutboxRecord | None: ...

    async def copies(self, record_id: int) -> list[CopyRecord]:
        """The later copies of a record, oldest first."""
        ...

    async def changes(self, order_id: str) -> list[OrderChange]:
        """What the platforms said happened to an order since, oldest first."""
        ...

    async def stats(self) -> OutboxStats: ...

    async def backlog(self) -> Backlog:
        """Pending and dead counts and the oldest pending event, as `stats()` has them, read
        from indexes of the pending and finished events alone: `stats()` counts every kept
        event, which takes a noticeable time with a million delivered ones kept."""
        ...

    async def pending(self) -> int:
        """The backlog's pending count alone: ingest checks it every second for backpressure,
        and with a million waiting it costs a fifth of the whole backlog."""
        ...

    async def pending_by_event(self) -> list[tuple[str, str, bool, int]]:
        """Waiting events by (destination, TikTok event, is a test event)."""
        ...

    async def webhook_orders(self, since: float, limit: int) -> list[str]:
        """The order ids the shop's webhooks reported since a time (queued, filtered or
        rejected), the most recent first."""
        ...

    async def find_copies(self, query: RecordQuery) -> list[CopyRecord]:
        """Later copies (merged or late duplicates) matching the query's ids, prefix,
        destination and time, newest first."""
        ...


class Backend(Outbox, RecordReader, Protocol):
    """What a backend module's store class is: both contracts, and its telemetry."""

    @property
    def telemetry(self) -> TelemetryStore: ...


LimiterFactory = Callable[[str, float], Limiter]  # (access token, QPS) -> its limiter


@dataclass(frozen=True)
class StoreOptions:
    """How a store keeps what it keeps; backends ignore what does not apply to them."""

    dedup_window: float = 48 * 3600
    order_window: float = 90 * 86400
    retention: float = 7 * 86400
    synchronous: str = "FULL"
    auto_migrate: bool = True
    pool_size: int = 10
    # The longest the gateway ever makes an event wait (retry cap, Retry-After, merge and
    # browser waits, lease). An event due later than this was scheduled by a clock that has
    # since been set back: it is due now, not in an hour.
    max_delay: float = 3600.0
    # The process that delivers (serve). Others (report, replay) must not take back the
    # leases of batches a running gateway is sending: they would go out twice.
    owner: bool = True


@dataclass(frozen=True)
class Store:
    """One opened store, by contract: `outbox`, `records`, `telemetry` and `limiter`."""

    outbox: Outbox
    records: RecordReader
    telemetry: TelemetryStore
    limiter: LimiterFactory

    @classmethod
    def of(cls, backend: Backend, limiter: LimiterFactory) -> Store:
        return cls(backend, backend, backend.telemetry, limiter)

    async def close(self) -> None:
        await self.outbox.close()


# Test events count apart from live ones: their counter names carry this prefix.
TEST_COUNTER = "test:"


def counter_name(name: str, test: bool) -> str:
    return TEST_COUNTER + name if test else name


def tally(rows: Sequence[tuple[str, str, str]], name: str, now: float) -> dict[CounterKey, int]:
    """Counters for (destination, event_name, test_event_code) rows: what every backend adds
    on a state change."""
    minute = int(now // 60)
    counts: dict[CounterKey, int] = {}
    for destination, event_name, test_event_code in rows:
        key = (minute, destination, event_name, counter_name(name, bool(test_event_code)))
        counts[key] = counts.get(key, 0) + 1
    return counts


# URL scheme -> the backend module in this package. A new backend is a module with
# `open_store(url, options)` (and, if its schema needs it, `migrate(url)`), plus a line here.
BACKENDS = {"memory": "memory", "sqlite": "sqlite", "postgresql": "postgres",
            "postgres": "postgres"}
SCHEMES = tuple(f"{scheme}://" for scheme in BACKENDS)
_EXTRAS = {"postgres": "PostgreSQL storage needs the postgres extra: "
                       "pip install 'tiktok-gateway[postgres]'"}


def backend_module(url: str) -> Any:
    """The module of the backend a storage URL names; drivers are imported only when used."""
    scheme = url.split("://", 1)[0]
    name = BACKENDS.get(scheme)
    if name is None:
        raise ConfigError(f"unknown storage URL {scheme!r}: use sqlite:/// or postgresql://")
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ImportError as exc:
        raise ConfigError(_EXTRAS.get(name, str(exc))) from exc


def shared_by_processes(url: str) -> bool:
    """Whether several gateway processes may use the store at once (PostgreSQL): one
    process owns a SQLite file, and a memory store lives in one process."""
    return BACKENDS.get(url.split("://", 1)[0]) == "postgres"


def open_store(url: str, options: StoreOptions | None = None) -> Store:
    """Open the store a URL names."""
    store: Store = backend_module(url).open_store(url, options or StoreOptions())
    return store


async def migrate(url: str) -> tuple[int, int] | None:
    """Bring the store's schema up to date: (version before, after), or None when the
    backend makes its schema itself."""
    run = getattr(backend_module(url), "migrate", None)
    return await run(url) if run is not None else None


__all__ = ["BACKENDS", "DEAD", "FILTERED", "FIRING", "PARTIAL_REJECTS", "PENDING", "REJECTED",
           "RESOLVED", "SCHEMES", "SENT", "TEST_COUNTER", "AlertRecord", "Backend", "Backlog",
           "CopyRecord", "CounterKey", "DroppedEvent", "Leg", "LimiterFactory", "NewEvent",
           "OrderChange", "Outbox", "OutboxRecord", "OutboxStats", "Outcome", "RecordQuery",
           "RecordReader", "RequestLog", "Store", "StoreOptions", "TelemetryStore",
           "counter_name", "migrate", "open_store", "shared_by_processes", "tally"]
