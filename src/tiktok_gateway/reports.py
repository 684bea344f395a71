"""Readable terminal reports (rich) for the CLI."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from .config import Settings
from .exceptions import FieldError
from .tiktok.lint import LintReport


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
            f"  Sandbox Test Events: {url}/tiktok-sandbox/",
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
