"""The writer of what the gateway records about itself: counters per minute, the request
log, Prometheus. `figures.py` is its reader.

Counters that belong to stored events are written with them: ingest collects a request's
counts in a `CounterBatch` and hands it to `outbox.put`, and the store counts deliveries,
retries and dead letters as it marks them, so totals survive a crash exactly as events do.
Counts with no event to ride along (filtered, rejected) and the request log are kept in
memory and flushed every couple of seconds. The store holds the totals of every process
that shares it (the dashboard reads those); `/metrics` shows this process's own counters,
as Prometheus expects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client import Counter as PrometheusCounter

from .events import rejection_reason
from .exceptions import OutboxError
from .merge import BROWSER
from .outbox import (
    PARTIAL_REJECTS,
    TEST_COUNTER,
    CounterKey,
    DroppedEvent,
    Leg,
    RecordReader,
    RequestLog,
    TelemetryStore,
    counter_name,
)

logger = logging.getLogger("tiktok_gateway.observe")
MAX_DROPPED = 20_000  # filtered and rejected records (and request log rows) waiting for a flush
# Of those, from browser keys: the key is public, so this bounds what a stranger can make the
# store keep (about 25 a second per process); their events are still all counted.
MAX_BROWSER_DROPPED = 50
MAX_LEGS = 50_000  # pixel and server legs waiting for a flush (pairing evidence)
# Of those, pixel legs: reported with a public key, so this bounds what a stranger can make the
# store keep (500 a second per process at the default flush; a shop's pages send far fewer).
MAX_PIXEL_LEGS = 1000
PAIRING_ACTIVE = 7 * 86400  # a destination with a pixel leg this recent gets server legs
PAIRING_CHECK_EVERY = 60.0

# The fields whose presence is counted per event: the data-quality page's columns.
USER_FIELDS = ("email", "phone", "external_id", "ttclid", "ttp", "ip", "user_agent")
PROPERTY_FIELDS = ("value", "currency", "contents", "content_type")
QUALITY_FIELDS = (*USER_FIELDS, *PROPERTY_FIELDS)
# Counter names. Presence counters are `presence(field)`; filters are `filtered(reason)`.
RECEIVED, DUPLICATE, DELIVERED, RETRIED, DEAD, REJECTED = (
    "received", "duplicate", "delivered", "retried", "dead", "rejected")
_PRESENCE, _FILTERED, _REJECTED, _INVALID, _FROM = (
    "has:", "filtered:", "rejected:", "invalid:", "from:")
SOURCES = ("server", "browser", "webhook", "ga4")  # what RequestContext.source can be
INGEST = "(ingest)"  # the destination of counters of events refused before routing
WEBHOOK_CALLS = "webhook"  # the event name of a platform's counters, under "(<platform>)"
BAD_SIGNATURE = "bad_signature"


def presence(field: str) -> str:
    """The counter of events carrying `field` (a quality field, or a derived key below)."""
    return _PRESENCE + field


def present_field(counter: str) -> str | None:
    """The field a presence counter counts, or None for any other counter."""
    return counter[len(_PRESENCE):] if counter.startswith(_PRESENCE) else None


def filtered(reason: str) -> str:
    """The counter of events a destination's filter dropped for `reason`."""
    return _FILTERED + reason


def is_filtered(counter: str) -> bool:
    return counter.startswith(_FILTERED)


def filtered_reason(counter: str) -> str | None:
    return counter[len(_FILTERED):] if counter.startswith(_FILTERED) else None


def from_source(source: str, counter: str) -> str:
    """A quality counter of the events from one source (the gateway's own names only)."""
    return f"{_FROM}{source}|{counter}"


