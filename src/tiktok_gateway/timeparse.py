"""Times people write: ISO 8601 with an offset, or (for `--since`) an age such as 24h."""

from __future__ import annotations

import re
import time
from datetime import datetime

_AGE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def iso_to_seconds(text: str) -> int:
    """Unix seconds for an ISO 8601 time; one without a UTC offset is ambiguous, so refused."""
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset; add one, e.g. Z or +02:00")
    return int(parsed.timestamp())


def parse_since(text: str, now: float | None = None) -> float:
    """The Unix time `text` names; raise ValueError with an example when it names none."""
    now = time.time() if now is None else now
    match = _AGE.match(text.strip().lower())
    if match:
        return now - float(match.group(1)) * _UNITS[match.group(2)]
    try:
        return iso_to_seconds(text)
    except ValueError as exc:
        raise ValueError(f"{exc}; an age such as 30m, 24h or 7d works too") from None
