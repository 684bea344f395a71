"""What the sandbox remembers: tokens, received events, TikTok-style dedup, the request log."""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..tiktok import codes, schema
from ..tiktok.lint import EventVerdict

DEDUP_WINDOW_SECONDS = 48 * 3600


def new_request_id(now: float | None = None) -> str:
    """TikTok's request_id format: UTC `YYYYMMDDhhmmss` then 20 upper-case hex characters."""
    stamp = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    return stamp.strftime("%Y%m%d%H%M%S") + secrets.token_hex(10).upper()


def mask_token(token: str | None) -> str | None:
    """`****abcd`: enough to tell tokens apart in a log, never enough to use one."""
    if not token:
        return token
    return "****" + token[-4:] if len(token) >= 12 else "****"


@dataclass(slots=True)
class ReceivedEvent:
    """One event as the sandbox parsed it, like a row of TikTok's Test Events tab.

    Kept lean (every delivered event becomes one, and every test waits on it): the columns
    only the Test Events view shows are worked out when it asks, in `as_dict`.
    """

    seq: int
    received_at: float
    request_id: str
    endpoint: str
    event_source: str
    event_source_id: str
    test_event_code: str | None
    event: Any
    event_id: Any
    findings: EventVerdict
    duplicate: bool
    parsed: dict[str, Any]

    @property
    def user(self) -> dict[str, Any]:
        user = self.parsed.get("user")
        return user if isinstance(user, dict) else {}

    @property
    def properties(self) -> dict[str, Any]:
        props = self.parsed.get("properties")
        return props if isinstance(props, dict) else {}

    @property
    def hashed_fields(self) -> list[str]:
        user = self.user
        return [k for k in schema.HASHED_USER_FIELDS if _has_value(user.get(k))]

    @property
    def plain_fields(self) -> list[str]:
        user = self.user
        return [k for k in schema.PLAIN_USER_FIELDS if user.get(k)]

    def as_dict(self) -> dict[str, Any]:
        props = self.properties
        return {
            "seq": self.seq, "received_at": self.received_at, "request_id": self.request_id,
            "endpoint": self.endpoint, "event_source": self.event_source,
            "event_source_id": self.event_source_id, "test_event_code": self.test_event_code,
            "event": self.event, "event_id": self.event_id,
            "event_time": self.parsed.get("event_time"), "value": props.get("value"),
            "currency": props.get("currency"), "hashed_fields": self.hashed_fields,
            "plain_fields": self.plain_fields,
            "dropped": [d.as_dict() for d in self.findings.dropped],
            "warnings": [w.as_dict() for w in self.findings.warnings],
            "duplicate": self.duplicate, "parsed": self.parsed,
        }


@dataclass
class Counters:
    requests: int = 0
    events: int = 0
    duplicates: int = 0
    by_code: dict[str, int] = field(default_factory=dict)

    def count(self, code: int | str) -> None:
        self.by_code[str(code)] = self.by_code.get(str(code), 0) + 1


class SandboxState:
    """Thread-safe store of everything the sandbox received."""

    def __init__(self, tokens: dict[str, set[str]] | None = None, *, keep: int = 200_000) -> None:
        self.tokens = tokens or {}
        self.events: deque[ReceivedEvent] = deque(maxlen=keep)
        self.requests: deque[dict[str, Any]] = deque(maxlen=10_000)
        self.counters = Counters()
        self._dedup: dict[tuple[str, str, str, str], float] = {}
        self._seq = 0
        self._lock = threading.Lock()

    def check_token(self, token: str | None, source_id: str) -> tuple[int, str] | None:
        """TikTok's code and message when the token may not send to `source_id`, else None."""
        if not token:
            return codes.CODE_BAD_TOKEN, "Access token is missing. Set the Access-Token header."
        if not self.tokens:  # open mode: any token works
            return None
        if not any(token in allowed for allowed in self.tokens.values()):
            return codes.CODE_BAD_TOKEN, "Access token is invalid or has expired."
        if token not in self.tokens.get(source_id, set()):
            return codes.CODE_NO_PERMISSION, (
                f"No permission to operate pixel code: {source_id}. "
                "You must be an admin or operator of this advertiser account.")
        return None

    def record(self, body: dict[str, Any], verdicts: list[EventVerdict], request_id: str,
               endpoint: str, now: float) -> list[ReceivedEvent]:
        """Store the accepted events of one request; mark TikTok-style duplicates."""
        source = str(body.get("event_source", "web"))
        source_id = str(body.get("event_source_id", ""))
        test_code = body.get("test_event_code") or None
        recorded = []
        with self._lock:
            for verdict in verdicts:
                self._seq += 1
                item = _received(self._seq, verdict, request_id, endpoint, source, source_id,
                                 test_code, now)
                item.duplicate = self._seen(item, now)
                self.counters.events += 1
                self.counters.duplicates += item.duplicate
                self.events.append(item)
                recorded.append(item)
        return recorded

    def _seen(self, item: ReceivedEvent, now: float) -> bool:
        if not isinstance(item.event_id, str) or not item.event_id:
            return False
        key = (item.event_source_id, str(item.event), item.event_id, item.test_event_code or "")
        first = self._dedup.get(key)
        if first is not None and now - first < DEDUP_WINDOW_SECONDS:
            return True
        self._dedup[key] = now
        return False

    def log_request(self, entry: dict[str, Any], code: int | str) -> None:
        with self._lock:
            self.counters.requests += 1
            self.counters.count(code)
            self.requests.append(entry)

    def query(self, *, source_id: str | None = None, test_event_code: str | None = None,
              live: bool | None = None, since: float | None = None, after: int | None = None,
              limit: int = 1000) -> list[ReceivedEvent]:
        with self._lock:
            items = list(self.events)
        out = [
            e for e in items
            if (source_id is None or e.event_source_id == source_id)
            and (test_event_code is None or e.test_event_code == test_event_code)
            and (live is None or (e.test_event_code is None) == live)
            and (since is None or e.received_at >= since)
            and (after is None or e.seq > after)
        ]
        return out[-limit:] if limit else out

    def clear(self) -> None:
        with self._lock:
            self.events.clear()
            self.requests.clear()
            self._dedup.clear()
            self.counters = Counters()


def _has_value(value: Any) -> bool:
    """A dropped list item is None; a field counts only when something survives."""
    if isinstance(value, list):
        return any(value)
    return bool(value)


def _received(seq: int, verdict: EventVerdict, request_id: str, endpoint: str, source: str,
              source_id: str, test_code: str | None, now: float) -> ReceivedEvent:
    parsed = verdict.parsed
    return ReceivedEvent(
        seq=seq, received_at=now, request_id=request_id, endpoint=endpoint,
        event_source=source, event_source_id=source_id, test_event_code=test_code,
        event=parsed.get("event"), event_id=parsed.get("event_id"), findings=verdict,
        duplicate=False, parsed=parsed,
    )