def of_source(counters: Sequence[tuple[int, str, str, str, int]],
              source: str | None) -> list[tuple[int, str, str, str, int]]:
    """Counter rows of one source under their plain names; without a source, the rows of
    every source (the per-source copies left out)."""
    if source is None:
        return [c for c in counters if not c[3].startswith(_FROM)]
    prefix = f"{_FROM}{source}|"
    return [(m, d, e, n[len(prefix):], v) for m, d, e, n, v in counters if n.startswith(prefix)]


def invalid(field: str) -> str:
    """The counter of events whose `field` the gateway dropped as invalid (an email without
    an @, a phone number that cannot exist)."""
    return _INVALID + field


def invalid_field(counter: str) -> str | None:
    return counter[len(_INVALID):] if counter.startswith(_INVALID) else None


def rejected(field: str) -> str:
    """The counter of events refused at ingest for a fault in `field` (a field the schema
    knows, else `other`: a stranger's field names must not make a counter each)."""
    return _REJECTED + rejection_reason(field)


def rejected_reason(counter: str) -> str | None:
    return counter[len(_REJECTED):] if counter.startswith(_REJECTED) else None


def mode_includes(mode: str, test: bool) -> bool:
    """Whether a view of `mode` (live, test or all) shows a test (or live) event."""
    return mode == "all" or test == (mode == "test")


def in_mode(counters: Sequence[tuple[int, str, str, str, int]],
            mode: str) -> list[tuple[int, str, str, str, int]]:
    """Counter rows of live events, of test events, or of all, under their plain names."""
    return [(m, d, e, n.removeprefix(TEST_COUNTER), v) for m, d, e, n, v in counters
            if mode_includes(mode, n.startswith(TEST_COUNTER))]


SHARED_EVENT_ID = "shared_event_id"  # derived keys counted beside the quality fields
IP_USER_AGENT = "ip_user_agent"
SHARED_ID, HAS_IP_USER_AGENT = presence(SHARED_EVENT_ID), presence(IP_USER_AGENT)
_HAS = {name: presence(name) for name in QUALITY_FIELDS}


def received_counters(data: dict[str, Any], shared_id: bool) -> tuple[str, ...]:
    """The counters one received 2.0 item adds to: `received`, and one per user field and
    recommended property it carries (IP and user agent also as the pair they match as)."""
    user, props = data.get("user") or {}, data.get("properties") or {}
    names = [RECEIVED, *(_HAS[f] for f in USER_FIELDS if user.get(f)),
             *(_HAS[f] for f in PROPERTY_FIELDS if props.get(f) not in (None, "", []))]
    if user.get("ip") and user.get("user_agent"):
        names.append(HAS_IP_USER_AGENT)
    if shared_id:
        names.append(SHARED_ID)
    return tuple(names)


