"""What to do after a failed request, and when to try again: pure functions, no I/O.

`tiktok/codes.py` says what kind of answer a request got; `RetryPolicy.after_failure` says
what follows for each kind: retry the batch later (and pause the token after a rate limit),
split it to isolate bad events, or dead-letter it. Retries back off exponentially with
"equal jitter" (half the delay fixed, half random), at least any Retry-After TikTok asked
for, and never past the oldest event_time TikTok still accepts: an event that could only
arrive too old is dead-lettered instead.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum

from .tiktok.codes import Answer


class Action(Enum):
    RETRY = "retry"
    SPLIT = "split"
    DEAD_LETTER = "dead_letter"


@dataclass(frozen=True)
class FailureVerdict:
    """What the dispatcher does with a failed batch: `action`, and for how many seconds to
    pause every request with the same access token first."""

    action: Action
    pause: float = 0.0


@dataclass(frozen=True)
class RetryDecision:
    """Retry at `retry_at` (Unix time), or give up when it is None."""

    retry_at: float | None
    reason: str = ""

    @property
    def give_up(self) -> bool:
        return self.retry_at is None


REPLAY_MARGIN = 3600.0


@dataclass(frozen=True)
class RetryPolicy:
    """Args:
    base: delay before the first retry, in seconds.
    cap: the longest delay between two attempts.
    max_event_age: seconds after event_time past which TikTok no longer takes the event.
    max_attempts: give up after this many failed attempts (0: only the age bound applies).
    rate_limit_pause: how long a token sends nothing after a rate limit without Retry-After.
    max_retry_after: the most a Retry-After is believed: a proxy or a bug answering
        `Retry-After: 1e308` must not stop delivery for good.
    """

    base: float = 1.0
    cap: float = 300.0
    max_event_age: float = 7 * 86400
    max_attempts: int = 0
    rate_limit_pause: float = 1.0
    max_retry_after: float = 300.0

    def after_failure(self, answer: Answer, *, batch_size: int,
                      retry_after: float | None = None) -> FailureVerdict:
        """The action for a batch of `batch_size` events whose request got `answer`."""
        if answer is Answer.RATE_LIMITED:
            pause = self.believed(retry_after) or self.rate_limit_pause
            return FailureVerdict(Action.RETRY, pause=pause)
        if answer.retryable:
            return FailureVerdict(Action.RETRY)
        if answer.splittable and batch_size > 1:
            return FailureVerdict(Action.SPLIT)
        return FailureVerdict(Action.DEAD_LETTER)

    def believed(self, retry_after: float | None) -> float:
        """A Retry-After within reason: at most `max_retry_after`, never negative."""
        if retry_after is None or retry_after != retry_after:  # None or NaN
            return 0.0
        return max(0.0, min(retry_after, self.max_retry_after))

    def delay(self, attempts: int, rng: random.Random | None = None) -> float:
        """The wait after `attempts` failed attempts (1 for the first failure)."""
        # The exponent is bounded: 2 ** 1024 overflows a float after ~2.7 days of failures.
        ceiling = min(self.cap, self.base * 2 ** min(max(0, attempts - 1), 62))
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
        retry_at = now + max(self.delay(attempts, rng), self.believed(retry_after))
        if self.expired(event_time, retry_at):
            return RetryDecision(None, "gave up: the event would be too old for TikTok")
        return RetryDecision(retry_at)

    def expired(self, event_time: float, at: float) -> bool:
        """Whether an event sent at `at` would be older than TikTok accepts."""
        return at > event_time + self.max_event_age

    def replayable(self, event_time: float, now: float) -> bool:
        """Whether a dead letter queued again now would still arrive young enough: an hour's
        margin for the queue and a retry or two."""
        return not self.expired(event_time, now + REPLAY_MARGIN)
