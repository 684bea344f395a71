"""Readable terminal reports (rich) for the CLI."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

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
