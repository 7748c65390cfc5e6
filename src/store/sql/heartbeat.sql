-- An engine's heartbeat (see migration 6): inserts or refreshes its row with its lanes
-- as they are now; `seen_at` is the database's time, like every time pglane decides on.
INSERT INTO /* TEMPLATE: schema */engines AS e
    (worker_id, queue, interval_ms, listener, database_ok, lanes)
VALUES ($1::text, $2::text, $3::int, $4::text, $5::boolean, $6::jsonb)
ON CONFLICT (worker_id) DO UPDATE
SET queue = excluded.queue, seen_at = now(), interval_ms = excluded.interval_ms,
    listener = excluded.listener, database_ok = excluded.database_ok, lanes = excluded.lanes
