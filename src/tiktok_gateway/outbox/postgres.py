"""PostgresOutbox: one queue, delivery log and set of counters for many gateway processes.

Processes on any number of machines share the database. Claims take `FOR UPDATE SKIP
LOCKED` row locks only for the claiming transaction and record a lease; a process that dies
leaves leases that expire, and another process takes the events over. Each ingest request is
one statement (one round trip, its own transaction), and concurrent requests share WAL
flushes (PostgreSQL's own group commit); counters are kept per connection, so concurrent
requests never wait on each other's counter rows.
Needs the `postgres` extra: `pip install 'tiktok-gateway[postgres]'`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson
import psycopg
from psycopg_pool import AsyncConnectionPool

from ..exceptions import OutboxError, SchemaError
from ..pairing import DEDUP_WINDOW, LEG_RETENTION, PixelOnlyGroup, ServerGroup
from ..ratelimit import MAX_PAUSE
from . import (
    DEAD,
    PENDING,
    RESOLVED,
    AlertRecord,
    Backlog,
    CopyRecord,
    CounterKey,
    DroppedEvent,
    Leg,
    NewEvent,
    OrderChange,
    OutboxRecord,
    OutboxStats,
    Outcome,
    RecordQuery,
    RequestLog,
    Store,
    StoreOptions,
    tally,
)
from ._rows import (
    COLUMNS,
    TELEMETRY_RETENTION,
    copy_record,
    copy_row,
    counter_rows,
    first_copies,
    merge_counters,
    merged_copy,
    record,
)
from ._sql import load_queries

Q = load_queries("postgres.sql")
MIGRATIONS = sorted((int(name.split("_")[1]), sql) for name, sql in Q.items()
                    if name.startswith("migration_"))
SCHEMA_VERSION = MIGRATIONS[-1][0]
# The oldest schema whose code can still use a database of this one: every migration so far
# only adds tables, columns and indexes, which older processes ignore. A migration that
# changes what older code relies on raises it (and says so in docs/scaling.md).
COMPATIBLE_FROM = 1
PRUNE_EVERY = 300.0
assert COLUMNS[-2:] == ("sampled", "finished_at")  # the order `record` reads rows in


@contextlib.asynccontextmanager
async def _map_errors() -> AsyncIterator[None]:
    try:
        yield
    except psycopg.Error as exc:
        raise OutboxError(f"PostgreSQL outbox failed: {exc}") from exc


async def migrate(conninfo: str) -> tuple[int, int]:
    """Bring the schema to the newest version; return (version before, version after)."""
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=False) as conn:
        async with _map_errors(), conn.transaction():
            # One migrator at a time, even with several processes starting together.
            await conn.execute("SELECT pg_advisory_xact_lock(7401)")
            await conn.execute(Q["version_table"])
            row = await (await conn.execute(Q["current_version"])).fetchone()
            before = int(row[0]) if row else 0
            await _refuse_newer(conn, before)
            for version, sql in MIGRATIONS:
                if version > before:
                    await conn.execute(sql)
                    await conn.execute(Q["record_version"], {"version": version})
            await conn.execute(Q["raise_compat"], {"oldest": COMPATIBLE_FROM})
    return before, max(before, SCHEMA_VERSION)


async def _refuse_newer(conn: psycopg.AsyncConnection[Any], version: int) -> None:
    """A database a newer gateway migrated is used as long as that version says code of this
    schema can still use it (a rolling upgrade: old and new processes side by side)."""
    exists = await (await conn.execute(Q["has_compat"])).fetchone()
    if not (exists and exists[0]):
        return  # before migration 6: any code could use it
    row = await (await conn.execute(Q["compat_oldest"])).fetchone()
    oldest = int(row[0]) if row else 0
    if oldest > SCHEMA_VERSION:
        raise SchemaError(
            f"the database was upgraded by a newer tiktok-gateway (schema {version}, usable "
            f"from schema {oldest} on; this version has schema {SCHEMA_VERSION}): upgrade this "
            "installation")


class PostgresOutbox:
    """The outbox in PostgreSQL, shared by every gateway process that points at it."""

    def __init__(self, conninfo: str, *, dedup_window: float = 48 * 3600,
                 order_window: float = 90 * 86400, retention: float = 7 * 86400,
                 auto_migrate: bool = True, pool_size: int = 10,
                 max_delay: float = 3600.0) -> None:
        self.conninfo = conninfo
        self.dedup_window = dedup_window
        # 0 turns the long order window off: an order's event keeps the 48-hour one.
        self.order_window = order_window or dedup_window
        self.retention = retention
        self.max_delay = max_delay
        self.auto_migrate = auto_migrate
        # Autocommit: a lone statement is its own transaction, with no BEGIN or COMMIT round
        # trip; work of several statements opens `conn.transaction()`.
        self._pool = AsyncConnectionPool(conninfo, min_size=1, max_size=pool_size, open=False,
                                         kwargs={"autocommit": True})
        self._opened = False
        self._open_lock = asyncio.Lock()
        self._last_prune = 0.0
        self._telemetry = PostgresTelemetry(self)

    @property
    def telemetry(self) -> PostgresTelemetry:
        return self._telemetry

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        await self._open()
        async with _map_errors(), self._pool.connection() as conn:
            yield conn

    async def _open(self) -> None:
        if self._opened:
            return
        async with self._open_lock:
            if self._opened:
                return
            if self.auto_migrate:
                async with _map_errors():  # unreachable at start: 503s and a retry, no 500
                    await migrate(self.conninfo)
            else:
                await self._check_version()
            async with _map_errors():
                await self._pool.open(wait=True, timeout=30)
            self._opened = True

    async def _check_version(self) -> None:
        async with _map_errors(), await psycopg.AsyncConnection.connect(self.conninfo) as conn:
            await conn.execute(Q["version_table"])
            row = await (await conn.execute(Q["current_version"])).fetchone()
            await _refuse_newer(conn, int(row[0]) if row else 0)
        if not row or row[0] < SCHEMA_VERSION:
            raise SchemaError(f"the database schema is at version {row[0] if row else 0}, "
                              f"this gateway needs {SCHEMA_VERSION}: run `tiktok-gateway migrate`")

    async def put(self, events: Sequence[NewEvent],
                  counters: dict[CounterKey, int] | None = None) -> list[bool]:
        now = time.time()
        first = first_copies(events)
        rows = [{"position": i, **events[i].__dict__} for i in first.values()]
        window_start = now - self.dedup_window if self.dedup_window else now
        order_window_start = now - self.order_window if self.order_window else now
        async with self.connection() as conn:
            cursor = await conn.execute(Q["put"], {
                "events": orjson.dumps(rows).decode(), "counters": _counters_json(counters),
                "now": now, "window_start": window_start,
                "order_window_start": order_window_start})
            kept = {row[0] for row in await cursor.fetchall()}
            stored = [i in kept for i in range(len(events))]
            duplicates = [(e.destination, e.event_name, e.test_event_code)
                          for e, ok in zip(events, stored, strict=True) if not ok]
            if duplicates:
                await _add_counters(conn, tally(duplicates, "duplicate", now))
        return stored

    async def merge(self, copies: Sequence[NewEvent]) -> list[bool]:
        now = time.time()
        records = []
        async with self.connection() as conn, conn.transaction():
            for copy in copies:
                params = {**copy.__dict__, "now": now}
                row = await (await conn.execute(Q["copy_target"], params)).fetchone()
                target, merging = (tuple(row[:3]), bool(row[3])) if row else (None, False)
                record, payload = merged_copy(copy, target, merging=merging, now=now)
                if payload is not None:
                    await conn.execute(Q["set_payload"], {"id": record.record_id,
                                                          "payload": payload})
                await conn.execute(Q["add_copy"], copy_row(record))
                records.append(record)
            await _add_counters(conn, merge_counters(copies, records, now))
        return [r.merged for r in records]

    async def erase(self, hashes: Sequence[str]) -> int:
        async with self.connection() as conn, conn.transaction():
            ids = []
            for value in hashes:
                ids += [row[0] for row in await (await conn.execute(
                    Q["erase"], {"hash": value})).fetchall()]
            await conn.execute(Q["erase_copies"], {"ids": ids})
        return len(ids)

    async def record_change(self, change: OrderChange) -> None:
        if _holds_nul(*change.__dict__.values()):
            return
        async with self.connection() as conn:
            await conn.execute(Q["add_change"], change.__dict__)

    async def changes(self, order_id: str) -> list[OrderChange]:
        if _holds_nul(order_id):
            return []
        async with self.connection() as conn:
            cursor = await conn.execute(Q["changes_of"], {"order_id": order_id})
            return [OrderChange(*row) for row in await cursor.fetchall()]

    async def copies(self, record_id: int) -> list[CopyRecord]:
        async with self.connection() as conn:
            cursor = await conn.execute(Q["copies_of"], {"id": record_id})
            return [copy_record(row) for row in await cursor.fetchall()]

    async def claim(self, limit: int, lease: float) -> list[OutboxRecord]:
        now = time.time()
        if now - self._last_prune > PRUNE_EVERY:
            self._last_prune = now
            await self._prune(now)
        async with self.connection() as conn, conn.transaction():
            cursor = await conn.execute(Q["claim"], {"now": now, "lease_until": now + lease,
                                                     "limit": limit})
            rows = await cursor.fetchall()
        return sorted(map(record, rows), key=lambda r: r.id)

    async def _prune(self, now: float) -> None:
        async with self.connection() as conn, conn.transaction():
            await conn.execute(Q["prune"], {"before": now - self.retention})
            await conn.execute(Q["prune_dedup"], {"before": now - self.dedup_window})
            await conn.execute(Q["prune_orders"], {"before": now - self.order_window})
            await conn.execute(Q["prune_changes"], {"before": now - self.order_window})
            await conn.execute(Q["prune_copies"], {"before": now - self.retention})
            await conn.execute(Q["reschedule_far"], {"now": now, "latest": now + self.max_delay})
            await conn.execute(Q["prune_telemetry"],
                               {"minute": int((now - TELEMETRY_RETENTION) // 60)})
            await conn.execute(Q["prune_requests"], {"before": now - self.retention})
            await conn.execute(Q["prune_dropped"], {"before": now - self.retention})
            await conn.execute(Q["prune_legs"], {"before": now - LEG_RETENTION})
            await conn.execute(Q["prune_alerts"], {"before": now - TELEMETRY_RETENTION})

    async def mark_sent(self, ids: Sequence[int], outcome: Outcome) -> None:
        await self._update("mark_sent", {"ids": list(ids), "now": time.time(),
                                         "result": outcome.as_json()}, "delivered")

    async def mark_failed(self, ids: Sequence[int], outcome: Outcome,
                          retry_at: float | None) -> None:
        await self._update("mark_failed", {
            "ids": list(ids), "now": time.time(), "result": outcome.as_json(),
            "retry_at": retry_at, "state": PENDING if retry_at is not None else DEAD},
            "retried" if retry_at is not None else "dead")

    async def _update(self, query: str, params: dict[str, Any], counter: str) -> None:
        """Change records' state and count the change, in the same transaction."""
        async with self.connection() as conn, conn.transaction():
            rows = await (await conn.execute(Q[query], params)).fetchall()
            await _add_counters(conn, tally([(r[0], r[1], r[2]) for r in rows], counter,
                                            params["now"]))

    async def replay(self, destination: str | None = None, since: float | None = None,
                     ids: Sequence[int] | None = None) -> int:
        if _holds_nul(destination):
            return 0
        async with self.connection() as conn:
            cursor = await conn.execute(Q["replay"], {
                "now": time.time(), "destination": destination, "since": since,
                "ids": list(ids) if ids is not None else None})
            return cursor.rowcount

    async def find(self, query: RecordQuery) -> list[OutboxRecord]:
        if _holds_nul(*query.__dict__.values()):
            return []
        async with self.connection() as conn:
            cursor = await conn.execute(Q["find"], query.__dict__)
            return [record(row) for row in await cursor.fetchall()]

    async def get(self, id: int) -> OutboxRecord | None:
        async with self.connection() as conn:
            row = await (await conn.execute(Q["get"], {"id": id})).fetchone()
        return record(row) if row else None

    async def backlog(self) -> Backlog:
        return Backlog.of(await self._stats(Q["backlog"]))

    async def pending(self) -> int:
        async with self.connection() as conn:
            row = await (await conn.execute(Q["pending"])).fetchone()
        return int(row[0]) if row else 0

    async def webhook_orders(self, since: float, limit: int) -> list[str]:
        async with self.connection() as conn:
            cursor = await conn.execute(Q["webhook_orders"], {"since": since, "limit": limit})
            return [row[0] for row in await cursor.fetchall()]

    async def find_copies(self, query: RecordQuery) -> list[CopyRecord]:
        if _holds_nul(*query.__dict__.values()):
            return []
        async with self.connection() as conn:
            cursor = await conn.execute(Q["find_copies"], query.__dict__)
            return [copy_record(row) for row in await cursor.fetchall()]

    async def pending_by_event(self) -> list[tuple[str, str, bool, int]]:
        async with self.connection() as conn:
            rows = await (await conn.execute(Q["pending_by_event"])).fetchall()
        return [(d, e, bool(t), int(n)) for d, e, t, n in rows]

    async def stats(self) -> OutboxStats:
        return await self._stats(Q["counts"])

    async def _stats(self, counts: str) -> OutboxStats:
        async with self.connection() as conn:
            rows = await (await conn.execute(counts)).fetchall()
            oldest = await (await conn.execute(Q["oldest_pending"])).fetchone()
        return OutboxStats.from_counts(rows, oldest[0] if oldest else None)

    async def close(self) -> None:
        if self._opened:
            await self._pool.close()
            self._opened = False


