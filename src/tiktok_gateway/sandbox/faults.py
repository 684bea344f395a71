"""Misbehaving on purpose: latency, 5xx, rate limits, outages and partial success."""

from __future__ import annotations

import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class FaultSettings(BaseModel):
    """What `POST /sandbox/faults` accepts; every field is optional and replaces the current one."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: int | None = Field(default=None, ge=0, le=120_000)
    error_rate: float | None = Field(default=None, ge=0, le=1)
    error_kind: Literal["json", "html"] | None = None
    rate_limit_qps: float | None = Field(default=None, ge=0)
    outage_seconds: float | None = Field(default=None, ge=0)
    outage_kind: Literal["503", "hang"] | None = None
    partial_rate: float | None = Field(default=None, ge=0, le=1)
    # Sent as the Retry-After header of rate-limited answers, as written ("1e308" too).
    retry_after: str | None = Field(default=None, max_length=50)
    # Every request refused: 40001 (no permission for the pixel) or 40105 (a revoked or
    # expired token); 0 stops it.
    token_error: Literal[0, 40001, 40105] | None = None


@dataclass
class Faults:
    """The faults in force. `rate_limit_qps=0` means no limit."""

    latency_ms: int = 0
    error_rate: float = 0.0
    error_kind: str = "json"
    rate_limit_qps: float = 0.0
    outage_until: float = 0.0
    outage_kind: str = "503"
    partial_rate: float = 0.0
    retry_after: str = ""
    token_error: int = 0
    _recent: deque[float] = field(default_factory=deque, repr=False)
    _random: random.Random = field(default_factory=random.Random, repr=False)

    def update(self, settings: FaultSettings, now: float | None = None) -> None:
        values = settings.model_dump(exclude_none=True)
        if "outage_seconds" in values:
            seconds = values.pop("outage_seconds")
            self.outage_until = (time.time() if now is None else now) + seconds if seconds else 0
        for key, value in values.items():
            setattr(self, key, value)

    def reset(self) -> None:
        self.update(FaultSettings(latency_ms=0, error_rate=0, error_kind="json",
                                  rate_limit_qps=0, outage_seconds=0, outage_kind="503",
                                  partial_rate=0, retry_after="", token_error=0))

    def in_outage(self, now: float) -> bool:
        return now < self.outage_until

    def active(self, now: float | None = None) -> set[str]:
        """The names of the faults in force (as FaultSettings spells them)."""
        defaults = Faults()
        active = {name for name in ("latency_ms", "error_rate", "rate_limit_qps", "partial_rate",
                                    "retry_after", "token_error")
                  if getattr(self, name) != getattr(defaults, name)}
        if self.in_outage(time.time() if now is None else now):
            active.add("outage_seconds")
        return active

    def token_denied(self) -> tuple[int, str] | None:
        """TikTok's answer to a lapsed or revoked token, while that fault is on."""
        if self.token_error == 40001:
            return 40001, ("No permission to operate pixel code. You must be an admin or "
                           "operator of this advertiser account.")
        if self.token_error == 40105:
            return 40105, "Access token is invalid or has expired."
        return None

    def should_error(self) -> bool:
        return self.error_rate > 0 and self._random.random() < self.error_rate

    def over_rate_limit(self, now: float) -> bool:
        """A sliding one-second window, counting only requests let through."""
        if not self.rate_limit_qps:
            return False
        while self._recent and self._recent[0] <= now - 1.0:
            self._recent.popleft()
        if len(self._recent) >= self.rate_limit_qps:
            return True
        self._recent.append(now)
        return False

    def partial_failures(self, count: int) -> list[int]:
        """Indexes of the events a partial success rejects (at least one when it triggers)."""
        if not self.partial_rate or count == 0:
            return []
        failed = [i for i in range(count) if self._random.random() < self.partial_rate]
        return failed if len(failed) < count else failed[:-1]

    def as_dict(self, now: float | None = None) -> dict[str, Any]:
        public = ("latency_ms", "error_rate", "error_kind", "rate_limit_qps", "outage_kind",
                  "partial_rate", "token_error")
        data: dict[str, Any] = {k: getattr(self, k) for k in public}
        remaining = self.outage_until - (time.time() if now is None else now)
        data["outage_remaining_seconds"] = max(0.0, round(remaining, 3))
        return data
