"""`serve --workers N`: several gateway processes on one port of one machine (PostgreSQL)."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.acceptance.processes import TOKEN, Process, sandbox_events, wait_for, write_config
from tests.acceptance.test_gateway_processes import KEY, purchase


def children(pid: int) -> list[int]:
    """The live processes `pid` started (its gateway processes; not a reaped-to-be zombie)."""
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return sorted(int(p) for p in found.split() if _alive(int(p)))


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def post(url: str, i: int) -> int:
    # A connection of its own per event, so that the kernel spreads them over the processes.
    with httpx.Client(timeout=10) as client:
        return client.post(f"{url}/v1/events", json=purchase(i), headers=KEY).status_code


def test_two_processes_share_a_port_and_deliver_each_event_once(
        tmp_path: Path, tiktok_process: Process, postgres_url: str) -> None:
    """Two processes accept on one port; every acknowledged event reaches TikTok once; one
    process killed is started again; SIGTERM stops them all and the supervisor exits 0."""
    config = write_config(tmp_path, tiktok_process.url, storage_url=postgres_url)
    gateway = Process(["serve", "--config", str(config), "--workers", "2"],
                      tmp_path / "workers.log", {"ACCEPTANCE_TIKTOK_TOKEN": TOKEN}).start()
    try:
        assert wait_for(lambda: len(children(gateway.pid)) == 2, timeout=20), \
            (tmp_path / "workers.log").read_text()[-2000:]
        first, second = children(gateway.pid)
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda i: post(gateway.url, i), range(300)))
        assert statuses == [202] * 300, Counter(statuses)
        expected = {f"order-{i}_CompletePayment" for i in range(300)}
        assert wait_for(lambda: expected <= {str(e["event_id"]) for e in
                                             sandbox_events(tiktok_process)}, timeout=30)
        assert httpx.get(f"{tiktok_process.url}/sandbox/stats").json()["duplicates"] == 0

        subprocess.run(["kill", "-9", str(first)], check=True)
        log = tmp_path / "workers.log"
        assert wait_for(lambda: "exited (-9); starting it again" in log.read_text(), timeout=20), \
            log.read_text()[-2000:]
        assert wait_for(lambda: len(children(gateway.pid)) == 2
                        and first not in children(gateway.pid), timeout=20), \
            (tmp_path / "workers.log").read_text()[-2000:]
        assert second in children(gateway.pid)  # the other one served on meanwhile
        assert wait_for(lambda: httpx.get(f"{gateway.url}/healthz").status_code == 200)
        assert post(gateway.url, 1000) == 202
    finally:
        gateway.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        assert gateway.proc.wait(60) == 0  # type: ignore[union-attr]


def test_workers_refuse_a_sqlite_store(tmp_path: Path) -> None:
    """One process owns a SQLite file: more than one is refused before anything starts."""
    config = write_config(tmp_path, "http://127.0.0.1:9")
    result = subprocess.run([sys.executable, "-m", "tiktok_gateway", "serve", "--config",
                             str(config), "--workers", "2"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert "--workers 2 needs a PostgreSQL store" in message and "sqlite://" in message
    assert not (tmp_path / "data" / "gateway.db").exists()
