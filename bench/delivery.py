"""Delivery: wall time to get N events to TikTok, per client, twice: against the sandbox
(which parses and lints every event, as TikTok does) and against an instant stand-in that
answers code 0 without parsing (`bench/bare_app.py`), so the second row is the clients' own cost.

Ours: the gateway's dispatcher draining a SQLite outbox (batches of up to 1,000).
pytt-events-api: `post_event` per event, and `post_events_in_bulk` (pixel/batch).
TikTok's official SDK: `pixel_track` per event. All against the same sandbox process.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench import data, procs
from bench.venvs import venv_python
from tiktok_gateway.testing import free_port

SCRIPT = Path(__file__).with_name("other_clients.py")


async def ours(sandbox_url: str, count: int, workdir: Path) -> tuple[float, float]:
    from tiktok_gateway.dispatch import Dispatcher, DispatchSettings, Sender
    from tiktok_gateway.outbox import NewEvent, open_store
    from tiktok_gateway.pipeline import TransformOptions, transform
    from tiktok_gateway.ratelimit import RateLimiter
    from tiktok_gateway.retry import RetryPolicy
    from tiktok_gateway.tiktok.client import TikTokClient
    from tiktok_gateway.web.server import freeze_startup_objects

    outbox = open_store(f"sqlite:///{workdir}/delivery.db").outbox
    options = TransformOptions()
    items = [transform(raw, options) for raw in data.events(count, unique_customers=True)]
    await outbox.put([NewEvent("shop", i.name, i.event_id, i.data["event_time"],
                               orjson.dumps(i.data).decode()) for i in items])
    client = TikTokClient(procs.TOKEN, base_url=sandbox_url)
    dispatcher = Dispatcher(outbox, {"shop": Sender("shop", procs.PIXEL, client,
                                                     RateLimiter(1000))},
                            RetryPolicy(), DispatchSettings(linger=0))
    freeze_startup_objects()  # as `serve` does: the earlier benchmarks' objects stay unwalked
    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(dispatcher.drain_once(), dispatcher.drain_once())  # two workers
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    await client.aclose()
    await outbox.close()
    return elapsed, cpu


def other(client: str, sandbox_url: str, count: int) -> float:
    venv = {"pytt_single": ("pytt", "pytt-events-api"), "pytt_bulk": ("pytt", "pytt-events-api"),
            "official_sdk": ("sdk", "tiktok-business-api-sdk-official")}[client]
    python = venv_python(*venv)
    result = subprocess.run([str(python), str(SCRIPT), client, sandbox_url, str(count)],
                            capture_output=True, text=True, timeout=1800, check=True,
                            cwd=Path(__file__).parents[1])
    return float(result.stdout.strip().splitlines()[-1])


def instant(workdir: Path) -> tuple[procs.Proc, str]:
    port = free_port()
    proc = procs.Proc([sys.executable, "-m", "bench.bare_app", str(port)], workdir / "bare.log")
    url = f"http://127.0.0.1:{port}"
    procs.wait_http(url + "/answered")
    return proc, url


def run(count: int = 20_000) -> dict[str, Any]:
    results: dict[str, Any] = {"events": count}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for target, start in (("", procs.sandbox), ("instant_", instant)):
            for name in ("ours", "pytt_bulk", "official_sdk", "pytt_single"):
                proc, url = start(workdir)
                try:
                    if name == "ours":
                        for leftover in workdir.glob("delivery.db*"):  # the last run's
                            leftover.unlink()
                        receiver_cpu = proc.cpu_seconds()
                        seconds, cpu = asyncio.run(ours(url, count, workdir))
                        receiver_cpu = proc.cpu_seconds() - receiver_cpu
                        results[f"{target}dispatcher_cpu_us_per_event"] = round(
                            cpu / count * 1e6, 1)
                        if not target:  # what the sandbox spends on each event it receives
                            results["sandbox_cpu_us_per_event"] = round(
                                receiver_cpu / count * 1e6, 1)
                    else:
                        seconds = other(name, url, count)
                    received = (procs.sandbox_count(url) if not target
                                else httpx.get(f"{url}/answered").json()["requests"])
                finally:
                    proc.stop()
                results[f"{target}{name}"] = {"seconds": round(seconds, 2),
                                              "events_per_second": round(count / seconds, 1),
                                              "received": received}
            for name in ("pytt_single", "official_sdk", "pytt_bulk"):
                results[f"{target}ours_vs_{name}"] = round(
                    results[f"{target}ours"]["events_per_second"]
                    / results[f"{target}{name}"]["events_per_second"], 1)
    return results


if __name__ == "__main__":
    print(httpx.__version__, run(2000))
