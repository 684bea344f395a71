"""Installed without a checkout: the built wheel holds the dashboard, the snippet, the SQL
and the sandbox's page, and a gateway run from it serves them all."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx

from tests.acceptance.processes import TOKEN, Process, write_config

ADMIN_PASSWORD = "acceptance-admin-password"  # write_config's

ROOT = Path(__file__).parents[2]
ASSETS = ("tiktok_gateway/web/static/tt.js", "tiktok_gateway/web/templates/overview.html",
          "tiktok_gateway/web/templates/pairing.html", "tiktok_gateway/outbox/sqlite.sql",
          "tiktok_gateway/outbox/postgres.sql", "tiktok_gateway/sandbox/templates/test_events.html",
          "tiktok_gateway/py.typed")


def test_a_wheel_installs_and_serves_everything(tmp_path: Path, tiktok_process: Process) -> None:
    built = subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir",
                            str(tmp_path / "dist"), str(ROOT)], capture_output=True, text=True,
                           timeout=300)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    [wheel] = (tmp_path / "dist").glob("tiktok_gateway-*-py3-none-any.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert set(ASSETS) <= names, set(ASSETS) - names
    assert not any(n.startswith(("tests/", "bench/")) for n in names)
    site = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                                "--target", str(site), str(wheel)], capture_output=True,
                               text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr[-2000:]
    env = {"PYTHONPATH": str(site)}
    where = subprocess.run([sys.executable, "-c", "import tiktok_gateway; print(tiktok_gateway.__file__)"],
                           capture_output=True, text=True, env={**os.environ, **env}, cwd=tmp_path)
    assert where.stdout.strip().startswith(str(site)), where.stdout  # the wheel's copy, not this checkout
    config = write_config(tmp_path, tiktok_process.url)
    gateway = Process(["serve", "--config", str(config)], tmp_path / "wheel.log",
                      {**env, "ACCEPTANCE_TIKTOK_TOKEN": TOKEN}).start()
    try:
        assert "ttgw" in httpx.get(f"{gateway.url}/tt.js").text
        dashboard = httpx.get(f"{gateway.url}/dashboard", auth=("admin", ADMIN_PASSWORD))
        assert dashboard.status_code == 200 and "Tag health" in dashboard.text
        answer = httpx.post(f"{gateway.url}/v1/events", headers={
            "Authorization": "Bearer acceptance-server-key-0123"}, json={
            "event": "purchase", "properties": {"order_id": "W-1", "value": 1, "currency": "USD"}})
        assert answer.status_code == 202
    finally:
        gateway.stop()
