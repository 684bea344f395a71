"""Ingest: wrk on loopback against POST /v1/events with durable acknowledgement.

Compared with a bare ASGI endpoint on the same stack (Starlette on uvicorn) that answers 202
without doing anything: the ceiling of the stack on this machine. Measured on the default
store (SQLite) and, when a PostgreSQL server answers, on PostgreSQL too.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench import procs
from tiktok_gateway.testing import free_port, fresh_database, run_sql

LUA = Path(__file__).with_name("post_events.lua")
DURATION = "10s"
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
POSTGRES_DSN = (os.environ.get("BENCH_POSTGRES_DSN") or os.environ.get("TEST_POSTGRES_DSN")
                or "postgresql://postgres@127.0.0.1:5432/test")
BENCH_DATABASE = "tiktok_gateway_bench"


def wrk(url: str, batch: int, customers: str = "repeat") -> dict[str, float]:
    result = subprocess.run(
        ["wrk", "-t2", f"-c{CONNECTIONS}", "-d", DURATION, "--latency", "-s", str(LUA),
         url + "/v1/events", "--", procs.KEY, str(batch), customers],
        capture_output=True, text=True, timeout=120, check=True)
    out = result.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    refused = int(non2xx.group(1)) if non2xx else 0
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    if refused > total / 100:  # a broken script or server: the figures would measure errors
        raise RuntimeError(f"{refused} of {total} requests to {url} were not answered 2xx")
    return {"requests_per_second": rps, "events_per_second": round(rps * batch, 1),
            "p50_ms": _latency(out, "50%"), "p99_ms": _latency(out, "99%"),
            "non_2xx": refused}


def _latency(out: str, quantile: str) -> float:
    match = re.search(rf"{re.escape(quantile)}\s+([\d.]+)(us|ms|s)", out)
    if not match:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    return round(value * {"us": 0.001, "ms": 1, "s": 1000}[unit], 3)


def run() -> dict[str, Any]:
    results: dict[str, Any] = {"duration": DURATION, "connections": CONNECTIONS}
    port = free_port()
    bare = procs.Proc([sys.executable, "-m", "bench.bare_app", str(port)],
                      Path(tempfile.mkdtemp()) / "bare.log")
    stub = f"http://127.0.0.1:{port}"
    try:
        procs.wait_http(stub + "/")
        results["bare_asgi_single"] = wrk(stub, 1)
        # The same stub plays TikTok for the gateway: delivery runs, but costs TikTok nothing.
        results.update(_gateway_rows(stub, "gateway"))
        if problem := _postgres_problem():
            results["postgres_not_measured"] = problem
        else:
            with fresh_database(POSTGRES_DSN, BENCH_DATABASE) as storage_url:
                results.update(_gateway_rows(stub, "postgres", storage_url))
            # What one more core buys: `serve --workers 2` on the same database.
            with fresh_database(POSTGRES_DSN, BENCH_DATABASE) as storage_url:
                results.update(_gateway_rows(stub, "postgres_2_processes", storage_url,
                                             workers=2))
    finally:
        bare.stop()
    ceiling = results["bare_asgi_single"]["requests_per_second"]
    results["single_share_of_ceiling"] = round(
        results["gateway_single"]["requests_per_second"] / ceiling, 3)
    for row in ("gateway_batch_100", "gateway_batch_100_new_customers"):
        results[f"{row}_events_per_bare_request"] = round(
            results[row]["events_per_second"] / ceiling, 2)
    return results


def _gateway_rows(stub: str, prefix: str, storage_url: str | None = None,
                  workers: int = 1) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        gateway, url = procs.gateway(Path(tmp), stub, storage_url=storage_url, workers=workers)
        try:
            return {f"{prefix}_single": wrk(url, 1), f"{prefix}_batch_100": wrk(url, 100),
                    f"{prefix}_batch_100_new_customers": wrk(url, 100, "new")}
        finally:
            gateway.stop()


def _postgres_problem() -> str | None:
    """Why the PostgreSQL rows cannot be measured, or None when the server answers."""
    import psycopg

    try:
        run_sql(POSTGRES_DSN, "SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL at {urlsplit(POSTGRES_DSN).netloc}: {exc}"
    return None
