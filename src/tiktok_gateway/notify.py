"""Alert messages to webhook URLs: Slack-compatible or plain JSON, signed, retried.

Each message goes to every configured webhook once; a receiver that is down (no answer, or
an answer other than 2xx) gets it again with backoff, for up to a day. At most MAX_QUEUED
deliveries wait: alerts must not grow memory while a receiver is gone for good.

The JSON body is signed with the webhook's secret: `X-TikTok-Gateway-Signature:
sha256=<hex>` is the HMAC-SHA256 of `<X-TikTok-Gateway-Timestamp>.<body>`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from .config import AlertWebhookSettings, resolve_secret
from .outbox import FIRING, AlertRecord

logger = logging.getLogger("tiktok_gateway.alerts")
MAX_QUEUED = 1000
GIVE_UP_AFTER = 86400.0
SIGNATURE, TIMESTAMP = "X-TikTok-Gateway-Signature", "X-TikTok-Gateway-Timestamp"


def as_json(alert: AlertRecord) -> dict[str, Any]:
    """The plain JSON message of an incident's start or end."""
    return {"source": "tiktok-gateway", "rule": alert.rule, "destination": alert.destination,
            "state": alert.state, "since": int(alert.since),
            "resolved_at": int(alert.resolved_at) if alert.resolved_at else None,
            "message": alert.message}


def as_text(alert: AlertRecord) -> str:
    """The one line a chat shows."""
    mark = "FIRING" if alert.state == FIRING else "RESOLVED"
    return f"[tiktok-gateway] {mark} {alert.rule} ({alert.destination}): {alert.message}"


@dataclass
class Webhook:
    url: str
    format: str
    secret: bytes | None

    @classmethod
    def of(cls, settings: AlertWebhookSettings) -> Webhook | None:
        url = resolve_secret(settings.url)
        secret = resolve_secret(settings.secret) if settings.secret else None
        if url is None:
            logger.warning("an alert webhook's url (%s...) is not set: it gets no alerts",
                           settings.url.split(":")[0])
            return None
        return cls(url.get_secret_value(), settings.format,
                   secret.get_secret_value().encode() if secret else None)

    def request(self, alert: AlertRecord, now: float) -> tuple[bytes, dict[str, str]]:
        body = orjson.dumps({"text": as_text(alert)} if self.format == "slack" else as_json(alert))
        headers = {"Content-Type": "application/json", "User-Agent": "tiktok-gateway-alerts"}
        if self.secret:
            stamp = str(int(now))
            digest = hmac.new(self.secret, stamp.encode() + b"." + body, hashlib.sha256)
            headers.update({TIMESTAMP: stamp, SIGNATURE: "sha256=" + digest.hexdigest()})
        return body, headers


@dataclass(order=True)
class _Delivery:
    due: float
    first: float = field(compare=False)
    attempts: int = field(compare=False)
    webhook: Webhook = field(compare=False)
    alert: AlertRecord = field(compare=False)


class Notifier:
    """Sends notifications in the background; `send` never blocks nor fails."""

    def __init__(self, webhooks: list[AlertWebhookSettings], *,
                 transport: httpx.AsyncBaseTransport | None = None, timeout: float = 10.0,
                 retry_base: float = 5.0, retry_cap: float = 300.0) -> None:
        self.webhooks = [w for w in map(Webhook.of, webhooks) if w is not None]
        self._client = httpx.AsyncClient(transport=transport, timeout=timeout,
                                         follow_redirects=False)
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self._queue: list[_Delivery] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.lost = 0

    def send(self, alert: AlertRecord) -> None:
        """Queue the message of an incident's start (FIRING) or end for every webhook."""
        now = time.time()
        for webhook in self.webhooks:
            if len(self._queue) >= MAX_QUEUED:
                self.lost += 1
                continue
            self._queue.append(_Delivery(now, now, 0, webhook, alert))
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="alert-notifier")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        # One last try for what waits (a resolved message at shutdown), briefly.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await self._deliver_due(time.time() + self.retry_cap)
        await self._client.aclose()

    async def _run(self) -> None:
        while True:
            await self._deliver_due(time.time())
            self._wake.clear()
            wait = min((d.due for d in self._queue), default=time.time() + 60) - time.time()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(wait, 0.05))

    async def _deliver_due(self, now: float) -> None:
        due = [d for d in self._queue if d.due <= now]
        self._queue = [d for d in self._queue if d.due > now]
        for delivery in sorted(due):
            if not await self._post(delivery):
                self._retry_later(delivery)

    async def _post(self, delivery: _Delivery) -> bool:
        body, headers = delivery.webhook.request(delivery.alert, time.time())
        try:
            response = await self._client.post(delivery.webhook.url, content=body,
                                               headers=headers)
        except httpx.HTTPError as exc:
            logger.warning("alert webhook unreachable (%s): will retry", type(exc).__name__)
            return False
        if response.is_success:
            return True
        logger.warning("alert webhook answered HTTP %s: will retry", response.status_code)
        return False

    def _retry_later(self, delivery: _Delivery) -> None:
        now = time.time()
        if now - delivery.first > GIVE_UP_AFTER:
            self.lost += 1
            logger.error("gave up on an alert message after a day of failed deliveries")
            return
        delivery.attempts += 1
        delivery.due = now + min(self.retry_cap, self.retry_base * 2 ** min(delivery.attempts - 1, 20))
        self._queue.append(delivery)
