"""Find any event the gateway received, whatever became of it.

Three places hold what happened to an event: the outbox (pending, delivered, dead), the
copies log (a later copy: merged or a late duplicate), and the record of events not queued
(filtered with the filter's reason, rejected with the field at fault). A search looks in all
of them, case-insensitively: an order id, an event_id with or without its `_<Event>` suffix,
or any prefix of either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .outbox import (
    DEAD,
    FILTERED,
    PENDING,
    REJECTED,
    SENT,
    CopyRecord,
    DroppedEvent,
    OutboxRecord,
    RecordQuery,
    RecordReader,
    TelemetryStore,
)
from .telemetry import mode_includes

DELIVERED, DUPLICATE = "delivered", "duplicate"
STATES = (DELIVERED, PENDING, DEAD, DUPLICATE, FILTERED, REJECTED)
SCANNED = 10_000  # matches read from each place; `total` counts up to this many of each
MAX_LIMIT = 1000


@dataclass(frozen=True)
class EventSearch:
    order_id: str | None = None
    event_id: str | None = None
    prefix: str | None = None  # of an event_id or an order id
    state: str | None = None
    reason: str | None = None  # a part of the reason, in any case
    destination: str | None = None
    event_name: str | None = None  # a TikTok event name, in any case
    code: int | None = None  # TikTok's code in its last answer
    mode: str = "all"  # live, test or all
    since: float | None = None
    limit: int = 100

    def wants(self, state: str) -> bool:
        return self.state is None or self.state == state

    def matches(self, item: dict[str, Any]) -> bool:
        """The case-insensitive checks the stores' prefix scan leaves to us."""
        event_id, order_id = item["event_id"].lower(), item["order_id"].lower()
        if self.order_id is not None and order_id != self.order_id.lower():
            return False
        wanted = (self.event_id or "").lower()
        if self.event_id is not None and not (
                event_id == wanted or event_id.startswith(wanted + "_")):
            return False
        if self.reason is not None and self.reason.lower() not in (item["reason"] or "").lower():
            return False
        if self.event_name is not None and item["event"].lower() != self.event_name.lower():
            return False
        if self.code is not None and item["tiktok"]["code"] != self.code:
            return False
        return mode_includes(self.mode, item["test"])


async def search_events(records: RecordReader, telemetry: TelemetryStore | None,
                        search: EventSearch) -> tuple[int, list[dict[str, Any]]]:
    """(how many match, the newest `limit` of them). Without `telemetry`, filtered and
    rejected events are not looked for."""
    if search.order_id and not (search.prefix or search.event_id):
        # An order id as the shop spells it: the index finds it at once; any other case
        # needs the scan below.
        exact = RecordQuery(order_id=search.order_id, destination=search.destination,
                            since=search.since, limit=SCANNED)
        total, found = await _search(records, telemetry, search, exact)
        if total:
            return total, found
    prefix = search.prefix or search.order_id or search.event_id
    query = RecordQuery(prefix=prefix or None, destination=search.destination,
                        since=search.since, limit=SCANNED)
    return await _search(records, telemetry, search, query)


async def _search(records: RecordReader, telemetry: TelemetryStore | None,
                  search: EventSearch, query: RecordQuery) -> tuple[int, list[dict[str, Any]]]:
    found: list[dict[str, Any]] = []
    outbox_state = {DELIVERED: SENT, PENDING: PENDING, DEAD: DEAD}.get(search.state or "")
    if search.state is None or outbox_state:
        found += [_from_outbox(r) for r in await records.find(
            RecordQuery(**{**query.__dict__, "state": outbox_state}))]
    if search.wants(DUPLICATE):
        found += [_from_copy(c) for c in await records.find_copies(query)]
    if telemetry is not None and (search.state is None or search.state in (FILTERED, REJECTED)):
        found += [_from_dropped(d) for d in await telemetry.dropped(
            RecordQuery(**{**query.__dict__, "state": search.state}))]
    matching = sorted((f for f in found if search.matches(f)), key=lambda f: -f["received_at"])
    return len(matching), matching[:max(1, min(search.limit, MAX_LIMIT))]


def _item(event_id: str, order_id: str, destination: str, event: str, state: str,
          reason: str | None, test: bool, at: float, source: str,
          tiktok: dict[str, Any] | None = None, record_id: int | None = None) -> dict[str, Any]:
    tiktok = tiktok or {}
    return {"event_id": event_id, "order_id": order_id, "destination": destination,
            "event": event, "state": state, "reason": reason, "test": test,
            "received_at": at, "source": source or None, "record_id": record_id,
            "tiktok": {"code": tiktok.get("code"), "message": tiktok.get("message") or "",
                       "request_id": tiktok.get("request_id") or ""}}


def _from_outbox(record: OutboxRecord) -> dict[str, Any]:
    result = record.result
    state = DELIVERED if record.state == SENT else record.state
    reason = None
    if result and record.state == DEAD:
        reason = result.get("message")
    elif result and record.state == PENDING:
        reason = f"retrying after: {result.get('message')}"
    return _item(record.event_id, record.order_id, record.destination, record.event_name,
                 state, reason, bool(record.test_event_code), record.created_at, "",
                 result, record.id)


def _from_copy(copy: CopyRecord) -> dict[str, Any]:
    reason = ("merged into the first copy before delivery" if copy.merged else
              "late duplicate: the first copy was already sent or being sent")
    return _item(copy.event_id, copy.order_id, copy.destination, copy.event_name, DUPLICATE,
                 reason, False, copy.received_at, copy.source, record_id=copy.record_id)


def _from_dropped(dropped: DroppedEvent) -> dict[str, Any]:
    item = _item(dropped.event_id, dropped.order_id, dropped.destination, dropped.event_name,
                 dropped.state, dropped.reason, dropped.test, dropped.at, dropped.source)
    if dropped.payload:  # a rejected event: as received, with nothing personal in it
        item["received"] = dropped.payload
    return item
