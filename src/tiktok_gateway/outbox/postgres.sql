-- Named queries for PostgresOutbox (psycopg: %(name)s parameters).
-- Migrations are numbered; each runs once, in order, recorded in schema_version.

-- name: migration_1
CREATE TABLE IF NOT EXISTS outbox (
    id              BIGSERIAL PRIMARY KEY,
    destination     TEXT             NOT NULL,
    event_name      TEXT             NOT NULL,
    event_id        TEXT             NOT NULL,
    event_time      BIGINT           NOT NULL,
    test_event_code TEXT             NOT NULL DEFAULT '',
    order_id        TEXT             NOT NULL DEFAULT '',
    payload         TEXT             NOT NULL,
    inbound         TEXT,
    sampled         BOOLEAN          NOT NULL DEFAULT FALSE,
    state           TEXT             NOT NULL DEFAULT 'pending',
    attempts        INTEGER          NOT NULL DEFAULT 0,
    created_at      DOUBLE PRECISION NOT NULL,
    available_at    DOUBLE PRECISION NOT NULL,
    leased_until    DOUBLE PRECISION,
    finished_at     DOUBLE PRECISION,
    last_result     TEXT
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (available_at) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS outbox_group ON outbox (destination, test_event_code, id)
    WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS outbox_event_id ON outbox (event_id);
CREATE INDEX IF NOT EXISTS outbox_order_id ON outbox (order_id) WHERE order_id <> '';
CREATE INDEX IF NOT EXISTS outbox_created ON outbox (created_at);
CREATE INDEX IF NOT EXISTS outbox_finished ON outbox (state, finished_at) WHERE state <> 'pending';
CREATE TABLE IF NOT EXISTS dedup (
    destination     TEXT             NOT NULL,
    event_name      TEXT             NOT NULL,
    event_id        TEXT             NOT NULL,
    test_event_code TEXT             NOT NULL,
    seen_at         DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (destination, event_name, event_id, test_event_code)
);
CREATE INDEX IF NOT EXISTS dedup_seen ON dedup (seen_at);
CREATE TABLE IF NOT EXISTS counters (
    minute      BIGINT NOT NULL,
    destination TEXT   NOT NULL,
    event_name  TEXT   NOT NULL,
    name        TEXT   NOT NULL,
    value       BIGINT NOT NULL,
    PRIMARY KEY (minute, destination, event_name, name)
);
CREATE TABLE IF NOT EXISTS requests (
    id          BIGSERIAL PRIMARY KEY,
    at          DOUBLE PRECISION NOT NULL,
    destination TEXT             NOT NULL,
    events      INTEGER          NOT NULL,
    test        BOOLEAN          NOT NULL,
    outcome     TEXT             NOT NULL,
    code        INTEGER,
    message     TEXT,
    request_id  TEXT,
    http_status INTEGER,
    latency     DOUBLE PRECISION
);
CREATE INDEX IF NOT EXISTS requests_at ON requests (at);
-- One row per access token (its SHA-256, never the token): a token bucket shared by processes.
CREATE TABLE IF NOT EXISTS rate_limits (
    key          TEXT PRIMARY KEY,
    tokens       DOUBLE PRECISION NOT NULL,
    updated_at   DOUBLE PRECISION NOT NULL,
    paused_until DOUBLE PRECISION NOT NULL DEFAULT 0
);

-- name: migration_2
-- Counter rows per database connection (shard: the connection's server process). Ingest
-- transactions of every process add to the same counters each minute; on one row per key they
-- queued behind each other's row lock until commit, one request at a time.
ALTER TABLE counters ADD COLUMN IF NOT EXISTS shard INTEGER NOT NULL DEFAULT 0;
ALTER TABLE counters DROP CONSTRAINT IF EXISTS counters_pkey;
ALTER TABLE counters ADD PRIMARY KEY (minute, destination, event_name, name, shard);

-- name: migration_3
-- Order keys kept for months (one purchase per order, however late the update), later copies
-- of events (merged or late), and who sent each event.
CREATE TABLE IF NOT EXISTS orders (
    destination     TEXT             NOT NULL,
    event_name      TEXT             NOT NULL,
    order_id        TEXT             NOT NULL,
    test_event_code TEXT             NOT NULL,
    seen_at         DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (destination, event_name, order_id, test_event_code)
);
CREATE INDEX IF NOT EXISTS orders_seen ON orders (seen_at);
CREATE TABLE IF NOT EXISTS copies (
    id          BIGSERIAL PRIMARY KEY,
    record_id   BIGINT,
    destination TEXT             NOT NULL,
    event_name  TEXT             NOT NULL,
    event_id    TEXT             NOT NULL,
    order_id    TEXT             NOT NULL,
    source      TEXT             NOT NULL,
    merged      BOOLEAN          NOT NULL,
    added       TEXT             NOT NULL,
    received_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS copies_record ON copies (record_id);
CREATE INDEX IF NOT EXISTS copies_received ON copies (received_at);
CREATE TABLE IF NOT EXISTS order_changes (
    order_id TEXT             NOT NULL,
    change   TEXT             NOT NULL,
    platform TEXT             NOT NULL,
    at       DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS order_changes_order ON order_changes (order_id);
CREATE INDEX IF NOT EXISTS order_changes_at ON order_changes (at);
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS source TEXT NOT NULL DEFAULT '';

-- name: migration_4
-- Events received but not queued (filtered, rejected): ids and reasons only, for search.
CREATE TABLE IF NOT EXISTS dropped (
    id          BIGSERIAL        PRIMARY KEY,
    at          DOUBLE PRECISION NOT NULL,
    destination TEXT             NOT NULL,
    event_name  TEXT             NOT NULL,
    event_id    TEXT             NOT NULL,
    order_id    TEXT             NOT NULL,
    state       TEXT             NOT NULL,
    reason      TEXT             NOT NULL,
    test        BOOLEAN          NOT NULL,
    source      TEXT             NOT NULL,
    payload     TEXT             NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS dropped_at ON dropped (at);

-- name: migration_5
-- Both legs of events, for pairing (pairing.py); alert incidents (alerts.py).
CREATE TABLE IF NOT EXISTS legs (
    destination TEXT             NOT NULL,
    side        TEXT             NOT NULL,
    event_id    TEXT             NOT NULL,
    event_name  TEXT             NOT NULL,
    order_id    TEXT             NOT NULL,
    at          DOUBLE PRECISION NOT NULL,
    state       TEXT             NOT NULL,
    browser     TEXT             NOT NULL,
    os          TEXT             NOT NULL,
    load        TEXT             NOT NULL,
    test        BOOLEAN          NOT NULL,
    PRIMARY KEY (destination, side, event_id)
);
CREATE INDEX IF NOT EXISTS legs_at ON legs (side, at);
CREATE INDEX IF NOT EXISTS legs_order ON legs (destination, side, order_id) WHERE order_id <> '';
CREATE TABLE IF NOT EXISTS alerts (
    id          BIGSERIAL        PRIMARY KEY,
    rule        TEXT             NOT NULL,
    destination TEXT             NOT NULL,
    state       TEXT             NOT NULL,
    since       DOUBLE PRECISION NOT NULL,
    resolved_at DOUBLE PRECISION,
    message     TEXT             NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS alerts_firing ON alerts (rule, destination)
    WHERE state = 'firing';

-- name: migration_6
-- The oldest schema version whose code can still use this database (see COMPATIBLE_FROM).
CREATE TABLE IF NOT EXISTS schema_compat (oldest INTEGER NOT NULL);
INSERT INTO schema_compat (oldest) SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM schema_compat);

-- name: has_compat
SELECT to_regclass('schema_compat') IS NOT NULL;

-- name: compat_oldest
SELECT COALESCE(MAX(oldest), 0) FROM schema_compat;

-- name: raise_compat
UPDATE schema_compat SET oldest = GREATEST(oldest, %(oldest)s);

-- name: version_table
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);

-- name: current_version
SELECT COALESCE(MAX(version), 0) FROM schema_version;

-- name: record_version
INSERT INTO schema_version (version) VALUES (%(version)s);

-- name: put
-- A whole ingest request in one statement, so one round trip and its own transaction. The
-- events (first occurrence of each key only) and counters come as JSON: one text parameter
-- each, cheap to send whatever their number. `fresh` holds the keys not seen within the
-- dedup window; only their events are stored. Returns the positions of the stored events.
WITH incoming AS (
    SELECT * FROM jsonb_to_recordset(%(events)s::jsonb) AS r(
        position INTEGER, destination TEXT, event_name TEXT, event_id TEXT, event_time BIGINT,
        test_event_code TEXT, order_id TEXT, payload TEXT, inbound TEXT, sampled BOOLEAN,
        source TEXT, delay DOUBLE PRECISION)
), fresh AS (
    INSERT INTO dedup (destination, event_name, event_id, test_event_code, seen_at)
    SELECT destination, event_name, event_id, test_event_code, %(now)s FROM incoming
    WHERE order_id = ''
    ON CONFLICT (destination, event_name, event_id, test_event_code)
    DO UPDATE SET seen_at = EXCLUDED.seen_at WHERE dedup.seen_at <= %(window_start)s
    RETURNING destination, event_name, event_id, test_event_code
), fresh_orders AS (
    INSERT INTO orders (destination, event_name, order_id, test_event_code, seen_at)
    SELECT DISTINCT destination, event_name, order_id, test_event_code, %(now)s::float8
    FROM incoming WHERE order_id <> ''
    ON CONFLICT (destination, event_name, order_id, test_event_code)
    DO UPDATE SET seen_at = EXCLUDED.seen_at WHERE orders.seen_at <= %(order_window_start)s
    RETURNING destination, event_name, order_id, test_event_code
), kept AS (
    -- One key an event: its order's for an order's event (kept for months), else its id's.
    SELECT i.* FROM incoming i JOIN fresh f USING (destination, event_name, event_id, test_event_code)
    UNION ALL
    SELECT i.* FROM incoming i
    JOIN fresh_orders o USING (destination, event_name, order_id, test_event_code)
), stored AS (
    INSERT INTO outbox (destination, event_name, event_id, event_time, test_event_code,
                        order_id, payload, inbound, sampled, created_at, available_at, source)
    SELECT k.destination, k.event_name, k.event_id, k.event_time, k.test_event_code,
           k.order_id, k.payload, k.inbound, k.sampled, %(now)s, %(now)s + k.delay, k.source
    FROM kept k ORDER BY k.position
), counted AS (
    INSERT INTO counters (minute, destination, event_name, name, shard, value)
    SELECT minute, destination, event_name, name, pg_backend_pid(), value
    FROM jsonb_to_recordset(%(counters)s::jsonb) AS c(
        minute BIGINT, destination TEXT, event_name TEXT, name TEXT, value BIGINT)
    ON CONFLICT (minute, destination, event_name, name, shard)
    DO UPDATE SET value = counters.value + EXCLUDED.value
)
SELECT position FROM kept;

-- name: copy_target
-- The first copy of an event, locked unless a worker holds it (then it is in flight: late).
SELECT id, payload, source, state = 'pending'
                            AND (leased_until IS NULL OR leased_until <= %(now)s)
FROM outbox
WHERE destination = %(destination)s AND event_name = %(event_name)s
  AND test_event_code = %(test_event_code)s
  AND (event_id = %(event_id)s OR (%(order_id)s <> '' AND order_id = %(order_id)s))
ORDER BY id LIMIT 1
FOR UPDATE SKIP LOCKED;

-- name: set_payload
UPDATE outbox SET payload = %(payload)s WHERE id = %(id)s;

-- name: add_copy
INSERT INTO copies (record_id, destination, event_name, event_id, order_id, source, merged,
                    added, received_at)
VALUES (%(record_id)s, %(destination)s, %(event_name)s, %(event_id)s, %(order_id)s,
        %(source)s, %(merged)s::int::boolean, %(added)s, %(received_at)s);

-- name: copies_of
SELECT record_id, destination, event_name, event_id, order_id, source, merged, added, received_at
FROM copies WHERE record_id = %(id)s ORDER BY id;

-- name: prune_orders
DELETE FROM orders WHERE seen_at < %(before)s;

-- name: add_change
INSERT INTO order_changes (order_id, change, platform, at)
VALUES (%(order_id)s, %(change)s, %(platform)s, %(at)s);

-- name: changes_of
SELECT order_id, change, platform, at FROM order_changes WHERE order_id = %(order_id)s
ORDER BY at;

-- name: prune_changes
DELETE FROM order_changes WHERE at < %(before)s;

-- name: reschedule_far
-- Events due beyond the longest wait the gateway sets were scheduled before the clock was
-- set back: they are due now.
UPDATE outbox SET available_at = %(now)s WHERE state = 'pending' AND available_at > %(latest)s;

-- name: prune_copies
DELETE FROM copies WHERE received_at < %(before)s;

-- name: claim
-- Pick the group of the oldest due event no other process holds, then lease its due events.
-- SKIP LOCKED lets every process claim at once without waiting on, or taking, another's rows.
WITH grp AS (
    SELECT destination, test_event_code FROM outbox
    WHERE state = 'pending' AND available_at <= %(now)s
      AND (leased_until IS NULL OR leased_until <= %(now)s)
    ORDER BY available_at LIMIT 1
    FOR UPDATE SKIP LOCKED
), picked AS (
    SELECT o.id FROM outbox o, grp
    WHERE o.state = 'pending' AND o.destination = grp.destination
      AND o.test_event_code = grp.test_event_code AND o.available_at <= %(now)s
      AND (o.leased_until IS NULL OR o.leased_until <= %(now)s)
    ORDER BY o.id LIMIT %(limit)s
    FOR UPDATE OF o SKIP LOCKED
)
UPDATE outbox SET leased_until = %(lease_until)s FROM picked WHERE outbox.id = picked.id
RETURNING outbox.id, destination, event_name, event_id, event_time, payload, test_event_code,
          state, attempts, created_at, available_at, last_result, order_id, inbound, sampled,
          finished_at;

-- name: mark_sent
UPDATE outbox SET state = 'sent', finished_at = %(now)s, leased_until = NULL,
    last_result = %(result)s,
    inbound = CASE WHEN sampled OR test_event_code <> '' THEN inbound END,
    payload = CASE WHEN sampled OR test_event_code <> '' THEN payload ELSE '' END
WHERE id = ANY(%(ids)s)
RETURNING destination, event_name, test_event_code;

-- name: mark_failed
UPDATE outbox
SET state = %(state)s, attempts = attempts + 1,
    available_at = COALESCE(%(retry_at)s, available_at), leased_until = NULL,
    finished_at = CASE WHEN %(state)s = 'dead' THEN %(now)s END, last_result = %(result)s
WHERE id = ANY(%(ids)s)
RETURNING destination, event_name, test_event_code;

-- name: replay
UPDATE outbox SET state = 'pending', attempts = 0, available_at = %(now)s, finished_at = NULL,
    leased_until = NULL
WHERE state = 'dead'
  AND (%(destination)s::text IS NULL OR destination = %(destination)s)
  AND (%(since)s::float8 IS NULL OR finished_at >= %(since)s)
  AND (%(ids)s::bigint[] IS NULL OR id = ANY(%(ids)s));

-- name: find
SELECT id, destination, event_name, event_id, event_time, payload, test_event_code, state,
       attempts, created_at, available_at, last_result, order_id, inbound, sampled, finished_at
FROM outbox
WHERE (%(event_id)s::text IS NULL OR event_id = %(event_id)s)
  AND (%(order_id)s::text IS NULL OR order_id = %(order_id)s)
  AND (%(event_name)s::text IS NULL OR event_name = %(event_name)s)
  AND (%(state)s::text IS NULL OR state = %(state)s)
  AND (%(destination)s::text IS NULL OR destination = %(destination)s)
  AND (%(since)s::float8 IS NULL OR created_at >= %(since)s)
  AND (NOT %(test_only)s OR test_event_code <> '')
  AND (NOT %(inspectable)s OR inbound IS NOT NULL OR state = 'dead')
  AND (%(prefix)s::text IS NULL OR left(lower(event_id), length(%(prefix)s)) = lower(%(prefix)s)
       OR left(lower(order_id), length(%(prefix)s)) = lower(%(prefix)s))
ORDER BY id DESC LIMIT %(limit)s;

-- name: find_copies
SELECT record_id, destination, event_name, event_id, order_id, source, merged, added, received_at
FROM copies
WHERE (%(event_id)s::text IS NULL OR event_id = %(event_id)s)
  AND (%(order_id)s::text IS NULL OR order_id = %(order_id)s)
  AND (%(destination)s::text IS NULL OR destination = %(destination)s)
  AND (%(prefix)s::text IS NULL OR left(lower(event_id), length(%(prefix)s)) = lower(%(prefix)s)
       OR left(lower(order_id), length(%(prefix)s)) = lower(%(prefix)s))
  AND (%(since)s::float8 IS NULL OR received_at >= %(since)s)
ORDER BY id DESC LIMIT %(limit)s;

-- name: find_dropped
SELECT at, destination, event_name, event_id, order_id, state, reason, test, source, payload
FROM dropped
WHERE (%(event_id)s::text IS NULL OR event_id = %(event_id)s)
  AND (%(order_id)s::text IS NULL OR order_id = %(order_id)s)
  AND (%(destination)s::text IS NULL OR destination = %(destination)s)
  AND (%(prefix)s::text IS NULL OR left(lower(event_id), length(%(prefix)s)) = lower(%(prefix)s)
       OR left(lower(order_id), length(%(prefix)s)) = lower(%(prefix)s))
  AND (%(state)s::text IS NULL OR state = %(state)s)
  AND (%(since)s::float8 IS NULL OR at >= %(since)s)
  AND (NOT %(test_only)s OR test)
ORDER BY id DESC LIMIT %(limit)s;

-- name: webhook_orders
-- The orders the shop's webhooks reported since a time, queued or not, the newest first.
SELECT order_id FROM (
    SELECT order_id, created_at AS at FROM outbox
    WHERE source = 'webhook' AND order_id <> '' AND created_at >= %(since)s
    UNION ALL
    SELECT order_id, at FROM dropped
    WHERE source = 'webhook' AND order_id <> '' AND at >= %(since)s
) seen GROUP BY order_id ORDER BY MAX(at) DESC LIMIT %(limit)s;

-- name: add_dropped
INSERT INTO dropped (at, destination, event_name, event_id, order_id, state, reason, test, source,
                     payload)
VALUES (%(at)s, %(destination)s, %(event_name)s, %(event_id)s, %(order_id)s, %(state)s,
        %(reason)s, %(test)s, %(source)s, %(payload)s);

-- name: prune_dropped
DELETE FROM dropped WHERE at < %(before)s;

-- name: get
SELECT id, destination, event_name, event_id, event_time, payload, test_event_code, state,
       attempts, created_at, available_at, last_result, order_id, inbound, sampled, finished_at
FROM outbox WHERE id = %(id)s;

-- name: backlog
-- Waiting and dead events per destination, read from the partial indexes alone, however
-- many delivered events are kept.
SELECT destination, 'pending', COUNT(*) FROM outbox WHERE state = 'pending' GROUP BY destination
UNION ALL
SELECT destination, 'dead', COUNT(*) FROM outbox WHERE state = 'dead' GROUP BY destination;

-- name: pending
SELECT COUNT(*) FROM outbox WHERE state = 'pending';

-- name: pending_by_event
SELECT destination, event_name, test_event_code <> '', COUNT(*) FROM outbox
WHERE state = 'pending' GROUP BY destination, event_name, test_event_code <> '';

-- name: oldest_pending
-- Ids follow created_at to within the moments concurrent writers interleave, so the oldest pending event is the first of some group.
SELECT created_at FROM outbox WHERE id = (
    SELECT MIN(first) FROM (SELECT MIN(id) AS first FROM outbox WHERE state = 'pending'
                            GROUP BY destination, test_event_code) AS firsts);

-- name: counts
SELECT destination, state, COUNT(*) FROM outbox GROUP BY destination, state;

-- name: prune
-- Delivered and dead-lettered events alike expire with the retention: dead letters hold hashes.
DELETE FROM outbox WHERE state <> 'pending' AND finished_at < %(before)s;

-- name: erase
DELETE FROM outbox WHERE strpos(payload, %(hash)s) > 0 OR strpos(COALESCE(inbound, ''), %(hash)s) > 0
RETURNING id;

-- name: erase_copies
DELETE FROM copies WHERE record_id = ANY(%(ids)s);

-- name: prune_dedup
DELETE FROM dedup WHERE seen_at < %(before)s;

-- name: prune_telemetry
DELETE FROM counters WHERE minute < %(minute)s;

-- name: prune_requests
DELETE FROM requests WHERE at < %(before)s;

-- name: add_counters
-- Counters as JSON, each key once; the shard is the connection's server process (migration 2).
INSERT INTO counters (minute, destination, event_name, name, shard, value)
SELECT minute, destination, event_name, name, pg_backend_pid(), value
FROM jsonb_to_recordset(%(counters)s::jsonb) AS c(
    minute BIGINT, destination TEXT, event_name TEXT, name TEXT, value BIGINT)
ON CONFLICT (minute, destination, event_name, name, shard)
DO UPDATE SET value = counters.value + EXCLUDED.value;

-- name: add_request
INSERT INTO requests (at, destination, events, test, outcome, code, message, request_id,
                      http_status, latency)
VALUES (%(at)s, %(destination)s, %(events)s, %(test)s, %(outcome)s, %(code)s, %(message)s,
        %(request_id)s, %(http_status)s, %(latency)s);

-- name: counters_since
SELECT minute, destination, event_name, name, SUM(value)::BIGINT FROM counters
WHERE minute >= %(minute)s GROUP BY minute, destination, event_name, name;

-- name: requests_since
SELECT at, destination, events, test, outcome, code, message, request_id, http_status, latency
FROM requests WHERE at >= %(since)s ORDER BY at DESC LIMIT %(limit)s;

-- name: ensure_limit
INSERT INTO rate_limits (key, tokens, updated_at) VALUES (%(key)s, %(qps)s, %(now)s)
ON CONFLICT (key) DO NOTHING;

-- name: lock_limit
SELECT tokens, updated_at, paused_until FROM rate_limits WHERE key = %(key)s FOR UPDATE;

-- name: save_limit
UPDATE rate_limits SET tokens = %(tokens)s, updated_at = %(now)s WHERE key = %(key)s;

-- name: pause
UPDATE rate_limits SET paused_until = GREATEST(paused_until, %(until)s) WHERE key = %(key)s;

-- name: add_leg
-- The first report of a leg stands (a reloaded page reports its pixel leg again).
INSERT INTO legs (destination, side, event_id, event_name, order_id, at, state, browser, os,
                  load, test)
VALUES (%(destination)s, %(side)s, %(event_id)s, %(event_name)s, %(order_id)s, %(at)s,
        %(state)s, %(browser)s, %(os)s, %(load)s, %(test)s)
ON CONFLICT DO NOTHING;

-- name: pair_server
-- Server legs in the window, each with its pixel leg by event_id (if any) or a flag for a
-- pixel leg of the same order, grouped alike: few rows however many events.
SELECT s.destination, s.event_name, COALESCE(p.event_name, ''), COALESCE(p.state, ''),
       COALESCE(abs(p.at - s.at) <= %(dedup_window)s, false),
       p.event_id IS NULL AND s.order_id <> '' AND EXISTS (
           SELECT 1 FROM legs o WHERE o.destination = s.destination AND o.side = 'pixel'
                                  AND o.order_id = s.order_id),
       COALESCE(NULLIF(p.browser, ''), s.browser), COALESCE(NULLIF(p.os, ''), s.os),
       COALESCE(p.load, ''), COUNT(*)
FROM legs s
LEFT JOIN legs p ON p.destination = s.destination AND p.side = 'pixel' AND p.event_id = s.event_id
WHERE s.side = 'server' AND s.at >= %(start)s AND s.at < %(end)s
  AND (%(mode)s = 'all' OR s.test = (%(mode)s = 'test'))
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9;

-- name: pair_pixel_only
-- Pixel legs in the window with no server leg of their event_id nor of their order.
SELECT p.destination, p.event_name, p.state, p.browser, p.os, p.load, COUNT(*)
FROM legs p
WHERE p.side = 'pixel' AND p.at >= %(start)s AND p.at < %(end)s AND %(mode)s <> 'test'
  AND NOT EXISTS (SELECT 1 FROM legs s WHERE s.destination = p.destination
                  AND s.side = 'server' AND s.event_id = p.event_id)
  AND NOT (p.order_id <> '' AND EXISTS (SELECT 1 FROM legs s WHERE s.destination = p.destination
                                        AND s.side = 'server' AND s.order_id = p.order_id))
GROUP BY 1, 2, 3, 4, 5, 6;

-- name: pixel_reporting
-- Read from the (side, at) index: the newest pixel leg of the destination, if recent.
SELECT 1 FROM legs WHERE side = 'pixel' AND at >= %(since)s AND destination = %(destination)s
LIMIT 1;

-- name: legs_of
SELECT destination, side, event_name, event_id, order_id, at, state, browser, os, load, test
FROM legs
WHERE (event_id = %(event_id)s OR (%(order_id)s <> '' AND order_id = %(order_id)s))
  AND (%(destination)s::text IS NULL OR destination = %(destination)s)
ORDER BY at LIMIT 20;

-- name: prune_legs
DELETE FROM legs WHERE at < %(before)s;

-- name: open_alert
-- Returns a row only for the process that opened the incident: it alone notifies.
INSERT INTO alerts (rule, destination, state, since, message)
VALUES (%(rule)s, %(destination)s, 'firing', %(at)s, %(message)s)
ON CONFLICT DO NOTHING
RETURNING id;

-- name: close_alert
UPDATE alerts SET state = 'resolved', resolved_at = %(at)s
WHERE rule = %(rule)s AND destination = %(destination)s AND state = 'firing'
RETURNING since, message;

-- name: alerts_since
SELECT rule, destination, state, since, resolved_at, message FROM alerts
WHERE state = 'firing' OR resolved_at >= %(since)s
ORDER BY since DESC LIMIT %(limit)s;

-- name: prune_alerts
DELETE FROM alerts WHERE state = 'resolved' AND resolved_at < %(before)s;
