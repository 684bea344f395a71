"""Starting on PostgreSQL when it is down, or when its schema is too old."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from tests.acceptance.processes import TOKEN, Process, write_config
from tests.postgres_db import admin_dsn
from tiktok_gateway.testing import free_port, fresh_database

KEY = {"Authorization": "Bearer acceptance-server-key-0123"}


def test_postgres_down_at_start_is_a_503_with_retry_after(tmp_path: Path,
                                                           tiktok_process: Process) -> None:
    """The server refuses connections: the gateway still starts, and every answer that needs
    the store is a JSON 503 with the reason (ingest with Retry-After), never a 500."""
    down = f"postgresql://postgres@127.0.0.1:{free_port()}/test"
    config = write_config(tmp_path, tiktok_process.url, storage_url=down)
    gateway = Process(["serve", "--config", str(config)], tmp_path / "gateway.log",
                      {"ACCEPTANCE_TIKTOK_TOKEN": TOKEN}).start()
    try:
        ready = httpx.get(f"{gateway.url}/readyz")
        assert ready.status_code == 503 and "store unreachable" in ready.json()["problems"][0]
        answer = httpx.post(f"{gateway.url}/v1/events", headers=KEY,
                            json={"event": "purchase", "properties": {"order_id": "p1"}})
        assert answer.status_code == 503 and answer.headers["retry-after"]
        assert "nothing was stored" in answer.json()["error"]
    finally:
        gateway.stop()
    assert "Traceback" not in (tmp_path / "gateway.log").read_text()


def test_an_old_schema_without_auto_migrate_stops_the_start(tmp_path: Path,
                                                             tiktok_process: Process) -> None:
    """`auto_migrate = false` on a database the gateway has not migrated: it does not start
    and says to run `tiktok-gateway migrate`."""
    with fresh_database(admin_dsn(), f"tiktok_gateway_old_{uuid.uuid4().hex[:8]}") as old:
        config = write_config(tmp_path, tiktok_process.url, storage_url=old)
        config.write_text(config.read_text().replace(f'url = "{old}"\n',
                                                     f'url = "{old}"\nauto_migrate = false\n'))
        gateway = Process(["serve", "--config", str(config)], tmp_path / "old.log",
                          {"ACCEPTANCE_TIKTOK_TOKEN": TOKEN})
        with pytest.raises(RuntimeError, match="run `tiktok-gateway migrate`"):
            gateway.start(timeout=20)
        assert gateway.proc is not None and gateway.proc.wait(timeout=20) != 0
