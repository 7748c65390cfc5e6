-- The engines alive now: those whose heartbeat is younger than three of their own
-- intervals (a dead engine's row stays until another engine deletes it, but is hidden
-- here at once).
SELECT worker_id, queue, started_at, seen_at, listener, database_ok, lanes::text
FROM /* TEMPLATE: schema */engines
WHERE seen_at > now() - make_interval(secs => interval_ms * 3 / 1000.0)
ORDER BY queue, worker_id
