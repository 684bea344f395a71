"""Workers that move events from the outbox to TikTok.

Each worker: claim a batch (one destination, one test code) -> send it in requests under
the byte limit -> mark it sent, or ask `retry.py` what a failure means: retry later (after
pausing the token on a rate limit), split to isolate bad events (so one poison event never
holds back the rest), or dead-letter. A rate limiter per access token keeps under TikTok's
QPS. The dispatcher decides nothing about TikTok's codes itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from .clock import ReferenceClock
from .exceptions import DeliveryError, OutboxError, TransportError
from .outages import OutageLog
from .outbox import PARTIAL_REJECTS, Outbox, OutboxRecord, Outcome, RequestLog
from .ratelimit import Limiter
from .retry import Action, RetryPolicy
from .telemetry import DEAD, DELIVERED, RETRIED, Telemetry
from .tiktok import schema
from .tiktok.client import Delivery, TikTokClient

logger = logging.getLogger("tiktok_gateway.dispatch")


@dataclass
class Sender:
    """Everything needed to send one destination's events."""

    destination: str
    pixel_id: str
    client: TikTokClient
    limiter: Limiter
    event_source: str = "web"


@dataclass
class DispatchSettings:
    batch_size: int = schema.MAX_EVENTS_PER_REQUEST
    linger: float = 0.2
    workers: int = 2
    lease: float = 60.0
    poll_interval: float = 1.0
    max_request_bytes: int = schema.MAX_REQUEST_BYTES


