"""What the CLI prints: lint verdicts, the start-up banner, `report` and the gap report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..checklist import Step
from ..config import Settings
from ..exceptions import ConfigError, FieldError
from ..figures import EMQ_WEIGHTS
from ..gaps import GapReport, order_ids_from_csv
from ..gateway import demo_storage_url
from ..telemetry import QUALITY_FIELDS
from ..tiktok.lint import LintReport


def print_lint_report(report: LintReport, console: Console) -> None:
    """What TikTok would reject, drop and warn about, event by event."""
    verdict = "[green]OK[/green]" if report.ok else "[red]REJECTED[/red]"
    console.print(f"{report.kind}: {verdict}, {len(report.events)} event(s)")
    _print_findings(console, "request", report.request_errors, report.request_warnings, [])
    for event in report.events:
        if event.errors or event.warnings or event.dropped:
            _print_findings(console, f"event {event.index}", event.errors, event.warnings,
                            event.dropped)
    if report.ok and not any(e.warnings or e.dropped for e in report.events):
        console.print("No problems found.")


def _print_findings(
    console: Console, title: str, errors: list[FieldError], warnings: list[FieldError],
    dropped: list[FieldError],
) -> None:
    if not (errors or warnings or dropped):
        return
    table = Table(title=title, title_justify="left", show_lines=False)
    table.add_column("verdict")
    table.add_column("field")
    table.add_column("why")
    for style, label, findings in (("red", "error", errors), ("yellow", "dropped", dropped),
                                   ("cyan", "warning", warnings)):
        for finding in findings:
            table.add_row(f"[{style}]{label}[/{style}]", finding.field, finding.message)
    console.print(table)


def startup_banner(url: str, settings: Settings, *, demo: bool) -> str:
    """What `serve` prints once listening: where to post, and a curl line that works."""
    lines = [f"tiktok-gateway listening on {url}"]
    if demo:
        lines += [
            "  DEMO MODE: no TikTok access token is configured, so events go to the built-in",
            "  sandbox, not to TikTok. Set the destination's access_token to go live.",
            "  (The sandbox pages need the admin login: user admin, the password the config names.)",
            f"  Sandbox Test Events: {url}/tiktok-sandbox/",
            f"  Demo events are kept apart, in {demo_storage_url(settings.storage.url)}.",
            "  To go live: tiktok-gateway golive --test-event-code <code> (docs/cli.md)",
        ]
    else:
        lines.append(f"  Delivering to {settings.tiktok.base_url}")
    lines.append(f"  Post events to:      {url}/v1/events")
    key = next((k for k in settings.keys if k.kind == "server"), None)
    if key is not None:
        secret = key.secret
        shown = (f"$(cat {secret[5:]})" if secret.startswith("file:") else
                 f"${secret[4:]}" if secret.startswith("env:") else "<your server key>")
        lines.append(
            f"  Try it: curl -X POST {url}/v1/events -H \"Authorization: Bearer {shown}\" "
            "-H 'Content-Type: application/json' -d '{\"event\": \"purchase\", \"properties\": "
            "{\"order_id\": \"1001\", \"value\": 25, \"currency\": \"USD\"}, \"user\": "
            "{\"email\": \"customer@example.com\"}}'")
    return "\n".join(lines)


def read_orders(path: Path) -> list[str]:
    """Order ids from a CSV with an `order_id` column (time and value columns are optional)."""
    try:
        return order_ids_from_csv(path.read_text(encoding="utf-8", errors="replace"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def print_report(figures: dict[str, Any], gap: GapReport | None, console: Console) -> None:
    totals = figures["totals"]
    console.print("[bold]Events[/bold]: " + ", ".join(f"{k} {v}" for k, v in totals.items()))
    table = Table(title="Tag health", title_justify="left")
    for column in ("destination", "requests", "success", "events sent", "p50", "p95",
                   "pending", "dead"):
        table.add_column(column, justify="left" if column == "destination" else "right")
    for h in figures["health"]:
        table.add_row(escape(h.destination), str(h.requests), _pct(h.success_rate), str(h.events_sent),
                      _ms(h.latency(0.5)), _ms(h.latency(0.95)), str(h.pending), str(h.dead))
    console.print(table)
    for h in figures["health"]:
        for e in h.errors[:10]:
            console.print(f"  [red]{escape(h.destination)}[/red] code {e.code}: {escape(e.message)} "
                          f"× {e.count}")
    quality = Table(title="Data quality (share of events carrying each field)",
                    title_justify="left")
    quality.add_column("event", no_wrap=True)
    quality.add_column("events", justify="right")
    for f in (*QUALITY_FIELDS, "shared id", "match (est.)"):
        quality.add_column(f, justify="right")
    for q in figures["quality"]:
        quality.add_row(escape(q.event), str(q.received), *(_pct(q.share(f)) for f in
                                                     QUALITY_FIELDS),
                        _pct(q.shared_id_share), f"{q.match_quality:.1f}")
    console.print(quality)
    weights = ", ".join(f"{k} {w}" for k, w in EMQ_WEIGHTS.items())
    console.print(f"[dim]Match quality is an estimate, not TikTok's score; weights: {weights}[/dim]")
    if gap is not None:
        print_gap(gap, console)


def print_gap(gap: GapReport, console: Console) -> None:
    console.print(f"[bold]Gap report[/bold]: {gap.delivered} of {gap.orders} orders delivered as "
                  f"CompletePayment/Purchase ({_pct(gap.share)})")
    by_kind: dict[str, list[str]] = {}
    for order_id, label in gap.labels.items():
        by_kind.setdefault(label.split(" (")[0], []).append(order_id)
    for kind, ids in by_kind.items():
        if kind == "delivered":
            continue
        shown = ", ".join(escape(f"{i} ({gap.labels[i].partition(' (')[2].rstrip(')')})"
                                 if " (" in gap.labels[i] else i) for i in ids[:20])
        console.print(f"  {len(ids)} {escape(kind)}: {shown}" + (" …" if len(ids) > 20 else ""))
    for order_id, change in list(gap.changed.items())[:20]:
        console.print(f"  order {escape(order_id)}: {change}")


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value * 1000:.0f} ms"


FINDING_STYLES = {"ok": "green", "warn": "yellow", "error": "red"}


def print_findings(findings: list[tuple[str, str]], console: Console) -> None:
    """`ok` / `warn` / `error` lines (doctor, golive)."""
    for level, message in findings:
        # The message is text, not markup: "[[keys]]" must print as written.
        style = FINDING_STYLES[level]
        console.print(f"[{style}]{level:>5}[/{style}]  {escape(message)}", highlight=False)


CHECK_MARKS = {"done": "[green]done[/green]", "warning": "[yellow]warn[/yellow]",
               "todo": "[red]todo[/red]"}


def print_checklist(steps: list[Step], unreadable: str | None, console: Console) -> None:
    """The set-up checklist: each step's status, evidence and, until done, what to do."""
    done = sum(s.status == "done" for s in steps)
    console.print(f"\nset-up checklist: {done} of {len(steps)} done"
                  + (f" (store not read: {escape(unreadable)})" if unreadable else ""),
                  highlight=False)
    for number, step in enumerate(steps, start=1):
        console.print(f"{number:>3}. {CHECK_MARKS[step.status]:<6} {escape(step.title)}: "
                      f"{escape(step.evidence)}", highlight=False)
        if step.action and step.status != "done":
            console.print(f"       next: {escape(step.action)}", highlight=False)
