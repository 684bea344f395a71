"""Render bench/results/reliability.md from the figures the reliability tests recorded."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

SOURCE = Path(os.environ.get("TIKTOK_GATEWAY_REPORT_DIR", "test-results/reliability"))
TARGET = Path(__file__).with_name("results") / "reliability.md"
TITLES = {
    "crash_kill_9": "kill -9 during a stream of posts (SQLite), restarted",
    "two_processes_postgres_kill_9": "two processes on PostgreSQL, one kill -9'ed under load",
    "outage_and_fault_storms": ("outage, 5xx storms (HTML and JSON), 40100 storm, slow answers, "
                                "our rate limit under TikTok's, partial success"),
    "fuzz_inbound": "hypothesis fuzzing of the inbound schema",
    "fuzz_check": "hypothesis fuzzing of `check` (the request linter)",
    "schemathesis": "schemathesis against /openapi.json of a running gateway",
    "secrets_scan": "raw emails, phones, tokens and keys searched in database, logs, pages, metrics",
}


def main() -> None:
    lines = [f"# Reliability and security ({datetime.now(UTC).isoformat(timespec='seconds')})",
             "", "Figures recorded by the reliability tests (`make test` runs them at CI size; "
             "`make soak` at a larger one).", ""]
    for path in sorted(SOURCE.glob("*.json")):
        figures = json.loads(path.read_text())
        lines += [f"## {TITLES.get(path.stem, path.stem)}", "", "| figure | value |", "|---|---|"]
        lines += [f"| {key.replace('_', ' ')} | {_cell(value)} |" for key, value in figures.items()]
        lines.append("")
    TARGET.write_text("\n".join(lines))
    print(TARGET.read_text())


def _cell(value: object) -> str:
    """A figure as table text: lists and counts by key spelled out, not as Python reprs."""
    if isinstance(value, dict):
        return ", ".join(f"{key}: {count}" for key, count in value.items())
    if isinstance(value, list):
        return "; ".join(str(item) for item in value)
    return str(value)


if __name__ == "__main__":
    main()
