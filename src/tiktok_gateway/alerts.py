"""Alert rules the gateway evaluates itself, and the monitor that opens and resolves incidents.

Each rule looks at a `Snapshot` (the request log, counters, the backlog, weekly figures) and
gives a `Verdict` per destination: firing, not firing, or None when the evidence says
neither (no requests to judge by): then the incident stays as it is. The store holds the
incidents (`TelemetryStore.open_alert`): at most one firing per rule and destination, and
only the process that opened (or resolved) one notifies, so several gateways on one
PostgreSQL send one message per incident. Messages hold names, counts and codes: never
personal data, never a token, never TikTok's own message text.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from .causes import AUTH_ACTION
from .causes import AUTH_MEANINGS as AUTH_CODES
from .config import AlertSettings, DestinationSettings
from .figures import data_quality
from .notify import Notifier
from .outbox import (
    FIRING,
    PARTIAL_REJECTS,
    RESOLVED,
    TEST_COUNTER,
    AlertRecord,
    Backlog,
    RecordReader,
    RequestLog,
    TelemetryStore,
)
from .pairing import Pairing, by_destination
from .telemetry import RECEIVED

logger = logging.getLogger("tiktok_gateway.alerts")

DELIVERY_RATE, AUTH_ERROR, SILENT, TEST_CODE_ON = (
    "delivery_rate", "auth_error", "silent", "test_code_on")
DEAD_LETTERS, OLDEST_PENDING, PAIRING_DROP, MATCH_QUALITY_DROP = (
    "dead_letters", "oldest_pending", "pairing_drop", "match_quality_drop")
RULES = (DELIVERY_RATE, AUTH_ERROR, SILENT, TEST_CODE_ON, DEAD_LETTERS, OLDEST_PENDING,
         PAIRING_DROP, MATCH_QUALITY_DROP)
ALL_DESTINATIONS = "all"  # the outbox's oldest event is of any destination
OK_OUTCOMES = ("delivered", "partial")
WEEK = 7 * 86400
SLOW_EVERY = 3600.0  # the weekly figures and the usual traffic, read once an hour


@dataclass(frozen=True)
class Verdict:
    rule: str
    destination: str
    firing: bool | None
    message: str


@dataclass
class Weekly:
    """One destination's figures this week and the week before."""

    pairing: tuple[float | None, float | None] = (None, None)
    pairing_events: tuple[int, int] = (0, 0)
    match_quality: tuple[float | None, float | None] = (None, None)
    received: tuple[int, int] = (0, 0)


@dataclass
class Snapshot:
    now: float
    requests: Sequence[RequestLog]
    counters: Sequence[tuple[int, str, str, str, int]]  # recent ones
    backlog: Backlog
    usual_per_hour: dict[tuple[str, int], float] = field(default_factory=dict)
    weekly: dict[str, Weekly] = field(default_factory=dict)


def evaluate(settings: AlertSettings, destinations: Sequence[DestinationSettings],
             snap: Snapshot) -> list[Verdict]:
    verdicts = []
    for dest in destinations:
        name = dest.name
        verdicts.append(delivery_rate(settings, name, snap))
        if settings.auth_errors:
            verdicts.append(auth_error(name, snap))
        if settings.silent_minutes:
            verdicts.append(silent(settings, name, snap))
        if settings.test_code_hours:
            verdicts.append(test_code_on(settings, dest, snap))
        dead = snap.backlog.by_destination.get(name, {}).get("dead", 0)
        verdicts.append(Verdict(DEAD_LETTERS, name, dead > settings.dead_letters_above,
                                f"{dead} dead-lettered events wait for replay (threshold "
                                f"{settings.dead_letters_above}): see the dashboard's Dead "
                                "letters page"))
        weekly = snap.weekly.get(name)
        if weekly is not None:
            verdicts.extend(weekly_drops(settings, name, weekly))
    oldest = snap.backlog.oldest_pending_at
    age = snap.now - oldest if oldest else 0.0
    verdicts.append(Verdict(OLDEST_PENDING, ALL_DESTINATIONS,
                            age > settings.oldest_pending_minutes * 60,
                            f"the oldest undelivered event has waited {age / 60:.0f} min "
                            f"(threshold {settings.oldest_pending_minutes:g} min)"))
    return verdicts


