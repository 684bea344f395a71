"""The set-up checklist: the twelve steps the set-up guides walk, each checked against what
the gateway has seen (its counters, request log and pairing of the last week), never ticked
by hand. Each step has its evidence and the next action. The dashboard's first page and
`tiktok-gateway doctor` show the same list.

With several destinations a step is as good as its worst destination, and its evidence
names each one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .causes import AUTH_ACTION, AUTH_MEANINGS
from .config import EXAMPLE_PIXEL_ID, DestinationSettings
from .figures import Quality, data_quality
from .outbox import PARTIAL_REJECTS, RequestLog, TelemetryStore
from .pairing import Pairing, by_destination
from .telemetry import in_mode, invalid_field, rejected_reason
from .tiktok.schema import EVENT_SET_ID, PIXEL_CODE, PURCHASE_EVENTS, STANDARD_EVENTS

DONE, WARNING, TODO = "done", "warning", "todo"
RANK = {DONE: 0, WARNING: 1, TODO: 2}
WINDOW = 7 * 86400  # what the checklist looks at
DAY = 86400
GOOD_SHARE = 0.8
FULL_SHARE = 0.95
GOOD_PAIRING = 0.9
GOOD_MATCH_QUALITY = 7.0
OK_OUTCOMES = ("delivered", "partial")
MAX_REQUESTS = 100_000  # request-log rows read (the newest)


@dataclass(frozen=True)
class Step:
    id: str
    title: str
    status: str
    evidence: str
    action: str

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "title": self.title, "status": self.status,
                "evidence": self.evidence, "action": self.action}


@dataclass
class Seen:
    """What the gateway has seen of one destination: the checklist's input."""

    dest: DestinationSettings
    live: list[tuple[int, str, str, str, int]]  # counters of live events
    test: list[tuple[int, str, str, str, int]]  # of test events
    requests: list[RequestLog]
    pairing: Pairing | None
    demo: bool
    now: float

    def quality(self, test: bool | None = None) -> list[Quality]:
        rows = self.live + self.test if test is None else (self.test if test else self.live)
        return data_quality(rows)


Check = Callable[[Seen], tuple[str, str, str]]  # (status, evidence, action)


def pixel_id(seen: Seen) -> tuple[str, str, str]:
    if seen.dest.pixel_id == EXAMPLE_PIXEL_ID:
        return TODO, f"{EXAMPLE_PIXEL_ID} is the example pixel id `serve --init` writes", (
            "copy your pixel's code from TikTok Events Manager (Data sources, your pixel) into "
            "the destination's pixel_id")
    pattern = PIXEL_CODE if seen.dest.event_source == "web" else EVENT_SET_ID
    if pattern.match(seen.dest.pixel_id):
        return DONE, f"{seen.dest.pixel_id} is a well-formed {seen.dest.event_source} id", ""
    return TODO, f"{seen.dest.pixel_id!r} is not a pixel code (20 upper-case letters and digits)", (
        "copy the pixel code from TikTok Events Manager (Data sources, your pixel) into the "
        "destination's pixel_id")


def access_token(seen: Seen) -> tuple[str, str, str]:
    answered = [r for r in seen.requests if r.code is not None and r.outcome != PARTIAL_REJECTS]
    last = max(answered, key=lambda r: r.at, default=None)
    if seen.demo:
        return WARNING, "demo mode: no access token is set, events go to the built-in sandbox", (
            "create an access token in TikTok Events Manager and set the destination's "
            "access_token (env:NAME or file:PATH)")
    if last is None:
        return TODO, "no request has reached TikTok yet", "send a test event (the steps below)"
    if last.code in AUTH_MEANINGS:
        return TODO, (f"TikTok answered {last.code} at {_clock(last.at)}: "
                      f"{AUTH_MEANINGS[last.code]}"), AUTH_ACTION
    ok = [r for r in answered if r.outcome in OK_OUTCOMES]
    if ok:
        return DONE, f"TikTok answered code 0 at {_clock(max(r.at for r in ok))}", ""
    return WARNING, f"TikTok's last answer was code {last.code}", (
        "see the Tag health page's errors for what TikTok refuses")


def events_arrive(seen: Seen) -> tuple[str, str, str]:
    received = _received(seen.live) + _received(seen.test)
    if received:
        return DONE, f"{received} events received this week", ""
    return TODO, "no event received this week", (
        "send events: a server key from the shop's backend, a Shopify or WooCommerce "
        "webhook, or /tt.js on the shop's pages (see docs/sources.md)")


def test_code(seen: Seen) -> tuple[str, str, str]:
    if seen.dest.test_event_code:
        return DONE, f"test_event_code {seen.dest.test_event_code} is set", ""
    if _received(seen.test):
        return DONE, f"{_received(seen.test)} test events sent with a request's test code", ""
    if _live_flowing(seen):
        return DONE, "live events flow: the test stage is behind you", ""
    return TODO, "no test event code is set", (
        "in TikTok Events Manager open your pixel's Test Events tab, copy the test code and set "
        "test_event_code on the destination (or send the X-Test-Event-Code header)")


