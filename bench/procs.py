"""Start the sandbox, the gateway and helper servers as processes for benchmarks."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tiktok_gateway.testing import free_port

PIXEL = "C0EXAMPLE0PIXEL00001"
TOKEN = "bench-token-0123456789"
KEY = "bench-server-key-0123456789"


class Proc:
    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log.open("w")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})})

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def cpu_seconds(self) -> float:
        """User and system CPU time the process has used so far (from /proc)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def sandbox(workdir: Path, port: int | None = None) -> tuple[Proc, str]:
    port = port or free_port()
    proc = Proc([sys.executable, "-m", "tiktok_gateway", "sandbox", "--port", str(port),
                 "--token", f"{PIXEL}={TOKEN}"], workdir / "sandbox.log")
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/sandbox/stats")
    return proc, url


def gateway(workdir: Path, tiktok_url: str, *, extra: str = "",
            storage_url: str | None = None, max_pending: int = 2_000_000,
            workers: int = 1) -> tuple[Proc, str]:
    port = free_port()
    config = workdir / "gateway.toml"
    config.write_text(f"""
[storage]
url = "{storage_url or f'sqlite:///{workdir}/gateway.db'}"
max_pending = {max_pending}

[server]
port = {port}

[tiktok]
base_url = "{tiktok_url}"

[observe]
inspect_sample_rate = 0.01

[[keys]]
name = "bench"
secret = "{KEY}"

[[destinations]]
name = "shop"
pixel_id = "{PIXEL}"
access_token = "{TOKEN}"
phone_region = "US"
{extra}
""")
    proc = Proc([sys.executable, "-m", "tiktok_gateway", "serve", "--config", str(config),
                 *(["--workers", str(workers)] if workers > 1 else [])], workdir / "gateway.log")
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/healthz")
    return proc, url


def sandbox_count(url: str) -> int:
    return int(httpx.get(f"{url}/sandbox/stats", timeout=10).json()["events"])


def versions() -> dict[str, str]:
    from importlib.metadata import version

    names = ("tiktok-gateway", "pydantic", "httpx", "starlette", "uvicorn", "httptools",
             "uvloop", "phonenumbers", "orjson")
    info = {name: version(name) for name in names}
    info["python"] = sys.version.split()[0]
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    match = re.search(r"wrk (\S+)", wrk.stdout + wrk.stderr)
    info["wrk"] = match.group(1) if match else "unknown"
    return info