def delivery_rate(settings: AlertSettings, destination: str, snap: Snapshot) -> Verdict:
    """The share of events TikTok accepted over the window; auth errors have their own rule."""
    start = snap.now - settings.delivery_window_minutes * 60
    total = delivered = 0
    failures: dict[str, int] = defaultdict(int)
    for r in snap.requests:
        if r.destination != destination or r.at < start or r.code in AUTH_CODES:
            continue
        if r.outcome == PARTIAL_REJECTS:
            delivered -= r.events
            continue
        total += r.events
        if r.outcome in OK_OUTCOMES:
            delivered += r.events
        else:
            failures[failure_label(r)] += r.events
    window = f"{settings.delivery_window_minutes:g} min"
    if total < settings.delivery_min_events:
        pending = snap.backlog.by_destination.get(destination, {}).get("pending", 0)
        return Verdict(DELIVERY_RATE, destination, None if pending else False,
                       f"too few requests in the last {window} to judge")
    rate = max(delivered, 0) / total
    worst = max(failures.items(), key=lambda kv: kv[1])[0] if failures else ""
    return Verdict(DELIVERY_RATE, destination, rate < settings.delivery_rate_below,
                   f"{rate:.0%} of {total} events delivered to TikTok in the last {window} "
                   f"(threshold {settings.delivery_rate_below:.0%})"
                   + (f"; most failures: {worst}" if worst else ""))


def failure_label(r: RequestLog) -> str:
    if r.code is not None and r.code != 0:
        return f"TikTok code {r.code}"
    if r.http_status and r.http_status >= 400:
        return f"HTTP {r.http_status}"
    return "no answer (timeout or connection refused)"


def auth_error(destination: str, snap: Snapshot) -> Verdict:
    """Fires at the first 40001/40105; resolved by the next request TikTok accepts."""
    last_auth: RequestLog | None = None
    last_ok = 0.0
    for r in snap.requests:
        if r.destination != destination:
            continue
        if r.code in AUTH_CODES and (last_auth is None or r.at > last_auth.at):
            last_auth = r
        elif r.outcome in OK_OUTCOMES:
            last_ok = max(last_ok, r.at)
    if last_auth is not None and last_auth.at > last_ok:
        code = int(last_auth.code or 0)
        return Verdict(AUTH_ERROR, destination, True,
                       f"TikTok refused the destination's requests with {code}: "
                       f"{AUTH_CODES[code]}. Events are dead-lettered until it is fixed: "
                       f"{AUTH_ACTION}, then replay the dead letters")
    if last_ok:
        return Verdict(AUTH_ERROR, destination, False, "TikTok accepts the access token again")
    return Verdict(AUTH_ERROR, destination, None, "no requests to judge by")


def received_between(counters: Iterable[tuple[int, str, str, str, int]], destination: str,
                     start: float, end: float, *, test: bool | None = None) -> int:
    names = {RECEIVED: False, TEST_COUNTER + RECEIVED: True}
    return sum(v for minute, dest, _event, name, v in counters
               if dest == destination and name in names and start <= minute * 60 < end
               and (test is None or names[name] == test))


def silent(settings: AlertSettings, destination: str, snap: Snapshot) -> Verdict:
    minutes = settings.silent_minutes
    hour = time.gmtime(snap.now).tm_hour
    usual = snap.usual_per_hour.get((destination, hour), 0.0) * minutes / 60
    recent = received_between(snap.counters, destination, snap.now - minutes * 60,
                              snap.now + 60)
    firing = recent == 0 and usual >= settings.silent_usual_events
    return Verdict(SILENT, destination, firing,
                   f"no events received for {minutes:g} min; this hour of the last week "
                   f"averaged {usual:.0f} in as long. Check the tag, the webhooks and the "
                   "shop's server")


def test_code_on(settings: AlertSettings, dest: DestinationSettings, snap: Snapshot) -> Verdict:
    hours = settings.test_code_hours
    if not dest.test_event_code:
        return Verdict(TEST_CODE_ON, dest.name, False, "no test_event_code set")
    old_start = snap.now - (hours + 1) * 3600
    earlier = received_between(snap.counters, dest.name, old_start, old_start + 3600, test=True)
    lately = received_between(snap.counters, dest.name, snap.now - 3600, snap.now + 60,
                              test=True)
    return Verdict(TEST_CODE_ON, dest.name, bool(earlier and lately),
                   f"test_event_code is still set and events have flowed for over {hours:g} h: "
                   "TikTok shows them in Test Events and counts none as conversions. Remove "
                   "test_event_code from the destination when set-up is done")


def weekly_drops(settings: AlertSettings, destination: str, weekly: Weekly) -> list[Verdict]:
    """The pairing rate and the match-quality estimate against the week before, each judged
    only with enough events in both weeks."""
    Message = Callable[[float, float], str]
    checks: tuple[tuple[str, tuple[float | None, float | None], tuple[int, int], float,
                        Message], ...] = (
        (PAIRING_DROP, weekly.pairing, weekly.pairing_events, settings.pairing_drop,
         lambda now, last: f"pixel and server shared their event_id for {now:.0%} of events "
                           f"this week, {last:.0%} the week before: see the dashboard's Pixel "
                           "and server page for mismatched events"),
        (MATCH_QUALITY_DROP, weekly.match_quality, weekly.received, settings.match_quality_drop,
         lambda now, last: f"the match-quality estimate is {now:.1f} this week, {last:.1f} the "
                           "week before: see the Data quality page for the field that fell"),
    )
    verdicts = []
    for rule, (now, last), counts, drop, message in checks:
        if now is not None and last is not None and min(counts) >= settings.weekly_min_events:
            verdicts.append(Verdict(rule, destination, last - now > drop, message(now, last)))
    return verdicts


