"""PostgreSQL specifics: several processes on one database, the shared limiter, migrations."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tiktok_gateway.outbox import NewEvent, open_store
from tiktok_gateway.outbox.postgres import SCHEMA_VERSION, PostgresOutbox, migrate
from tiktok_gateway.testing import fresh_database


def new_event(i: int) -> NewEvent:
    return NewEvent("shop", "CompletePayment", f"e{i}", int(time.time()),
                    json.dumps({"event_id": f"e{i}"}))


async def test_two_stores_share_one_queue(postgres_url: str) -> None:
    """Two outboxes on one database (two processes) split the work without overlap."""
    first, second = open_store(postgres_url).outbox, open_store(postgres_url).outbox
    try:
        await first.put([new_event(i) for i in range(500)])

        async def drain(store: object) -> list[int]:
            ids: list[int] = []
            while batch := await store.claim(20, lease=30):  # type: ignore[attr-defined]
                ids += [r.id for r in batch]
            return ids

        a, b = await asyncio.gather(drain(first), drain(second))
        assert a and b, "both processes should have claimed work"
        assert len(a) + len(b) == 500 and not set(a) & set(b)
    finally:
        await first.close()
        await second.close()


async def test_dedup_holds_across_stores(postgres_url: str) -> None:
    """An event seen by one process is a duplicate for the other."""
    first, second = open_store(postgres_url).outbox, open_store(postgres_url).outbox
    try:
        results = await asyncio.gather(first.put([new_event(1)]), second.put([new_event(1)]))
        assert sorted(r[0] for r in results) == [False, True]
    finally:
        await first.close()
        await second.close()


async def test_rate_limiter_is_shared(postgres_url: str) -> None:
    """Two processes with the same token share one budget of requests per second."""
    first, second = open_store(postgres_url), open_store(postgres_url)
    try:
        limiters = [first.limiter("token-abc", 5), second.limiter("token-abc", 5)]
        started = time.monotonic()
        # 5 tokens in the bucket, then 5 per second: 15 requests need about 2 seconds.
        await asyncio.gather(*(limiters[i % 2].acquire() for i in range(15)))
        elapsed = time.monotonic() - started
        assert 1.6 < elapsed < 4, elapsed
        limiters[0].pause(1.0)
        await asyncio.sleep(0.1)
        paused = time.monotonic()
        await limiters[1].acquire()
        assert time.monotonic() - paused > 0.7
    finally:
        await first.close()
        await second.close()


async def test_token_is_not_stored(postgres_url: str) -> None:
    """The shared limiter keys rows by a hash of the token, never the token."""
    import psycopg

    store = open_store(postgres_url)
    try:
        await store.limiter("super-secret-token", 10).acquire()
    finally:
        await store.close()
    with psycopg.connect(postgres_url) as conn:
        keys = [row[0] for row in conn.execute("SELECT key FROM rate_limits")]
    assert keys and all("secret" not in key for key in keys)


async def test_migrate_is_idempotent(postgres_template: str) -> None:
    """Migrating a fresh database reaches the current version; again is a no-op."""
    with fresh_database(postgres_template, "tiktok_gateway_migrate_test") as url:
        assert await migrate(url) == (0, SCHEMA_VERSION)
        assert await migrate(url) == (SCHEMA_VERSION, SCHEMA_VERSION)


async def test_counters_survive_the_upgrade_to_sharded_rows(postgres_template: str) -> None:
    """A database of schema 1 (one row per counter) upgrades in place: its counts are kept,
    and concurrent ingest adds to them without queueing on one row."""
    import psycopg

    from tiktok_gateway.outbox.postgres import MIGRATIONS

    minute = int(time.time() // 60)
    with fresh_database(postgres_template, "tiktok_gateway_upgrade_test") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(MIGRATIONS[0][1])  # type: ignore[arg-type]
            conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            conn.execute("INSERT INTO schema_version VALUES (1)")
            conn.execute("INSERT INTO counters VALUES (%s, 'shop', 'CompletePayment', "
                         "'received', 40)", (minute,))
        assert await migrate(url) == (1, SCHEMA_VERSION)
        store = PostgresOutbox(url)
        try:
            key = (minute, "shop", "CompletePayment", "received")
            await asyncio.gather(*(store.put([new_event(i)], {key: 1}) for i in range(20)))
            totals = await store.telemetry.counters(time.time() - 60)
        finally:
            await store.close()
        assert [row for row in totals if row[3] == "received"] == [(*key, 60)]


async def test_a_newer_schema_is_used_while_it_says_so_and_refused_after(
        postgres_template: str) -> None:
    """A rolling upgrade: a newer gateway migrated the database and old processes keep
    working, until a migration declares older code unable to use it: then they refuse to
    start, naming the fix."""
    import psycopg

    from tiktok_gateway.exceptions import SchemaError

    with fresh_database(postgres_template, "tiktok_gateway_newer_schema") as url:
        await migrate(url)
        with psycopg.connect(url, autocommit=True) as conn:  # what a newer version would do
            conn.execute("INSERT INTO schema_version VALUES (%s)", (SCHEMA_VERSION + 1,))
        assert await migrate(url) == (SCHEMA_VERSION + 1, SCHEMA_VERSION + 1)
        store = PostgresOutbox(url)
        try:
            assert await store.put([new_event(1)]) == [True]  # side by side: still served
        finally:
            await store.close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("UPDATE schema_compat SET oldest = %s", (SCHEMA_VERSION + 1,))
        for auto_migrate in (True, False):
            store = PostgresOutbox(url, auto_migrate=auto_migrate)
            try:
                with pytest.raises(SchemaError, match="upgraded by a newer tiktok-gateway"):
                    await store.put([new_event(2)])
            finally:
                await store.close()


def test_migrate_command(postgres_url: str, tmp_path: Path) -> None:
    """`tiktok-gateway migrate` reports the schema version."""
    config = tmp_path / "gateway.toml"
    config.write_text(f'[storage]\nurl = "{postgres_url}"\n')
    result = subprocess.run([sys.executable, "-m", "tiktok_gateway", "migrate", "--config",
                             str(config)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"schema at version {SCHEMA_VERSION}" in result.stdout


async def test_a_stored_pause_past_the_limit_expires(postgres_url: str) -> None:
    """A pause a store kept from a bug (Retry-After 1e308) is not believed by any process."""
    import psycopg

    store = open_store(postgres_url)
    try:
        limiter = store.limiter("token-paused", 100)
        await limiter.acquire()  # makes the row
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute("UPDATE rate_limits SET paused_until = 1e308")
        started = time.monotonic()
        await asyncio.wait_for(limiter.acquire(), timeout=5)
        assert time.monotonic() - started < 1
    finally:
        await store.close()


def test_a_nul_in_a_rejected_name_harms_nothing(make_gateway: Any, postgres_url: str) -> None:
    """On PostgreSQL (whose text holds no NUL) a rejected event named with NUL is a 422 naming
    it, alone or beside a good event, and the counters and request log still flush."""
    import httpx
    import psycopg

    from tests.conftest import SERVER_KEY

    url = make_gateway(storage={"url": postgres_url})
    headers = {"Authorization": f"Bearer {SERVER_KEY}"}
    alone = httpx.post(f"{url}/v1/events", json={"event": "bad\u0000name"}, headers=headers)
    assert alone.status_code == 422 and alone.json()["rejected"][0]["errors"][0]["field"] == "event"
    mixed = httpx.post(f"{url}/v1/events", headers=headers, json={"events": [
        {"event": "view_item", "event_id": "nul-ok"}, {"event": "x\u0000y"}]})
    assert mixed.status_code == 202 and mixed.json()["queued"] == 1

    def flushed() -> bool:
        with psycopg.connect(postgres_url) as conn:
            names = {row[0] for row in conn.execute("SELECT name FROM counters")}
            requests = conn.execute("SELECT COUNT(*) FROM requests").fetchone()
        return {"rejected", "delivered"} <= names and bool(requests and requests[0])

    deadline = time.time() + 10
    while not flushed() and time.time() < deadline:
        time.sleep(0.2)
    assert flushed()
