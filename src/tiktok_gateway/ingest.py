"""Ingest without HTTP: validate, route per destination, hash, dedup, store.

`Ingest.accept()` parses each event once (once per distinct property map), runs every
destination's route (time check, filters, then map and hash: raw personal data ends
there), and stores what passes in one outbox transaction, which also drops duplicates and
writes the request's counters. Nothing is acknowledged before that commit. The web layer,
the CLI and tests call it alike.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from .clock import ReferenceClock
from .config import DestinationSettings
from .events import Event
from .exceptions import DropEvent, FieldError, InvalidEvent, OutboxError
from .gcpause import collector_paused
from .identity import MAX_REDACTED_BYTES, looks_personal, redacted
from .mapping import PROPERTY_FIELDS, deterministic_event_id
from .merge import BROWSER
from .outbox import FILTERED, DroppedEvent, Leg, NewEvent, Outbox, RecordReader
from .outbox import REJECTED as REJECTED_STATE
from .pairing import SERVER, browser_and_os
from .pipeline import Route, Transformed
from .sources import segment
from .telemetry import (
    DUPLICATE,
    INGEST,
    REJECTED,
    USER_FIELDS,
    CounterBatch,
    Telemetry,
    filtered,
    invalid,
    rejected,
)
from .tiktok.schema import PLAIN_USER_FIELDS, PURCHASE_EVENTS

MAX_REASON = 300  # characters of a refusal kept in its record
BROWSER_REDACTED_BYTES = 2048  # of a browser key's refused event (the key is public)
OTHER = "other"  # the counters' one name for event names that are not known


@dataclass(frozen=True)
class RequestContext:
    """What ingest knows about the HTTP request an event came in.

    `ip` and `user_agent` are the connection's; they fill an event's user only when
    `from_shopper` says the request came from the shopper's browser (a browser key, or a
    server key configured to proxy the browser), never for a backend's own request.
    `test_only`: the source marked the events as tests (a shop's test order): they go to
    each destination's test code, or are filtered where it has none.
    """

    ip: str | None = None
    user_agent: str | None = None
    test_event_code: str | None = None
    from_shopper: bool = False
    test_only: bool = False
    custom_events: bool = True  # False: an event whose name is not a standard or configured one
    # is refused (browser keys: anyone may send them, and each name would be a counter series)
    source: str = "server"  # browser, server, webhook or ga4: see merge.outranks


@dataclass
class IngestResult:
    accepted: int = 0
    queued: int = 0
    duplicates: int = 0
    merged: int = 0  # duplicates whose match keys were added to the waiting first copy
    filtered: Counter[str] = field(default_factory=Counter)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "queued": self.queued,
                "duplicates": self.duplicates, "merged": self.merged,
                "filtered": dict(self.filtered),
                "rejected": self.rejected, "warnings": self.warnings}


@dataclass
class Destination:
    settings: DestinationSettings
    route: Route

    @property
    def name(self) -> str:
        return self.settings.name


_EVENT_FIELDS = frozenset(Event.model_fields)


def _adapted(raw: Any, index: int, result: IngestResult) -> Any:
    """A spec call as our event; and a warning naming top-level keys that are not read."""
    if segment.is_spec_call(raw):
        return segment.from_spec(raw)
    if isinstance(raw, dict) and not raw.keys() <= _EVENT_FIELDS:
        for key in sorted(raw.keys() - _EVENT_FIELDS):
            result.warnings.append({"index": index, "field": str(key)[:100],
                                    "message": "unknown field: ignored"})
    return raw


class Ingest:
    """The gateway's ingest: destinations, and where accepted events go.

    Args:
        destinations: every configured destination with its route.
        outbox: where events are stored (with their counters, in one transaction).
        records: read for the pending count that backpressure needs.
        telemetry: counts with no stored event to ride along, and Prometheus.
        on_stored: called after events were stored (wakes the dispatcher).
        inspect_sample_rate: share of live events whose whole payload the inspector keeps.
        max_pending: past this many waiting events, `overloaded()` is true.
        merge_window: seconds a purchase waits, so that other copies can be merged into it.
        browser_wait: seconds a browser key's purchase waits (a signed copy's values win).
    """

    def __init__(self, destinations: Sequence[Destination], outbox: Outbox,
                 records: RecordReader, telemetry: Telemetry, *,
                 on_stored: Callable[[], None] = lambda: None,
                 inspect_sample_rate: float = 0.1, max_pending: int = 1_000_000,
                 merge_window: float = 0.0, browser_wait: float = 0.0,
                 clock: ReferenceClock | None = None) -> None:
        self.destinations = list(destinations)
        # Destinations that read an event alike (the same property map) share one parse.
        self._parse_keys = [tuple(d.route.options.property_map.items()) for d in self.destinations]
        self._outbox = outbox
        self._records = records
        self._telemetry = telemetry
        self._on_stored = on_stored
        self._clock = clock or ReferenceClock()
        self._sample_rate = inspect_sample_rate
        self._max_pending = max_pending
        self._merge_window = merge_window
        self._browser_wait = max(merge_window, browser_wait)
        self._pending = 0
        self._pending_checked = 0.0
        self.last_store_failure: tuple[float, str] | None = None  # (monotonic time, why)

    async def overloaded(self, share: float = 1.0) -> bool:
        """Backpressure: whether the outbox holds more than `share` of the pending events
        allowed (browser keys get a share of their own)."""
        now = time.monotonic()
        if now - self._pending_checked > 1.0:
            self._pending_checked = now
            self._pending = await self._records.pending()
        return self._pending >= self._max_pending * share

    async def accept(self, raws: Sequence[Any], context: RequestContext) -> IngestResult:
        """Validate, route and durably store events; return the per-event verdicts."""
        now = self._clock.now()  # event ages as TikTok will judge them
        result = IngestResult()
        counts = CounterBatch()
        queued: list[NewEvent] = []
        dropped: list[DroppedEvent] = []
        with collector_paused():
            for index, raw in enumerate(raws):
                self._accept_one(raw, index, context, now, result, counts, queued, dropped)
        if queued:
            await self._store(queued, counts, result)
        else:
            self._telemetry.later(counts)
        self._telemetry.observe(counts)
        if dropped:
            self._telemetry.dropped(dropped)
        return result

    def _accept_one(self, raw: Any, index: int, context: RequestContext, now: float,
                    result: IngestResult, counts: CounterBatch, queued: list[NewEvent],
                    dropped: list[DroppedEvent]) -> None:
        """One event of a request: routed and queued, or rejected and counted."""
        raw = _adapted(raw, index, result)
        try:
            new = self._route_event(raw, context, now, result, index, counts, dropped)
        except InvalidEvent as exc:
            result.rejected.append({"index": index,
                                    "errors": [e.as_dict() for e in exc.errors]})
            name, test = self._counted_name(raw), _is_test(raw, context)
            first = exc.errors[0] if exc.errors else FieldError("body", "invalid")
            counts.add(INGEST, name, REJECTED, test=test)
            counts.add(INGEST, name, rejected(first.field), test=test)
            if self._telemetry.has_room_for_dropped(context.source):
                dropped.append(_rejected_record(raw, name, first, test, context))
            return
        result.accepted += 1
        queued.extend(new)

    async def _store(self, queued: list[NewEvent], counts: CounterBatch,
                     result: IngestResult) -> None:
        try:
            stored = await self._outbox.put(queued, counts.counts)
        except OutboxError as exc:
            self.last_store_failure = (time.monotonic(), exc.message)
            raise
        result.queued = sum(stored)
        result.duplicates = len(stored) - result.queued
        now = time.time()
        if self._telemetry.pairing:
            self._telemetry.legs([server_leg(event, now)
                                  for event, fresh in zip(queued, stored, strict=True)
                                  if fresh and self._telemetry.pairs(event.destination)])
        copies = [event for event, fresh in zip(queued, stored, strict=True) if not fresh]
        for event in copies:  # for Prometheus: the store counted them itself
            counts.add(event.destination, event.event_name, DUPLICATE)
        if copies:
            result.merged = sum(await self._outbox.merge(copies))
        self._on_stored()

    def _route_event(self, raw: Any, context: RequestContext, now: float,
                     result: IngestResult, index: int, counts: CounterBatch,
                     dropped: list[DroppedEvent]) -> list[NewEvent]:
        new: list[NewEvent] = []
        warnings: dict[tuple[str, str], FieldError] = {}
        parsed: dict[tuple[tuple[str, str], ...], Event] = {}
        for dest, key in zip(self.destinations, self._parse_keys, strict=True):
            event = parsed.get(key) or parsed.setdefault(key, dest.route.parse(raw))
            if not context.custom_events and not dest.route.options.names.tiktok_name(event.event)[1]:
                raise InvalidEvent([FieldError("event", f"{event.event[:100]!r} is neither a TikTok "
                                               "standard event nor one configured in event_names: "
                                               "not accepted from a browser key")])
            if context.from_shopper and dest.settings.fill_client_context:
                event = _with_context(event, context)
            try:
                if context.test_only and not dest.settings.test_event_code:
                    raise DropEvent("test order")
                item = dest.route.process(event, now=now)
            except DropEvent as drop:
                result.filtered[drop.reason] += 1
                name, _ = dest.route.options.names.tiktok_name(event.event)
                test = bool(event.test_event_code or context.test_event_code
                            or dest.settings.test_event_code)
                counts.add(dest.name, name, filtered(drop.reason), test=test)
                order_id = event.order_id or ""
                event_id = event.event_id or (
                    deterministic_event_id(order_id, name) if order_id else "")
                dropped.append(DroppedEvent(time.time(), dest.name, name, event_id, order_id,
                                            FILTERED, drop.reason, test, context.source))
                continue
            warnings.update(((w.field, w.message), w) for w in item.warnings)
            new.append(self._new_event(dest, item, context, counts))
        result.warnings.extend({"index": index, **w.as_dict()} for w in warnings.values())
        return new

    def _counted_name(self, raw: Any) -> str:
        """A rejected event's name for counters: a known name, else one bucket (`other`), so
        that nobody can make a counter series per name."""
        name = raw.get("event") if isinstance(raw, dict) else None
        if not isinstance(name, str) or not self.destinations:
            return OTHER
        tiktok, known = self.destinations[0].route.options.names.tiktok_name(name)
        return tiktok if known else OTHER

    def _new_event(self, dest: Destination, item: Transformed, context: RequestContext,
                   counts: CounterBatch) -> NewEvent:
        code = (item.test_event_code or context.test_event_code
                or dest.settings.test_event_code or "")
        shared_id = bool(item.source.event_id or item.source.order_id)
        sampled = bool(code) or random.random() < self._sample_rate
        try:
            payload = orjson.dumps(item.data).decode()
            # The inbound copy costs a model dump per event: made only for events the
            # inspector keeps.
            inbound = orjson.dumps(hashed_inbound(item)).decode() if sampled else None
        except TypeError:  # orjson writes at most 255 levels of nesting
            raise InvalidEvent([FieldError("properties", "nested more than 255 levels deep")]) from None
        counts.received(dest.name, item.name, item.data, shared_id, test=bool(code),
                        source=context.source)
        if item.warnings:  # values the gateway dropped (user.email, user.phone.1), per field
            dropped = {w.field.split(".")[1] for w in item.warnings if w.field.startswith("user.")}
            for field in dropped.intersection(USER_FIELDS):
                counts.add(dest.name, item.name, invalid(field), test=bool(code),
                           source=context.source)
        delay = 0.0
        if item.name in PURCHASE_EVENTS:
            delay = self._browser_wait if context.source == BROWSER else self._merge_window
        return NewEvent(dest.name, item.name, item.event_id, item.data["event_time"],
                        payload, code,
                        order_id=item.source.order_id or "", inbound=inbound, sampled=sampled,
                        source=context.source, delay=delay,
                        user_agent=item.data.get("user", {}).get("user_agent") or "")


def server_leg(event: NewEvent, at: float) -> Leg:
    """The server leg of a stored event, for pairing with the page's pixel."""
    browser, os = browser_and_os(event.user_agent)
    return Leg(event.destination, SERVER, event.event_name, event.event_id, event.order_id, at,
               event.source, browser, os, test=bool(event.test_event_code))


