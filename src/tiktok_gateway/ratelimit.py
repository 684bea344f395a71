"""Keeping under TikTok's request rate, per access token.

TikTok's limit applies per app (UNCONFIRMED: reported as 1,000 QPS), so every destination
sending with the same token shares one limiter. With PostgreSQL the limiter is shared by all
gateway processes too (see outbox/postgres.py).
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Limiter(Protocol):
    async def acquire(self) -> None:
        """Wait until one more request may be sent."""
        ...

    def pause(self, seconds: float) -> None:
        """Send nothing for `seconds` (TikTok answered 40100 or 429)."""
        ...

    def paused_for(self) -> float:
        """Seconds left of this process's last pause (0 when sending)."""
        ...


# No pause is believed past this, even one a store kept from an older version or a bug.
MAX_PAUSE = 3600.0


class RateLimiter:
    """A token bucket for one access token, which also pauses when TikTok says so."""

    def __init__(self, qps: float) -> None:
        self.qps = qps
        self._tokens = qps
        self._updated = time.monotonic()
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                if now < self._paused_until:
                    await asyncio.sleep(self._paused_until - now)
                    continue
                self._tokens = min(self.qps, self._tokens + (now - self._updated) * self.qps)
                self._updated = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.qps)

    def pause(self, seconds: float) -> None:
        seconds = min(max(0.0, seconds), MAX_PAUSE)
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    def paused_for(self) -> float:
        return max(0.0, self._paused_until - time.monotonic())
