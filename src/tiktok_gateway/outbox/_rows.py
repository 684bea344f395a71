"""What every backend does alike: rows to records, first copies, counter rows, retention."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import orjson

from ..merge import merge_payloads, outranks
from . import CopyRecord, CounterKey, NewEvent, OutboxRecord, counter_name

# Per-minute counters are small; a quarter of history is kept whatever the events' retention.
TELEMETRY_RETENTION = 90 * 86400

# The column order of every query that returns records (see the .sql files): OutboxRecord's
# own field order, so that a row is passed to it by position (a claim makes a thousand).
COLUMNS = tuple(f.name for f in dataclasses.fields(OutboxRecord))


def record(row: Sequence[Any]) -> OutboxRecord:
    *head, sampled, finished_at = row
    return OutboxRecord(*head, bool(sampled), finished_at)  # type: ignore[call-arg]


def first_copies(events: Sequence[NewEvent]) -> dict[tuple[str, str, str, str], int]:
    """The index of the first event with each dedup key (and order key): later copies in the
    same request are duplicates of it, and have no entry."""
    first: dict[tuple[str, str, str, str], int] = {}
    orders: set[tuple[str, str, str, str]] = set()
    for index, event in enumerate(events):
        if event.dedup_key in first:
            continue
        order = event.order_key
        if order is not None:
            if order in orders:
                continue
            orders.add(order)
        first[event.dedup_key] = index
    return first


def counter_rows(counters: dict[CounterKey, int] | None) -> list[dict[str, Any]]:
    """Counters as rows for the `add_counter(s)` queries."""
    return [{"minute": k[0], "destination": k[1], "event_name": k[2], "name": k[3], "value": v}
            for k, v in (counters or {}).items()]


def merged_copy(copy: NewEvent, target: tuple[int, str, str] | None, *, merging: bool,
                now: float) -> tuple[CopyRecord, str | None]:
    """A copy against the record it copies: (id, payload, source) or None when that is gone.

    Returns the copy's record and, when `merging` (the record is pending and no worker holds
    it) and the copy adds anything, the record's new payload. A late copy's keys are those it
    would have added, where the record's payload is still kept.
    """
    mine = orjson.loads(copy.payload)
    record_id, payload, source = target or (None, "", "")
    stored = orjson.loads(payload) if payload else {}
    merged, added = merge_payloads(stored, mine, copy_wins=outranks(copy.source, source))
    new_payload = orjson.dumps(merged).decode() if merging and merged != stored else None
    if not payload:  # nothing kept to compare with: all the copy carried
        added = sorted((mine.get("user") or {}).keys())
    record = CopyRecord(record_id, copy.destination, copy.event_name, copy.event_id,
                        copy.order_id, copy.source, merging and target is not None,
                        tuple(added), now)
    return record, new_payload


def copy_row(record: CopyRecord) -> dict[str, Any]:
    return {**record.__dict__, "merged": int(record.merged),
            "added": orjson.dumps(list(record.added)).decode()}


def copy_record(row: Sequence[Any]) -> CopyRecord:
    record_id, destination, event_name, event_id, order_id, source, merged, added, at = row
    return CopyRecord(record_id, destination, event_name, event_id, order_id, source,
                      bool(merged), tuple(orjson.loads(added)), at)


def merge_counters(copies: Sequence[NewEvent], records: Sequence[CopyRecord],
                   now: float) -> dict[CounterKey, int]:
    """A `merged` or `late_duplicate` count for each copy (`records` in the same order)."""
    minute = int(now // 60)
    counts: dict[CounterKey, int] = {}
    for event, copy in zip(copies, records, strict=True):
        name = "merged" if copy.merged else "late_duplicate"
        key = (minute, copy.destination, copy.event_name,
               counter_name(name, bool(event.test_event_code)))
        counts[key] = counts.get(key, 0) + 1
    return counts
