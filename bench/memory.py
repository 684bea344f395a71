"""Memory: peak RSS of the gateway while 1,000,000 events wait (TikTok down), then drain."""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench import data, procs
from tiktok_gateway.testing import free_port

BATCH = 1000


def run(total: int = 1_000_000) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        port = free_port()  # the sandbox is not listening yet: TikTok is down
        gateway, url = procs.gateway(workdir, f"http://127.0.0.1:{port}",
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
        started = time.perf_counter()
        with httpx.Client(timeout=60, headers={"Authorization": f"Bearer {procs.KEY}"}) as client:
            for start in range(0, total, BATCH):
                batch = [{**e, "event_id": f"m-{start + i}"} for i, e in enumerate(template)]
                response = client.post(f"{url}/v1/events", json={"events": batch})
                response.raise_for_status()
        ingest_seconds = time.perf_counter() - started
        peak_waiting, peak["value"] = peak["value"], 0.0
        sandbox, sandbox_url = procs.sandbox(workdir, port)
        drain_started = time.perf_counter()
        while procs.sandbox_count(sandbox_url) < total and time.perf_counter() - drain_started < 900:
            time.sleep(1)
        drain_seconds = time.perf_counter() - drain_started
        delivered = procs.sandbox_count(sandbox_url)
        stop.set()
        sampler.join()
        gateway.stop()
        sandbox.stop()
        return {"events": total, "ingest_seconds": round(ingest_seconds, 1),
                "peak_rss_mb_while_waiting": round(peak_waiting, 1),
                "peak_rss_mb_while_draining": round(peak["value"], 1),
                "drain_seconds": round(drain_seconds, 1), "delivered": delivered}
