"""What every backend does alike: rows to records, first copies, counter rows, retention."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from . import CounterKey, NewEvent, OutboxRecord

# Per-minute counters are small; a quarter of history is kept whatever the events' retention.
TELEMETRY_RETENTION = 90 * 86400

# The column order of every query that returns records (see the .sql files): OutboxRecord's
# own field order, so that a row is passed to it by position (a claim makes a thousand).
COLUMNS = tuple(f.name for f in dataclasses.fields(OutboxRecord))


def record(row: Sequence[Any]) -> OutboxRecord:
    *head, sampled, finished_at = row
    return OutboxRecord(*head, bool(sampled), finished_at)  # type: ignore[call-arg]


def first_copies(events: Sequence[NewEvent]) -> dict[tuple[str, str, str, str], int]:
    """The index of the first event with each dedup key: later copies in the same request
    are duplicates of it."""
    first: dict[tuple[str, str, str, str], int] = {}
    for index, event in enumerate(events):
        first.setdefault(event.dedup_key, index)
    return first


def counter_rows(counters: dict[CounterKey, int] | None) -> list[dict[str, Any]]:
    """Counters as rows for the `add_counter(s)` queries."""
    return [{"minute": k[0], "destination": k[1], "event_name": k[2], "name": k[3], "value": v}
            for k, v in (counters or {}).items()]