class Dispatcher:
    """Runs `settings.workers` delivery loops until stopped; `notify()` wakes them."""

    def __init__(self, outbox: Outbox, senders: dict[str, Sender], policy: RetryPolicy,
                 settings: DispatchSettings | None = None,
                 telemetry: Telemetry | None = None, clock: ReferenceClock | None = None) -> None:
        self.outbox = outbox
        self.clock = clock or ReferenceClock()
        self.telemetry = telemetry
        self.senders = senders
        self.policy = policy
        self.settings = settings or DispatchSettings()
        self.last_failure: tuple[float, str] | None = None  # (monotonic time, why)
        self.outages = OutageLog()  # TikTok failing and recovering, in the log
        self._store_warned = -1e9
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def running(self) -> bool:
        return bool(self._tasks) and not any(t.done() for t in self._tasks)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._worker(), name=f"dispatch-{i}")
                       for i in range(self.settings.workers)]

    def notify(self) -> None:
        self._wake.set()

    async def stop(self, timeout: float = 30.0) -> None:
        """Finish the batches in flight (drain), then stop; leases cover anything cut short."""
        self._stopping = True
        self._wake.set()
        done, pending = await asyncio.wait(self._tasks, timeout=timeout) if self._tasks else ((), ())
        for task in pending:
            task.cancel()
        for task in done:
            if not task.cancelled() and task.exception():
                logger.error("dispatch worker failed: %r", task.exception())

    async def _worker(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_interval)
            self._wake.clear()
            if self.settings.linger and not self._stopping:
                await asyncio.sleep(self.settings.linger)  # let a batch fill up
            try:
                await self.drain_once()
            except OutboxError as exc:  # the store is down: say so once a minute, not a trace a second
                self.last_failure = (time.monotonic(), exc.message[:300])
                if time.monotonic() - self._store_warned > 60:
                    self._store_warned = time.monotonic()
                    logger.warning("the store is unavailable, delivery waits: %s", exc.message)
                await asyncio.sleep(self.settings.poll_interval)
            except Exception as exc:  # keep the worker alive; the lease returns the events
                self.last_failure = (time.monotonic(), str(exc)[:300])
                logger.exception("dispatch failed; retrying after the poll interval")
                await asyncio.sleep(self.settings.poll_interval)

    async def drain_once(self) -> int:
        """Send claimable batches until none is left; return how many events were handled.

        A group (destination and test code) that gave a part-filled batch is caught up: when
        it comes round again in the same pass, its events arrived since, and the pass ends so
        that they wait for the linger and go as one batch, not as a stream of small ones.
        """
        handled = 0
        caught_up: set[tuple[str, str]] = set()
        while not self._stopping:
            records = await self.outbox.claim(self.settings.batch_size, self.settings.lease)
            if not records:
                break
            group = (records[0].destination, records[0].test_event_code)
            await self.deliver(records)
            handled += len(records)
            if len(records) < self.settings.batch_size:
                if group in caught_up:
                    break
                caught_up.add(group)
        return handled

    async def deliver(self, records: Sequence[OutboxRecord]) -> None:
        """Send one claimed batch, in requests under the byte limit, and record what happened
        to each event."""
        sender = self.senders.get(records[0].destination)
        if sender is None:
            outcome = Outcome(None, f"destination {records[0].destination!r} is not configured")
            await self._dead_letter(records, outcome)
            return
        budget = self.settings.max_request_bytes - schema.envelope_bytes(
            sender.pixel_id, test_event_code=records[0].test_event_code or None,
            event_source=sender.event_source, partner_name=sender.client.partner_name)
        # Sizes in bytes as sent (UTF-8): a product name in Greek takes two bytes a letter.
        sizes = [len(p) if p.isascii() else len(p.encode()) for p in (r.payload for r in records)]
        for run in schema.byte_chunks(sizes, budget):
            await self._deliver_request(sender, records[run])

    async def _deliver_request(self, sender: Sender, records: Sequence[OutboxRecord]) -> None:
        started = time.perf_counter()
        try:
            delivery = await self._send(sender, records)
        except DeliveryError as exc:
            self._log_failure(records, exc, time.perf_counter() - started)
            await self._failed(sender, records, exc)
            return
        self.outages.succeeded(records[0].destination)
        self._log_request(records, "partial" if delivery.partial else "delivered",
                          Outcome(delivery.response.code, delivery.response.message,
                                  delivery.request_id), delivery.http_status, delivery.latency)
        await self._delivered(records, delivery)

    def _log_request(self, records: Sequence[OutboxRecord], outcome: str, answer: Outcome,
                     http_status: int | None, latency: float, *,
                     events: int | None = None) -> None:
        if self.telemetry is None:
            return
        self.telemetry.request(RequestLog(
            time.time(), records[0].destination, len(records) if events is None else events,
            bool(records[0].test_event_code),
            outcome, answer.code, answer.message, answer.request_id, http_status, latency))

    def _log_failure(self, records: Sequence[OutboxRecord], exc: DeliveryError,
                     latency: float) -> None:
        status = exc.status if isinstance(exc, TransportError) else 200
        answer = Outcome(getattr(exc, "code", None), getattr(exc, "tiktok_message", exc.message),
                         getattr(exc, "request_id", None))
        self._log_request(records, "retry" if exc.retryable else "rejected", answer, status,
                          latency)

    def _tally(self, records: Sequence[OutboxRecord], name: str) -> None:
        if self.telemetry is not None and records:
            self.telemetry.outcome(records[0].destination, (r.event_name for r in records), name)

    async def _send(self, sender: Sender, records: Sequence[OutboxRecord]) -> Delivery:
        await sender.limiter.acquire()
        test_code = records[0].test_event_code or None
        body = schema.build_request_bytes(
            sender.pixel_id, [r.payload for r in records], test_event_code=test_code,
            event_source=sender.event_source, partner_name=sender.client.partner_name)
        return await sender.client.send_bytes(body, len(records))

    async def _delivered(self, records: Sequence[OutboxRecord], delivery: Delivery) -> None:
        response = delivery.response
        outcome = Outcome(response.code, response.message, response.request_id)
        failed = response.failed_indexes() if delivery.partial else {}
        ok = [r for i, r in enumerate(records) if i not in failed]
        await self.outbox.mark_sent([r.id for r in ok], outcome)
        self._tally(ok, DELIVERED)
        rejected: dict[str, int] = {}
        for index, message in failed.items():
            if index < len(records):
                rejected[message] = rejected.get(message, 0) + 1
                await self._dead_letter([records[index]], Outcome(
                    response.code, message, response.request_id))
        for message, events in rejected.items():  # the error log's partial rejects, by reason
            self._log_request(records, PARTIAL_REJECTS, Outcome(
                response.code, message, response.request_id), delivery.http_status, 0.0,
                events=events)

    async def _failed(self, sender: Sender, records: Sequence[OutboxRecord],
                      exc: DeliveryError) -> None:
        retry_after = getattr(exc, "retry_after", None)
        verdict = self.policy.after_failure(exc.answer, batch_size=len(records),
                                            retry_after=retry_after)
        outcome = Outcome(getattr(exc, "code", None), getattr(exc, "tiktok_message", exc.message),
                          getattr(exc, "request_id", None))
        if verdict.pause:
            sender.limiter.pause(verdict.pause)
        if verdict.action is Action.RETRY:
            status = exc.status if isinstance(exc, TransportError) else 200
            self.outages.failed(records[0].destination, outcome.code, outcome.message, status)
            await self._retry(records, outcome, retry_after)
        elif verdict.action is Action.SPLIT:
            middle = len(records) // 2  # isolate the bad events; deliver the rest
            await self._deliver_request(sender, records[:middle])
            await self._deliver_request(sender, records[middle:])
        else:
            await self._dead_letter(records, outcome)

    async def _retry(self, records: Sequence[OutboxRecord], outcome: Outcome,
                     retry_after: float | None) -> None:
        """One retry time for the batch; events that would then be too old are dead-lettered."""
        attempts = max(r.attempts for r in records) + 1
        # Ages by TikTok's clock, times of retry by ours: event times moved onto our clock.
        offset = self.clock.offset
        newest = max(r.event_time for r in records) - offset
        decision = self.policy.decide(attempts, newest, time.time(), retry_after=retry_after)
        retry_at = decision.retry_at
        expired = [r for r in records if retry_at is None
                   or self.policy.expired(r.event_time - offset, retry_at)]
        if expired:
            reason = decision.reason or "gave up: the event would be too old for TikTok"
            await self._dead_letter(expired, Outcome(
                outcome.code, f"{outcome.message} ({reason})", outcome.request_id))
        retrying = [r for r in records if r not in expired]
        if retrying:
            await self.outbox.mark_failed([r.id for r in retrying], outcome, retry_at)
            self._tally(retrying, RETRIED)

    async def _dead_letter(self, records: Sequence[OutboxRecord], outcome: Outcome) -> None:
        await self.outbox.mark_failed([r.id for r in records], outcome, None)
        self._tally(records, DEAD)
        logger.warning("dead-lettered %d event(s) for %s: %s %s", len(records),
                       records[0].destination, outcome.code, outcome.message)
