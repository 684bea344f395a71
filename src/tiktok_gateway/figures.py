"""The reader of what `telemetry.py` writes: the figures the dashboard and `report` show,
computed from the store's counters and request log, and the orders gap report.

Match quality is an *estimate*: TikTok publishes no weights, only that its score is "a
weighted average of match key coverage". Ours are invented, shown beside the score, and
rank the keys as integrators report TikTok does (ttclid strongest, IP + user agent weakest).
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .outbox import PARTIAL_REJECTS, Backlog, RecordReader, RequestLog, TelemetryStore
from .telemetry import (
    BAD_SIGNATURE,
    DEAD,
    DELIVERED,
    DUPLICATE,
    INGEST,
    IP_USER_AGENT,
    RECEIVED,
    REJECTED,
    RETRIED,
    SHARED_EVENT_ID,
    WEBHOOK_CALLS,
    filtered_reason,
    in_mode,
    invalid,
    invalid_field,
    is_filtered,
    present_field,
)

EMQ_WEIGHTS = {"ttclid": 3.0, "email": 2.0, "phone": 1.5, IP_USER_AGENT: 1.5,
               "external_id": 1.0, "ttp": 1.0}  # sums to 10: the estimate is on a 0-10 scale
ADVICE = {
    "ttclid": "Capture ttclid from the landing URL and send it: it is TikTok's strongest key.",
    "email": "Send the customer's email; the gateway hashes it.",
    "phone": "Send the phone number (with a country code, or set phone_region).",
    "ip_user_agent": "Send the browser's IP and user agent (or let the gateway take them "
                     "from the request with fill_client_context).",
    "external_id": "Send your customer id as external_id, hashed the same way as the pixel.",
    "ttp": "Read the _ttp cookie in the browser and send it as ttp.",
}


@dataclass
class ErrorGroup:
    code: int | None
    message: str
    count: int
    last_seen: float


@dataclass
class Bucket:
    start: float
    requests: int = 0
    failed: int = 0
    events: int = 0


@dataclass
class Health:
    """Tag health of one destination over a window."""

    destination: str
    requests: int = 0
    succeeded: int = 0
    events_sent: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: list[ErrorGroup] = field(default_factory=list)
    series: list[Bucket] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)
    pending: int = 0
    dead: int = 0

    @property
    def success_rate(self) -> float | None:
        return self.succeeded / self.requests if self.requests else None

    def latency(self, quantile: float) -> float | None:
        if not self.latencies:
            return None
        if len(self.latencies) == 1:
            return self.latencies[0]
        cuts = statistics.quantiles(self.latencies, n=100, method="inclusive")
        return cuts[min(98, max(0, int(quantile * 100) - 1))]


@dataclass
class Quality:
    """Data quality of one TikTok event name over a window."""

    event: str
    received: int
    counts: dict[str, int]

    def share(self, name: str) -> float:
        return self.counts.get(name, 0) / self.received if self.received else 0.0

    @property
    def shared_id_share(self) -> float:
        return self.share(SHARED_EVENT_ID)

    @property
    def match_quality(self) -> float:
        return round(sum(w * self.share(k) for k, w in EMQ_WEIGHTS.items()), 1)

    def invalid(self, field: str) -> int:
        """Events whose `field` the gateway dropped as invalid."""
        return self.counts.get(invalid(field), 0)

    @property
    def band(self) -> str:
        """Our reading of the estimate (not TikTok's bands): poor, fair or good."""
        return band(self.match_quality)

    def missing_keys(self) -> list[str]:
        """The match keys fewer than half of these events carry, strongest first."""
        return [k for k in sorted(EMQ_WEIGHTS, key=lambda k: -EMQ_WEIGHTS[k])
                if self.share(k) < 0.5]

    def advice(self) -> list[str]:
        tips = [ADVICE[k] for k in self.missing_keys()]
        missing_id = 1 - self.shared_id_share
        if missing_id > 0:
            tips.append(f"{share_text(missing_id)} of these events had no event_id or order_id: "
                        "the pixel cannot send the same id, so TikTok may count them twice.")
        return tips


BANDS = ((7.0, "good"), (4.0, "fair"), (0.0, "poor"))
NO_SHARED_ID = "no_shared_id"


def band(estimate: float) -> str:
    return next(name for floor, name in BANDS if estimate >= floor)


def share_text(share: float | None) -> str:
    """A share as a whole percentage that never claims more or less than it is: 99.6 % is
    "99%", not "100%"; 0.3 % is "<1%", not "0%"."""
    if share is None:
        return "–"
    if 0.995 <= share < 1:
        return "99%"
    if 0 < share < 0.005:
        return "<1%"
    return f"{share:.0%}"


def advice_by_key(quality: Sequence[Quality]) -> list[tuple[str, list[str]]]:
    """Each piece of advice once, with the TikTok events it concerns (most events first)."""
    concerns: dict[str, list[str]] = {}
    for q in quality:
        for key in q.missing_keys():
            concerns.setdefault(key, []).append(q.event)
        if q.shared_id_share < 1:
            concerns.setdefault(NO_SHARED_ID, []).append(q.event)
    order = [*sorted(EMQ_WEIGHTS, key=lambda k: -EMQ_WEIGHTS[k]), NO_SHARED_ID]
    tips = {**ADVICE, NO_SHARED_ID: "Send an event_id (or an order_id) with every event, the "
                                    "same the pixel sends: without one TikTok cannot "
                                    "deduplicate the two copies."}
    return [(tips[k], concerns[k]) for k in order if k in concerns]


def tag_health(destinations: Iterable[str], counters: Sequence[tuple[int, str, str, str, int]],
               requests: Sequence[RequestLog], backlog: Backlog, span: float, step: float,
               now: float | None = None) -> list[Health]:
    """Per destination: requests, success, latency, errors and a time series of `step` buckets."""
    now = time.time() if now is None else now
    start = now - span
    result = []
    for name in destinations:
        health = Health(name, series=[Bucket(start + i * step) for i in range(int(span // step) + 1)])
        _add_requests(health, [r for r in requests if r.destination == name], start, step)
        for minute, dest, _event, counter, value in counters:
            if dest == name:
                health.totals[counter] = health.totals.get(counter, 0) + value
                if counter == DELIVERED:
                    _bucket(health, minute * 60, start, step).events += value
        per = backlog.by_destination.get(name, {})
        health.pending, health.dead = per.get("pending", 0), per.get("dead", 0)
        result.append(health)
    return result


def _add_requests(health: Health, requests: Sequence[RequestLog], start: float,
                  step: float) -> None:
    errors: dict[tuple[int | None, str], ErrorGroup] = {}
    for r in requests:
        if r.outcome == PARTIAL_REJECTS:
            continue
        health.requests += 1
        ok = r.outcome in ("delivered", "partial")
        health.succeeded += ok
        health.events_sent += r.events if ok else 0
        health.latencies.append(r.latency)
        bucket = _bucket(health, r.at, start, step)
        bucket.requests += 1
        if not ok:
            bucket.failed += 1
            key = (r.code, r.message)
            group = errors.setdefault(key, ErrorGroup(r.code, r.message, 0, r.at))
            group.count += 1
            group.last_seen = max(group.last_seen, r.at)
    health.errors = sorted(errors.values(), key=lambda g: -g.count)


def _bucket(health: Health, at: float, start: float, step: float) -> Bucket:
    index = min(len(health.series) - 1, max(0, int((at - start) // step)))
    return health.series[index]


def data_quality(counters: Sequence[tuple[int, str, str, str, int]]) -> list[Quality]:
    """Per TikTok event name: how many events, and how many carried each field."""
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for _minute, dest, event, counter, value in counters:
        if dest.startswith("("):
            continue
        key = RECEIVED if counter == RECEIVED else present_field(counter)
        if key is None and invalid_field(counter) is not None:
            key = counter
        if key is not None:
            counts[event][key] = counts[event].get(key, 0) + value
    return sorted((Quality(event, c.get(RECEIVED, 0), c) for event, c in counts.items()),
                  key=lambda q: -q.received)


def outcome_totals(counters: Sequence[tuple[int, str, str, str, int]]) -> dict[str, int]:
    """Events received, filtered, duplicate, delivered, retried, rejected and dead, summed."""
    totals = {name: 0 for name in (RECEIVED, DUPLICATE, DELIVERED, RETRIED, DEAD, REJECTED)}
    totals["filtered"] = 0
    for _minute, _dest, _event, counter, value in counters:
        if is_filtered(counter):
            totals["filtered"] += value
        elif counter in totals:
            totals[counter] += value
    return totals


async def collect(records: RecordReader, telemetry: TelemetryStore, destinations: list[str],
                  since: float) -> dict[str, Any]:
    """Tag health, data quality and outcome totals since a time, as `report` prints them."""
    span = max(60.0, time.time() - since)
    counters = in_mode(await telemetry.counters(since), "all")
    requests = await telemetry.requests(since)
    backlog = await records.backlog()
    return {"health": tag_health(destinations, counters, requests, backlog, span, span),
            "quality": data_quality(counters), "totals": outcome_totals(counters)}


def webhook_calls(counters: Sequence[tuple[int, str, str, str, int]]) -> dict[str, dict[str, int]]:
    """Per shop platform: webhook calls refused for their signature, and orders not sent by
    reason (counted under the destination "(<platform>)")."""
    calls: dict[str, dict[str, int]] = {}
    for _minute, dest, event, name, value in counters:
        if event != WEBHOOK_CALLS or not (dest.startswith("(") and dest != INGEST):
            continue
        key = "bad signature" if name == BAD_SIGNATURE else (filtered_reason(name) or name)
        per = calls.setdefault(dest.strip("()"), {})
        per[key] = per.get(key, 0) + value
    return calls
