-- Named queries for SQLiteOutbox. Parameters are :named.

-- name: schema
CREATE TABLE IF NOT EXISTS outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    destination     TEXT    NOT NULL,
    event_name      TEXT    NOT NULL,
    event_id        TEXT    NOT NULL,
    event_time      INTEGER NOT NULL,
    test_event_code TEXT    NOT NULL DEFAULT '',
    payload         TEXT    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      REAL    NOT NULL,
    available_at    REAL    NOT NULL,
    leased_until    REAL,
    finished_at     REAL,
    last_result     TEXT
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (available_at) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS outbox_group ON outbox (destination, test_event_code, id)
    WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS outbox_event_id ON outbox (event_id);
CREATE INDEX IF NOT EXISTS outbox_finished ON outbox (state, finished_at) WHERE state != 'pending';
CREATE TABLE IF NOT EXISTS dedup (
    destination     TEXT NOT NULL,
    event_name      TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    test_event_code TEXT NOT NULL,
    seen_at         REAL NOT NULL,
    PRIMARY KEY (destination, event_name, event_id, test_event_code)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedup_seen ON dedup (seen_at);

-- name: remember
-- Stores the key, or refreshes it when the last sighting is outside the window.
-- changes() is 1 for a new event and 0 for a duplicate.
INSERT INTO dedup (destination, event_name, event_id, test_event_code, seen_at)
VALUES (:destination, :event_name, :event_id, :test_event_code, :now)
ON CONFLICT (destination, event_name, event_id, test_event_code)
DO UPDATE SET seen_at = excluded.seen_at WHERE dedup.seen_at <= :window_start;

-- name: insert
INSERT INTO outbox (destination, event_name, event_id, event_time, test_event_code, payload,
                    created_at, available_at)
VALUES (:destination, :event_name, :event_id, :event_time, :test_event_code, :payload, :now, :now);

-- name: next_group
SELECT destination, test_event_code FROM outbox
WHERE state = 'pending' AND available_at <= :now AND (leased_until IS NULL OR leased_until <= :now)
ORDER BY available_at LIMIT 1;

-- name: release_leases
-- One process owns a SQLite file, so at start every lease is a dead process's.
UPDATE outbox SET leased_until = NULL WHERE state = 'pending' AND leased_until IS NOT NULL;

-- name: claim
UPDATE outbox SET leased_until = :lease_until
WHERE id IN (
    SELECT id FROM outbox
    WHERE state = 'pending' AND destination = :destination
      AND test_event_code = :test_event_code AND available_at <= :now
      AND (leased_until IS NULL OR leased_until <= :now)
    ORDER BY id LIMIT :limit
)
RETURNING id, destination, event_name, event_id, event_time, payload, test_event_code, state,
          attempts, created_at, available_at, last_result;

-- name: mark_sent
UPDATE outbox SET state = 'sent', finished_at = :now, leased_until = NULL, last_result = :result
WHERE id = :id;

-- name: mark_failed
UPDATE outbox
SET state = :state, attempts = attempts + 1, available_at = COALESCE(:retry_at, available_at),
    leased_until = NULL,
    finished_at = CASE WHEN :state = 'dead' THEN :now END, last_result = :result
WHERE id = :id;

-- name: replay
UPDATE outbox SET state = 'pending', attempts = 0, available_at = :now, finished_at = NULL,
    leased_until = NULL
WHERE state = 'dead'
  AND (:destination IS NULL OR destination = :destination)
  AND (:since IS NULL OR finished_at >= :since);

-- name: find
SELECT id, destination, event_name, event_id, event_time, payload, test_event_code, state,
       attempts, created_at, available_at, last_result
FROM outbox
WHERE (:event_id IS NULL OR event_id = :event_id)
  AND (:state IS NULL OR state = :state)
  AND (:destination IS NULL OR destination = :destination)
ORDER BY id DESC LIMIT :limit;

-- name: counts
SELECT destination, state, COUNT(*) FROM outbox GROUP BY destination, state;

-- name: oldest_pending
SELECT MIN(created_at) FROM outbox WHERE state = 'pending';

-- name: prune_sent
DELETE FROM outbox WHERE state = 'sent' AND finished_at < :before;

-- name: prune_dedup
DELETE FROM dedup WHERE seen_at < :before;