def _rejected_record(raw: Any, name: str, error: FieldError, test: bool,
                     context: RequestContext) -> DroppedEvent:
    """What can be kept of a refused event: its ids when they are plain text (and nothing
    personal), and the first fault."""
    fields = raw if isinstance(raw, dict) else {}
    props = fields.get("properties")
    props = props if isinstance(props, dict) else {}
    event_id, order_id = (_plain_id(fields.get("event_id"), 256),
                          _plain_id(props.get("order_id", fields.get("order_id")), 200))
    reason = f"{error.field}: {error.message}" if error.field else error.message
    return DroppedEvent(time.time(), INGEST, name, event_id, order_id, REJECTED_STATE,
                        reason[:MAX_REASON], test, context.source,
                        redacted(raw, BROWSER_REDACTED_BYTES if context.source == BROWSER
                                 else MAX_REDACTED_BYTES))


def _plain_id(value: Any, limit: int) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or looks_personal("id", value):
        return ""
    return value.strip()[:limit]


def _is_test(raw: Any, context: RequestContext) -> bool:
    own = raw.get("test_event_code") if isinstance(raw, dict) else None
    return bool(context.test_event_code or (isinstance(own, str) and own.strip()))


def hashed_inbound(item: Transformed) -> dict[str, Any]:
    """The event as received, for the inspector, with personal data replaced by its hash."""
    inbound = item.source.model_dump(mode="json", exclude_none=True)
    # Custom properties and page URLs as sent: with any personal data they held removed.
    props = inbound.get("properties") or {}
    sent_props = item.data.get("properties") or {}
    for key in [k for k in props if k not in PROPERTY_FIELDS]:  # the custom ones
        if key in sent_props:
            props[key] = sent_props[key]
        else:
            del props[key]
    if "page" in item.data:
        inbound["page"] = item.data["page"]
    user = inbound.get("user") or {}
    sent = item.data.get("user") or {}
    for key in list(user):
        if key in ("email", "phone", "external_id"):
            user[key] = sent.get(key) or "[invalid: not sent]"
        elif key == "country":
            continue  # not personal on its own; read for phone numbers, not sent
        elif key not in PLAIN_USER_FIELDS:
            user[key] = "[unknown field: not sent]"
    return inbound


def _with_context(event: Event, context: RequestContext) -> Event:
    """Fill the client's IP and user agent from the request when the event lacks them."""
    user = event.user
    updates = {}
    if context.ip and not user.get("ip"):
        updates["ip"] = context.ip
    if context.user_agent and not user.get("user_agent"):
        updates["user_agent"] = context.user_agent
    if not updates:
        return event
    return event.model_copy(update={"user": {**user, **updates}})
