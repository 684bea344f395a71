"""`backup` and `restore` against real processes: a backup taken while events pour in and
TikTok is down holds every event acknowledged before it, and a restored store delivers them."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx

from tests.acceptance.processes import (
    Process,
    sandbox_events,
    start_gateway,
    wait_for,
    write_config,
)
from tests.acceptance.test_commands import ENV, cli

HEADERS = {"Authorization": "Bearer acceptance-server-key-0123"}


def test_restore_under_load_delivers_what_was_pending(tmp_path: Path,
                                                       tiktok_process: Process) -> None:
    config = write_config(tmp_path, tiktok_process.url)
    httpx.post(f"{tiktok_process.url}/sandbox/faults", json={"outage_seconds": 600})
    gateway = start_gateway(tmp_path, config)
    acknowledged: list[tuple[float, str]] = []  # (when the 202 came, event_id)
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(headers=HEADERS) as client:
            for n in range(3000):  # bounded: well past the backup
                if stop.is_set():
                    return
                event_id = f"load-{n}"
                answer = client.post(f"{gateway.url}/v1/events", json={
                    "event": "add_to_cart", "event_id": event_id,
                    "properties": {"value": 1, "currency": "USD"}})
                if answer.status_code == 202:
                    acknowledged.append((time.time(), event_id))

    sender = threading.Thread(target=load, daemon=True)
    sender.start()
    try:
        assert wait_for(lambda: len(acknowledged) >= 50)
        backup_file = tmp_path / "gateway-backup.db"
        started = time.time()
        made = cli("backup", "--config", str(config), str(backup_file), env=ENV)
        assert made.returncode == 0, made.stdout + made.stderr
        assert "waiting" in made.stdout and backup_file.exists()
        assert wait_for(lambda: acknowledged[-1][0] > started + 0.5)  # traffic went on past it
    finally:
        stop.set()
        sender.join(timeout=20)
    # While the gateway owns the store, a restore is refused.
    refused = cli("restore", "--config", str(config), str(backup_file), "--yes", env=ENV)
    said = " ".join((refused.stdout + refused.stderr).split())
    assert refused.returncode != 0 and "another gateway process already serves" in said
    gateway.stop()
    for stale in (tmp_path / "data").glob("gateway.db*"):
        stale.unlink()  # the disk is lost
    restored = cli("restore", "--config", str(config), str(backup_file), "--yes", env=ENV)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    httpx.delete(f"{tiktok_process.url}/sandbox/faults")  # TikTok is back
    before_backup = {event_id for at, event_id in acknowledged if at < started}
    gateway = start_gateway(tmp_path, config)
    try:
        def delivered() -> set[str]:
            return {str(e["event_id"]) for e in sandbox_events(tiktok_process)}

        assert wait_for(lambda: before_backup <= delivered(), timeout=60), (
            len(before_backup - delivered()))
    finally:
        gateway.stop()
