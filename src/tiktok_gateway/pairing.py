"""Pairing of the browser pixel and the server leg of each event.

`/tt.js` reports what the page's TikTok pixel did with each `ttq.track` call (the pixel
leg); ingest records every stored server event (the server leg). Both are `Leg` rows in the
store, one per destination, side and event_id. A store answers `pair_counts` with groups of
alike server legs (their pixel leg, if any, folded in) and of pixel legs no server leg
matches; `classify` turns those into what the pairing view shows per TikTok event:

- both: the pixel reached TikTok and the server sent the same event_id within TikTok's 48 h
  deduplication window (TikTok counts one conversion);
- server only: the server leg recovered it, with the cause: the pixel was blocked, never
  loaded, held back for consent, or the page never tracked it (absent);
- pixel only: the server never sent it: the server leg's own gap;
- mismatched: the same order, but a different event_id or event name on the two legs (TikTok
  counts it twice).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ua_parser import parse as parse_user_agent

PIXEL, SERVER = "pixel", "server"
LOADED, BLOCKED, NOT_LOADED, CONSENT, ABSENT = (
    "loaded", "blocked", "not_loaded", "consent", "absent")
PIXEL_STATES = (LOADED, BLOCKED, NOT_LOADED, CONSENT)
CAUSES = (BLOCKED, NOT_LOADED, CONSENT, ABSENT)  # why an event is server only
LOAD_BUCKETS = ("0-1s", "1-3s", "3-10s", "10s+")
DEDUP_WINDOW = 48 * 3600  # TikTok deduplicates a pixel and server pair within 48 hours
MERGE_WINDOW = 5 * 60  # and merges their data within 5 minutes
WINDOWS = {"1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
# Legs are kept for the longest window plus the dedup window before its start.
LEG_RETENTION = WINDOWS["30d"] + DEDUP_WINDOW + 86400
MAX_USER_AGENT = 512


@dataclass(frozen=True)
class Leg:
    """One side of one event, as the store keeps it: names and buckets, nothing personal."""

    destination: str
    side: str  # PIXEL or SERVER
    event_name: str
    event_id: str
    order_id: str
    at: float  # when the gateway received it
    state: str  # a pixel leg's PIXEL_STATES; a server leg's source (server, webhook, ...)
    browser: str = ""  # family and major version ("Chrome 131"), never the user agent
    os: str = ""  # family and major version ("iOS 17")
    load: str = ""  # a pixel leg's page-load bucket (LOAD_BUCKETS)
    test: bool = False


@dataclass(frozen=True)
class ServerGroup:
    """Server legs alike in every column, with their count (what a store's query returns)."""

    destination: str
    event_name: str
    pixel_event: str  # the pixel leg's event name with the same event_id, "" without one
    pixel_state: str
    within_window: bool  # the two legs within DEDUP_WINDOW of each other
    order_on_pixel: bool  # no pixel leg by id, but one for the same order
    browser: str
    os: str
    load: str
    count: int


@dataclass(frozen=True)
class PixelOnlyGroup:
    """Pixel legs alike, with no server leg of their event_id or order."""

    destination: str
    event_name: str
    state: str
    browser: str
    os: str
    load: str
    count: int


@dataclass
class EventPairing:
    both: int = 0
    server_only: int = 0
    pixel_only: int = 0
    mismatched: int = 0
    server_only_causes: dict[str, int] = field(default_factory=dict)

    @property
    def pairing_rate(self) -> float | None:
        """Of the events both legs tracked, the share whose event_id and name matched."""
        tracked = self.both + self.mismatched
        return self.both / tracked if tracked else None

    def as_dict(self) -> dict[str, Any]:
        return {"both": self.both, "server_only": self.server_only,
                "pixel_only": self.pixel_only, "mismatched": self.mismatched,
                "server_only_causes": {c: self.server_only_causes.get(c, 0) for c in CAUSES}}


@dataclass
class Pairing:
    """The pairing of one window: per TikTok event, and the server-only breakdowns."""

    start: float
    end: float
    events: dict[str, EventPairing] = field(default_factory=dict)
    # (cause, browser, os, load bucket) -> server-only events: the per-cause gap analysis
    recovered: dict[tuple[str, str, str, str], int] = field(default_factory=dict)

    def event(self, name: str) -> EventPairing:
        return self.events.setdefault(name, EventPairing())

    def by(self, column: int) -> list[tuple[str, int]]:
        """Server-only events by one column of `recovered` (0 cause, 1 browser, 2 OS, 3 load),
        largest first."""
        totals: dict[str, int] = {}
        for key, n in self.recovered.items():
            totals[key[column] or "unknown"] = totals.get(key[column] or "unknown", 0) + n
        return sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))

    @property
    def total(self) -> EventPairing:
        total = EventPairing()
        for one in self.events.values():
            total.both += one.both
            total.server_only += one.server_only
            total.pixel_only += one.pixel_only
            total.mismatched += one.mismatched
            for cause, n in one.server_only_causes.items():
                total.server_only_causes[cause] = total.server_only_causes.get(cause, 0) + n
        return total

    def as_dict(self) -> dict[str, Any]:
        return {"window": {"start": int(self.start), "end": int(self.end)},
                "events": {name: e.as_dict() for name, e in sorted(self.events.items())}}


