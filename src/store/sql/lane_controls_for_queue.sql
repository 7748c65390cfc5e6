-- The lane controls of one queue, for an engine's heartbeat to apply the ones newer
-- than it has applied (see migration 6).
SELECT lane, paused, concurrency, version
FROM /* TEMPLATE: schema */lane_controls
WHERE queue = $1::text
