-- Named queries for SQLiteOutbox. Parameters are :named.

-- name: schema
CREATE TABLE IF NOT EXISTS outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    destination     TEXT    NOT NULL,
    event_name      TEXT    NOT NULL,
    event_id        TEXT    NOT NULL,
    event_time      INTEGER NOT NULL,
    test_event_code TEXT    NOT NULL DEFAULT '',
    order_id        TEXT    NOT NULL DEFAULT '',
    payload         TEXT    NOT NULL,
    inbound         TEXT,
    sampled         INTEGER NOT NULL DEFAULT 0,
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
CREATE INDEX IF NOT EXISTS outbox_order_id ON outbox (order_id) WHERE order_id != '';
CREATE INDEX IF NOT EXISTS outbox_created ON outbox (created_at);
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
-- One order's event per destination, kept far longer than TikTok's 48 hours: a late update
-- of the order must not become a second purchase.
CREATE TABLE IF NOT EXISTS orders (
    destination     TEXT NOT NULL,
    event_name      TEXT NOT NULL,
    order_id        TEXT NOT NULL,
    test_event_code TEXT NOT NULL,
    seen_at         REAL NOT NULL,
    PRIMARY KEY (destination, event_name, order_id, test_event_code)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS orders_seen ON orders (seen_at);
-- Later copies of an event: merged into it, or late.
-- Events received but not queued (filtered, rejected): ids and reasons only, for search.
CREATE TABLE IF NOT EXISTS dropped (
    id          INTEGER PRIMARY KEY,
    at          REAL    NOT NULL,
    destination TEXT    NOT NULL,
    event_name  TEXT    NOT NULL,
    event_id    TEXT    NOT NULL,
    order_id    TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    test        INTEGER NOT NULL,
    source      TEXT    NOT NULL,
    payload     TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS dropped_at ON dropped (at);
CREATE TABLE IF NOT EXISTS copies (
    id          INTEGER PRIMARY KEY,
    record_id   INTEGER,
    destination TEXT NOT NULL,
    event_name  TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    order_id    TEXT NOT NULL,
    source      TEXT NOT NULL,
    merged      INTEGER NOT NULL,
    added       TEXT NOT NULL,
    received_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS copies_record ON copies (record_id);
CREATE TABLE IF NOT EXISTS order_changes (
    order_id TEXT NOT NULL,
    change   TEXT NOT NULL,
    platform TEXT NOT NULL,
    at       REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS order_changes_order ON order_changes (order_id);
CREATE INDEX IF NOT EXISTS order_changes_at ON order_changes (at);
CREATE INDEX IF NOT EXISTS copies_received ON copies (received_at);
CREATE TABLE IF NOT EXISTS counters (
    minute      INTEGER NOT NULL,
    destination TEXT    NOT NULL,
    event_name  TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    value       INTEGER NOT NULL,
    PRIMARY KEY (minute, destination, event_name, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS requests (
    id          INTEGER PRIMARY KEY,
    at          REAL    NOT NULL,
    destination TEXT    NOT NULL,
    events      INTEGER NOT NULL,
    test        INTEGER NOT NULL,
    outcome     TEXT    NOT NULL,
    code        INTEGER,
    message     TEXT,
    request_id  TEXT,
    http_status INTEGER,
    latency     REAL
);
CREATE INDEX IF NOT EXISTS requests_at ON requests (at);
-- Both legs of events, for pairing (pairing.py): one row per destination, side and event_id.
CREATE TABLE IF NOT EXISTS legs (
    destination TEXT    NOT NULL,
    side        TEXT    NOT NULL,
    event_id    TEXT    NOT NULL,
    event_name  TEXT    NOT NULL,
    order_id    TEXT    NOT NULL,
    at          REAL    NOT NULL,
    state       TEXT    NOT NULL,
    browser     TEXT    NOT NULL,
    os          TEXT    NOT NULL,
    load        TEXT    NOT NULL,
    test        INTEGER NOT NULL,
    PRIMARY KEY (destination, side, event_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS legs_at ON legs (side, at);
CREATE INDEX IF NOT EXISTS legs_order ON legs (destination, side, order_id) WHERE order_id != '';
-- Alert incidents (alerts.py): at most one firing per rule and destination.
CREATE TABLE IF NOT EXISTS alerts (
    id          INTEGER PRIMARY KEY,
    rule        TEXT NOT NULL,
    destination TEXT NOT NULL,
    state       TEXT NOT NULL,
    since       REAL NOT NULL,
    resolved_at REAL,
    message     TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS alerts_firing ON alerts (rule, destination)
    WHERE state = 'firing';

-- name: remember_many
-- Stores each key of a request, or refreshes it when its last sighting is outside the window;
-- returns the keys that are new (a duplicate's upsert does nothing and returns no row).
INSERT INTO dedup (destination, event_name, event_id, test_event_code, seen_at)
SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, :now FROM json_each(:keys) WHERE true
ON CONFLICT (destination, event_name, event_id, test_event_code)
DO UPDATE SET seen_at = excluded.seen_at WHERE dedup.seen_at <= :window_start
RETURNING destination, event_name, event_id, test_event_code;

-- name: remember_order_many
-- The same for order keys, with their own (long) window.
INSERT INTO orders (destination, event_name, order_id, test_event_code, seen_at)
SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, :now FROM json_each(:keys) WHERE true
ON CONFLICT (destination, event_name, order_id, test_event_code)
DO UPDATE SET seen_at = excluded.seen_at WHERE orders.seen_at <= :window_start
RETURNING destination, event_name, order_id, test_event_code;

-- name: remember_order_one
INSERT INTO orders (destination, event_name, order_id, test_event_code, seen_at)
VALUES (:destination, :event_name, :order_id, :test_event_code, :now)
ON CONFLICT (destination, event_name, order_id, test_event_code)
DO UPDATE SET seen_at = excluded.seen_at WHERE orders.seen_at <= :window_start
RETURNING destination, event_name, order_id, test_event_code;

-- name: remember_one
-- The same for a request of one event, without the JSON round trip.
INSERT INTO dedup (destination, event_name, event_id, test_event_code, seen_at)
VALUES (:destination, :event_name, :event_id, :test_event_code, :now)
ON CONFLICT (destination, event_name, event_id, test_event_code)
DO UPDATE SET seen_at = excluded.seen_at WHERE dedup.seen_at <= :window_start
RETURNING destination, event_name, event_id, test_event_code;

-- name: insert
-- Positional: binding a tuple is a third cheaper than looking each name up in a dict.
INSERT INTO outbox (destination, event_name, event_id, event_time, test_event_code, order_id,
                    payload, inbound, sampled, created_at, available_at, source)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: outbox_columns
SELECT name FROM pragma_table_info('outbox');

-- name: add_source_column
-- Stores made before sources were kept: their events count as the server's.
ALTER TABLE outbox ADD COLUMN source TEXT NOT NULL DEFAULT '';

-- name: copy_target
-- The first copy of an event: by its event id, or by its order for an order's event.
SELECT id, payload, source, state = 'pending'
FROM outbox
WHERE destination = :destination AND event_name = :event_name
  AND test_event_code = :test_event_code
  AND (event_id = :event_id OR (:order_id != '' AND order_id = :order_id))
ORDER BY id LIMIT 1;

-- name: set_payload
UPDATE outbox SET payload = :payload WHERE id = :id;

-- name: add_copy
INSERT INTO copies (record_id, destination, event_name, event_id, order_id, source, merged,
                    added, received_at)
VALUES (:record_id, :destination, :event_name, :event_id, :order_id, :source, :merged,
        :added, :received_at);

-- name: copies_of
SELECT record_id, destination, event_name, event_id, order_id, source, merged, added, received_at
FROM copies WHERE record_id = :id ORDER BY id;

-- name: release_leases
-- Leases are kept in the owning process's memory (SQLiteOutbox._leases); a file written by an
-- older version may still hold some in this column, all of them a dead process's.
UPDATE outbox SET leased_until = NULL WHERE state = 'pending' AND leased_until IS NOT NULL;

-- name: due
-- Pending events whose time has come, the longest-waiting first (the leased ones are skipped
-- in Python: the first row not leased names the group to claim from).
SELECT id, destination, test_event_code FROM outbox
WHERE state = 'pending' AND available_at <= :now
ORDER BY available_at;

-- name: claimable
SELECT id FROM outbox
WHERE state = 'pending' AND destination = :destination AND test_event_code = :test_event_code
  AND available_at <= :now
ORDER BY id;

-- name: claimed
SELECT id, destination, event_name, event_id, event_time, payload, test_event_code, state,
       attempts, created_at, available_at, last_result, order_id, inbound, sampled, finished_at
FROM outbox WHERE id IN (SELECT value FROM json_each(:ids)) ORDER BY id;

-- name: mark_sent
-- Unsampled live events keep only their outcome; the inspector keeps the sampled ones whole.
UPDATE outbox SET state = 'sent', finished_at = :now, last_result = :result,
    inbound = CASE WHEN sampled = 1 OR test_event_code != '' THEN inbound END,
    payload = CASE WHEN sampled = 1 OR test_event_code != '' THEN payload ELSE '' END
WHERE id IN (SELECT value FROM json_each(:ids))
RETURNING destination, event_name, test_event_code;

-- name: mark_failed
UPDATE outbox
SET state = :state, attempts = attempts + 1, available_at = COALESCE(:retry_at, available_at),
    finished_at = CASE WHEN :state = 'dead' THEN :now END, last_result = :result
WHERE id IN (SELECT value FROM json_each(:ids))
RETURNING destination, event_name, test_event_code;

-- name: replay
UPDATE outbox SET state = 'pending', attempts = 0, available_at = :now, finished_at = NULL
WHERE state = 'dead'
  AND (:destination IS NULL OR destination = :destination)
  AND (:since IS NULL OR finished_at >= :since);

-- name: replay_one
UPDATE outbox SET state = 'pending', attempts = 0, available_at = :now, finished_at = NULL
WHERE state = 'dead' AND id = :id;

-- name: find
SELECT id, destination, event_name, event_id, event_time, payload, test_event_code, state,
       attempts, created_at, available_at, last_result, order_id, inbound, sampled, finished_at
FROM outbox
WHERE (:event_id IS NULL OR event_id = :event_id)
  AND (:order_id IS NULL OR order_id = :order_id)
  AND (:event_name IS NULL OR event_name = :event_name)
  AND (:state IS NULL OR state = :state)
  AND (:destination IS NULL OR destination = :destination)
  AND (:since IS NULL OR created_at >= :since)
  AND (:test_only = 0 OR test_event_code != '')
  AND (:inspectable = 0 OR inbound IS NOT NULL OR state = 'dead')
  AND (:prefix IS NULL OR substr(lower(event_id), 1, length(:prefix)) = lower(:prefix)
       OR substr(lower(order_id), 1, length(:prefix)) = lower(:prefix))
ORDER BY id DESC LIMIT :limit;

-- name: find_copies
SELECT record_id, destination, event_name, event_id, order_id, source, merged, added, received_at
FROM copies
WHERE (:event_id IS NULL OR event_id = :event_id)
  AND (:order_id IS NULL OR order_id = :order_id)
  AND (:destination IS NULL OR destination = :destination)
  AND (:prefix IS NULL OR substr(lower(event_id), 1, length(:prefix)) = lower(:prefix)
       OR substr(lower(order_id), 1, length(:prefix)) = lower(:prefix))
  AND (:since IS NULL OR received_at >= :since)
ORDER BY id DESC LIMIT :limit;

-- name: find_dropped
SELECT at, destination, event_name, event_id, order_id, state, reason, test, source, payload
FROM dropped
WHERE (:event_id IS NULL OR event_id = :event_id)
  AND (:order_id IS NULL OR order_id = :order_id)
  AND (:destination IS NULL OR destination = :destination)
  AND (:prefix IS NULL OR substr(lower(event_id), 1, length(:prefix)) = lower(:prefix)
       OR substr(lower(order_id), 1, length(:prefix)) = lower(:prefix))
  AND (:state IS NULL OR state = :state)
  AND (:since IS NULL OR at >= :since)
  AND (:test_only = 0 OR test = 1)
ORDER BY id DESC LIMIT :limit;

-- name: webhook_orders
-- The orders the shop's webhooks reported since a time, queued or not, the newest first.
SELECT order_id FROM (
    SELECT order_id, created_at AS at FROM outbox
    WHERE source = 'webhook' AND order_id != '' AND created_at >= :since
    UNION ALL
    SELECT order_id, at FROM dropped
    WHERE source = 'webhook' AND order_id != '' AND at >= :since
) GROUP BY order_id ORDER BY MAX(at) DESC LIMIT :limit;

-- name: add_dropped
INSERT INTO dropped (at, destination, event_name, event_id, order_id, state, reason, test, source,
                     payload)
VALUES (:at, :destination, :event_name, :event_id, :order_id, :state, :reason, :test, :source,
        :payload);

-- name: prune_dropped
DELETE FROM dropped WHERE at < :before;

-- name: get
SELECT id, destination, event_name, event_id, event_time, payload, test_event_code, state,
       attempts, created_at, available_at, last_result, order_id, inbound, sampled, finished_at
FROM outbox WHERE id = :id;

-- name: add_counter
INSERT INTO counters (minute, destination, event_name, name, value)
VALUES (:minute, :destination, :event_name, :name, :value)
ON CONFLICT (minute, destination, event_name, name) DO UPDATE SET value = value + excluded.value;

-- name: add_request
INSERT INTO requests (at, destination, events, test, outcome, code, message, request_id,
                      http_status, latency)
VALUES (:at, :destination, :events, :test, :outcome, :code, :message, :request_id,
        :http_status, :latency);

-- name: counters_since
SELECT minute, destination, event_name, name, value FROM counters WHERE minute >= :minute;

-- name: requests_since
SELECT at, destination, events, test, outcome, code, message, request_id, http_status, latency
FROM requests WHERE at >= :since ORDER BY at DESC LIMIT :limit;

-- name: prune_telemetry
DELETE FROM counters WHERE minute < :minute;

-- name: prune_requests
DELETE FROM requests WHERE at < :before;

-- name: backlog
-- Waiting and dead events per destination, read from the partial indexes alone, however
-- many delivered events are kept.
-- The redundant `state != 'pending'` lets SQLite see that outbox_finished covers the dead.
SELECT destination, 'pending', COUNT(*) FROM outbox WHERE state = 'pending' GROUP BY destination
UNION ALL
SELECT destination, 'dead', COUNT(*) FROM outbox WHERE state = 'dead' AND state != 'pending' GROUP BY destination;

-- name: pending
SELECT COUNT(*) FROM outbox WHERE state = 'pending';

-- name: pending_by_event
SELECT destination, event_name, test_event_code != '', COUNT(*) FROM outbox
WHERE state = 'pending' GROUP BY destination, event_name, test_event_code != '';

-- name: oldest_pending
-- Ids grow with created_at (one writer), so the oldest pending event is the first of some group.
SELECT created_at FROM outbox WHERE id = (
    SELECT MIN(first) FROM (SELECT MIN(id) AS first FROM outbox WHERE state = 'pending'
                            GROUP BY destination, test_event_code));

-- name: counts
SELECT destination, state, COUNT(*) FROM outbox GROUP BY destination, state;

-- name: prune_sent
-- Delivered and dead-lettered events alike expire with the retention: dead letters hold hashes.
DELETE FROM outbox WHERE state != 'pending' AND finished_at < :before;

-- name: erase
-- Every record of one customer: a hash in the event sent or in the inspector's copy.
DELETE FROM outbox WHERE instr(payload, :hash) > 0 OR instr(COALESCE(inbound, ''), :hash) > 0
RETURNING id;

-- name: erase_copies
DELETE FROM copies WHERE record_id IN (SELECT value FROM json_each(:ids));

-- name: prune_orders
DELETE FROM orders WHERE seen_at < :before;

-- name: add_change
INSERT INTO order_changes (order_id, change, platform, at)
VALUES (:order_id, :change, :platform, :at);

-- name: changes_of
SELECT order_id, change, platform, at FROM order_changes WHERE order_id = :order_id ORDER BY at;

-- name: prune_changes
DELETE FROM order_changes WHERE at < :before;

-- name: reschedule_far
-- Events due beyond the longest wait the gateway sets were scheduled before the clock was
-- set back: they are due now.
UPDATE outbox SET available_at = :now WHERE state = 'pending' AND available_at > :latest;

-- name: prune_copies
DELETE FROM copies WHERE received_at < :before;

-- name: prune_dedup
DELETE FROM dedup WHERE seen_at < :before;

-- name: add_leg
-- The first report of a leg stands (a reloaded page reports its pixel leg again).
INSERT INTO legs (destination, side, event_id, event_name, order_id, at, state, browser, os,
                  load, test)
VALUES (:destination, :side, :event_id, :event_name, :order_id, :at, :state, :browser, :os,
        :load, :test)
ON CONFLICT DO NOTHING;

-- name: pair_server
-- Server legs in the window, each with its pixel leg by event_id (if any) or a flag for a
-- pixel leg of the same order, grouped alike: few rows however many events.
SELECT s.destination, s.event_name, COALESCE(p.event_name, ''), COALESCE(p.state, ''),
       COALESCE(abs(p.at - s.at) <= :dedup_window, 0),
       p.event_id IS NULL AND s.order_id != '' AND EXISTS (
           SELECT 1 FROM legs o WHERE o.destination = s.destination AND o.side = 'pixel'
                                  AND o.order_id = s.order_id),
       COALESCE(NULLIF(p.browser, ''), s.browser), COALESCE(NULLIF(p.os, ''), s.os),
       COALESCE(p.load, ''), COUNT(*)
FROM legs s
LEFT JOIN legs p ON p.destination = s.destination AND p.side = 'pixel' AND p.event_id = s.event_id
WHERE s.side = 'server' AND s.at >= :start AND s.at < :end
  AND (:mode = 'all' OR s.test = (:mode = 'test'))
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9;

-- name: pair_pixel_only
-- Pixel legs in the window with no server leg of their event_id nor of their order.
SELECT p.destination, p.event_name, p.state, p.browser, p.os, p.load, COUNT(*)
FROM legs p
WHERE p.side = 'pixel' AND p.at >= :start AND p.at < :end AND :mode != 'test'
  AND NOT EXISTS (SELECT 1 FROM legs s WHERE s.destination = p.destination
                  AND s.side = 'server' AND s.event_id = p.event_id)
  AND NOT (p.order_id != '' AND EXISTS (SELECT 1 FROM legs s WHERE s.destination = p.destination
                                        AND s.side = 'server' AND s.order_id = p.order_id))
GROUP BY 1, 2, 3, 4, 5, 6;

-- name: pixel_reporting
-- Read from the (side, at) index: the newest pixel leg of the destination, if recent.
SELECT 1 FROM legs WHERE side = 'pixel' AND at >= :since AND destination = :destination LIMIT 1;

-- name: legs_of
SELECT destination, side, event_name, event_id, order_id, at, state, browser, os, load, test
FROM legs
WHERE (event_id = :event_id OR (:order_id != '' AND order_id = :order_id))
  AND (:destination IS NULL OR destination = :destination)
ORDER BY at LIMIT 20;

-- name: prune_legs
DELETE FROM legs WHERE at < :before;

-- name: open_alert
-- Returns a row only for the process that opened the incident: it alone notifies.
INSERT INTO alerts (rule, destination, state, since, message)
VALUES (:rule, :destination, 'firing', :at, :message)
ON CONFLICT DO NOTHING
RETURNING id;

-- name: close_alert
UPDATE alerts SET state = 'resolved', resolved_at = :at
WHERE rule = :rule AND destination = :destination AND state = 'firing'
RETURNING since, message;

-- name: alerts_since
SELECT rule, destination, state, since, resolved_at, message FROM alerts
WHERE state = 'firing' OR resolved_at >= :since
ORDER BY since DESC LIMIT :limit;

-- name: prune_alerts
DELETE FROM alerts WHERE state = 'resolved' AND resolved_at < :before;
