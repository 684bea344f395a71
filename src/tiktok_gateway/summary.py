"""The dashboard's headline figures, as `/dashboard/api/summary` serves them.

Honest by construction: events and requests are counted apart (a retried request is not a
lost event), the delivery rate is delivered / (delivered + dead) of events, events TikTok
refused inside a partial answer are dead letters, not deliveries, and live and test events
are never mixed unless asked for (`mode`).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import causes
from .outbox import PARTIAL_REJECTS, RequestLog
from .outbox._rows import TELEMETRY_RETENTION
from .telemetry import (
    DEAD,
    DELIVERED,
    DUPLICATE,
    INGEST,
    RECEIVED,
    filtered_reason,
    mode_includes,
    rejected_reason,
)

WINDOWS = {"15m": 900, "1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400,
           "30d": 30 * 86400, "90d": 90 * 86400}
MODES = ("live", "test", "all")
MAX_RANGE = TELEMETRY_RETENTION  # counters are kept this long
SUCCEEDED = ("delivered", "partial")


@dataclass(frozen=True)
class Window:
    start: float
    end: float


def custom_range(start: str | None, end: str | None, now: float) -> tuple[float, float] | None:
    """A range from the page's `from` and `to` (UTC, `2026-12-01` or `2026-12-01T18:30`),
    or None when neither is given. Raises ValueError saying what is wrong."""
    if not start and not end:
        return None
    begin = _utc(start, "from") if start else now - 86400
    finish = _utc(end, "to") if end else now
    if len(end or "") == 10:
        finish += 86400  # a day given alone runs to its end
    finish = min(finish, now)
    if begin >= finish:
        raise ValueError("from must be before to (and before now)")
    if finish - begin > MAX_RANGE or begin < now - MAX_RANGE - 86400:
        raise ValueError("the range must lie within the last 90 days (counters are kept 90 days)")
    return begin, finish


def _utc(text: str, name: str) -> float:
    try:
        parsed = datetime.fromisoformat(text[:16])
    except ValueError:
        raise ValueError(f"{name} must be a UTC date or time: 2026-12-01 or 2026-12-01T18:30") from None
    return parsed.replace(tzinfo=UTC).timestamp()


def bucket_for(span: float) -> int:
    """Chart buckets for a span: the smallest of the usual steps that gives at most 96 bars."""
    for step in (60, 300, 600, 1800, 3600, 6 * 3600, 86400):
        if span / step <= 96:
            return step
    return 86400


def summary(destinations: Sequence[str], counters: Sequence[tuple[int, str, str, str, int]],
            requests: Sequence[RequestLog], pending: Sequence[tuple[str, str, bool, int]],
            window: Window, mode: str) -> dict[str, Any]:
    """`counters` already of the mode (see telemetry.in_mode); `requests` and `pending` of
    every mode, filtered here."""
    rejected: dict[str, int] = defaultdict(int)
    for _minute, dest, _event, name, value in counters:
        reason = rejected_reason(name) if dest == INGEST else None
        if reason is not None:
            rejected[reason] += value
    return {"window": {"start": int(window.start), "end": int(window.end)}, "mode": mode,
            "destinations": {name: _destination(name, counters, requests, pending, rejected,
                                                mode) for name in destinations}}


def _destination(name: str, counters: Sequence[tuple[int, str, str, str, int]],
                 requests: Sequence[RequestLog], pending: Sequence[tuple[str, str, bool, int]],
                 rejected: dict[str, int], mode: str) -> dict[str, Any]:
    totals: dict[str, int] = defaultdict(int)
    filtered: dict[str, int] = defaultdict(int)
    by_event: dict[str, dict[str, int]] = {}
    for _minute, dest, event, counter, value in counters:
        if dest != name:
            continue
        reason = filtered_reason(counter)
        if reason is not None:
            filtered[reason] += value
        elif counter in (RECEIVED, DELIVERED, DEAD, DUPLICATE):
            totals[counter] += value
            if counter != DUPLICATE:
                row = by_event.setdefault(event, _event_row())
                row[counter] += value
    waiting = 0
    for dest, event, test, n in pending:
        if dest == name and mode_includes(mode, test):
            waiting += n
            by_event.setdefault(event, _event_row())["pending"] += n
    delivered, dead = totals[DELIVERED], totals[DEAD]
    mine = [r for r in requests if r.destination == name and mode_includes(mode, r.test)]
    sent = [r for r in mine if r.outcome != PARTIAL_REJECTS]
    succeeded = sum(r.outcome in SUCCEEDED for r in sent)
    return {
        "events": {"received": totals[RECEIVED], "delivered": delivered, "pending": waiting,
                   "dead": dead, "duplicates": totals[DUPLICATE], "filtered": dict(filtered),
                   "rejected": dict(rejected)},
        "delivery_rate": delivered / (delivered + dead) if delivered + dead else None,
        "requests": {"sent": len(sent), "succeeded": succeeded, "failed": len(sent) - succeeded},
        "by_event": dict(sorted(by_event.items(), key=lambda kv: -kv[1]["received"])),
        "errors": error_groups(mine),
    }


def _event_row() -> dict[str, int]:
    return {"received": 0, "delivered": 0, "pending": 0, "dead": 0}


@dataclass(frozen=True)
class Status:
    kind: str  # ok, bad, idle
    text: str


def status_line(requests: Sequence[RequestLog], pending: int, now: float) -> Status:
    """One line: delivering, or failing since when, with how much waits."""
    sent = sorted((r for r in requests if r.outcome != PARTIAL_REJECTS), key=lambda r: -r.at)
    if not sent:
        return Status("idle", f"No request to TikTok in this window; {pending} event(s) waiting.")
    failing = []
    for r in sent:
        if r.outcome in SUCCEEDED:
            break
        failing.append(r)
    if not failing:
        ago = max(0, int(now - sent[0].at))
        return Status("ok", f"Delivering: the last request to TikTok succeeded {ago} s ago; "
                            f"{pending} event(s) waiting.")
    since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(failing[-1].at))
    last = failing[0]
    what = causes.cause(last.code, last.message, last.http_status)
    # A refused request (a bad token, a rejected payload) is not retried: its events are
    # dead-lettered, and saying "retrying" would promise what will not happen.
    then = ("retrying with backoff" if last.outcome == "retry" else
            "those events are dead-lettered: fix the cause, then replay them")
    return Status("bad", f"TikTok failing since {since} ({len(failing)} failed request(s) in a "
                         f"row, last: {what}); {pending} event(s) waiting, {then}.")


def error_groups(requests: Sequence[RequestLog]) -> list[dict[str, Any]]:
    """Failed requests and the events partial answers refused, one group per cause."""
    groups: dict[tuple[int | None, int | None, str], dict[str, Any]] = {}
    for r in requests:
        if r.outcome in SUCCEEDED:
            continue
        code, status = r.code, r.http_status
        key = (code, status, causes.cause(code, r.message, status))
        group = groups.get(key)
        if group is None:
            group = groups[key] = {
                "cause": key[2], "code": code, "http_status": status, "requests": 0,
                "events": 0, "first_seen": r.at, "last_seen": r.at,
                "partial": r.outcome == PARTIAL_REJECTS,
                "advice": causes.advice(code, status)}
        group["requests"] += 1
        group["events"] += r.events
        group["first_seen"] = min(group["first_seen"], r.at)
        group["last_seen"] = max(group["last_seen"], r.at)
    return sorted(groups.values(), key=lambda g: (-g["events"], -g["last_seen"]))
