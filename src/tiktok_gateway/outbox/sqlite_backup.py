"""Backup and restore of a SQLite store, with SQLite's online backup API.

A file copy of a database in WAL mode can miss what sits in its `-wal` file, or catch a
page half written; the backup API copies a consistent snapshot while the gateway keeps
writing. A restore replaces the store's content the same way, and only while no gateway
owns the file (its lock): the next `serve` then takes back the leases of the snapshot and
delivers what was waiting.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from ..exceptions import ConfigError, OutboxError
from .sqlite import _own, connect, file_of


@dataclass(frozen=True)
class Snapshot:
    """What a backup file holds."""

    path: Path
    bytes: int
    pending: int
    dead: int
    kept: int


def store_path(url: str) -> Path:
    if not url.startswith("sqlite://"):
        raise ConfigError(
            "backup and restore are for SQLite stores; for PostgreSQL use its own tools: "
            "pg_dump -Fc -f gateway.dump DSN, and pg_restore --clean --if-exists -d DSN gateway.dump "
            "(see docs/deploy.md)")
    path = file_of(url)
    if path == ":memory:":
        raise ConfigError("an in-memory store has nothing to back up")
    return Path(path)


def describe(path: Path) -> Snapshot:
    """Check a backup file (SQLite's integrity check, and an outbox in it) and count it."""
    if not path.is_file():
        raise OutboxError(f"{path}: no such file")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            check = conn.execute("PRAGMA integrity_check").fetchone()
            if not check or check[0] != "ok":
                raise OutboxError(f"{path}: not a sound SQLite file ({check[0] if check else '?'})")
            rows = dict(conn.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state"))
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise OutboxError(f"{path}: not a gateway store ({exc})") from None
    return Snapshot(path, path.stat().st_size, rows.get("pending", 0), rows.get("dead", 0),
                    sum(rows.values()))


def backup(url: str, target: Path) -> Snapshot:
    """Write a consistent copy of the store to `target` (beside a running gateway)."""
    source = store_path(url)
    if not source.is_file():
        raise OutboxError(f"{source}: no store yet (nothing to back up)")
    if target.exists():
        raise OutboxError(f"{target} exists: give a new file name")
    try:
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
        dst = sqlite3.connect(str(target))
        try:
            src.backup(dst)  # one step: a snapshot, however busy the writer is
        finally:
            dst.close()
            src.close()
    except sqlite3.Error as exc:
        target.unlink(missing_ok=True)
        raise OutboxError(f"backup failed: {exc}") from None
    return describe(target)


def restore(url: str, source: Path) -> Snapshot:
    """Replace the store's content with a backup; refused while a gateway owns the file."""
    snapshot = describe(source)
    path = store_path(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = _own(str(path))  # OutboxError while `serve` runs on it
    try:
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        dst = connect(str(path))
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
    except sqlite3.Error as exc:
        raise OutboxError(f"restore failed: {exc}") from None
    finally:
        lock.close()
    return snapshot
