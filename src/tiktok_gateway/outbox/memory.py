"""InMemoryOutbox: the outbox contract in plain dicts, for tests and trials. Not durable."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter, deque
from collections.abc import Sequence

from ..pairing import DEDUP_WINDOW, PIXEL, SERVER, PixelOnlyGroup, ServerGroup
from ..ratelimit import RateLimiter
from . import (
    DEAD,
    FIRING,
    PENDING,
    RESOLVED,
    SENT,
    AlertRecord,
    Backlog,
    CopyRecord,
    CounterKey,
    DroppedEvent,
    Leg,
    NewEvent,
    OrderChange,
    OutboxRecord,
    OutboxStats,
    Outcome,
    RecordQuery,
    RequestLog,
    Store,
    StoreOptions,
    tally,
)
from ._rows import merge_counters, merged_copy

MAX_LEGS = 200_000


class InMemoryTelemetry:
    """Counters and the request log in memory."""

    def __init__(self) -> None:
        self.counts: dict[CounterKey, int] = {}
        self.log: list[RequestLog] = []
        self.dropped_log: deque[DroppedEvent] = deque(maxlen=100_000)  # memory: the newest
        self.legs: dict[tuple[str, str, str], Leg] = {}
        self.incidents: list[AlertRecord] = []

    async def add(self, counters: dict[CounterKey, int], requests: Sequence[RequestLog],
                  dropped: Sequence[DroppedEvent] = (), legs: Sequence[Leg] = ()) -> None:
        for key, value in counters.items():
            self.counts[key] = self.counts.get(key, 0) + value
        self.log.extend(requests)
        self.dropped_log.extend(dropped)
        for leg in legs:
            self.legs.setdefault((leg.destination, leg.side, leg.event_id), leg)
        while len(self.legs) > MAX_LEGS:  # memory: the newest
            del self.legs[next(iter(self.legs))]

    async def pair_counts(self, start: float, end: float, mode: str = "all",
                          ) -> tuple[list[ServerGroup], list[PixelOnlyGroup]]:
        pixel_orders = {(leg.destination, leg.order_id) for leg in self.legs.values()
                        if leg.side == PIXEL and leg.order_id}
        server_orders = {(leg.destination, leg.order_id) for leg in self.legs.values()
                         if leg.side == SERVER and leg.order_id}
        server: Counter[ServerGroup] = Counter()
        lone: Counter[PixelOnlyGroup] = Counter()
        for (dest, side, event_id), leg in self.legs.items():
            if not start <= leg.at < end:
                continue
            if side == SERVER and (mode == "all" or leg.test == (mode == "test")):
                pixel = self.legs.get((dest, PIXEL, event_id))
                server[ServerGroup(
                    dest, leg.event_name, pixel.event_name if pixel else "",
                    pixel.state if pixel else "",
                    bool(pixel and abs(pixel.at - leg.at) <= DEDUP_WINDOW),
                    not pixel and bool(leg.order_id) and (dest, leg.order_id) in pixel_orders,
                    (pixel.browser if pixel else "") or leg.browser,
                    (pixel.os if pixel else "") or leg.os, pixel.load if pixel else "", 0)] += 1
            elif side == PIXEL and mode != "test" and (dest, SERVER, event_id) not in self.legs \
                    and not (leg.order_id and (dest, leg.order_id) in server_orders):
                lone[PixelOnlyGroup(dest, leg.event_name, leg.state, leg.browser, leg.os,
                                    leg.load, 0)] += 1
        # Each group was counted under a key whose own count is 0: the counter holds it.
        return ([dataclasses.replace(g, count=n) for g, n in server.items()],
                [dataclasses.replace(g, count=n) for g, n in lone.items()])

    async def pixel_reporting(self, destinations: Sequence[str], since: float) -> set[str]:
        return {leg.destination for leg in self.legs.values()
                if leg.side == PIXEL and leg.at >= since and leg.destination in destinations}

    async def legs_of(self, event_id: str, order_id: str = "",
                      destination: str | None = None) -> list[Leg]:
        found = [leg for leg in self.legs.values()
                 if (leg.event_id == event_id or (order_id and leg.order_id == order_id))
                 and destination in (None, leg.destination)]
        return sorted(found, key=lambda leg: leg.at)[:20]

    async def open_alert(self, rule: str, destination: str, at: float, message: str) -> bool:
        if any(a.rule == rule and a.destination == destination and a.state == FIRING
               for a in self.incidents):
            return False
        self.incidents.append(AlertRecord(rule, destination, FIRING, at, None, message))
        return True

    async def close_alert(self, rule: str, destination: str, at: float) -> AlertRecord | None:
        for i, alert in enumerate(self.incidents):
            if alert.rule == rule and alert.destination == destination and alert.state == FIRING:
                self.incidents[i] = dataclasses.replace(alert, state=RESOLVED, resolved_at=at)
                return self.incidents[i]
        return None

    async def alerts(self, since: float, limit: int = 200) -> list[AlertRecord]:
        found = [a for a in self.incidents
                 if a.state == FIRING or (a.resolved_at or 0) >= since]
        return sorted(found, key=lambda a: -a.since)[:limit]

    async def dropped(self, query: RecordQuery) -> list[DroppedEvent]:
        found = [d for d in self.dropped_log if query.matches_ids(d.event_id, d.order_id) and all((
            query.event_id is None or d.event_id == query.event_id,
            query.order_id is None or d.order_id == query.order_id,
            query.destination is None or d.destination == query.destination,
            query.state is None or d.state == query.state,
            query.since is None or d.at >= query.since,
            not query.test_only or d.test))]
        return found[::-1][:query.limit]

    async def counters(self, since: float) -> list[tuple[int, str, str, str, int]]:
        minute = int(since // 60)
        return [(*key, value) for key, value in self.counts.items() if key[0] >= minute]

    async def requests(self, since: float, limit: int = 10_000) -> list[RequestLog]:
        return sorted((r for r in self.log if r.at >= since), key=lambda r: -r.at)[:limit]


class InMemoryOutbox:
    """Keeps everything in memory; same semantics as the durable backends."""

    def __init__(self, *, dedup_window: float = 48 * 3600,
                 order_window: float = 90 * 86400, max_delay: float = 3600.0) -> None:
        self.dedup_window = dedup_window
        self.max_delay = max_delay
        # 0 turns the long order window off: an order's event keeps the 48-hour one.
        self.order_window = order_window or dedup_window
        self.records: dict[int, OutboxRecord] = {}
        self.dead_at: dict[int, float] = {}
        self.sources: dict[int, str] = {}
        self.copy_log: list[CopyRecord] = []
        self.order_changes: list[OrderChange] = []
        self._seen: dict[tuple[str, str, str, str], float] = {}
        self._orders: dict[tuple[str, str, str, str], float] = {}
        self._claimed: set[int] = set()
        self._next_id = 1
        self._lock = asyncio.Lock()
        self._telemetry = InMemoryTelemetry()

    @property
    def telemetry(self) -> InMemoryTelemetry:
        return self._telemetry

    async def put(self, events: Sequence[NewEvent],
                  counters: dict[CounterKey, int] | None = None) -> list[bool]:
        now = time.time()
        stored = []
        async with self._lock:
            await self._telemetry.add(counters or {}, [])
            for event in events:
                seen = self._order_seen(event, now) if event.order_id else self._duplicate(event, now)
                if seen:
                    stored.append(False)
                    await self._telemetry.add(
                        tally([(event.destination, event.event_name, event.test_event_code)],
                              "duplicate", now), [])
                    continue
                self.records[self._next_id] = OutboxRecord(
                    id=self._next_id, destination=event.destination,
                    event_name=event.event_name, event_id=event.event_id,
                    event_time=event.event_time, payload=event.payload,
                    test_event_code=event.test_event_code, created_at=now,
                    available_at=now + event.delay, order_id=event.order_id,
                    inbound=event.inbound, sampled=event.sampled)
                self.sources[self._next_id] = event.source
                self._next_id += 1
                stored.append(True)
        return stored

    def _duplicate(self, event: NewEvent, now: float) -> bool:
        if not self.dedup_window:
            return False
        seen = self._seen.get(event.dedup_key)
        if seen is not None and seen > now - self.dedup_window:
            return True
        self._seen[event.dedup_key] = now
        return False

    def _order_seen(self, event: NewEvent, now: float) -> bool:
        key = event.order_key
        if key is None or not self.order_window:
            return False
        seen = self._orders.get(key)
        if seen is not None and seen > now - self.order_window:
            return True
        self._orders[key] = now
        return False

    async def merge(self, copies: Sequence[NewEvent]) -> list[bool]:
        now = time.time()
        records = []
        async with self._lock:
            for copy in copies:
                target = self._copy_target(copy)
                merging = (target is not None and target.state == PENDING
                           and target.id not in self._leased(now))
                found = (target.id, target.payload, self.sources.get(target.id, "")) if target else None
                record, payload = merged_copy(copy, found, merging=merging, now=now)
                if payload is not None and target is not None:
                    self.records[target.id] = dataclasses.replace(target, payload=payload)
                self.copy_log.append(record)
                records.append(record)
            await self._telemetry.add(merge_counters(copies, records, now), [])
        return [r.merged for r in records]

    def _copy_target(self, copy: NewEvent) -> OutboxRecord | None:
        return next((r for r in sorted(self.records.values(), key=lambda r: r.id)
                     if (r.destination, r.event_name, r.test_event_code)
                     == (copy.destination, copy.event_name, copy.test_event_code)
                     and (r.event_id == copy.event_id
                          or (copy.order_id and r.order_id == copy.order_id))), None)

    def _leased(self, now: float) -> set[int]:
        """Claimed records: their available_at was pushed forward by the lease."""
        return {r.id for r in self.records.values() if r.id in self._claimed and r.available_at > now}

    async def erase(self, hashes: Sequence[str]) -> int:
        async with self._lock:
            gone = [r.id for r in self.records.values()
                    if any(h in r.payload or h in (r.inbound or "") for h in hashes)]
            for id_ in gone:
                del self.records[id_]
            self.copy_log = [c for c in self.copy_log if c.record_id not in gone]
        return len(gone)

    async def record_change(self, change: OrderChange) -> None:
        self.order_changes.append(change)

    async def changes(self, order_id: str) -> list[OrderChange]:
        return sorted((c for c in self.order_changes if c.order_id == order_id), key=lambda c: c.at)

    async def copies(self, record_id: int) -> list[CopyRecord]:
        return [c for c in self.copy_log if c.record_id == record_id]

    async def claim(self, limit: int, lease: float) -> list[OutboxRecord]:
        now = time.time()
        async with self._lock:
            # Due later than any wait the gateway sets: scheduled before the clock went back.
            due = [r for r in self.records.values() if r.state == PENDING
                   and (r.available_at <= now or r.available_at > now + self.max_delay)]
            if not due:
                return []
            first = min(due, key=lambda r: (r.available_at, r.id))
            group = sorted((r for r in due if (r.destination, r.test_event_code)
                            == (first.destination, first.test_event_code)), key=lambda r: r.id)
            claimed = [dataclasses.replace(r, available_at=now + lease) for r in group[:limit]]
            self.records.update((r.id, r) for r in claimed)
            self._claimed.update(r.id for r in claimed)
        return claimed

    async def mark_sent(self, ids: Sequence[int], outcome: Outcome) -> None:
        now = time.time()
        async with self._lock:
            for id_ in ids:
                self._claimed.discard(id_)
                record = self.records[id_]
                keep = record.sampled or bool(record.test_event_code)
                self.records[id_] = dataclasses.replace(
                    record, state=SENT, last_result=outcome.as_json(), finished_at=now,
                    inbound=record.inbound if keep else None, payload=record.payload if keep else "")
            await self._tally(ids, "delivered", now)

    async def mark_failed(self, ids: Sequence[int], outcome: Outcome,
                          retry_at: float | None) -> None:
        async with self._lock:
            for id_ in ids:
                self._claimed.discard(id_)
                record = self.records[id_]
                state = PENDING if retry_at is not None else DEAD
                finished = time.time() if state == DEAD else None
                if finished:
                    self.dead_at[id_] = finished
                self.records[id_] = dataclasses.replace(
                    record, state=state, attempts=record.attempts + 1, finished_at=finished,
                    available_at=retry_at or record.available_at, last_result=outcome.as_json())
            await self._tally(ids, "retried" if retry_at is not None else "dead", time.time())

    async def _tally(self, ids: Sequence[int], name: str, now: float) -> None:
        rows = [(self.records[i].destination, self.records[i].event_name,
                 self.records[i].test_event_code) for i in ids]
        await self._telemetry.add(tally(rows, name, now), [])

    async def replay(self, destination: str | None = None, since: float | None = None,
                     ids: Sequence[int] | None = None) -> int:
        now = time.time()
        async with self._lock:
            chosen = [r for r in self.records.values() if r.state == DEAD
                      and (destination is None or r.destination == destination)
                      and (since is None or self.dead_at.get(r.id, 0) >= since)
                      and (ids is None or r.id in ids)]
            for record in chosen:
                self.records[record.id] = dataclasses.replace(
                    record, state=PENDING, attempts=0, available_at=now)
        return len(chosen)

    async def find(self, query: RecordQuery) -> list[OutboxRecord]:
        found = [r for r in self.records.values() if query.matches(r)]
        return sorted(found, key=lambda r: -r.id)[:query.limit]

    async def get(self, id: int) -> OutboxRecord | None:
        return self.records.get(id)

    async def backlog(self) -> Backlog:
        return Backlog.of(await self.stats())

    async def pending(self) -> int:
        return sum(1 for record in self.records.values() if record.state == PENDING)

    async def webhook_orders(self, since: float, limit: int) -> list[str]:
        seen: dict[str, float] = {}
        for r in self.records.values():
            if self.sources.get(r.id) == "webhook" and r.order_id and r.created_at >= since:
                seen[r.order_id] = max(seen.get(r.order_id, 0.0), r.created_at)
        for d in self._telemetry.dropped_log:
            if d.source == "webhook" and d.order_id and d.at >= since:
                seen[d.order_id] = max(seen.get(d.order_id, 0.0), d.at)
        return sorted(seen, key=lambda o: -seen[o])[:limit]

    async def find_copies(self, query: RecordQuery) -> list[CopyRecord]:
        found = [c for c in self.copy_log if query.matches_ids(c.event_id, c.order_id) and all((
            query.event_id is None or c.event_id == query.event_id,
            query.order_id is None or c.order_id == query.order_id,
            query.destination is None or c.destination == query.destination,
            query.since is None or c.received_at >= query.since))]
        return found[::-1][:query.limit]

    async def pending_by_event(self) -> list[tuple[str, str, bool, int]]:
        counts = Counter((r.destination, r.event_name, bool(r.test_event_code))
                         for r in self.records.values() if r.state == PENDING)
        return [(d, e, t, n) for (d, e, t), n in counts.items()]

    async def stats(self) -> OutboxStats:
        counts = Counter((r.destination, r.state) for r in self.records.values())
        oldest = min((r.created_at for r in self.records.values() if r.state == PENDING),
                     default=None)
        return OutboxStats.from_counts(((*key, n) for key, n in counts.items()), oldest)

    async def close(self) -> None:
        return None


def open_store(url: str, options: StoreOptions) -> Store:
    """`memory://`: one process owns it, so a limiter in memory is shared enough."""
    return Store.of(InMemoryOutbox(dedup_window=options.dedup_window,
                                   order_window=options.order_window,
                                   max_delay=options.max_delay),
                    lambda token, qps: RateLimiter(qps))
