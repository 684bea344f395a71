"""Two gateway processes on one PostgreSQL database, one killed mid-load."""

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
from tests.acceptance.test_gateway_processes import KEY, post_stream
from tests.reliability import record


def config(tmp_path: Path, name: str, database: str, sandbox_url: str) -> Path:
    return write_config(tmp_path, sandbox_url, storage_url=database, name=name,
                        lease_seconds=3)


def start(tmp_path: Path, path: Path, name: str) -> Process:
    return start_gateway(tmp_path, path)


def delivered_total(database: str) -> int:
    import psycopg

    with psycopg.connect(database) as conn:
        row = conn.execute("SELECT COALESCE(SUM(value), 0) FROM counters "
                           "WHERE name = 'delivered'").fetchone()
    return int(row[0]) if row else 0


def test_two_processes_one_killed(tmp_path: Path, tiktok_process: Process, postgres_url: str) -> None:
    """Load on two processes, kill -9 one, restart it: nothing acknowledged is lost."""
    configs = [config(tmp_path, n, postgres_url, tiktok_process.url) for n in ("a", "b")]
    a, b = start(tmp_path, configs[0], "a"), start(tmp_path, configs[1], "b")
    acked: list[int] = []
    halt = threading.Event()
    posters = [threading.Thread(target=post_stream, args=(p.url, start_id, start_id + 3000,
                                                          acked, halt))
               for p, start_id in ((a, 0), (b, 100_000))]
    try:
        for poster in posters:
            poster.start()
        time.sleep(1.5)
        a.kill()  # mid-load; b carries on
        time.sleep(1.0)
        halt.set()
        for poster in posters:
            poster.join()
        a = start(tmp_path, configs[0], "a")
        httpx.post(f"{a.url}/v1/events", json={"event": "view_item", "event_id": "after"},
                   headers=KEY)
        expected = {f"order-{i}_CompletePayment" for i in acked}
        assert len(expected) > 100

        def all_arrived() -> bool:
            return expected <= {str(e["event_id"]) for e in sandbox_events(tiktok_process)}

        assert wait_for(all_arrived, timeout=60), "acknowledged events were lost"
        stats = httpx.get(f"{tiktok_process.url}/sandbox/stats").json()
        unique = len({str(e["event_id"]) for e in sandbox_events(tiktok_process)})
        # At-least-once: only the batch in flight when a was killed may arrive twice.
        assert stats["duplicates"] <= 1000, stats
        # Counters are written with the state changes, so the killed process's count survived.
        assert wait_for(lambda: delivered_total(postgres_url) == unique, timeout=15)
        record("two_processes_postgres_kill_9", acknowledged=len(expected), delivered=unique,
               duplicated=stats["duplicates"], lost=0,
               delivered_counter=delivered_total(postgres_url))
    finally:
        halt.set()
        a.stop()
        b.stop()


def test_a_late_order_update_is_not_a_second_purchase(tmp_path: Path, tiktok_process: Process,
                                                       postgres_url: str) -> None:
    """An order sent by one process is not sent again when its update reaches the other
    process three days later (past TikTok's 48-hour dedup), by that process's own clock."""
    from tests.acceptance.processes import clock_ahead
    from tests.acceptance.test_real_shops import SETUP, post_woo, woo_order

    later = clock_ahead(3 * 86400)
    paths = []
    for name in ("today", "later"):
        path = config(tmp_path, name, postgres_url, tiktok_process.url)
        path.write_text(path.read_text() + SETUP)
        paths.append(path)
    today = start(tmp_path, paths[0], "today")
    try:
        paid = time.time() - 60
        assert post_woo(today.url, woo_order(6001, paid=paid)).json()["queued"] == 1
        assert wait_for(lambda: len(sandbox_events(tiktok_process)) == 1, timeout=15)
    finally:
        today.stop()
    three_days_on = start_gateway(tmp_path, paths[1], later)
    try:
        update = post_woo(three_days_on.url, woo_order(6001, status="completed", paid=paid))
        assert update.status_code == 202, update.text
        assert update.json()["queued"] == 0 and update.json()["duplicates"] == 1
        fresh = post_woo(three_days_on.url, woo_order(6002, paid=paid))
        assert fresh.json()["queued"] == 1  # the later process does deliver new orders
        assert wait_for(lambda: len(sandbox_events(tiktok_process)) == 2, timeout=15)
        time.sleep(1)
        assert sorted(e["event_id"] for e in sandbox_events(tiktok_process)) == [
            "6001_CompletePayment", "6002_CompletePayment"]
    finally:
        three_days_on.stop()
