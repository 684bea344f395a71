"""When to try again: pure functions, no I/O.

Exponential backoff with "equal jitter" (half the delay fixed, half random), at least
any Retry-After TikTok asked for, and never past the oldest event_time TikTok still
accepts: an event that could only arrive too old is dead-lettered instead.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryDecision:
    """Retry at `retry_at` (Unix time), or give up when it is None."""

    retry_at: float | None
    reason: str = ""

    @property
    def give_up(self) -> bool:
        return self.retry_at is None


@dataclass(frozen=True)
class RetryPolicy:
    """Args:
    base: delay before the first retry, in seconds.
    cap: the longest delay between two attempts.
    max_event_age: seconds after event_time past which TikTok no longer takes the event.
    max_attempts: give up after this many failed attempts (0: only the age bound applies).
    """

    base: float = 1.0
    cap: float = 300.0
    max_event_age: float = 7 * 86400
    max_attempts: int = 0

    def delay(self, attempts: int, rng: random.Random | None = None) -> float:
        """The wait after `attempts` failed attempts (1 for the first failure)."""
        ceiling = min(self.cap, self.base * 2 ** max(0, attempts - 1))
        jitter = float((rng or random).uniform(0, ceiling / 2))
        return float(ceiling / 2 + jitter)

    def decide(
        self,
        attempts: int,
        event_time: float,
        now: float,
        *,
        retry_after: float | None = None,
        rng: random.Random | None = None,
    ) -> RetryDecision:
        """Whether and when to retry an event that has failed `attempts` times."""
        if self.max_attempts and attempts >= self.max_attempts:
            return RetryDecision(None, f"gave up after {attempts} attempts")
        retry_at = now + max(self.delay(attempts, rng), retry_after or 0.0)
        if self.expired(event_time, retry_at):
            return RetryDecision(None, "gave up: the event would be too old for TikTok")
        return RetryDecision(retry_at)

    def expired(self, event_time: float, at: float) -> bool:
        """Whether an event sent at `at` would be older than TikTok accepts."""
        return at > event_time + self.max_event_age