class Metrics:
    """This process's Prometheus metrics, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events = PrometheusCounter("tiktok_gateway_events", "Events by destination, TikTok event and "
                              "outcome", ["destination", "event", "outcome"], registry=self.registry)
        self.requests = PrometheusCounter("tiktok_gateway_requests", "Requests to TikTok by destination and "
                                "TikTok code", ["destination", "code"], registry=self.registry)
        self.latency = Histogram("tiktok_gateway_request_seconds", "TikTok request latency",
                                 ["destination"], registry=self.registry,
                                 buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.pending = Gauge("tiktok_gateway_outbox_pending", "Events waiting for delivery",
                             registry=self.registry)
        self.dead = Gauge("tiktok_gateway_outbox_dead", "Dead-lettered events",
                          registry=self.registry)
        self.oldest = Gauge("tiktok_gateway_outbox_oldest_pending_seconds",
                            "Age of the oldest undelivered event", registry=self.registry)
        self.clock_offset = Gauge("tiktok_gateway_clock_offset_seconds",
                                  "TikTok's clock minus this machine's (from its answers' Date)",
                                  registry=self.registry)


class CounterBatch:
    """The counts of one ingest request, written in the same transaction as its events."""

    def __init__(self) -> None:
        self._counts: dict[CounterKey, int] = {}
        # Received events by the set of counters they add to: the events of one request
        # mostly carry the same fields, so each costs one addition rather than a dozen.
        self._received: dict[tuple[str, str, tuple[str, ...], bool, str], int] = {}
        self._minute = int(time.time() // 60)

    @property
    def counts(self) -> dict[CounterKey, int]:
        if self._received:
            received, self._received = self._received, {}
            for (destination, event, names, test, source), n in received.items():
                for name in names:
                    self.add(destination, event, name, n, test=test, source=source)
        return self._counts

    def add(self, destination: str, event: str, name: str, n: int = 1, *,
            test: bool = False, source: str = "") -> None:
        """Count `n`; a quality counter with its `source` is counted again under that source
        (for the data-quality page's source filter)."""
        key = (self._minute, destination, event, counter_name(name, test))
        self._counts[key] = self._counts.get(key, 0) + n
        if source and (name == RECEIVED or name.startswith((_PRESENCE, _INVALID))):
            self.add(destination, event, from_source(source, name), n, test=test)

    def received(self, destination: str, event: str, data: dict[str, Any],
                 shared_id: bool, *, test: bool = False, source: str = "") -> None:
        """An event routed to a destination: count it and the fields it carries (also under
        its source: server, browser, webhook or ga4)."""
        key = (destination, event, received_counters(data, shared_id), test, source)
        self._received[key] = self._received.get(key, 0) + 1


class Telemetry:
    """The request log and best-effort counts in memory, flushed in the background."""

    def __init__(self, store: TelemetryStore, records: RecordReader | None = None,
                 *, interval: float = 2.0, destinations: Sequence[str] = ()) -> None:
        self.store = store
        self.destinations = list(destinations)
        self.records = records
        self.interval = interval
        self.metrics = Metrics()
        # Prometheus children by labels: `labels()` takes a lock and builds keys on every call.
        self._event_counters: dict[tuple[str, str, str], Any] = {}
        self._counts: dict[CounterKey, int] = {}
        self._requests: list[RequestLog] = []
        self._dropped: list[DroppedEvent] = []
        self._browser_dropped = 0  # of those, from browser keys
        self.dropped_lost = 0  # records not kept because a flood outran the flushes
        self._legs: list[Leg] = []
        self._pixel_legs = 0  # of those, pixel legs
        self.legs_lost = 0
        # Destinations whose pages report pixel legs (/tt.js): only their stored events get a
        # server leg, so that a shop without the snippet pays nothing for pairing.
        self.pairing: set[str] = set()
        self._pairing_checked = 0.0
        self._task: asyncio.Task[None] | None = None

    def observe(self, batch: CounterBatch) -> None:
        """Add a request's counts to this process's Prometheus counters."""
        for (_minute, destination, event, name), n in batch.counts.items():
            name = name.removeprefix(TEST_COUNTER)  # Prometheus: test and live together
            # inline: ten counters an event, on ingest
            if not name.startswith((_PRESENCE, _INVALID, _FROM)):
                self._event_counter(destination, event, name).inc(n)

    def _event_counter(self, destination: str, event: str, name: str) -> Any:
        key = (destination, event, name)
        counter = self._event_counters.get(key)
        if counter is None:
            counter = self._event_counters[key] = self.metrics.events.labels(*key)
        return counter

    def later(self, batch: CounterBatch) -> None:
        """Counts with no stored event to ride along: written with the next flush."""
        for key, n in batch.counts.items():
            self._counts[key] = self._counts.get(key, 0) + n

    def outcome(self, destination: str, events: Iterable[str], name: str) -> None:
        """Prometheus only: the store counts outcomes itself as it records them."""
        for event, n in Counter(events).items():
            self._event_counter(destination, event, name).inc(n)

    def has_room_for_dropped(self, source: str) -> bool:
        """Whether a filtered or rejected record from `source` would be kept (ingest builds
        none otherwise: a flood of junk must not cost a redacted copy each)."""
        if source == BROWSER and self._browser_dropped >= MAX_BROWSER_DROPPED:
            return False
        return len(self._dropped) < MAX_DROPPED

    def dropped(self, records: Sequence[DroppedEvent]) -> None:
        """Filtered and rejected events, for search: written with the next flush. A flood of
        them keeps at most MAX_DROPPED waiting (MAX_BROWSER_DROPPED from browser keys); the
        counters still count every one."""
        for record in records:
            if not self.has_room_for_dropped(record.source):
                self.dropped_lost += 1
                continue
            self._dropped.append(record)
            self._browser_dropped += record.source == BROWSER

    def pairs(self, destination: str) -> bool:
        """Whether events of `destination` get a server leg (its pages report pixel legs)."""
        return destination in self.pairing

    async def refresh_pairing(self, destinations: Sequence[str], *, now: float | None = None,
                              ) -> None:
        """Learn, at most once a minute, which destinations other processes saw pixel legs
        for in the last PAIRING_ACTIVE seconds."""
        now = time.time() if now is None else now
        if now - self._pairing_checked < PAIRING_CHECK_EVERY:
            return
        self._pairing_checked = now
        self.pairing = await self.store.pixel_reporting(destinations, now - PAIRING_ACTIVE)

    def legs(self, legs: Sequence[Leg], *, pixel: bool = False) -> None:
        """Server legs (or, with `pixel`, the page's pixel legs), for pairing: written with
        the next flush. At most MAX_LEGS wait, MAX_PIXEL_LEGS of them pixel legs: pairing is
        evidence, and a flood must neither grow memory nor fill the store."""
        room = MAX_LEGS - len(self._legs)
        if pixel:
            room = min(room, MAX_PIXEL_LEGS - self._pixel_legs)
        kept = list(legs[:max(room, 0)])
        self._legs.extend(kept)
        self._pixel_legs += len(kept) if pixel else 0
        if pixel:
            self.pairing.update(leg.destination for leg in kept)
        self.legs_lost += len(legs) - len(kept)

    def request(self, log: RequestLog) -> None:
        self._requests.append(log)
        if log.outcome == PARTIAL_REJECTS:
            return  # part of a request already counted
        self.metrics.requests.labels(log.destination, str(log.code)).inc()
        self.metrics.latency.labels(log.destination).observe(log.latency)

    async def flush(self) -> None:
        counts, requests, dropped, legs = self._counts, self._requests, self._dropped, self._legs
        self._counts, self._requests, self._dropped, self._legs = {}, [], [], []
        self._browser_dropped = self._pixel_legs = 0
        if not (counts or requests or dropped or legs):
            return
        try:
            await self.store.add(counts, requests, dropped, legs)
        except Exception:
            # Kept for the next flush (the store is down for a while): counters add up in
            # place; the request log and records keep their newest, within bounds.
            for key, n in counts.items():
                self._counts[key] = self._counts.get(key, 0) + n
            self._requests = [*requests, *self._requests][-MAX_DROPPED:]
            self._dropped = [*dropped, *self._dropped][-MAX_DROPPED:]
            self._legs = [*legs, *self._legs][-MAX_LEGS:]
            raise

    async def refresh_gauges(self) -> None:
        if self.records is None:
            return
        backlog = await self.records.backlog()
        self.metrics.pending.set(backlog.pending)
        self.metrics.dead.set(backlog.dead)
        oldest = backlog.oldest_pending_at
        self.metrics.oldest.set(time.time() - oldest if oldest else 0)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="telemetry")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
                await self.refresh_gauges()
                await self.refresh_pairing(self.destinations)
            except OutboxError as exc:  # the store is down: the dispatcher says so already
                logger.debug("could not write telemetry: %s", exc.message)
            except Exception:  # counters are best effort; never stop ingest for them
                logger.exception("could not write telemetry")
