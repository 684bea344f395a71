"""A machine whose clock jumps: event ages are judged by TikTok's clock, not ours.

The gateway runs under libfaketime with its clock days ahead or an hour behind, while the
sandbox (standing in for TikTok) keeps the right time and says so in each answer's Date.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from tests.acceptance.processes import (
    Process,
    clock_ahead,
    sandbox_events,
    start_gateway,
    wait_for,
    write_config,
)

KEY = {"Authorization": "Bearer acceptance-server-key-0123"}
ADMIN = ("admin", "acceptance-admin-password")


def purchase(order: str, **extra: Any) -> dict[str, Any]:
    return {"event": "purchase", "event_time": int(time.time()),
            "properties": {"order_id": order, "value": 12.5, "currency": "EUR"}, **extra}


def pending_and_dead(gateway: Process) -> tuple[int, int]:
    backlog = httpx.get(f"{gateway.url}/readyz", auth=ADMIN).json()
    return backlog["pending"], backlog["dead"]


def queue_during_outage(tmp_path: Path, tiktok: Process, config: Path, orders: list[str]) -> None:
    """Orders acknowledged by a gateway whose clock is right, then left waiting: TikTok is
    down and the gateway stops."""
    httpx.post(f"{tiktok.url}/sandbox/faults", json={"outage_seconds": 600})
    gateway = start_gateway(tmp_path, config)
    try:
        answer = httpx.post(f"{gateway.url}/v1/events", headers=KEY,
                            json={"events": [purchase(o) for o in orders]})
        assert answer.json()["queued"] == len(orders), answer.text
        assert wait_for(lambda: _answered_503(tiktok), timeout=15)
    finally:
        gateway.stop()


def _answered_503(tiktok: Process) -> bool:
    stats = httpx.get(f"{tiktok.url}/sandbox/stats").json()
    return bool(stats["by_code"].get("503"))


def test_a_clock_days_fast_does_not_dead_letter_what_waits(tmp_path: Path,
                                                            tiktok_process: Process) -> None:
    """Eight days fast, past the 7-day age limit: pending events keep retrying through the
    outage and arrive when TikTok is back; a correctly stamped new event is accepted."""
    config = write_config(tmp_path, tiktok_process.url)
    queue_during_outage(tmp_path, tiktok_process, config, ["clock-1", "clock-2"])
    fast = start_gateway(tmp_path, config, clock_ahead(8 * 86400))
    try:
        time.sleep(3)  # several failed attempts, each judged against TikTok's clock
        assert pending_and_dead(fast) == (2, 0)
        metrics = httpx.get(f"{fast.url}/metrics").text
        offset = next(float(line.split()[-1]) for line in metrics.splitlines()
                      if line.startswith("tiktok_gateway_clock_offset_seconds"))
        assert abs(offset + 8 * 86400) < 60, offset
        httpx.delete(f"{tiktok_process.url}/sandbox/faults")
        assert wait_for(lambda: len(sandbox_events(tiktok_process)) == 2, timeout=20)
        fresh = httpx.post(f"{fast.url}/v1/events", json=purchase("clock-3"), headers=KEY)
        assert fresh.status_code == 202 and fresh.json()["queued"] == 1, fresh.text
        assert wait_for(lambda: len(sandbox_events(tiktok_process)) == 3, timeout=20)
        assert pending_and_dead(fast) == (0, 0)
        assert "clock is 691200 s ahead of TikTok's" in fast.log_path.read_text().replace(
            "691199", "691200").replace("691201", "691200")
    finally:
        fast.stop()


def test_a_clock_set_back_an_hour_does_not_stall_delivery(tmp_path: Path,
                                                          tiktok_process: Process) -> None:
    """An hour behind: retries scheduled by the right clock are not held for an hour, and
    once TikTok has answered, events stamped with the right time are not "from the future"."""
    config = write_config(tmp_path, tiktok_process.url)
    queue_during_outage(tmp_path, tiktok_process, config, ["back-1", "back-2"])
    httpx.delete(f"{tiktok_process.url}/sandbox/faults")
    slow = start_gateway(tmp_path, config, clock_ahead(-3600))
    try:
        assert wait_for(lambda: len(sandbox_events(tiktok_process)) == 2, timeout=20), (
            "events scheduled by the right clock waited for the wrong one")
        fresh = httpx.post(f"{slow.url}/v1/events", json=purchase("back-3"), headers=KEY)
        assert fresh.status_code == 202 and fresh.json()["queued"] == 1, fresh.text
        assert wait_for(lambda: len(sandbox_events(tiktok_process)) == 3, timeout=20)
        assert sorted(e["event_id"] for e in sandbox_events(tiktok_process)) == [
            "back-1_CompletePayment", "back-2_CompletePayment", "back-3_CompletePayment"]
    finally:
        slow.stop()
