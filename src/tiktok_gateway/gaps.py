"""The gap report: the shop's true orders against what TikTok got, each with a label.

An order the gateway never saw is a gap in the shop's tagging; one it saw but did not deliver
as a live purchase has a reason the report names: sent as a test event, filtered (consent, a
test order), rejected at ingest (the field at fault), dead-lettered (TikTok's reason), or
still waiting. Orders the platform cancelled or refunded say so, before or after sending.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .outbox import DEAD, FILTERED, PENDING, REJECTED, RecordReader, TelemetryStore
from .search import DELIVERED, EventSearch, search_events
from .tiktok.schema import PURCHASE_EVENTS

NEVER_RECEIVED, TEST_ONLY = "never received", "test"
MAX_ORDERS = 100_000  # orders one report checks
MAX_ORDER_ID = 200
# The label an order gets: its best outcome, in this order.
RANKS = (DELIVERED, PENDING, DEAD, TEST_ONLY, FILTERED, REJECTED)


@dataclass
class GapReport:
    """True orders against delivered purchase events."""

    orders: int = 0
    delivered: int = 0
    pending: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # dead-lettered
    missing: list[str] = field(default_factory=list)  # never received
    # Orders the platform cancelled, voided or refunded (after sending, when also delivered).
    changed: dict[str, str] = field(default_factory=dict)
    # Every order's label: delivered, pending, dead (reason), test, filtered (reason),
    # rejected (reason) or never received.
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def share(self) -> float | None:
        return self.delivered / self.orders if self.orders else None

    @property
    def by_label(self) -> dict[str, int]:
        return dict(Counter(label.split(" (")[0] for label in self.labels.values()))

    def as_dict(self) -> dict[str, Any]:
        return {"orders": self.orders, "delivered": self.delivered, "share": self.share,
                "pending": self.pending, "failed": self.failed, "missing": self.missing,
                "changed": self.changed, "by_label": self.by_label, "labels": self.labels}


def order_ids_from_csv(text: str) -> list[str]:
    """Order ids from a CSV with an `order_id` column (other columns are ignored), or from a
    plain list, one id a line. Raises ValueError naming what is wrong."""
    lines = text.lstrip("\ufeff").splitlines()
    if not lines:
        return []
    if "," in lines[0] or lines[0].strip().lower() == "order_id":
        reader = csv.DictReader(io.StringIO("\n".join(lines)))
        if not reader.fieldnames or "order_id" not in [f.strip() for f in reader.fieldnames]:
            raise ValueError("the CSV needs a header row with an order_id column")
        reader.fieldnames = [f.strip() for f in reader.fieldnames]
        ids = [(row.get("order_id") or "").strip() for row in reader]
    else:
        ids = [line.strip() for line in lines]
    ids = list(dict.fromkeys(i for i in ids if i))  # each order once, in the file's order
    if len(ids) > MAX_ORDERS:
        raise ValueError(f"at most {MAX_ORDERS:,} orders at a time")
    if any(len(i) > MAX_ORDER_ID for i in ids):
        raise ValueError(f"an order id is longer than {MAX_ORDER_ID} characters")
    return ids


async def gap_report(records: RecordReader, order_ids: list[str],
                     telemetry: TelemetryStore | None = None) -> GapReport:
    """Each true order's label (filtered and rejected ones are known with `telemetry`)."""
    report = GapReport(orders=len(order_ids))
    for order_id in order_ids:
        _, found = await search_events(records, telemetry, EventSearch(order_id=order_id,
                                                                       limit=50))
        label = _label([f for f in found if f["event"] in PURCHASE_EVENTS
                        or f["state"] in (FILTERED, REJECTED)])
        report.labels[order_id] = label
        kind = label.split(" (")[0]
        if kind == DELIVERED:
            report.delivered += 1
        elif kind == PENDING:
            report.pending.append(order_id)
        elif kind == DEAD:
            report.failed.append(order_id)
        elif kind == NEVER_RECEIVED:
            report.missing.append(order_id)
        changes = await records.changes(order_id)
        if changes:
            when = "after sending" if kind == DELIVERED else "before sending"
            report.changed[order_id] = f"{changes[-1].change} {when}"
    return report


def _label(found: list[dict[str, Any]]) -> str:
    best: tuple[int, str] | None = None
    for item in found:
        state = item["state"]
        if state == "duplicate":
            continue
        if item["test"] and state in (DELIVERED, PENDING, DEAD):
            state = TEST_ONLY
        if state not in RANKS:
            continue
        rank = RANKS.index(state)
        reason = item["reason"] if state in (DEAD, FILTERED, REJECTED) else None
        label = f"{state} ({reason})" if reason else state
        if best is None or rank < best[0]:
            best = (rank, label)
    return best[1] if best else NEVER_RECEIVED
