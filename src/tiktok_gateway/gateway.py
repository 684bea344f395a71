"""The running gateway, assembled from Settings: ingest, the store, the delivery workers.

This is the composition root. It builds each part from the settings and hands the web
layer and the CLI a few methods: `accept` (ingest), the read side of the store (`find`,
`record`, `backlog`, `counters`, `requests`), `replay`, `readiness` and `metrics`. Nothing
outside this module reaches into the store, the dispatcher or telemetry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import generate_latest
from starlette.types import ASGIApp

from . import checklist, summary
from .alerts import AlertMonitor
from .checklist import Step
from .clock import ReferenceClock
from .config import DestinationSettings, Settings, resolve_secret
from .dispatch import Dispatcher, DispatchSettings, Sender
from .exceptions import ConfigError, OutboxError, SchemaError
from .gaps import GapReport, gap_report
from .ingest import Destination, Ingest, IngestResult, RequestContext
from .notify import Notifier
from .outbox import (
    DEAD,
    AlertRecord,
    Backlog,
    CopyRecord,
    Leg,
    OrderChange,
    OutboxRecord,
    RecordQuery,
    RequestLog,
    Store,
    open_store,
)
from .outbox.sqlite import file_of
from .pairing import Pairing, classify
from .pipeline import route_for
from .ratelimit import Limiter
from .retry import RetryPolicy
from .search import EventSearch, search_events
from .telemetry import CounterBatch, Telemetry, in_mode
from .tiktok.client import TikTokClient
from .tiktok.schema import build_request

logger = logging.getLogger("tiktok_gateway")
DEMO_BASE_URL = "http://tiktok-sandbox.invalid"
DEMO_TOKEN = "sandbox-demo-token"
PAUSED_NOT_READY = 10.0  # a pause longer than this makes /readyz say not ready
STORE_FAILURE_NOT_READY = 30.0  # a failed write this recent makes /readyz say not ready
SUMMARY_REQUESTS = 100_000  # request-log rows a summary reads (the newest)
MAX_REPLAY = 100_000  # dead letters one replay looks at


class Gateway:
    """One gateway process: ingest, the store and the delivery workers."""

    def __init__(self, settings: Settings, store: Store, ingest: Ingest,
                 dispatcher: Dispatcher, telemetry: Telemetry, *,
                 sandbox_app: ASGIApp | None = None) -> None:
        self.settings = settings
        self.destinations = ingest.destinations
        self.sandbox_app = sandbox_app
        self._store = store
        self._ingest = ingest
        self._dispatcher = dispatcher
        self._telemetry = telemetry
        self.alerts = AlertMonitor(
            settings.alerts, settings.destinations, store.telemetry, store.records,
            Notifier(settings.alerts.webhooks, retry_base=settings.alerts.webhook_retry_seconds),
        ) if settings.alerts.enabled else None
        # Validate, route and durably store events (`ingest.Ingest.accept`): bound directly,
        # since every ingest request calls it.
        self.accept: Callable[[Sequence[Any], RequestContext], Awaitable[IngestResult]] = (
            ingest.accept)

    @property
    def demo(self) -> bool:
        return self.sandbox_app is not None

    @classmethod
    def from_settings(cls, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None,
                      demo: bool = False) -> Gateway:
        """Fail closed: a destination whose access_token names a variable or file that does
        not resolve stops start-up. Demo mode (the built-in sandbox as TikTok) only when no
        destination has a token configured at all (`access_token = ""`), or with `demo`."""
        if not settings.destinations:
            raise ConfigError("no [[destinations]] configured: add one with a pixel_id")
        tokens = {d.name: resolve_secret(d.access_token) for d in settings.destinations}
        unconfigured = all(not d.access_token for d in settings.destinations)
        demo = transport is None and (demo or unconfigured)
        missing = [d for d in settings.destinations if tokens[d.name] is None]
        if missing and not demo:
            raise ConfigError("no access token for destination(s) " + ", ".join(
                f"{d.name} (access_token = {d.access_token.split(':')[0] or 'empty'}"
                f"{':...' if ':' in d.access_token else ''})" for d in missing)
                + ": set the environment variable or file it names; an unset token never "
                "falls back to demo mode")
        sandbox_app = None
        base_url = settings.tiktok.base_url
        if demo:
            from .sandbox import create_sandbox

            sandbox_app = create_sandbox()
            transport, base_url = httpx.ASGITransport(app=sandbox_app), DEMO_BASE_URL
        # Demo events live in a store of their own: going live never meets their dedup keys,
        # counters or dead letters.
        url = demo_storage_url(settings.storage.url) if sandbox_app else settings.storage.url
        store = open_store(url, settings.storage.options(settings.delivery))
        telemetry = Telemetry(store.telemetry, store.records, interval=settings.observe.flush_seconds,
                              destinations=[d.name for d in settings.destinations])
        clock = ReferenceClock()
        dispatcher = _dispatcher(settings, store, telemetry, _senders(
            settings, store, tokens, base_url, transport, clock, demo=sandbox_app is not None),
            clock)
        destinations = [Destination(d, route_for(d, settings.delivery))
                        for d in settings.destinations]
        ingest = Ingest(destinations, store.outbox, store.records, telemetry,
                        on_stored=dispatcher.notify,
                        inspect_sample_rate=settings.observe.inspect_sample_rate,
                        max_pending=settings.storage.max_pending,
                        merge_window=settings.delivery.merge_window_seconds,
                        browser_wait=settings.delivery.browser_purchase_wait_seconds,
                        clock=clock)
        return cls(settings, store, ingest, dispatcher, telemetry, sandbox_app=sandbox_app)

    async def start(self) -> None:
        """Start delivery. A store whose schema is too old stops the start with the fix; one
        that is unreachable does not (the gateway answers 503 until it is back)."""
        try:
            await self._store.records.pending()
            await self._telemetry.refresh_pairing(self._telemetry.destinations)
        except SchemaError as exc:
            logger.error("%s", exc.message)
            raise
        except OutboxError as exc:
            logger.warning("the store is not reachable yet (%s): answering 503 until it is",
                           exc.message)
        self._telemetry.start()
        self._dispatcher.start()
        if self.alerts is not None:
            self.alerts.start()
        if self.demo:
            logger.warning("demo mode: no TikTok access token is configured, so events go to "
                           "the built-in sandbox, not TikTok")

    async def stop(self) -> None:
        """Drain the batches in flight, then close clients and the store."""
        if self.alerts is not None:
            await self.alerts.stop()
        await self._dispatcher.stop()
        await self._telemetry.stop()
        for sender in self._dispatcher.senders.values():
            await sender.client.aclose()
        await self._store.close()
        logger.info("stopped: in-flight deliveries drained, outbox closed")

    def rotate_tokens(self, destinations: Sequence[DestinationSettings]) -> list[str]:
        """Take the access tokens of a reloaded config: all or none. Returns the destinations
        whose token changed; a token that does not resolve refuses the whole reload."""
        if self.demo:
            return []
        known = {d.name: d for d in destinations}
        fresh = {}
        for name in self._dispatcher.senders:
            if name not in known:
                continue
            token = resolve_secret(known[name].access_token)
            if token is None:
                raise ConfigError(f"destination {name!r}: its access_token "
                                  f"({known[name].access_token.split(':')[0]}:...) is not set")
            fresh[name] = token
        senders = self._dispatcher.senders
        changed = [n for n, token in fresh.items() if not senders[n].client.has_token(token)]
        for name in changed:
            senders[name].client.use_token(fresh[name])
        return changed

    # --- ingest ------------------------------------------------------------------------

    async def overloaded(self, *, browser: bool = False) -> bool:
        """Backpressure: whether the outbox holds more pending events than allowed (for a
        browser key, its share of them)."""
        share = self.settings.storage.browser_max_pending_share if browser else 1.0
        return await self._ingest.overloaded(share)

    def count(self, destination: str, event: str, name: str) -> None:
        """Count something that stores no event (a webhook with a bad signature or one not
        sent). Names are bounded: a body's text may be in them, and PostgreSQL text holds no NUL."""
        batch = CounterBatch()
        batch.add(destination, event, name.replace("\x00", "")[:120])
        self._telemetry.later(batch)

    async def record_change(self, order_id: str, change: str, platform: str) -> None:
        """Record that a platform cancelled, voided or refunded an order (never sent)."""
        await self._store.outbox.record_change(OrderChange(order_id, change, platform,
                                                           time.time()))

    # --- the read side -----------------------------------------------------------------

    async def find(self, query: RecordQuery) -> list[OutboxRecord]:
        return await self._store.records.find(query)

    async def record(self, id: int) -> OutboxRecord | None:
        return await self._store.records.get(id)

    async def copies(self, record_id: int) -> list[CopyRecord]:
        return await self._store.records.copies(record_id)

    async def changes(self, order_id: str) -> list[OrderChange]:
        return await self._store.records.changes(order_id) if order_id else []

    async def backlog(self) -> Backlog:
        return await self._store.records.backlog()

    async def counters(self, since: float, mode: str = "all") -> list[tuple[int, str, str, str, int]]:
        """Counter rows since a time, of live events, test events or all (see `in_mode`)."""
        return in_mode(await self._store.telemetry.counters(since), mode)

    async def requests(self, since: float, limit: int = SUMMARY_REQUESTS) -> list[RequestLog]:
        return await self._store.telemetry.requests(since, limit=limit)

    async def summary(self, window: str, mode: str) -> dict[str, Any]:
        """The headline figures of one window (see summary.py)."""
        end = time.time()
        return await self.summary_between(end - summary.WINDOWS[window], end, mode)

    async def summary_between(
        self, start: float, end: float, mode: str, *,
        counters: list[tuple[int, str, str, str, int]] | None = None,
        requests: list[RequestLog] | None = None,
    ) -> dict[str, Any]:
        """The headline figures from `start` to `end` (Unix seconds); `counters` (of the
        mode) and `requests` (of every mode) when the caller has read them already."""
        if counters is None:
            last_minute = int(end // 60)
            counters = [c for c in await self.counters(start, mode) if c[0] <= last_minute]
        if requests is None:
            requests = [r for r in await self.requests(start) if r.at <= end]
        return summary.summary(
            [d.settings.name for d in self.destinations], counters, requests,
            await self._store.records.pending_by_event(), summary.Window(start, end), mode)

    async def gap_report(self, order_ids: list[str]) -> GapReport:
        """The shop's true orders against what TikTok got (see gaps.py)."""
        return await gap_report(self._store.records, order_ids, self._store.telemetry)

    async def pairing(self, start: float, end: float, *, event: str | None = None,
                      mode: str = "all") -> Pairing:
        """The browser pixel against the server leg in [start, end) (see pairing.py)."""
        server, pixel_only = await self._store.telemetry.pair_counts(start, end, mode)
        return classify(start, end, server, pixel_only, event)

    async def legs(self, event_id: str, order_id: str = "",
                   destination: str | None = None) -> list[Leg]:
        """Both legs of one event (or of its order's events), for the inspector."""
        return await self._store.telemetry.legs_of(event_id, order_id, destination)

    def record_pixel_legs(self, legs: Sequence[Leg]) -> None:
        """The page's pixel legs, reported by /tt.js: evidence for pairing, never sent."""
        self._telemetry.legs(legs, pixel=True)

    async def setup_steps(self) -> list[Step]:
        """The set-up checklist, checked against the last week (see checklist.py)."""
        return await checklist.collect(self.settings.destinations, self._store.telemetry,
                                       demo=self.demo)

    async def alert_list(self, since: float) -> list[AlertRecord]:
        """Alert incidents firing, and those resolved since `since`, newest first."""
        return await self._store.telemetry.alerts(since)

    async def webhook_orders(self, since: float, limit: int) -> list[str]:
        return await self._store.records.webhook_orders(since, limit)

    async def search(self, query: EventSearch) -> tuple[int, list[dict[str, Any]]]:
        """Every event received that matches, whatever became of it (see search.py)."""
        return await search_events(self._store.records, self._store.telemetry, query)

    def request_body(self, record: OutboxRecord) -> dict[str, Any] | None:
        """The request TikTok got for a kept record, as the inspector shows it."""
        if not record.payload:
            return None
        sender = self._dispatcher.senders.get(record.destination)
        pixel = sender.pixel_id if sender else "(destination no longer configured)"
        return build_request(pixel, [record.data], test_event_code=record.test_event_code or None,
                             event_source=sender.event_source if sender else "web")

    # --- actions and health ------------------------------------------------------------

    async def dead_letters(self, limit: int = MAX_REPLAY) -> list[OutboxRecord]:
        """Dead letters, the most recently dead-lettered first."""
        records = await self._store.records.find(RecordQuery(state=DEAD, limit=limit))
        return sorted(records, key=lambda r: -(r.finished_at or 0))

    async def replay(self, ids: Sequence[int] | None = None) -> tuple[int, int]:
        """Queue dead letters again (all, or by id) and wake the workers. Ingest's age rule
        holds: an event TikTok would refuse as too old stays dead. Returns (queued, refused
        as too old)."""
        if ids is None:
            dead = await self.dead_letters()
        else:
            found = [await self._store.records.get(i) for i in ids]
            dead = [r for r in found if r is not None and r.state == DEAD]
        policy, clock = self._dispatcher.policy, self._dispatcher.clock
        young = [r.id for r in dead if policy.replayable(r.event_time - clock.offset, time.time())]
        count = await self._store.outbox.replay(ids=young) if young else 0
        self._dispatcher.notify()
        return count, len(dead) - len(young)

    async def readiness(self) -> tuple[list[str], Backlog | None]:
        """What stops this process from accepting and delivering, and the backlog."""
        problems = []
        try:
            backlog: Backlog | None = await self._store.records.backlog()
        except OutboxError as exc:
            problems.append(f"store unreachable: {exc.message}")
            backlog = None
        if not self._dispatcher.running:
            problems.append("delivery workers are not running")
        if backlog is not None and backlog.pending >= self.settings.storage.max_pending:
            problems.append(f"the outbox is full ({backlog.pending} events waiting, "
                            f"storage.max_pending {self.settings.storage.max_pending}): ingest "
                            "answers 503 until TikTok takes them")
        for failure in (self._ingest.last_store_failure, self._dispatcher.last_failure):
            if failure and time.monotonic() - failure[0] < STORE_FAILURE_NOT_READY:
                problems.append(f"the store failed to write: {failure[1]}")
        paused = max((s.limiter.paused_for() for s in self._dispatcher.senders.values()),
                     default=0.0)
        if paused > PAUSED_NOT_READY:
            problems.append(f"delivery paused for {paused:.0f} s more: TikTok asked to slow down")
        return problems, backlog

    async def metrics(self) -> bytes:
        """This process's Prometheus metrics, with the backlog gauges read now."""
        await self._telemetry.refresh_gauges()
        self._telemetry.metrics.clock_offset.set(self._dispatcher.clock.offset)
        return bytes(generate_latest(self._telemetry.metrics.registry))


def _dispatcher(settings: Settings, store: Store, telemetry: Telemetry,
                senders: dict[str, Sender], clock: ReferenceClock) -> Dispatcher:
    delivery = settings.delivery
    policy = RetryPolicy(base=delivery.retry_base_seconds, cap=delivery.retry_max_seconds,
                         max_event_age=delivery.max_event_age_days * 86400,
                         rate_limit_pause=delivery.rate_limit_pause_seconds,
                         max_retry_after=delivery.max_retry_after_seconds)
    return Dispatcher(store.outbox, senders, policy, DispatchSettings(
        batch_size=delivery.batch_size, linger=delivery.linger_ms / 1000,
        workers=delivery.workers, lease=delivery.lease_seconds,
        max_request_bytes=settings.tiktok.max_request_bytes), telemetry, clock)


def demo_storage_url(url: str) -> str:
    """Where demo mode keeps its events: beside the configured SQLite file (`gateway.db` ->
    `gateway.demo.db`); for any other store, ./data/demo.db."""
    if url.startswith("memory://"):
        return url
    if url.startswith("sqlite://"):
        path = Path(file_of(url))
        return f"sqlite:///{path.with_name(path.stem + '.demo' + (path.suffix or '.db'))}"
    return "sqlite:///./data/demo.db"


def _senders(settings: Settings, store: Store, tokens: dict[str, Any], base_url: str,
             transport: httpx.AsyncBaseTransport | None, clock: ReferenceClock, *,
             demo: bool) -> dict[str, Sender]:
    limiters: dict[str, Limiter] = {}
    senders = {}
    for dest in settings.destinations:
        token = DEMO_TOKEN if demo else tokens[dest.name].get_secret_value()
        # One limiter per token: TikTok's QPS limit applies per app, whatever the pixel.
        if token not in limiters:
            limiters[token] = store.limiter(token, settings.tiktok.rate_limit_qps)
        client = TikTokClient(token, base_url=base_url, timeout=settings.tiktok.timeout,
                              transport=transport, partner_name=settings.tiktok.partner_name,
                              clock=clock)
        senders[dest.name] = Sender(dest.name, dest.pixel_id, client, limiters[token],
                                    dest.event_source)
    return senders