def cause_of(group: ServerGroup) -> str | None:
    """A server leg's class: None when both legs reached TikTok, "mismatched", else the cause
    of its being server only."""
    if group.pixel_event:
        if group.pixel_event != group.event_name:
            return "mismatched"
        if not group.within_window:
            return ABSENT  # the pixel's copy is too far apart for TikTok to pair them
        return None if group.pixel_state == LOADED else group.pixel_state
    return "mismatched" if group.order_on_pixel else ABSENT


def classify(start: float, end: float, server: Iterable[ServerGroup],
             pixel_only: Iterable[PixelOnlyGroup], event: str | None = None) -> Pairing:
    pairing = Pairing(start, end)
    for group in server:
        if event is not None and group.event_name != event:
            continue
        one = pairing.event(group.event_name)
        kind = cause_of(group)
        if kind is None:
            one.both += group.count
        elif kind == "mismatched":
            one.mismatched += group.count
        else:
            one.server_only += group.count
            one.server_only_causes[kind] = one.server_only_causes.get(kind, 0) + group.count
            key = (kind, group.browser, group.os, group.load)
            pairing.recovered[key] = pairing.recovered.get(key, 0) + group.count
    for lone in pixel_only:
        if event is None or lone.event_name == event:
            pairing.event(lone.event_name).pixel_only += lone.count
    return pairing


def by_destination(start: float, end: float, server: Sequence[ServerGroup],
                   pixel_only: Sequence[PixelOnlyGroup], names: Iterable[str],
                   ) -> dict[str, Pairing]:
    """One pairing per destination from one store answer."""
    return {name: classify(start, end, [g for g in server if g.destination == name],
                           [g for g in pixel_only if g.destination == name])
            for name in names}


@functools.lru_cache(maxsize=2048)
def browser_and_os(user_agent: str | None) -> tuple[str, str]:
    """("Chrome 131", "Android 14") from a user agent: what pairing keeps of it."""
    if not user_agent:
        return "", ""
    parsed = parse_user_agent(user_agent[:MAX_USER_AGENT])
    agent, system = parsed.user_agent, parsed.os
    browser = " ".join(filter(None, (agent.family, agent.major))) if agent else ""
    os = " ".join(filter(None, (system.family, system.major))) if system else ""
    return browser[:64], os[:64]


def load_bucket(milliseconds: float | None) -> str:
    """The page-load bucket of a load time (the pixel leg's)."""
    if milliseconds is None or milliseconds < 0:
        return ""
    for limit, bucket in ((1000, "0-1s"), (3000, "1-3s"), (10000, "3-10s")):
        if milliseconds < limit:
            return bucket
    return "10s+"
