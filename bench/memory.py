"""Memory and disk: peak RSS of the gateway while 10,000,000 events wait (TikTok down), the
bytes on disk per waiting event, then the first minutes of draining that backlog.

Two client threads post batches of 1,000 (every customer new, every event id unique) as
fast as the gateway acknowledges them; the drain is time-boxed (`BENCH_DRAIN_SECONDS`), since
the figure wanted is the memory while a large backlog is worked through, not the hour a
10,000,000-event drain takes.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench import data, procs
from tiktok_gateway.testing import free_port

BATCH = 1000
CLIENTS = 2
DRAIN_SECONDS = float(os.environ.get("BENCH_DRAIN_SECONDS", "120"))


def _post_range(url: str, template: list[dict[str, Any]], starts: range,
                queued: list[int]) -> None:
    """Post the batches starting at `starts`; each event its own id and order (a repeated
    order would be merged into its first purchase, and not wait as a new event)."""
    with httpx.Client(timeout=120, headers={"Authorization": f"Bearer {procs.KEY}"}) as client:
        for start in starts:
            batch = [{**e, "event_id": f"m-{start + i}",
                      "properties": {**e["properties"], "order_id": f"o-{start + i}"}}
                     for i, e in enumerate(template)]
            response = client.post(f"{url}/v1/events", json={"events": batch})
            response.raise_for_status()
            queued.append(response.json()["queued"])


def _store_bytes(workdir: Path) -> int:
    """The SQLite file with its write-ahead log and shared memory, as `du` would count them."""
    return sum(p.stat().st_size for p in workdir.glob("gateway.db*"))


def run(total: int = 10_000_000) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        port = free_port()  # the sandbox is not listening yet: TikTok is down
        gateway, url = procs.gateway(workdir, f"http://127.0.0.1:{port}",
                                     max_pending=total + BATCH,
                                     extra="\n[delivery]\nretry_base_seconds = 5\n"
                                           "retry_max_seconds = 10\n")
        peak = {"value": 0.0}
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak["value"] = max(peak["value"], gateway.rss_mb())
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        template = data.events(BATCH, unique_customers=True)
        starts = range(0, total, BATCH)
        started = time.perf_counter()
        queued: list[int] = []
        posters = [threading.Thread(target=_post_range,
                                    args=(url, template, starts[i::CLIENTS], queued))
                   for i in range(CLIENTS)]
        for poster in posters:
            poster.start()
        for poster in posters:
            poster.join()
        ingest_seconds = time.perf_counter() - started
        disk = _store_bytes(workdir)
        peak_waiting, peak["value"] = peak["value"], 0.0
        sandbox, sandbox_url = procs.sandbox(workdir, port)
        drain_started = time.perf_counter()
        while (procs.sandbox_count(sandbox_url) < total
               and time.perf_counter() - drain_started < DRAIN_SECONDS):
            time.sleep(1)
        drain_seconds = time.perf_counter() - drain_started
        delivered = procs.sandbox_count(sandbox_url)
        stop.set()
        sampler.join()
        gateway.stop()
        sandbox.stop()
        return {"events": total, "queued": sum(queued), "ingest_seconds": round(ingest_seconds, 1),
                "ingest_events_per_second": round(total / ingest_seconds),
                "disk_bytes_per_waiting_event": round(disk / max(sum(queued), 1)),
                "disk_mb": round(disk / 2**20, 1),
                "peak_rss_mb_while_waiting": round(peak_waiting, 1),
                "peak_rss_mb_while_draining": round(peak["value"], 1),
                "drain_seconds": round(drain_seconds, 1), "delivered": delivered,
                "drain_events_per_second": round(delivered / drain_seconds)}
