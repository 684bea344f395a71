"""The operator commands against real processes: send, replay, doctor, and JSON logs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.acceptance.processes import (
    TOKEN,
    Process,
    sandbox_events,
    start_gateway,
    wait_for,
    write_config,
)

ENV = {"ACCEPTANCE_TIKTOK_TOKEN": TOKEN}



def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([sys.executable, "-m", "tiktok_gateway", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})


def test_send_prints_tiktoks_answer(tmp_path: Path, tiktok_process: Process) -> None:
    """`send` posts through the running gateway and prints TikTok's code and request_id."""
    config = write_config(tmp_path, tiktok_process.url)
    gateway = start_gateway(tmp_path, config)
    try:
        result = cli("send", "--config", str(config), "--url", gateway.url, "--event", "purchase",
                     "--value", "10", "--currency", "USD", "--email", "Tester@Example.com",
                     "--test-event-code", "TEST9")
        refused = cli("send", "--config", str(config), "--url", gateway.url,
                      "--key", "not-a-key-of-ours", "--test-event-code", "TEST9")
    finally:
        gateway.stop()
    assert refused.returncode != 0
    assert "gateway answered HTTP 401: " in refused.stdout and "key" in refused.stdout.lower()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "gateway answered HTTP 202" in result.stdout
    assert "CompletePayment" in result.stdout and "(test TEST9)" in result.stdout
    assert "TikTok code 0: OK request_id 20" in result.stdout
    [event] = sandbox_events(tiktok_process)
    assert event["test_event_code"] == "TEST9" and event["hashed_fields"] == ["email"]
    # doctor's checklist reads what the gateway saw: a test event reached TikTok.
    doctor = cli("doctor", "--config", str(config), "--json", env=ENV)
    steps = {s["id"]: s for s in json.loads(doctor.stdout)["steps"]}
    assert steps["test_event"]["status"] == "done", steps["test_event"]
    assert steps["access_token"]["status"] == "done"
    assert steps["live"]["status"] == "todo"
    printed = cli("doctor", "--config", str(config), env=ENV).stdout
    assert "set-up checklist: " in printed and "A test event arrived at TikTok" in printed


def test_replay_after_fixing_the_token(tmp_path: Path, tiktok_process: Process) -> None:
    """Events dead-lettered for a bad token are delivered after the fix and `replay`."""
    config = write_config(tmp_path, tiktok_process.url)
    headers = {"Authorization": "Bearer acceptance-server-key-0123"}
    bad = Process(["serve", "--config", str(config)], tmp_path / "bad.log",
                  {"ACCEPTANCE_TIKTOK_TOKEN": "revoked-token-000000"}).start()
    gateway: Process | None = None
    try:
        httpx.post(f"{bad.url}/v1/events", headers=headers, json={"events": [
            {"event": "purchase", "properties": {"order_id": f"R{i}", "value": 5,
                                                 "currency": "USD"}} for i in range(3)]})
        status = f"{bad.url}/v1/events/status"
        assert wait_for(lambda: httpx.get(status, params={"event_id": "R2_CompletePayment"},
                                          headers=headers).json()["deliveries"][0]["state"]
                        == "dead")
        bad.stop()
        gateway = start_gateway(tmp_path, config)  # the right token again
        result = cli("replay", "--config", str(config), "--since", "1h")
        assert result.returncode == 0, result.stderr
        assert "Queued 3 dead-lettered event(s)" in result.stdout
        assert wait_for(lambda: len(sandbox_events(tiktok_process)) == 3)
    finally:
        bad.stop()
        if gateway:
            gateway.stop()


def test_doctor(tmp_path: Path, tiktok_process: Process) -> None:
    """`doctor` passes a good config and names each problem of a bad one."""
    good = write_config(tmp_path, tiktok_process.url)
    ok = cli("doctor", "--config", str(good), env=ENV)
    assert ok.returncode == 0, ok.stdout
    assert "access token present (not shown)" in ok.stdout and TOKEN not in ok.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text(good.read_text().replace('pixel_id = "C0EXAMPLE0PIXEL00001"',
                                            'pixel_id = "not-a-pixel"\ntest_event_code = "T1"')
                   .replace(tiktok_process.url, "http://127.0.0.1:9"))
    result = cli("doctor", "--config", str(bad))
    assert result.returncode == 1
    out = " ".join(result.stdout.split())
    assert "access token env:... is not set" in out
    assert "does not look like a web source id" in out
    assert "is unreachable" in out


def test_json_logs(tmp_path: Path, tiktok_process: Process) -> None:
    """With json_logs, every log line is a JSON object, with no personal data or token."""
    config = write_config(tmp_path, tiktok_process.url)
    config.write_text(config.read_text().replace('host = "127.0.0.1"',
                                                 'host = "127.0.0.1"\njson_logs = true'))
    gateway = start_gateway(tmp_path, config)
    try:
        httpx.post(f"{gateway.url}/v1/events", headers={
            "Authorization": "Bearer acceptance-server-key-0123"}, json={
            "event": "purchase", "user": {"email": "json.logs@example.com"},
            "properties": {"order_id": "J1", "value": 5, "currency": "USD"}})
        assert wait_for(lambda: len(sandbox_events(tiktok_process)) == 1)
        time.sleep(0.2)
    finally:
        gateway.stop()
    lines = [line for line in (tmp_path / "gateway.log").read_text().splitlines()
             if line.startswith("{")]
    records = [json.loads(line) for line in lines]
    assert any("demo" in r["message"] or "stopped" in r["message"] for r in records)
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    assert "json.logs@example.com" not in "\n".join(lines) and TOKEN not in "\n".join(lines)


def test_a_second_serve_on_one_sqlite_file_is_refused(tmp_path: Path, tiktok_process: Process) -> None:
    """One process owns a SQLite file: a second `serve` on it stops with a clear error."""
    import subprocess
    import sys

    config = write_config(tmp_path, tiktok_process.url)
    first = start_gateway(tmp_path, config)
    try:
        second = write_config(tmp_path, tiktok_process.url, name="second")  # the same file
        out = subprocess.run([sys.executable, "-m", "tiktok_gateway", "serve", "--config",
                              str(second)], capture_output=True, text=True, timeout=60,
                             env={**os.environ, "ACCEPTANCE_TIKTOK_TOKEN": TOKEN})
        assert out.returncode != 0
        assert "another gateway process already serves" in out.stderr
    finally:
        first.stop()
