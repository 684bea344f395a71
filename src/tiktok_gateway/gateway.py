"""The running gateway: destinations, the outbox and the dispatcher, assembled from Settings.

`accept()` is ingest without HTTP: parse each event once, run every destination's route
(filters, map, hash), store what passes in one outbox transaction (which also drops
duplicates), and wake the dispatcher. Nothing is acknowledged before the commit.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from starlette.types import ASGIApp

from .config import DestinationSettings, Settings, resolve_secret
from .dispatch import Dispatcher, DispatchSettings, Sender
from .events import Event, parse_event
from .exceptions import ConfigError, DropEvent, FieldError, InvalidEvent
from .identity import hash_email, hash_external_id, hash_phone
from .observe import DUPLICATE, REJECTED, CounterBatch, Telemetry
from .outbox import NewEvent, Outbox, open_outbox
from .pipeline import ConsentFilter, EventNameFilter, Processor, Route, SessionFilter, Transformed
from .ratelimit import Limiter
from .retry import RetryPolicy
from .tiktok.client import TikTokClient
from .tiktok.schema import PLAIN_USER_FIELDS

logger = logging.getLogger("tiktok_gateway")
DEMO_BASE_URL = "http://tiktok-sandbox.invalid"
DEMO_TOKEN = "sandbox-demo-token"
INGEST = "(ingest)"  # the destination name for counters of events rejected before routing


@dataclass(frozen=True)
class RequestContext:
    """What ingest knows about the HTTP request an event came in."""

    ip: str | None = None
    user_agent: str | None = None
    test_event_code: str | None = None


@dataclass
class IngestResult:
    accepted: int = 0
    queued: int = 0
    duplicates: int = 0
    filtered: Counter[str] = field(default_factory=Counter)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "queued": self.queued,
                "duplicates": self.duplicates, "filtered": dict(self.filtered),
                "rejected": self.rejected, "warnings": self.warnings}


@dataclass
class Destination:
    settings: DestinationSettings
    route: Route

    @property
    def name(self) -> str:
        return self.settings.name


def build_route(dest: DestinationSettings, settings: Settings) -> Route:
    """A destination's transform options and filters, from its settings."""
    filters = dest.filters
    processors: list[Processor] = [ConsentFilter(filters.consent_category,
                                                 filters.require_consent)]
    if filters.allow_events or filters.block_events:
        processors.append(EventNameFilter.of(filters.allow_events, filters.block_events))
    if filters.session_values:
        processors.append(SessionFilter(filters.session_field, frozenset(
            _session_value(filters.session_field, v, dest) for v in filters.session_values)))
    return Route(dest.transform_options(settings.delivery), processors)


def _session_value(field_path: str, raw: str, dest: DestinationSettings) -> str:
    """Session values are written raw in the config and hashed like the events' field."""
    hashers = {
        "user.email": lambda v: hash_email(v).value,
        "user.phone": lambda v: hash_phone(v, dest.phone_region).value,
        "user.external_id": lambda v: hash_external_id(
            v, lowercase=dest.lowercase_external_id).value,
    }
    hasher = hashers.get(field_path)
    return (hasher(raw) or raw) if hasher else raw


