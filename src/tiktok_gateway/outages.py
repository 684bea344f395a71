"""Outages of TikTok in the log: one line when a destination's requests start failing, one a
minute while they keep failing, one when TikTok accepts them again.

Retries are normal and cheap, so each one is not worth a line; an outage, its cause and its
end are what an operator looks for in `journalctl`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from .causes import cause

logger = logging.getLogger("tiktok_gateway.dispatch")
REPEAT_EVERY = 60.0


@dataclass
class _Streak:
    started: float  # wall clock, for the log
    since: float  # monotonic
    failed: int = 1
    last_logged: float = 0.0
    last_cause: str = ""


class OutageLog:
    def __init__(self, *, repeat_every: float = REPEAT_EVERY,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.repeat_every = repeat_every
        self._monotonic = monotonic
        self._streaks: dict[str, _Streak] = {}

    def failed(self, destination: str, code: int | None, message: str,
               http_status: int | None) -> None:
        """A request that will be retried failed (a 5xx, no answer, a rate limit)."""
        now = self._monotonic()
        what = cause(code, message, http_status) + (f" (code {code})" if code else "")
        streak = self._streaks.get(destination)
        if streak is None:
            self._streaks[destination] = _Streak(time.time(), now, last_logged=now,
                                                 last_cause=what)
            logger.warning("requests to TikTok failing for %s: %s; retrying with backoff, "
                           "nothing is lost", destination, what)
            return
        streak.failed += 1
        streak.last_cause = what
        if now - streak.last_logged >= self.repeat_every:
            streak.last_logged = now
            logger.warning("still failing for %s since %s: %d failed requests, last: %s",
                           destination, _clock(streak.started), streak.failed, what)

    def succeeded(self, destination: str) -> None:
        streak = self._streaks.pop(destination, None)
        if streak is not None:
            took = self._monotonic() - streak.since
            logger.warning("TikTok accepts requests for %s again after %s (%d failed, last: "
                           "%s); delivery resumes", destination, _duration(took), streak.failed,
                           streak.last_cause)


def _clock(at: float) -> str:
    return time.strftime("%H:%M:%S UTC", time.gmtime(at))


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{seconds // 60:.0f} min {seconds % 60:.0f} s"