def _holds_nul(*values: object) -> bool:
    """Whether a text to match holds NUL: PostgreSQL text cannot, so it would fail the query
    where the answer is plainly that nothing stored matches."""
    return any(isinstance(value, str) and "\x00" in value for value in values)


async def _add_counters(conn: psycopg.AsyncConnection[Any],
                        counters: dict[CounterKey, int]) -> None:
    if counters:
        await conn.execute(Q["add_counters"], {"counters": _counters_json(counters)})


def _counters_json(counters: dict[CounterKey, int] | None) -> str:
    """Counters as one JSON text: psycopg sends it as is, where lists cost a type scan each."""
    return orjson.dumps(counter_rows(counters)).decode()


class PostgresTelemetry:
    """Counters and the request log in the shared database: the totals of every process."""

    def __init__(self, outbox: PostgresOutbox) -> None:
        self._outbox = outbox

    async def add(self, counters: dict[CounterKey, int], requests: Sequence[RequestLog],
                  dropped: Sequence[DroppedEvent] = (), legs: Sequence[Leg] = ()) -> None:
        async with self._outbox.connection() as conn, conn.transaction():
            await _add_counters(conn, counters)
            async with conn.cursor() as cursor:
                if requests:
                    await cursor.executemany(Q["add_request"], [r.__dict__ for r in requests])
                if dropped:
                    await cursor.executemany(Q["add_dropped"], [d.__dict__ for d in dropped])
                if legs:
                    await cursor.executemany(Q["add_leg"], [leg.__dict__ for leg in legs])

    async def pair_counts(self, start: float, end: float, mode: str = "all",
                          ) -> tuple[list[ServerGroup], list[PixelOnlyGroup]]:
        params = {"start": start, "end": end, "mode": mode, "dedup_window": DEDUP_WINDOW}
        async with self._outbox.connection() as conn:
            server = await (await conn.execute(Q["pair_server"], params)).fetchall()
            pixel = await (await conn.execute(Q["pair_pixel_only"], params)).fetchall()
        return [ServerGroup(*row) for row in server], [PixelOnlyGroup(*row) for row in pixel]

    async def pixel_reporting(self, destinations: Sequence[str], since: float) -> set[str]:
        found = set()
        async with self._outbox.connection() as conn:
            for destination in destinations:
                cursor = await conn.execute(Q["pixel_reporting"],
                                            {"since": since, "destination": destination})
                if await cursor.fetchone():
                    found.add(destination)
        return found

    async def legs_of(self, event_id: str, order_id: str = "",
                      destination: str | None = None) -> list[Leg]:
        if _holds_nul(event_id, order_id, destination):
            return []
        params = {"event_id": event_id, "order_id": order_id, "destination": destination}
        async with self._outbox.connection() as conn:
            rows = await (await conn.execute(Q["legs_of"], params)).fetchall()
        return [Leg(*row) for row in rows]

    async def open_alert(self, rule: str, destination: str, at: float, message: str) -> bool:
        params = {"rule": rule, "destination": destination, "at": at, "message": message}
        async with self._outbox.connection() as conn:
            return await (await conn.execute(Q["open_alert"], params)).fetchone() is not None

    async def close_alert(self, rule: str, destination: str, at: float) -> AlertRecord | None:
        params = {"rule": rule, "destination": destination, "at": at}
        async with self._outbox.connection() as conn:
            row = await (await conn.execute(Q["close_alert"], params)).fetchone()
        return AlertRecord(rule, destination, RESOLVED, row[0], at, row[1]) if row else None

    async def alerts(self, since: float, limit: int = 200) -> list[AlertRecord]:
        async with self._outbox.connection() as conn:
            cursor = await conn.execute(Q["alerts_since"], {"since": since, "limit": limit})
            return [AlertRecord(*row) for row in await cursor.fetchall()]

    async def dropped(self, query: RecordQuery) -> list[DroppedEvent]:
        if _holds_nul(*query.__dict__.values()):
            return []
        async with self._outbox.connection() as conn:
            cursor = await conn.execute(Q["find_dropped"], query.__dict__)
            return [DroppedEvent(*row) for row in await cursor.fetchall()]

    async def counters(self, since: float) -> list[tuple[int, str, str, str, int]]:
        async with self._outbox.connection() as conn:
            cursor = await conn.execute(Q["counters_since"], {"minute": int(since // 60)})
            return [tuple(row) for row in await cursor.fetchall()]

    async def requests(self, since: float, limit: int = 10_000) -> list[RequestLog]:
        async with self._outbox.connection() as conn:
            cursor = await conn.execute(Q["requests_since"], {"since": since, "limit": limit})
            return [RequestLog(*row) for row in await cursor.fetchall()]


class PostgresRateLimiter:
    """A token bucket per access token, shared by every process through one locked row."""

    def __init__(self, outbox: PostgresOutbox, token: str, qps: float) -> None:
        self._outbox = outbox
        self._tasks: set[asyncio.Task[None]] = set()
        self._paused_until = 0.0  # this process's last pause; the shared one is in the row
        self.key = hashlib.sha256(token.encode()).hexdigest()[:32]  # never the token itself
        self.qps = qps

    async def acquire(self) -> None:
        while (wait := await self._take()) > 0:
            await asyncio.sleep(wait)

    async def _take(self) -> float:
        now = time.time()
        params = {"key": self.key, "qps": self.qps, "now": now}
        async with self._outbox.connection() as conn, conn.transaction():
            await conn.execute(Q["ensure_limit"], params)
            row = await (await conn.execute(Q["lock_limit"], params)).fetchone()
            assert row is not None
            tokens, updated_at, paused_until = row
            # A pause past MAX_PAUSE is not believed (a store written by a bug): it expires.
            if now < paused_until <= now + MAX_PAUSE:
                return float(paused_until - now)
            tokens = min(self.qps, tokens + max(0.0, now - updated_at) * self.qps)
            wait = 0.0 if tokens >= 1 else (1 - tokens) / self.qps
            await conn.execute(Q["save_limit"], {**params, "tokens": tokens - (wait == 0)})
            return wait

    def pause(self, seconds: float) -> None:
        seconds = min(max(0.0, seconds), MAX_PAUSE)
        self._paused_until = max(self._paused_until, time.time() + seconds)
        task = asyncio.get_running_loop().create_task(self._pause(seconds))
        self._tasks.add(task)  # keep a reference until it is done
        task.add_done_callback(self._tasks.discard)

    def paused_for(self) -> float:
        return max(0.0, self._paused_until - time.time())

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(OutboxError):
            async with self._outbox.connection() as conn:
                await conn.execute(Q["pause"], {"key": self.key, "until": time.time() + seconds})


def open_store(url: str, options: StoreOptions) -> Store:
    """`postgresql://`: the rate limiter is shared by every process, through the database."""
    backend = PostgresOutbox(url, dedup_window=options.dedup_window,
                             order_window=options.order_window, retention=options.retention,
                             auto_migrate=options.auto_migrate, pool_size=options.pool_size,
                             max_delay=options.max_delay)
    return Store.of(backend, lambda token, qps: PostgresRateLimiter(backend, token, qps))
