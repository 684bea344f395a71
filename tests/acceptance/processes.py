"""Run `tiktok-gateway sandbox` and `tiktok-gateway serve` as real processes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import httpx
import pytest

from tiktok_gateway.testing import free_port

PIXEL = "C0EXAMPLE0PIXEL00001"
TOKEN = "acceptance-token-0123456789"


class Process:
    """A CLI process whose output is collected; `url` is the address it announced."""

    def __init__(self, args: list[str], log_path: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.args = args
        self.cwd = cwd
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.url = ""
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 20) -> Process:
        log = self.log_path.open("a")
        self.proc = subprocess.Popen([sys.executable, "-m", "tiktok_gateway", *self.args],
                                     stdout=subprocess.PIPE, stderr=log, text=True, env=self.env,
                                     cwd=self.cwd)
        found = threading.Event()
        threading.Thread(target=self._read, args=(self.proc.stdout, log, found), daemon=True).start()
        deadline = time.monotonic() + timeout
        while not found.wait(0.1):  # until it listens, it exits, or the time is up
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                time.sleep(0.2)  # the reader thread writes the last lines to the log
                raise RuntimeError(f"{self.args[0]} did not start: "
                                   f"{self.log_path.read_text()[-2000:]}")
        return self

    def _read(self, stream: IO[str] | None, log: IO[str], found: threading.Event) -> None:
        assert stream is not None
        for line in stream:
            log.write(line)
            log.flush()
            match = re.search(r"listening on (http://\S+)", line)
            if match and not found.is_set():
                self.url = match.group(1)
                found.set()
        stream.close()
        log.close()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def kill(self) -> None:
        """SIGKILL: no chance to drain or flush."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM, then wait for a graceful exit."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def start_sandbox(tmp_path: Path, *extra: str) -> Process:
    return Process(["sandbox", "--port", "0", *extra], tmp_path / "sandbox.log").start()


def write_config(tmp_path: Path, sandbox_url: str, port: int | None = None,
                 extra: str = "", *, storage_url: str | None = None, name: str = "gateway",
                 lease_seconds: float = 60) -> Path:
    key = tmp_path / "server.key"
    key.write_text("acceptance-server-key-0123\n")
    config = tmp_path / f"{name}.toml"
    config.write_text(f"""
[storage]
url = "{storage_url or f'sqlite:///{tmp_path}/data/gateway.db'}"

[server]
host = "127.0.0.1"
port = {port or free_port()}

[tiktok]
base_url = "{sandbox_url}"
timeout = 5

[delivery]
linger_ms = 20
merge_window_seconds = 0
browser_purchase_wait_seconds = 0
lease_seconds = {lease_seconds}
retry_base_seconds = 0.1
retry_max_seconds = 1.0

[admin]
password = "acceptance-admin-password"

[observe]
inspect_sample_rate = 1.0
flush_seconds = 0.5

[[keys]]
name = "backend"
secret = "file:{key}"

[[destinations]]
name = "shop"
pixel_id = "C0EXAMPLE0PIXEL00001"
access_token = "env:ACCEPTANCE_TIKTOK_TOKEN"
phone_region = "US"
{extra}
""")
    return config


def start_gateway(tmp_path: Path, config: Path, env: dict[str, str] | None = None) -> Process:
    log = tmp_path / f"{config.stem}.log"
    return Process(["serve", "--config", str(config)], log,
                   {"ACCEPTANCE_TIKTOK_TOKEN": TOKEN, **(env or {})}).start()


FAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


def clock_ahead(seconds: int) -> dict[str, str]:
    """The environment that runs a process with its clock `seconds` ahead (behind, when
    negative) with Debian's libfaketime, so that a test can see what a later day, or a
    wrong clock, does without waiting for it."""
    if not FAKETIME.exists():
        pytest.skip("needs libfaketime (apt-get install faketime)")
    return {"LD_PRELOAD": str(FAKETIME), "FAKETIME": f"{seconds:+d}s",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


def sandbox_events(sandbox: Process, **params: object) -> list[dict[str, object]]:
    events: list[dict[str, object]] = httpx.get(f"{sandbox.url}/sandbox/events",
                                                params={"limit": 0, **params}).json()["events"]
    return events


def wait_for(predicate: object, timeout: float = 30, interval: float = 0.1) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(interval)
    return False