def test_event(seen: Seen) -> tuple[str, str, str]:
    delivered = [r for r in seen.requests if r.test and r.outcome in OK_OUTCOMES]
    if delivered:
        return DONE, (f"{sum(r.events for r in delivered)} test events delivered, the last at "
                      f"{_clock(max(r.at for r in delivered))}"), ""
    if _live_flowing(seen):
        return DONE, "live events flow: the test stage is behind you", ""
    return TODO, "no test event has reached TikTok", (
        "place a test order, or run: tiktok-gateway send --test-event-code <code> (or "
        "test_event_code set), then look for it in TikTok's Test Events tab")


def test_lint(seen: Seen) -> tuple[str, str, str]:
    rows = seen.test or (seen.live if _live_flowing(seen) else [])
    received = _received(rows)
    if not received:
        return TODO, "no test event to check yet", "send a test event first"
    problems: dict[str, int] = {}
    for _m, _d, _e, name, value in rows:
        field = invalid_field(name) or rejected_reason(name)
        if field:
            problems[field] = problems.get(field, 0) + value
    refused = sum(r.events for r in seen.requests
                  if (r.test or not seen.test) and r.code not in AUTH_MEANINGS
                  and r.outcome in (PARTIAL_REJECTS, "rejected"))
    if not problems and not refused:
        return DONE, f"{received} events, none refused and no field dropped", ""
    worst = sorted(problems.items(), key=lambda kv: -kv[1])[:3]
    parts = [f"{field}: {n}" for field, n in worst] + (
        [f"{refused} refused by TikTok"] if refused else [])
    return WARNING, "fields dropped or refused: " + ", ".join(parts), (
        "open the Data quality page and the inspector for those fields, fix the sender")


def standard_names(seen: Seen) -> tuple[str, str, str]:
    names = sorted({e for _m, _d, e, n, _v in seen.live + seen.test if n == "received"})
    if not names:
        return TODO, "no event received yet", "send the shop's conversions"
    custom = [n for n in names if n not in STANDARD_EVENTS]
    purchase = [n for n in names if n in PURCHASE_EVENTS]
    if custom:
        return WARNING, f"custom event names: {', '.join(custom[:5])}", (
            "map them to TikTok's standard events in the destination's event_names: custom "
            "events are not used to optimise ads")
    if not purchase:
        return WARNING, f"standard names ({', '.join(names[:6])}), but no purchase yet", (
            f"send purchases as {seen.dest.purchase_event} (the shop's orders)")
    return DONE, f"standard names: {', '.join(names[:8])}", ""


def user_data(seen: Seen) -> tuple[str, str, str]:
    quality = seen.quality()
    if not quality:
        return TODO, "no event received yet", "send events first"
    lines, weak = [], []
    for q in quality[:4]:
        contact = max(q.share("email"), q.share("phone"))
        lines.append(f"{q.event}: email {q.share('email'):.0%}, phone {q.share('phone'):.0%}, "
                     f"ttp {q.share('ttp'):.0%}, ttclid {q.share('ttclid'):.0%}")
        if q.event in PURCHASE_EVENTS and contact < GOOD_SHARE:
            weak.append(q.event)
    if weak:
        return WARNING, "; ".join(lines), (
            f"send the customer's email or phone with every {weak[0]} (hashed by the gateway), "
            "and ttp/ttclid from the browser (/tt.js keeps them)")
    return DONE, "; ".join(lines), ""


def purchase_params(seen: Seen) -> tuple[str, str, str]:
    purchases = [q for q in seen.quality() if q.event in PURCHASE_EVENTS]
    if not purchases:
        return TODO, "no purchase received yet", "send a (test) order"
    q = purchases[0]
    shares = {f: q.share(f) for f in ("contents", "value", "currency")}
    missing = [f"{f} {s:.0%}" for f, s in shares.items() if s < FULL_SHARE]
    text = ", ".join(f"{f} {s:.0%}" for f, s in shares.items())
    if missing:
        return WARNING, f"{q.event}: {text}", (
            "send value, currency and contents (content_id, quantity, price) with every "
            "purchase: TikTok needs them for value optimisation and catalog ads")
    return DONE, f"{q.event}: {text}", ""


def shared_event_ids(seen: Seen) -> tuple[str, str, str]:
    total = seen.pairing.total if seen.pairing else None
    if total is None or not (total.both + total.mismatched + total.pixel_only):
        return TODO, "no pixel event reported by /tt.js this week", (
            "add /tt.js next to the TikTok pixel (docs/sources.md): it shows the gateway which "
            "event_ids the pixel sends")
    rate = total.pairing_rate
    text = (f"{total.both} events on both legs with one event_id, {total.mismatched} "
            f"mismatched, {total.server_only} server only, {total.pixel_only} pixel only")
    if rate is not None and rate >= GOOD_PAIRING:
        return DONE, text, ""
    return WARNING, text, (
        "give the pixel's ttq.track the event_id the server sends: <order_id>_<TikTok event> "
        "for orders (ttgw.track does it), and the same event name on both legs")


