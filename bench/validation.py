"""Validation of inbound events: what we do (orjson, then pydantic-core's compiled validator
of the `Event` model) against msgspec's typed decoding straight from bytes, on the same
events, with the messages each gives for the same bad events.

msgspec runs in a virtualenv of its own (bench/.venvs/msgspec): it is not a dependency of the
gateway, only a contender.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench import data
from bench.transform import REPEAT
from bench.venvs import venv_python

SCRIPT = Path(__file__).with_name("msgspec_validate.py")

# What a sender reads back; the last event has three bad fields (msgspec stops at the first).
BAD_EVENTS = [
    {"event": "purchase", "properties": {"value": "12,50 €"}},
    {"event": "purchase", "properties": {"currency": "usd!"}},
    {"event": "purchase", "user": {"email": 42.5}},
    {"event": "", "event_id": "1"},
    {"event": "purchase", "event_time": "yesterday"},
    {"event": "purchase", "properties": {"items": [{"price": -3}]}},
    {"event": "purchase", "event_id": 7.5, "properties": {"value": -1, "currency": "usd!"}},
]


def ours(lines: list[bytes]) -> float:
    from tiktok_gateway.events import parse_event

    best = float("inf")
    for _ in range(REPEAT):
        started = time.perf_counter()
        for line in lines:
            parse_event(orjson.loads(line))
        best = min(best, time.perf_counter() - started)
    return round(best / len(lines) * 1e6, 2)


def our_errors() -> list[str]:
    from tiktok_gateway.events import parse_event
    from tiktok_gateway.exceptions import InvalidEvent

    messages = []
    for raw in BAD_EVENTS:
        try:
            parse_event(raw)
            messages.append("accepted")
        except InvalidEvent as exc:
            messages.append("; ".join(f"{e.field}: {e.message}" for e in exc.errors))
    return messages


def run(count: int = 20_000) -> dict[str, Any]:
    lines = [orjson.dumps(e) for e in data.events(count)]
    with tempfile.TemporaryDirectory() as tmp:
        good, bad = Path(tmp) / "events.jsonl", Path(tmp) / "bad.jsonl"
        good.write_bytes(b"\n".join(lines))
        bad.write_bytes(b"\n".join(orjson.dumps(e) for e in BAD_EVENTS))
        python = venv_python("msgspec", "msgspec")
        result = subprocess.run([str(python), str(SCRIPT), str(good), str(bad), str(REPEAT)],
                                capture_output=True, text=True, timeout=600, check=True)
    theirs = json.loads(result.stdout.strip().splitlines()[-1])
    return {"ours_us_per_event": ours(lines), "msgspec_us_per_event": theirs["us_per_event"],
            "errors": [{"event": json.dumps(raw, ensure_ascii=False), "ours": mine, "msgspec": other}
                       for raw, mine, other in zip(BAD_EVENTS, our_errors(), theirs["errors"],
                                                   strict=True)]}


if __name__ == "__main__":
    print(json.dumps(run(5000), indent=2))
