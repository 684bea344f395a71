"""The gateway and the sandbox as real processes, as a shop would run them."""

from __future__ import annotations

import os
import random
import re
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.acceptance.processes import (
    Process,
    sandbox_events,
    start_gateway,
    wait_for,
    write_config,
)
from tests.reliability import record
from tiktok_gateway.testing import free_port

KEY = {"Authorization": "Bearer acceptance-server-key-0123"}
ADMIN = ("admin", "acceptance-admin-password")
SOAK = bool(os.environ.get("TIKTOK_GATEWAY_SOAK"))
# Lower case: pages are scanned lower-cased.
RAW_EMAILS = [f"crash.customer{i}@example.com" for i in range(400)]



def purchase(i: int, **extra: Any) -> dict[str, Any]:
    return {"event": "purchase", "user": {"email": RAW_EMAILS[i % len(RAW_EMAILS)],
                                          "phone": f"+1 213 555 {i % 10000:04d}"},
            "properties": {"order_id": f"order-{i}", "value": 10 + i, "currency": "usd"},
            **extra}


def test_events_flow_from_gateway_to_sandbox(tmp_path: Path, tiktok_process: Process) -> None:
    """Posted events arrive mapped and hashed; filters, test codes, dedup and errors behave."""
    config = write_config(tmp_path, tiktok_process.url, extra='[destinations.filters]\n'
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
        assert wait_for(lambda: len(sandbox_events(tiktok_process)) == 2)
        events = {e["event_id"]: e for e in sandbox_events(tiktok_process)}
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


def test_kill_9_loses_no_acknowledged_event(tmp_path: Path, tiktok_process: Process) -> None:
    """kill -9 at random moments of a stream of posts, restart: every 202-acknowledged event
    arrives."""
    rounds = 5 if SOAK else 2
    moments = [round(random.uniform(0.5, 1.5), 2) for _ in range(rounds)]
    port = free_port()
    config = write_config(tmp_path, tiktok_process.url, port=port)
    acked: list[int] = []
    next_id = 0
    for moment in moments:
        gateway = start_gateway(tmp_path, config)
        halt = threading.Event()
        poster = threading.Thread(target=post_stream,
                                  args=(gateway.url, next_id, next_id + 5000, acked, halt))
        poster.start()
        time.sleep(moment)
        gateway.kill()
        halt.set()
        poster.join()
        next_id += 5000
    gateway = start_gateway(tmp_path, config)
    try:
        expected = {f"order-{i}_CompletePayment" for i in acked}
        assert len(expected) > 50

        def all_arrived() -> bool:
            got = {str(e["event_id"]) for e in sandbox_events(tiktok_process)}
            return expected <= got

        arrived = wait_for(all_arrived, timeout=60)
        got = {str(e["event_id"]) for e in sandbox_events(tiktok_process)}
        assert arrived, f"{len(expected - got)} of {len(expected)} acknowledged events lost"
        stats = httpx.get(f"{tiktok_process.url}/sandbox/stats").json()
        record("crash_kill_9", kills=rounds, seconds_into_load=moments, acknowledged=len(expected),
               delivered=len(got), duplicated=stats["duplicates"],
               lost=len(expected - got))
    finally:
        gateway.stop()


# The gateway's own limit toward TikTok: a token bucket of 3 requests a second lets at most 6
# through in any second, so a TikTok that allows 8 must never answer 40100.
OWN_QPS, TIKTOK_QPS = 3, 8
STORMS = [
    ("outage", {"outage_seconds": 2}),
    ("5xx storm, HTML pages", {"error_rate": 0.6, "error_kind": "html"}),
    ("5xx storm, JSON", {"error_rate": 0.6, "error_kind": "json"}),
    ("40100 storm", {"rate_limit_qps": 1}),
    ("slow responses", {"latency_ms": 400}),
    ("TikTok's limit above ours", {"rate_limit_qps": TIKTOK_QPS}),
    ("partial success", {"partial_rate": 0.2}),
]


def test_outage_then_recovery_delivers_everything(tmp_path: Path, tiktok_process: Process) -> None:
    """Through outages, 5xx and 40100 storms, slow and partial answers, nothing is lost: each
    event arrives or is dead-lettered with TikTok's reason; our rate limit holds; memory stays
    flat; the dashboard's error log counts exactly the failed answers TikTok gave."""
    config = write_config(tmp_path, tiktok_process.url)
    config.write_text(config.read_text().replace(
        "timeout = 5\n", f"timeout = 5\nrate_limit_qps = {OWN_QPS}\n"))
    gateway = start_gateway(tmp_path, config)
    faults = f"{tiktok_process.url}/sandbox/faults"
    rounds = 30 if SOAK else 8
    try:
        rss_start = gateway.rss_mb()
        total = 0
        for name, fault in STORMS:
            before = _sandbox_stats(tiktok_process)["by_code"]
            httpx.post(faults, json=fault)
            for _ in range(rounds):  # small, spaced posts: many requests meet the fault
                batch = {"events": [purchase(total + j) for j in range(25)]}
                assert httpx.post(f"{gateway.url}/v1/events", json=batch, headers=KEY,
                                  timeout=10).status_code == 202
                total += 25
                time.sleep(0.25)
            assert wait_for(lambda expected=total: _accounted_for(  # type: ignore[misc]
                tiktok_process, gateway) == expected, timeout=60), (
                f"events lost in {name}: {total} acknowledged, {_delivered(tiktok_process)} "
                f"delivered, {_dead(gateway)} dead-lettered")
            httpx.delete(faults)
            if name == "TikTok's limit above ours":
                after = _sandbox_stats(tiktok_process)["by_code"]
                assert after.get("40100", 0) == before.get("40100", 0), "our rate limit was exceeded"
        growth = gateway.rss_mb() - rss_start
        stats = _sandbox_stats(tiktok_process)
        delivered, dead = _delivered(tiktok_process), _dead(gateway)
        time.sleep(1)  # a telemetry flush
        error_log = _dashboard_error_log(gateway)
        record("outage_and_fault_storms", storms=[name for name, _ in STORMS],
               acknowledged=total, delivered=delivered, dead_lettered_by_tiktok=dead,
               duplicated=stats["duplicates"], lost=total - delivered - dead,
               answers_by_code=stats["by_code"], dashboard_error_log=error_log,
               rss_growth_mb=round(growth, 1))
        assert {"503", "502", "500", "40100", "0", "20001"} <= set(stats["by_code"]), stats
        assert dead > 0, "partial success dead-lettered nothing"
        assert growth < 60, f"RSS grew by {growth:.0f} MB"
        # One row per cause: TikTok's JSON 500 by its code (50000), the nginx 502 page and
        # the 503 outage by status; the partial answers by the reason of their rejects.
        by_code = stats["by_code"]
        assert error_log == {"HTTP 503": by_code["503"], "HTTP 502": by_code["502"],
                             "50000": by_code["500"], "40100": by_code["40100"],
                             "20001": by_code["20001"]}, (error_log, by_code)
        dead_page = httpx.get(f"{gateway.url}/dashboard/dead-letters", auth=ADMIN).text
        assert "20001" in dead_page or "partial" in dead_page.lower(), dead_page[:2000]
    finally:
        gateway.stop()


def _sandbox_stats(sandbox: Process) -> dict[str, Any]:
    stats: dict[str, Any] = httpx.get(f"{sandbox.url}/sandbox/stats").json()
    return stats


def _delivered(sandbox: Process) -> int:
    return len({e["event_id"] for e in sandbox_events(sandbox)})


def _dead(gateway: Process) -> int:
    metrics = httpx.get(f"{gateway.url}/metrics").text
    return int(sum(float(v) for v in re.findall(
        r"^tiktok_gateway_outbox_dead(?:\{[^}]*\})? (\S+)$", metrics, re.M)))


def _accounted_for(sandbox: Process, gateway: Process) -> int:
    return _delivered(sandbox) + _dead(gateway)


def _dashboard_error_log(gateway: Process) -> dict[str, int]:
    """The error log table of the overview page: failed requests counted by code (TikTok's,
    else the HTTP status)."""
    html = httpx.get(f"{gateway.url}/dashboard", auth=ADMIN).text
    table = re.search(r'<table class="errors">(.*?)</table>', html, re.S)
    counts: dict[str, int] = {}
    for code, count in re.findall(r"<tr><td>([^<]*)</td><td>.*?</td><td class=\"num\">(\d+)</td>",
                                  table.group(1) if table else ""):
        counts[code] = counts.get(code, 0) + int(count)
    return counts


def test_no_raw_personal_data_anywhere(tmp_path: Path, tiktok_process: Process) -> None:
    """After real traffic: no raw email, phone or token in the database, logs, pages or metrics."""
    config = write_config(tmp_path, tiktok_process.url)
    gateway = start_gateway(tmp_path, config)
    try:
        events = [purchase(i) for i in range(40)]
        events.append({"event": "purchase", "user": {"email": "not-an-email", "phone": "12"},
                       "properties": {"order_id": "bad-pii"}})
        httpx.post(f"{gateway.url}/v1/events", json={"events": events}, headers=KEY)
        httpx.post(f"{gateway.url}/v1/events", json=purchase(41), headers={
            **KEY, "X-Test-Event-Code": "TEST1"})
        assert wait_for(lambda: len(sandbox_events(tiktok_process)) == 42)
        time.sleep(1)  # a telemetry flush
        pages = [httpx.get(f"{gateway.url}{path}", auth=ADMIN).text for path in (
            "/dashboard", "/dashboard/quality", "/dashboard/inspector", "/dashboard/dead-letters")]
        ids = set(re.findall(r"/dashboard/inspector/(\d+)", pages[2]))
        pages += [httpx.get(f"{gateway.url}/dashboard/inspector/{i}", auth=ADMIN).text
                  for i in sorted(ids)[:20]]
        pages.append(httpx.get(f"{gateway.url}/metrics").text)
    finally:
        gateway.stop()
    assert len(ids) >= 10, "the inspector should list sampled events"
    places = {
        "database": b"".join(p.read_bytes() for p in (tmp_path / "data").glob("gateway.db*")),
        "logs": (tmp_path / "gateway.log").read_bytes(),
        "dashboard and metrics": "\n".join(pages).encode(),
    }
    assert places["database"], "the database files were not found"
    secrets = [*RAW_EMAILS[:42], "2135550001", "213 555 0001", "not-an-email",
               "acceptance-token-0123456789", "acceptance-server-key-0123"]
    for place, content in places.items():
        for raw in secrets:
            assert raw.encode() not in content.lower(), f"{raw} found in the {place}"
    record("secrets_scan", values_scanned=len(secrets), places=sorted(places),
           pages_scanned=len(pages), found=0)


def test_sigterm_drains_and_exits(tmp_path: Path, tiktok_process: Process) -> None:
    """SIGTERM lets in-flight work finish and the process exit cleanly."""
    config = write_config(tmp_path, tiktok_process.url)
    gateway = start_gateway(tmp_path, config)
    httpx.post(f"{gateway.url}/v1/events", json={"events": [purchase(i) for i in range(20)]},
               headers=KEY)
    gateway.stop()
    assert gateway.proc is not None and gateway.proc.returncode in (0, -15)  # uvicorn re-raises
    assert "stopped: in-flight deliveries drained" in (tmp_path / "gateway.log").read_text()
    gateway = start_gateway(tmp_path, config)
    try:
        assert wait_for(lambda: len(sandbox_events(tiktok_process)) == 20)
    finally:
        gateway.stop()


def test_a_deleted_sqlite_file_stops_acknowledging(tmp_path: Path, tiktok_process: Process) -> None:
    """Once its SQLite file is deleted under it, the gateway answers 503 and /readyz says why,
    rather than acknowledging events into a file nobody will read again."""
    gateway = start_gateway(tmp_path, write_config(tmp_path, tiktok_process.url))
    try:
        assert httpx.post(f"{gateway.url}/v1/events", json=purchase(1), headers=KEY,
                          timeout=10).status_code == 202
        for path in (tmp_path / "data").glob("gateway.db*"):
            path.unlink()
        answer = httpx.post(f"{gateway.url}/v1/events", json=purchase(2), headers=KEY, timeout=10)
        assert answer.status_code == 503
        ready = httpx.get(f"{gateway.url}/readyz", timeout=10)
        assert ready.status_code == 503 and "deleted or replaced" in " ".join(ready.json()["problems"])
    finally:
        gateway.stop()


def test_erase_leaves_no_trace_in_the_database_files(tmp_path: Path, tiktok_process: Process) -> None:
    """`erase --email` deletes every record of that customer: afterwards no byte of their
    hash is in the SQLite files, while another customer's records stay."""
    import subprocess
    import sys

    from tiktok_gateway.identity import sha256_hex

    config = write_config(tmp_path, tiktok_process.url)
    gateway = start_gateway(tmp_path, config)
    try:
        for i, email in enumerate(("erase.me@example.com", "keep.me@example.com")):
            assert httpx.post(f"{gateway.url}/v1/events", headers=KEY, timeout=10, json={
                "event": "purchase", "user": {"email": email},
                "properties": {"order_id": f"ER{i}", "value": 5, "currency": "USD"}}).status_code == 202
        assert wait_for(lambda: len(sandbox_events(tiktok_process)) == 2)
    finally:
        gateway.stop()
    gone, kept = sha256_hex("erase.me@example.com"), sha256_hex("keep.me@example.com")
    files = lambda: b"".join(p.read_bytes() for p in (tmp_path / "data").glob("gateway.db*"))  # noqa: E731
    assert gone.encode() in files()
    out = subprocess.run([sys.executable, "-m", "tiktok_gateway", "erase", "--email",
                          " Erase.Me@Example.com ", "--config", str(config)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "Erased 1 record(s)" in out.stdout
    assert gone.encode() not in files() and kept.encode() in files()


def test_slow_clients_cannot_hold_the_gateway(tmp_path: Path, tiktok_process: Process) -> None:
    """Connections that trickle their headers (slowloris), more of them than the connection
    limit, are closed at the header deadline, and the shop's requests are served again."""
    import socket

    config = write_config(tmp_path, tiktok_process.url)
    config.write_text(config.read_text().replace(
        'host = "127.0.0.1"', 'host = "127.0.0.1"\nheader_timeout_seconds = 1\nlimit_concurrency = 10'))
    gateway = start_gateway(tmp_path, config)
    host, port = gateway.url.removeprefix("http://").split(":")
    slow = []
    try:
        for _ in range(30):  # three times the connection limit
            sock = socket.create_connection((host, int(port)), timeout=5)
            sock.sendall(b"POST /v1/events HTTP/1.1\r\nHost: gateway\r\nX-Slow: ")
            slow.append(sock)
        time.sleep(2.5)  # past the header deadline
        for sock in slow:  # each was closed by the gateway: reading reaches the end, no timeout
            while sock.recv(4096):
                pass
        answer = httpx.post(f"{gateway.url}/v1/events", json=purchase(1), headers=KEY, timeout=10)
        assert answer.status_code == 202
    finally:
        for sock in slow:
            sock.close()
        gateway.stop()
