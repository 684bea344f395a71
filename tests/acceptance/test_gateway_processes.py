"""The gateway and the sandbox as real processes, as a shop would run them."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.acceptance.processes import (
    Process,
    sandbox_events,
    start_gateway,
    start_sandbox,
    wait_for,
    write_config,
)
from tiktok_gateway.testing import free_port

KEY = {"Authorization": "Bearer acceptance-server-key-0123"}
SOAK = bool(os.environ.get("TIKTOK_GATEWAY_SOAK"))
RAW_EMAILS = [f"crash.customer{i}@example.com" for i in range(400)]


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Process]:
    process = start_sandbox(tmp_path, "--token", "C0EXAMPLE0PIXEL00001=acceptance-token-0123456789")
    yield process
    process.stop()


def purchase(i: int, **extra: Any) -> dict[str, Any]:
    return {"event": "purchase", "user": {"email": RAW_EMAILS[i % len(RAW_EMAILS)],
                                          "phone": f"+1 213 555 {i % 10000:04d}"},
            "properties": {"order_id": f"order-{i}", "value": 10 + i, "currency": "usd"},
            **extra}


def test_events_flow_from_gateway_to_sandbox(tmp_path: Path, sandbox: Process) -> None:
    """Posted events arrive mapped and hashed; filters, test codes, dedup and errors behave."""
    config = write_config(tmp_path, sandbox.url, extra='[destinations.filters]\n'
                                                      'block_events = ["view_item"]\n')
    gateway = start_gateway(tmp_path, config)
    try:
        url = gateway.url
        assert httpx.post(f"{url}/v1/events", json=purchase(1)).status_code == 401
        batch = {"events": [purchase(1), purchase(1), purchase(2, consent={"marketing": False}),
                            {"event": "view_item", "event_id": "v"}, {"event": ""}]}
        body = httpx.post(f"{url}/v1/events", json=batch, headers=KEY).json()
        assert (body["accepted"], body["queued"], body["duplicates"]) == (4, 1, 1)
        assert body["filtered"] == {"consent": 1, "event_name": 1}
        assert body["rejected"][0]["index"] == 4
        httpx.post(f"{url}/v1/events", json=purchase(3), headers={**KEY, "X-Test-Event-Code": "T1"})
        assert wait_for(lambda: len(sandbox_events(sandbox)) == 2)
        events = {e["event_id"]: e for e in sandbox_events(sandbox)}
        live, test = events["order-1_CompletePayment"], events["order-3_CompletePayment"]
        assert live["test_event_code"] is None and test["test_event_code"] == "T1"
        assert live["hashed_fields"] == ["email", "phone"] and live["currency"] == "USD"
        assert live["dropped"] == []
    finally:
        gateway.stop()


def post_stream(url: str, start: int, stop: int, acked: list[int], halt: threading.Event) -> None:
    """Post events one by one; remember those the gateway acknowledged with 202."""
    with httpx.Client(timeout=5) as client:
        for i in range(start, stop):
            if halt.is_set():
                return
            try:
                response = client.post(f"{url}/v1/events", json=purchase(i), headers=KEY)
            except httpx.HTTPError:
                continue
            if response.status_code == 202:
                acked.append(i)


def test_kill_9_loses_no_acknowledged_event(tmp_path: Path, sandbox: Process) -> None:
    """kill -9 during a stream of posts, restart: every 202-acknowledged event arrives."""
    rounds = 5 if SOAK else 2
    port = free_port()
    config = write_config(tmp_path, sandbox.url, port=port)
    acked: list[int] = []
    next_id = 0
    for _ in range(rounds):
        gateway = start_gateway(tmp_path, config)
        halt = threading.Event()
        poster = threading.Thread(target=post_stream,
                                  args=(gateway.url, next_id, next_id + 5000, acked, halt))
        poster.start()
        time.sleep(1.0)
        gateway.kill()
        halt.set()
        poster.join()
        next_id += 5000
    gateway = start_gateway(tmp_path, config)
    try:
        expected = {f"order-{i}_CompletePayment" for i in acked}
        assert len(expected) > 50

        def all_arrived() -> bool:
            got = {str(e["event_id"]) for e in sandbox_events(sandbox)}
            return expected <= got

        arrived = wait_for(all_arrived, timeout=60)
        got = {str(e["event_id"]) for e in sandbox_events(sandbox)}
        assert arrived, f"{len(expected - got)} of {len(expected)} acknowledged events lost"
        stats = httpx.get(f"{sandbox.url}/sandbox/stats").json()
        report = {"acknowledged": len(expected), "received": stats["events"],
                  "duplicates": stats["duplicates"], "lost": 0}
        (tmp_path / "crash-report.json").write_text(json.dumps(report))
    finally:
        gateway.stop()


def test_outage_then_recovery_delivers_everything(tmp_path: Path, sandbox: Process) -> None:
    """Through an outage, a 5xx storm and 40100s, every event arrives and memory stays flat."""
    config = write_config(tmp_path, sandbox.url)
    gateway = start_gateway(tmp_path, config)
    faults = f"{sandbox.url}/sandbox/faults"
    try:
        httpx.post(faults, json={"outage_seconds": 3})
        total = 0
        rss_start = gateway.rss_mb()
        for phase in ({"error_rate": 0.7, "error_kind": "html"}, {"rate_limit_qps": 2},
                      {"error_rate": 0, "rate_limit_qps": 0}):
            httpx.post(faults, json=phase)
            for _ in range(10):
                batch = {"events": [purchase(total + j) for j in range(50)]}
                assert httpx.post(f"{gateway.url}/v1/events", json=batch, headers=KEY,
                                  timeout=10).status_code == 202
                total += 50
            time.sleep(1)
        assert wait_for(lambda: len({e["event_id"] for e in sandbox_events(sandbox)}) == total,
                        timeout=60)
        growth = gateway.rss_mb() - rss_start
        assert growth < 60, f"RSS grew by {growth:.0f} MB"
    finally:
        gateway.stop()


def test_no_raw_personal_data_on_disk_or_in_logs(tmp_path: Path, sandbox: Process) -> None:
    """After real traffic, the SQLite files and the logs hold no raw email or phone."""
    config = write_config(tmp_path, sandbox.url)
    gateway = start_gateway(tmp_path, config)
    try:
        events = [purchase(i) for i in range(40)]
        events.append({"event": "purchase", "user": {"email": "not-an-email", "phone": "12"},
                       "properties": {"order_id": "bad-pii"}})
        httpx.post(f"{gateway.url}/v1/events", json={"events": events}, headers=KEY)
        assert wait_for(lambda: len(sandbox_events(sandbox)) == 41)
    finally:
        gateway.stop()
    stored = b"".join(p.read_bytes() for p in (tmp_path / "data").glob("gateway.db*"))
    logs = (tmp_path / "gateway.log").read_bytes()
    assert stored, "the database files were not found"
    for raw in [*RAW_EMAILS[:40], "2135550001", "213 555 0001", "not-an-email",
                "acceptance-token-0123456789"]:
        assert raw.encode() not in stored, f"{raw} found in the database"
        assert raw.encode() not in logs, f"{raw} found in the logs"


def test_sigterm_drains_and_exits(tmp_path: Path, sandbox: Process) -> None:
    """SIGTERM lets in-flight work finish and the process exit cleanly."""
    config = write_config(tmp_path, sandbox.url)
    gateway = start_gateway(tmp_path, config)
    httpx.post(f"{gateway.url}/v1/events", json={"events": [purchase(i) for i in range(20)]},
               headers=KEY)
    gateway.stop()
    assert gateway.proc is not None and gateway.proc.returncode in (0, -15)  # uvicorn re-raises
    assert "stopped: in-flight deliveries drained" in (tmp_path / "gateway.log").read_text()
    gateway = start_gateway(tmp_path, config)
    try:
        assert wait_for(lambda: len(sandbox_events(sandbox)) == 20)
    finally:
        gateway.stop()