def match_quality(counters: Sequence[tuple[int, str, str, str, int]]) -> tuple[float | None, int]:
    """The estimate over all events (weighted by each event's count), and their number."""
    quality = data_quality(counters)
    received = sum(q.received for q in quality)
    if not received:
        return None, 0
    return sum(q.match_quality * q.received for q in quality) / received, received


class AlertMonitor:
    """Evaluates the rules every `evaluate_seconds` and turns verdicts into incidents."""

    def __init__(self, settings: AlertSettings, destinations: Sequence[DestinationSettings],
                 telemetry: TelemetryStore, records: RecordReader, notifier: Notifier) -> None:
        self.settings = settings
        self.destinations = list(destinations)
        self.telemetry = telemetry
        self.records = records
        self.notifier = notifier
        self._slow_at = 0.0
        self._usual: dict[tuple[str, int], float] = {}
        self._weekly: dict[str, Weekly] = {}
        self._task: asyncio.Task[None] | None = None

    async def snapshot(self, now: float) -> Snapshot:
        if now - self._slow_at > SLOW_EVERY:
            await self._read_slow(now)
            self._slow_at = now
        s = self.settings
        reach = max(s.silent_minutes * 60, (s.test_code_hours + 1) * 3600 + 60)
        return Snapshot(now, await self.telemetry.requests(now - s.delivery_window_minutes * 60),
                        await self.telemetry.counters(now - reach), await self.records.backlog(),
                        self._usual, self._weekly)

    async def _read_slow(self, now: float) -> None:
        """The usual traffic per hour of day (the last 7 days) and the weekly figures."""
        counters = await self.telemetry.counters(now - 2 * WEEK)
        usual: dict[tuple[str, int], float] = defaultdict(float)
        for minute, name_of_dest, _event, name, value in counters:
            if name in (RECEIVED, TEST_COUNTER + RECEIVED) and minute * 60 >= now - WEEK:
                usual[(name_of_dest, time.gmtime(minute * 60).tm_hour)] += value / 7
        self._usual = dict(usual)
        this_week = await self._pairing(now - WEEK, now)
        last_week = await self._pairing(now - 2 * WEEK, now - WEEK)
        self._weekly = {}
        for dest in self.destinations:
            mine = [c for c in counters if c[1] == dest.name]
            now_mq, now_r = match_quality([c for c in mine if c[0] * 60 >= now - WEEK])
            last_mq, last_r = match_quality([c for c in mine if c[0] * 60 < now - WEEK])
            now_p, last_p = this_week.get(dest.name), last_week.get(dest.name)
            self._weekly[dest.name] = Weekly(
                (now_p.total.pairing_rate if now_p else None,
                 last_p.total.pairing_rate if last_p else None),
                (_tracked(now_p), _tracked(last_p)), (now_mq, last_mq), (now_r, last_r))

    async def _pairing(self, start: float, end: float) -> dict[str, Pairing]:
        return by_destination(start, end, *await self.telemetry.pair_counts(start, end),
                              [d.name for d in self.destinations])

    async def evaluate_once(self, now: float | None = None) -> list[Verdict]:
        now = time.time() if now is None else now
        verdicts = evaluate(self.settings, self.destinations, await self.snapshot(now))
        firing = {(a.rule, a.destination) for a in await self.telemetry.alerts(now)
                  if a.state == FIRING}
        for v in verdicts:
            key = (v.rule, v.destination)
            if v.firing and key not in firing:
                if await self.telemetry.open_alert(v.rule, v.destination, now, v.message):
                    logger.warning("alert firing: %s (%s): %s", v.rule, v.destination, v.message)
                    self.notifier.send(AlertRecord(v.rule, v.destination, FIRING, now, None,
                                                   v.message))
            elif v.firing is False and key in firing:
                closed = await self.telemetry.close_alert(v.rule, v.destination, now)
                if closed is not None:
                    logger.info("alert resolved: %s (%s)", v.rule, v.destination)
                    self.notifier.send(AlertRecord(v.rule, v.destination, RESOLVED,
                                                   closed.since, now, v.message))
        return verdicts

    def start(self) -> None:
        self.notifier.start()
        self._task = asyncio.create_task(self._run(), name="alerts")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.notifier.stop()

    async def _run(self) -> None:
        while True:
            try:
                await self.evaluate_once()
            except Exception as exc:  # the store is down: the dispatcher says so already
                logger.debug("could not evaluate alerts: %s", exc)
            await asyncio.sleep(self.settings.evaluate_seconds)


def _tracked(pairing: Pairing | None) -> int:
    if pairing is None:
        return 0
    total = pairing.total
    return total.both + total.mismatched
