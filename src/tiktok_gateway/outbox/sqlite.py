"""SQLiteOutbox: the embedded default, in WAL mode with group commit.

SQLite has one writer at a time, so one thread owns the write connection and runs
every write. While it waits for an fsync, new writes queue up; the next transaction
takes them all, each inside its own SAVEPOINT so one failure fails only its caller.
Many concurrent ingest requests therefore share one fsync. Reads use a second
connection on their own thread, which WAL lets run beside the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import math
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import orjson

from ..exceptions import OutboxError, SchemaError
from ..pairing import DEDUP_WINDOW, LEG_RETENTION, PixelOnlyGroup, ServerGroup
from ..ratelimit import RateLimiter
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

Q = load_queries("sqlite.sql")
T = TypeVar("T")
Operation = Callable[[sqlite3.Connection], Any]
_STOP = object()
MAX_GROUP = 512  # operations per transaction
# The file's schema: 1 before versions were kept, 2 with the pairing legs and alert incidents.
# COMPATIBLE_FROM: the oldest schema whose code can still use a file of this one (every change
# so far only added tables and columns).
SCHEMA_VERSION = 2
COMPATIBLE_FROM = 1
PRUNE_EVERY = 60.0


@contextlib.contextmanager
def _map_sqlite_errors() -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise OutboxError(f"SQLite outbox failed: {exc}") from exc


def connect(path: str, synchronous: str = "FULL") -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={'NORMAL' if synchronous == 'NORMAL' else 'FULL'}")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class _DatabaseThread:
    """A thread that owns one connection and runs operations submitted from asyncio."""

    def __init__(self, conn: sqlite3.Connection, *, transactional: bool, name: str,
                 before_commit: Callable[[sqlite3.Connection], None] | None = None,
                 before_begin: Callable[[], None] | None = None) -> None:
        self._conn = conn
        self._transactional = transactional
        self._before_commit = before_commit
        self._before_begin = before_begin
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    async def run(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((operation, future, loop))
        return await future

    def stop(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout=30)
        self._conn.close()

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if not batch:
                return
            results = self._in_transaction(batch) if self._transactional else self._each(batch)
            # One wake-up per event loop for the whole group: each wake-up is a system call.
            by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
            for (_, future, loop), (value, error) in zip(batch, results, strict=True):
                by_loop.setdefault(loop, []).append((future, value, error))
            for loop, settled in by_loop.items():
                loop.call_soon_threadsafe(_settle_all, settled)

    def _next_batch(self) -> list[Any]:
        first = self._queue.get()
        if first is _STOP:
            return []
        batch = [first]
        while len(batch) < MAX_GROUP:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                self._queue.put(_STOP)
                break
            batch.append(item)
        return batch

    def _each(self, batch: list[Any]) -> list[tuple[Any, BaseException | None]]:
        return [self._call(op) for op, _, _ in batch]

    def _call(self, op: Operation) -> tuple[Any, BaseException | None]:
        try:
            with _map_sqlite_errors():
                return op(self._conn), None
        except Exception as exc:  # handed to the awaiting coroutine
            return None, exc

    def _in_transaction(self, batch: list[Any]) -> list[tuple[Any, BaseException | None]]:
        """All operations in one transaction, each in a savepoint so a failure fails only it."""
        conn = self._conn
        if self._before_begin is not None:
            try:
                self._before_begin()
            except OutboxError as refused:
                return [(None, refused) for _ in batch]
        try:
            conn.execute("BEGIN IMMEDIATE")
            results = []
            for op, _, _ in batch:
                conn.execute("SAVEPOINT op")
                value, error = self._call(op)
                conn.execute("ROLLBACK TO op" if error else "RELEASE op")
                if error:
                    conn.execute("RELEASE op")
                results.append((value, error))
            if self._before_commit:
                self._before_commit(conn)
            conn.execute("COMMIT")
            return results
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            failure = OutboxError(f"SQLite outbox commit failed: {exc}")
            failure.__cause__ = exc
            return [(None, failure) for _ in batch]


def _settle_all(settled: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, value, error in settled:
        if future.cancelled():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)


def _add_counters(conn: sqlite3.Connection, counters: dict[CounterKey, int]) -> None:
    conn.executemany(Q["add_counter"], counter_rows(counters))


class SQLiteTelemetry:
    """Counters and the request log in the outbox's file, written by its writer thread."""

    def __init__(self, writer: _DatabaseThread, reader: _DatabaseThread) -> None:
        self._writer = writer
        self._reader = reader

    async def add(self, counters: dict[CounterKey, int], requests: Sequence[RequestLog],
                  dropped: Sequence[DroppedEvent] = (), legs: Sequence[Leg] = ()) -> None:
        request_rows = [{**r.__dict__, "test": int(r.test)} for r in requests]
        dropped_rows = [{**d.__dict__, "test": int(d.test)} for d in dropped]
        leg_rows = [{**leg.__dict__, "test": int(leg.test)} for leg in legs]

        def write(conn: sqlite3.Connection) -> None:
            _add_counters(conn, counters)
            conn.executemany(Q["add_request"], request_rows)
            conn.executemany(Q["add_dropped"], dropped_rows)
            conn.executemany(Q["add_leg"], leg_rows)

        await self._writer.run(write)

    async def pair_counts(self, start: float, end: float, mode: str = "all",
                          ) -> tuple[list[ServerGroup], list[PixelOnlyGroup]]:
        params = {"start": start, "end": end, "mode": mode, "dedup_window": DEDUP_WINDOW}

        def read(conn: sqlite3.Connection) -> tuple[list[Any], list[Any]]:
            return (conn.execute(Q["pair_server"], params).fetchall(),
                    conn.execute(Q["pair_pixel_only"], params).fetchall())

        server, pixel = await self._reader.run(read)
        return ([ServerGroup(d, e, pe, ps, bool(w), bool(o), b, os, ld, n)
                 for d, e, pe, ps, w, o, b, os, ld, n in server],
                [PixelOnlyGroup(*row) for row in pixel])

    async def pixel_reporting(self, destinations: Sequence[str], since: float) -> set[str]:
        def read(conn: sqlite3.Connection) -> set[str]:
            return {d for d in destinations if conn.execute(
                Q["pixel_reporting"], {"since": since, "destination": d}).fetchone()}

        return await self._reader.run(read)

    async def legs_of(self, event_id: str, order_id: str = "",
                      destination: str | None = None) -> list[Leg]:
        params = {"event_id": event_id, "order_id": order_id, "destination": destination}
        rows = await self._reader.run(lambda c: c.execute(Q["legs_of"], params).fetchall())
        return [Leg(d, side, e, eid, oid, at, state, b, os, load, bool(test))
                for d, side, e, eid, oid, at, state, b, os, load, test in rows]

    async def open_alert(self, rule: str, destination: str, at: float, message: str) -> bool:
        params = {"rule": rule, "destination": destination, "at": at, "message": message}
        row = await self._writer.run(lambda c: c.execute(Q["open_alert"], params).fetchone())
        return row is not None

    async def close_alert(self, rule: str, destination: str, at: float) -> AlertRecord | None:
        params = {"rule": rule, "destination": destination, "at": at}
        row = await self._writer.run(lambda c: c.execute(Q["close_alert"], params).fetchone())
        return AlertRecord(rule, destination, RESOLVED, row[0], at, row[1]) if row else None

    async def alerts(self, since: float, limit: int = 200) -> list[AlertRecord]:
        params = {"since": since, "limit": limit}
        rows = await self._reader.run(lambda c: c.execute(Q["alerts_since"], params).fetchall())
        return [AlertRecord(*row) for row in rows]

    async def dropped(self, query: RecordQuery) -> list[DroppedEvent]:
        params = {**query.__dict__, "test_only": int(query.test_only)}
        rows = await self._reader.run(lambda c: c.execute(Q["find_dropped"], params).fetchall())
        return [DroppedEvent(at, dest, event, eid, oid, state, reason, bool(test), source, body)
                for at, dest, event, eid, oid, state, reason, test, source, body in rows]

    async def counters(self, since: float) -> list[tuple[int, str, str, str, int]]:
        params = {"minute": int(since // 60)}
        return await self._reader.run(lambda c: c.execute(Q["counters_since"], params).fetchall())

    async def requests(self, since: float, limit: int = 10_000) -> list[RequestLog]:
        params = {"since": since, "limit": limit}
        rows = await self._reader.run(lambda c: c.execute(Q["requests_since"], params).fetchall())
        return [RequestLog(at, dest, events, bool(test), outcome, code, message, rid, status, lat)
                for at, dest, events, test, outcome, code, message, rid, status, lat in rows]


class SQLiteOutbox:
    """The outbox in one SQLite file. `path` may be `:memory:` only for a single connection."""

    def __init__(self, path: str, *, dedup_window: float = 48 * 3600,
                 order_window: float = 90 * 86400, retention: float = 7 * 86400,
                 synchronous: str = "FULL", owner: bool = True,
                 max_delay: float = 3600.0) -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # One owner per file: leases, pruning and the writer assume a single delivering process.
        self._lock = _own(path) if owner and path != ":memory:" else None
        self._owner = owner
        self.dedup_window = dedup_window
        # 0 turns the long order window off: an order's event keeps the 48-hour one.
        self.order_window = order_window or dedup_window
        self.retention = retention
        self.max_delay = max_delay
        try:
            writer = self._open_schema(path, synchronous, owner)
        except BaseException:
            if self._lock is not None:
                self._lock.close()
            raise
        with _map_sqlite_errors():
            reader = writer if path == ":memory:" else connect(path, synchronous)
        # Counters of every operation in a transaction, merged and written once before COMMIT.
        self._pending_counts: dict[CounterKey, int] = {}
        self._file = _identity(path)
        self._writer = _DatabaseThread(writer, transactional=True, name="outbox-writer",
                                       before_commit=self._write_counts,
                                       before_begin=self._check_file)
        self._reader = (self._writer if reader is writer else
                        _DatabaseThread(reader, transactional=False, name="outbox-reader"))
        self._last_prune = 0.0
        self._leases: dict[int, float] = {}  # id: lease end, of the events being delivered
        self._next_expiry = math.inf
        self._telemetry = SQLiteTelemetry(self._writer, self._reader)

    @staticmethod
    def _open_schema(path: str, synchronous: str, owner: bool) -> sqlite3.Connection:
        """The writer's connection, on a schema this version can use (brought up to date)."""
        with _map_sqlite_errors():
            writer = connect(path, synchronous)
            try:
                _check_schema(writer, path)
            except SchemaError:
                writer.close()
                raise
            writer.executescript(Q["schema"])
            if ("source",) not in writer.execute(Q["outbox_columns"]).fetchall():
                writer.execute(Q["add_source_column"])
            if owner:  # a crashed owner's leases: nobody else can hold them on one file
                writer.execute(Q["release_leases"])
                writer.execute(f"PRAGMA user_version = {COMPATIBLE_FROM << 16 | SCHEMA_VERSION}")
        return writer

    @property
    def telemetry(self) -> SQLiteTelemetry:
        return self._telemetry

    def _check_file(self) -> None:
        """Refuse to write once the file was deleted or replaced under us: the open handle
        would keep "storing" into a file nobody will read again, and acknowledge it."""
        if self._file is not None and _identity(self.path) != self._file:
            raise OutboxError(f"the SQLite file {self.path} was deleted or replaced while the "
                              "gateway ran: nothing more is acknowledged; restart the gateway")

    def _count(self, counters: dict[CounterKey, int]) -> None:
        """Add to this transaction's counters (runs on the writer thread only)."""
        pending = self._pending_counts
        for key, value in counters.items():
            pending[key] = pending.get(key, 0) + value

    def _write_counts(self, conn: sqlite3.Connection) -> None:
        # Taken before writing: if this transaction fails, its counts go with its events.
        pending, self._pending_counts = self._pending_counts, {}
        if pending:
            _add_counters(conn, pending)

    async def put(self, events: Sequence[NewEvent],
                  counters: dict[CounterKey, int] | None = None) -> list[bool]:
        return await self._writer.run(lambda conn: self._put(conn, events, counters or {}))

    def _put(self, conn: sqlite3.Connection, events: Sequence[NewEvent],
             counters: dict[CounterKey, int]) -> list[bool]:
        now = time.time()
        first = first_copies(events)
        # One key an event: its order's for an order's event (kept for months), else its id's.
        firsts = [events[i] for i in first.values()]
        fresh = self._remember(conn, [e.dedup_key for e in firsts if not e.order_id], now)
        fresh_orders = self._remember_orders(conn, [e.order_key for e in firsts if e.order_id], now)
        stored = [first.get(e.dedup_key) == i and (
                  e.order_key in fresh_orders if e.order_id else e.dedup_key in fresh)
                  for i, e in enumerate(events)]
        conn.executemany(Q["insert"], [
            (e.destination, e.event_name, e.event_id, e.event_time, e.test_event_code, e.order_id,
             e.payload, e.inbound, int(e.sampled), now, now + e.delay, e.source)
            for e, keep in zip(events, stored, strict=True) if keep])
        duplicates = [(e.destination, e.event_name, e.test_event_code)
                      for e, ok in zip(events, stored, strict=True) if not ok]
        self._count(counters)
        self._count(tally(duplicates, "duplicate", now))
        return stored

    def _remember(self, conn: sqlite3.Connection, keys: list[tuple[str, str, str, str]],
                  now: float) -> set[tuple[str, str, str, str]]:
        """Record event keys; return those not seen within the dedup window."""
        return _record_keys(conn, keys, now, self.dedup_window, "event_id", "remember")

    def _remember_orders(self, conn: sqlite3.Connection, keys: list[Any],
                         now: float) -> set[tuple[str, str, str, str]]:
        """Record order keys; return those not seen within the order window."""
        return _record_keys(conn, keys, now, self.order_window, "order_id", "remember_order")

    async def merge(self, copies: Sequence[NewEvent]) -> list[bool]:
        return await self._writer.run(lambda conn: self._merge(conn, copies))

    def _merge(self, conn: sqlite3.Connection, copies: Sequence[NewEvent]) -> list[bool]:
        now = time.time()
        records = []
        for copy in copies:
            row = conn.execute(Q["copy_target"], {**copy.__dict__, "now": now}).fetchone()
            # A copy merges into its first while that waits, not while it is in flight.
            target, merging = ((tuple(row[:3]), bool(row[3]) and row[0] not in
                                self._live_leases(now)) if row else (None, False))
            record, payload = merged_copy(copy, target, merging=merging, now=now)
            if payload is not None:
                conn.execute(Q["set_payload"], {"id": record.record_id, "payload": payload})
            conn.execute(Q["add_copy"], copy_row(record))
            records.append(record)
        self._count(merge_counters(copies, records, now))
        return [r.merged for r in records]

    async def erase(self, hashes: Sequence[str]) -> int:
        count = await self._writer.run(lambda conn: self._erase(conn, hashes))
        # Deleted rows stay in free pages and in the write-ahead log until overwritten:
        # secure_delete zeroed them in the pages, and a checkpoint (outside the writer's
        # transaction) empties the log of the frames that still held them.
        if self.path != ":memory:":
            await asyncio.to_thread(self._truncate_log)
        return count

    def _truncate_log(self) -> None:
        with _map_sqlite_errors(), contextlib.closing(sqlite3.connect(self.path, timeout=30)) as conn:
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            raise OutboxError("erased, but the write-ahead log is still in use by another "
                              "process: stop the gateway and run erase again to clear it")

    def _erase(self, conn: sqlite3.Connection, hashes: Sequence[str]) -> int:
        conn.execute("PRAGMA secure_delete = ON")
        try:
            ids = [row[0] for h in hashes for row in conn.execute(Q["erase"], {"hash": h})]
            conn.execute(Q["erase_copies"], {"ids": orjson.dumps(ids).decode()})
        finally:
            conn.execute("PRAGMA secure_delete = OFF")
        return len(ids)

    async def record_change(self, change: OrderChange) -> None:
        await self._writer.run(lambda conn: conn.execute(Q["add_change"], change.__dict__))

    async def changes(self, order_id: str) -> list[OrderChange]:
        rows = await self._reader.run(
            lambda conn: conn.execute(Q["changes_of"], {"order_id": order_id}).fetchall())
        return [OrderChange(*row) for row in rows]

    async def copies(self, record_id: int) -> list[CopyRecord]:
        rows = await self._reader.run(
            lambda conn: conn.execute(Q["copies_of"], {"id": record_id}).fetchall())
        return [copy_record(row) for row in rows]

    async def claim(self, limit: int, lease: float) -> list[OutboxRecord]:
        if not self._owner:  # its leases are in the owner's memory: only the owner delivers
            raise OutboxError(f"only the process that owns {self.path} delivers from it")
        if time.time() - self._last_prune > PRUNE_EVERY:
            self._last_prune = time.time()
            await self._writer.run(self._prune)
        return await self._writer.run(lambda conn: self._claim(conn, limit, lease))

    def _claim(self, conn: sqlite3.Connection, limit: int, lease: float) -> list[OutboxRecord]:
        """Up to `limit` due events of one destination and test code, leased for `lease` s.

        Leases live in this process's memory, not in the rows: one process owns a SQLite
        file, and its leases die with it (as `release_leases` has them do at start), so a
        lease kept in the row would only cost a rewrite of every claimed row (payload and
        all) and its write-ahead log. Runs on the writer thread, which alone touches them.
        """
        now = time.time()
        leased = self._live_leases(now)
        group = next((row[1:] for row in conn.execute(Q["due"], {"now": now})
                      if row[0] not in leased), None)
        if group is None:
            return []
        ids = list(itertools.islice(
            (id_ for (id_,) in conn.execute(Q["claimable"], {
                "destination": group[0], "test_event_code": group[1], "now": now})
             if id_ not in leased), limit))
        until = now + lease
        for id_ in ids:
            leased[id_] = until
        self._next_expiry = min(self._next_expiry, until)
        rows = conn.execute(Q["claimed"], {"ids": orjson.dumps(ids).decode()}).fetchall()
        return [record(row) for row in rows]

    def _live_leases(self, now: float) -> dict[int, float]:
        """The leases, the run-out ones dropped (a worker that died mid-request)."""
        if self._leases and now >= self._next_expiry:
            self._leases = {id_: until for id_, until in self._leases.items() if until > now}
            self._next_expiry = min(self._leases.values(), default=math.inf)
        return self._leases

    def _prune(self, conn: sqlite3.Connection) -> None:
        now = time.time()
        conn.execute(Q["prune_sent"], {"before": now - self.retention})
        if self.dedup_window:
            conn.execute(Q["prune_dedup"], {"before": now - self.dedup_window})
        conn.execute(Q["prune_orders"], {"before": now - self.order_window})
        conn.execute(Q["prune_changes"], {"before": now - self.order_window})
        conn.execute(Q["prune_copies"], {"before": now - self.retention})
        conn.execute(Q["reschedule_far"], {"now": now, "latest": now + self.max_delay})
        conn.execute(Q["prune_telemetry"], {"minute": int((now - TELEMETRY_RETENTION) // 60)})
        conn.execute(Q["prune_requests"], {"before": now - self.retention})
        conn.execute(Q["prune_dropped"], {"before": now - self.retention})
        conn.execute(Q["prune_legs"], {"before": now - LEG_RETENTION})
        conn.execute(Q["prune_alerts"], {"before": now - TELEMETRY_RETENTION})

    async def mark_sent(self, ids: Sequence[int], outcome: Outcome) -> None:
        params = {"ids": orjson.dumps(list(ids)).decode(), "now": time.time(),
                  "result": outcome.as_json()}
        await self._writer.run(lambda conn: self._update(conn, "mark_sent", params, "delivered",
                                                              ids))

    async def mark_failed(self, ids: Sequence[int], outcome: Outcome,
                          retry_at: float | None) -> None:
        params = {"ids": orjson.dumps(list(ids)).decode(), "now": time.time(), "result": outcome.as_json(),
                  "retry_at": retry_at, "state": PENDING if retry_at is not None else DEAD}
        counter = "retried" if retry_at is not None else "dead"
        await self._writer.run(lambda conn: self._update(conn, "mark_failed", params, counter,
                                                              ids))

    def _update(self, conn: sqlite3.Connection, query: str, params: dict[str, Any],
                counter: str, ids: Sequence[int]) -> None:
        """Change records' state and count the change, in the same transaction; the records'
        leases end with it."""
        rows = conn.execute(Q[query], params).fetchall()
        for id_ in ids:
            self._leases.pop(id_, None)
        self._count(tally(rows, counter, params["now"]))

    async def replay(self, destination: str | None = None, since: float | None = None,
                     ids: Sequence[int] | None = None) -> int:
        params = {"now": time.time(), "destination": destination, "since": since}
        if ids is None:
            return await self._writer.run(lambda conn: conn.execute(Q["replay"], params).rowcount)
        rows = [{**params, "id": id_} for id_ in ids]
        return await self._writer.run(lambda conn: sum(
            conn.execute(Q["replay_one"], row).rowcount for row in rows))

    async def find(self, query: RecordQuery) -> list[OutboxRecord]:
        params = {**query.__dict__, "test_only": int(query.test_only),
                  "inspectable": int(query.inspectable)}
        rows = await self._reader.run(lambda conn: conn.execute(Q["find"], params).fetchall())
        return [record(row) for row in rows]

    async def get(self, id: int) -> OutboxRecord | None:
        row = await self._reader.run(lambda conn: conn.execute(Q["get"], {"id": id}).fetchone())
        return record(row) if row else None

    async def backlog(self) -> Backlog:
        stats = await self._reader.run(lambda conn: self._stats(conn, Q["backlog"]))
        return Backlog.of(stats)

    async def pending(self) -> int:
        return int(await self._reader.run(lambda conn: conn.execute(Q["pending"]).fetchone()[0]))

    async def webhook_orders(self, since: float, limit: int) -> list[str]:
        params = {"since": since, "limit": limit}
        rows = await self._reader.run(lambda c: c.execute(Q["webhook_orders"], params).fetchall())
        return [row[0] for row in rows]

    async def find_copies(self, query: RecordQuery) -> list[CopyRecord]:
        rows = await self._reader.run(
            lambda conn: conn.execute(Q["find_copies"], query.__dict__).fetchall())
        return [copy_record(row) for row in rows]

    async def pending_by_event(self) -> list[tuple[str, str, bool, int]]:
        rows = await self._reader.run(lambda conn: conn.execute(Q["pending_by_event"]).fetchall())
        return [(d, e, bool(t), n) for d, e, t, n in rows]

    async def stats(self) -> OutboxStats:
        return await self._reader.run(lambda conn: self._stats(conn, Q["counts"]))

    @staticmethod
    def _stats(conn: sqlite3.Connection, counts: str) -> OutboxStats:
        oldest = conn.execute(Q["oldest_pending"]).fetchone()
        return OutboxStats.from_counts(conn.execute(counts), oldest[0] if oldest else None)

    async def close(self) -> None:
        if self._reader is not self._writer:
            await asyncio.to_thread(self._reader.stop)
        await asyncio.to_thread(self._writer.stop)
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None


def _record_keys(conn: sqlite3.Connection, keys: list[Any], now: float, window: float,
                 id_name: str, query: str) -> set[tuple[str, str, str, str]]:
    """Record dedup keys in one statement; return those not seen within `window`."""
    if not keys or not window:
        return set(keys)
    params: dict[str, Any] = {"now": now, "window_start": now - window}
    if len(keys) == 1:  # most requests carry one event: no JSON round trip
        destination, event_name, key_id, test_event_code = keys[0]
        rows = conn.execute(Q[f"{query}_one"], {
            **params, "destination": destination, "event_name": event_name, id_name: key_id,
            "test_event_code": test_event_code}).fetchall()
    else:
        rows = conn.execute(Q[f"{query}_many"], {
            **params, "keys": orjson.dumps(keys).decode()}).fetchall()
    return {tuple(row) for row in rows}


def _check_schema(conn: sqlite3.Connection, path: str) -> None:
    """Refuse a file that a newer gateway changed in a way this one cannot read. Its
    `user_version` holds the schema version (low 16 bits) and the oldest schema version whose
    code can still use it (high 16 bits): additive changes keep older code working."""
    stored = int(conn.execute("PRAGMA user_version").fetchone()[0])
    version, oldest = stored & 0xFFFF, stored >> 16
    if oldest > SCHEMA_VERSION:
        raise SchemaError(
            f"{path} was upgraded by a newer tiktok-gateway (schema {version}, readable from "
            f"schema {oldest} on; this version has schema {SCHEMA_VERSION}): upgrade this "
            "installation, or restore a backup made by this version")


def _own(path: str) -> Any:
    """An exclusive lock on `<path>.lock` for as long as this store is open; OutboxError when
    another process holds it (a second `serve` on the same file)."""
    handle = open(f"{path}.lock", "a+")  # noqa: SIM115 - held open until close()
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise OutboxError(f"another gateway process already serves {path}: one process owns a "
                          "SQLite file (use PostgreSQL for several)") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")  # whom `tiktok-gateway reload` signals
    handle.flush()
    return handle


def owner_pid(path: str) -> int | None:
    """The process that owns the SQLite file (holds its lock), or None when none does."""
    try:
        handle = open(f"{path}.lock")  # noqa: SIM115 - closed below
    except OSError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = handle.read().strip()
            return int(text) if text.isdigit() else None
        fcntl.flock(handle, fcntl.LOCK_UN)  # nobody holds it
        return None


def _identity(path: str) -> tuple[int, int] | None:
    """The file's (device, inode), or None for `:memory:` and for a file that is gone."""
    if path == ":memory:":
        return None
    try:
        stat = os.stat(path)
    except OSError:
        return (-1, -1)
    return (stat.st_dev, stat.st_ino)


def file_of(url: str) -> str:
    """The file a `sqlite:///relative` or `sqlite:////absolute` URL names (`:memory:` when
    none)."""
    return url.removeprefix("sqlite://").removeprefix("/") or ":memory:"


def open_store(url: str, options: StoreOptions) -> Store:
    """`sqlite:///path`: one process owns the file, so a limiter in memory is shared enough."""
    path = file_of(url)
    backend = SQLiteOutbox(path, dedup_window=options.dedup_window,
                           order_window=options.order_window, retention=options.retention,
                           synchronous=options.synchronous, owner=options.owner,
                           max_delay=options.max_delay)
    return Store.of(backend, lambda token, qps: RateLimiter(qps))
