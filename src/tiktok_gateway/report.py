"""`tiktok-gateway report`: tag health, data quality and the orders gap report in a terminal."""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from . import insights
from .exceptions import ConfigError
from .outbox import SENT, Outbox, RecordQuery

PURCHASE_EVENTS = ("CompletePayment", "Purchase")


@dataclass
class GapReport:
    """True orders against delivered purchase events."""

    orders: int = 0
    delivered: int = 0
    pending: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def share(self) -> float | None:
        return self.delivered / self.orders if self.orders else None

    def as_dict(self) -> dict[str, Any]:
        return {"orders": self.orders, "delivered": self.delivered, "share": self.share,
                "pending": self.pending, "failed": self.failed, "missing": self.missing}


def read_orders(path: Path) -> list[str]:
    """Order ids from a CSV with an `order_id` column (time and value columns are optional)."""
    try:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or "order_id" not in reader.fieldnames:
                raise ConfigError(f"{path}: needs a header row with an order_id column")
            return [row["order_id"].strip() for row in reader if row.get("order_id", "").strip()]
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None


async def gap_report(outbox: Outbox, order_ids: list[str]) -> GapReport:
    report = GapReport(orders=len(order_ids))
    for order_id in order_ids:
        records = [r for r in await outbox.find(RecordQuery(order_id=order_id, limit=20))
                   if r.event_name in PURCHASE_EVENTS and not r.test_event_code]
        states = {r.state for r in records}
        if SENT in states:
            report.delivered += 1
        elif "pending" in states:
            report.pending.append(order_id)
        elif states:
            report.failed.append(order_id)
        else:
            report.missing.append(order_id)
    return report


async def collect(outbox: Outbox, destinations: list[str], since: float) -> dict[str, Any]:
    span = max(60.0, time.time() - since)
    counters = await outbox.telemetry.counters(since)
    requests = await outbox.telemetry.requests(since)
    backlog = await outbox.backlog()
    return {"health": insights.tag_health(destinations, counters, requests, backlog, span, span),
            "quality": insights.data_quality(counters),
            "totals": insights.outcome_totals(counters)}


def print_report(figures: dict[str, Any], gap: GapReport | None, console: Console) -> None:
    totals = figures["totals"]
    console.print("[bold]Events[/bold]: " + ", ".join(f"{k} {v}" for k, v in totals.items()))
    table = Table(title="Tag health", title_justify="left")
    for column in ("destination", "requests", "success", "events sent", "p50", "p95",
                   "pending", "dead"):
        table.add_column(column, justify="left" if column == "destination" else "right")
    for h in figures["health"]:
        table.add_row(h.destination, str(h.requests), _pct(h.success_rate), str(h.events_sent),
                      _ms(h.latency(0.5)), _ms(h.latency(0.95)), str(h.pending), str(h.dead))
    console.print(table)
    for h in figures["health"]:
        for e in h.errors[:10]:
            console.print(f"  [red]{h.destination}[/red] code {e.code}: {e.message} "
                          f"× {e.count}")
    quality = Table(title="Data quality (share of events carrying each field)",
                    title_justify="left")
    quality.add_column("event", no_wrap=True)
    quality.add_column("events", justify="right")
    for f in (*insights.QUALITY_FIELDS, "shared id", "match (est.)"):
        quality.add_column(f, justify="right")
    for q in figures["quality"]:
        quality.add_row(q.event, str(q.received), *(_pct(q.share(f)) for f in
                                                     insights.QUALITY_FIELDS),
                        _pct(q.shared_id_share), f"{q.match_quality:.1f}")
    console.print(quality)
    weights = ", ".join(f"{k} {w}" for k, w in insights.EMQ_WEIGHTS.items())
    console.print(f"[dim]Match quality is an estimate, not TikTok's score; weights: {weights}[/dim]")
    if gap is not None:
        print_gap(gap, console)


def print_gap(gap: GapReport, console: Console) -> None:
    console.print(f"[bold]Gap report[/bold]: {gap.delivered} of {gap.orders} orders delivered as "
                  f"CompletePayment/Purchase ({_pct(gap.share)})")
    for label, ids in (("still pending", gap.pending), ("dead-lettered", gap.failed),
                       ("never received", gap.missing)):
        if ids:
            shown = ", ".join(ids[:20]) + (" …" if len(ids) > 20 else "")
            console.print(f"  {len(ids)} {label}: {shown}")


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value * 1000:.0f} ms"
