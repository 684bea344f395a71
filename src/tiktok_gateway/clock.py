"""The time as TikTok sees it: this machine's clock, corrected by TikTok's answers.

TikTok judges an event's age by its own clock, so the gateway should too. Every HTTP answer
carries a `Date` header; the difference between it and the local clock (at the middle of
the request) is the offset. When the machine's clock jumps (a wrong clock set right by NTP,
a VM resumed, a hand-set date), the gateway keeps judging events by TikTok's time: a clock
eight days fast does not dead-letter every pending event as too old, and one an hour slow
does not refuse correctly stamped events as from the future.

Until TikTok has answered once in this process the local clock is all there is.
"""

from __future__ import annotations

import email.utils
import logging
import time

logger = logging.getLogger("tiktok_gateway.clock")

# `Date` has a one-second resolution and the request takes a while: a smaller difference
# is noise, not a wrong clock.
NOISE_SECONDS = 2.0
# A difference this large is worth telling the operator about.
WARN_SECONDS = 60.0


class ReferenceClock:
    def __init__(self) -> None:
        self.offset = 0.0  # TikTok's time minus ours, in seconds
        self.observed: bool = False
        self._warned_offset = 0.0

    def now(self) -> float:
        """The current time by TikTok's clock (by ours until TikTok has answered)."""
        return time.time() + self.offset

    def observe(self, date_header: str | None, sent: float, received: float) -> None:
        """Learn from an answer's `Date` header (sent and received on the local clock)."""
        if not date_header:
            return
        try:
            remote = email.utils.parsedate_to_datetime(date_header).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return  # a proxy's odd header is no evidence
        # Date is truncated to the second: its middle is half a second later.
        offset = remote + 0.5 - (sent + received) / 2
        self.offset = offset if abs(offset) > NOISE_SECONDS else 0.0
        self.observed = True
        if abs(self.offset - self._warned_offset) <= WARN_SECONDS:
            return
        self._warned_offset = self.offset
        if self.offset == 0.0:
            logger.warning("this machine's clock agrees with TikTok's again")
        else:
            logger.warning("this machine's clock is %.0f s %s TikTok's: event ages are judged "
                           "by TikTok's clock; set the system clock right (NTP)",
                           abs(self.offset), "behind" if self.offset > 0 else "ahead of")