class Gateway:
    """One gateway process: ingest logic, the store and the delivery workers."""

    def __init__(self, settings: Settings, outbox: Outbox, destinations: list[Destination],
                 dispatcher: Dispatcher, telemetry: Telemetry, *,
                 sandbox_app: ASGIApp | None = None) -> None:
        self.settings = settings
        self.outbox = outbox
        self.destinations = destinations
        self.dispatcher = dispatcher
        self.telemetry = telemetry
        self.sandbox_app = sandbox_app
        self._pending = 0
        self._pending_checked = 0.0

    @property
    def demo(self) -> bool:
        return self.sandbox_app is not None

    @classmethod
    def from_settings(cls, settings: Settings, *,
                      transport: httpx.AsyncBaseTransport | None = None) -> Gateway:
        if not settings.destinations:
            raise ConfigError("no [[destinations]] configured: add one with a pixel_id")
        tokens = {d.name: resolve_secret(d.access_token) for d in settings.destinations}
        missing = [name for name, token in tokens.items() if token is None]
        sandbox_app = None
        base_url = settings.tiktok.base_url
        if len(missing) == len(tokens) and transport is None:
            from .sandbox import create_sandbox

            sandbox_app = create_sandbox()
            transport, base_url = httpx.ASGITransport(app=sandbox_app), DEMO_BASE_URL
        elif missing:
            raise ConfigError("no access token for destination(s) " + ", ".join(missing) +
                              ": set the environment variable or file their access_token names")
        outbox = open_store(settings)
        senders = _senders(settings, outbox, tokens, base_url, transport,
                           demo=sandbox_app is not None)
        delivery = settings.delivery
        policy = RetryPolicy(base=delivery.retry_base_seconds, cap=delivery.retry_max_seconds,
                             max_event_age=delivery.max_event_age_days * 86400)
        telemetry = Telemetry(outbox.telemetry, outbox, interval=settings.observe.flush_seconds)
        dispatcher = Dispatcher(outbox, senders, policy, DispatchSettings(
            batch_size=delivery.batch_size, linger=delivery.linger_ms / 1000,
            workers=delivery.workers, lease=delivery.lease_seconds), telemetry)
        destinations = [Destination(d, build_route(d, settings)) for d in settings.destinations]
        return cls(settings, outbox, destinations, dispatcher, telemetry, sandbox_app=sandbox_app)

    async def start(self) -> None:
        self.telemetry.start()
        self.dispatcher.start()
        if self.demo:
            logger.warning("demo mode: no TikTok access token is configured, so events go to "
                           "the built-in sandbox, not TikTok")

    async def stop(self) -> None:
        """Drain the batches in flight, then close clients and the store."""
        await self.dispatcher.stop()
        await self.telemetry.stop()
        for sender in self.dispatcher.senders.values():
            await sender.client.aclose()
        await self.outbox.close()
        logger.info("stopped: in-flight deliveries drained, outbox closed")

    async def overloaded(self) -> bool:
        """Backpressure: whether the outbox holds more pending events than allowed."""
        now = time.monotonic()
        if now - self._pending_checked > 1.0:
            self._pending_checked = now
            self._pending = await self.outbox.pending()
        return self._pending >= self.settings.storage.max_pending

    async def accept(self, raws: Sequence[Any], context: RequestContext) -> IngestResult:
        """Validate, route and durably store events; return the per-event verdicts."""
        now = time.time()
        result = IngestResult()
        counts = CounterBatch()
        queued: list[NewEvent] = []
        for index, raw in enumerate(raws):
            try:
                event = parse_event(raw)
                new = self._route_event(event, context, now, result, index, counts)
            except InvalidEvent as exc:
                result.rejected.append({"index": index,
                                        "errors": [e.as_dict() for e in exc.errors]})
                name = raw.get("event") if isinstance(raw, dict) else None
                counts.add(INGEST, str(name or "(none)")[:100], REJECTED)
                continue
            result.accepted += 1
            queued.extend(new)
        if queued:
            stored = await self.outbox.put(queued, counts.counts)
            result.queued = sum(stored)
            result.duplicates = len(stored) - result.queued
            duplicates = [e for e, fresh in zip(queued, stored, strict=True) if not fresh]
            for stored_event in duplicates:  # for Prometheus: the store counted them itself
                counts.add(stored_event.destination, stored_event.event_name, DUPLICATE)
            self.dispatcher.notify()
        else:
            self.telemetry.later(counts)
        self.telemetry.observe(counts)
        return result

    def _route_event(self, event: Event, context: RequestContext, now: float,
                     result: IngestResult, index: int, counts: CounterBatch) -> list[NewEvent]:
        new: list[NewEvent] = []
        warnings: dict[tuple[str, str], FieldError] = {}
        for dest in self.destinations:
            source = _with_context(event, context) if dest.settings.fill_client_context else event
            try:
                item = dest.route.process(source, now=now)
            except DropEvent as drop:
                result.filtered[drop.reason] += 1
                name, _ = dest.route.options.names.tiktok_name(event.event)
                counts.add(dest.name, name, f"filtered:{drop.reason}")
                continue
            warnings.update(((w.field, w.message), w) for w in item.warnings)
            new.append(self._new_event(dest, item, context, counts))

        result.warnings.extend({"index": index, **w.as_dict()} for w in warnings.values())
        return new


    def _new_event(self, dest: Destination, item: Transformed, context: RequestContext,
                   counts: CounterBatch) -> NewEvent:
        code = (item.test_event_code or context.test_event_code
                or dest.settings.test_event_code or "")
        shared_id = bool(item.source.event_id or item.source.order_id)
        counts.received(dest.name, item.name, item.data, shared_id)
        sampled = bool(code) or random.random() < self.settings.observe.inspect_sample_rate
        # The inbound copy costs a model dump per event: made only for events the inspector keeps.
        inbound = orjson.dumps(hashed_inbound(item)).decode() if sampled else None
        return NewEvent(dest.name, item.name, item.event_id, item.data["event_time"],
                        orjson.dumps(item.data).decode(), code,
                        order_id=item.source.order_id or "", inbound=inbound, sampled=sampled)


def hashed_inbound(item: Transformed) -> dict[str, Any]:
    """The event as received, for the inspector, with personal data replaced by its hash."""
    inbound = item.source.model_dump(mode="json", exclude_none=True)
    user = inbound.get("user") or {}
    sent = item.data.get("user") or {}
    for key in list(user):
        if key in ("email", "phone", "external_id"):
            user[key] = sent.get(key) or "[invalid: not sent]"
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


def open_store(settings: Settings) -> Outbox:
    storage = settings.storage
    return open_outbox(storage.url, dedup_window=settings.delivery.dedup_window_hours * 3600,
                       retention=storage.retention_days * 86400, synchronous=storage.synchronous,
                       auto_migrate=storage.auto_migrate, pool_size=storage.pool_size)


def _senders(settings: Settings, outbox: Outbox, tokens: dict[str, Any], base_url: str,
             transport: httpx.AsyncBaseTransport | None, *, demo: bool) -> dict[str, Sender]:
    limiters: dict[str, Limiter] = {}
    senders = {}
    for dest in settings.destinations:
        token = DEMO_TOKEN if demo else tokens[dest.name].get_secret_value()
        # One limiter per token: TikTok's QPS limit applies per app, whatever the pixel.
        if token not in limiters:
            limiters[token] = outbox.rate_limiter(token, settings.tiktok.rate_limit_qps)
        limiter = limiters[token]
        client = TikTokClient(token, base_url=base_url, timeout=settings.tiktok.timeout,
                              transport=transport, partner_name=settings.tiktok.partner_name)
        senders[dest.name] = Sender(dest.name, dest.pixel_id, client, limiter, dest.event_source)
    return senders