def live(seen: Seen) -> tuple[str, str, str]:
    if seen.dest.test_event_code:
        return TODO, "test_event_code is still set: TikTok counts no conversion", (
            "remove test_event_code from the destination once test events look right")
    delivered = [r for r in seen.requests if not r.test and r.outcome in OK_OUTCOMES
                 and r.at >= seen.now - DAY]
    if delivered:
        return DONE, f"{sum(r.events for r in delivered)} live events delivered in 24 h", ""
    return TODO, "no live event delivered in the last 24 h", (
        "check that the shop sends events (Tag health shows what arrives)")


def match_quality(seen: Seen) -> tuple[str, str, str]:
    first = min((m for m, _d, _e, n, _v in seen.live if n == "received"), default=None)
    if first is None or seen.now - first * 60 < DAY:
        return TODO, "less than a day of live events", (
            "wait for a day of live traffic: the estimate needs it")
    quality = seen.quality(test=False)
    received = sum(q.received for q in quality)
    estimate = sum(q.match_quality * q.received for q in quality) / received
    if estimate >= GOOD_MATCH_QUALITY:
        return DONE, f"match-quality estimate {estimate:.1f} of 10 (good)", ""
    tips = quality[0].advice() if quality else []
    return WARNING, f"match-quality estimate {estimate:.1f} of 10", (
        tips[0] if tips else "send more match keys (email, phone, ttclid, ttp)")


STEPS: tuple[tuple[str, str, Check], ...] = (
    ("pixel_id", "Pixel id is well-formed", pixel_id),
    ("access_token", "TikTok accepts the access token", access_token),
    ("events", "Events reach the gateway", events_arrive),
    ("test_code", "A test event code is set", test_code),
    ("test_event", "A test event arrived at TikTok", test_event),
    ("test_lint", "Test events are clean", test_lint),
    ("standard_names", "Conversions use TikTok's standard event names", standard_names),
    ("user_data", "Events carry user data (email, phone, ttp, ttclid)", user_data),
    ("purchase_params", "Purchases carry contents, value and currency", purchase_params),
    ("shared_event_ids", "Pixel and server share event_ids", shared_event_ids),
    ("live", "Test code removed, live events flowing", live),
    ("match_quality", "Match quality in the good band after a day", match_quality),
)


def checklist(destinations: Sequence[DestinationSettings],
              counters: Sequence[tuple[int, str, str, str, int]], requests: Sequence[RequestLog],
              pairing: dict[str, Pairing], *, demo: bool = False,
              now: float | None = None) -> list[Step]:
    now = time.time() if now is None else now
    seen = [Seen(d, in_mode([c for c in counters if c[1] == d.name], "live"),
                 in_mode([c for c in counters if c[1] == d.name], "test"),
                 [r for r in requests if r.destination == d.name], pairing.get(d.name), demo, now)
            for d in destinations]
    steps = []
    for step_id, title, check in STEPS:
        results = [(s.dest.name, *check(s)) for s in seen]
        status = max((r[1] for r in results), key=RANK.__getitem__, default=TODO)
        if len(results) == 1:
            evidence, action = results[0][2], results[0][3]
        else:
            evidence = "; ".join(f"{name}: {ev}" for name, _st, ev, _ac in results)
            action = next((ac for _n, st, _ev, ac in results if st == status and ac), "")
        steps.append(Step(step_id, title, status, evidence, action))
    return steps


async def collect(destinations: Sequence[DestinationSettings], telemetry: TelemetryStore, *,
                  demo: bool = False, now: float | None = None) -> list[Step]:
    """The checklist from what a store holds of the last week."""
    now = time.time() if now is None else now
    start = now - WINDOW
    pairing = by_destination(start, now, *await telemetry.pair_counts(start, now),
                             [d.name for d in destinations])
    return checklist(destinations, await telemetry.counters(start),
                     await telemetry.requests(start, limit=MAX_REQUESTS), pairing, demo=demo,
                     now=now)


def all_done(steps: Sequence[Step]) -> bool:
    return all(s.status == DONE for s in steps)


def as_json(steps: Sequence[Step]) -> dict[str, Any]:
    return {"steps": [s.as_dict() for s in steps]}


def _received(rows: Sequence[tuple[int, str, str, str, int]]) -> int:
    return sum(v for _m, _d, _e, n, v in rows if n == "received")


def _live_flowing(seen: Seen) -> bool:
    return not seen.dest.test_event_code and any(
        not r.test and r.outcome in OK_OUTCOMES for r in seen.requests)


def _clock(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(at))
