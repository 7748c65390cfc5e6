-- Reads a stored schedule's definition under a row lock, for an engine declaring it:
-- the caller compares it with its own and rewrites it if it differs, in the same
-- transaction, so engines starting together agree on whether this start changed it
-- (and on a single run-on-start run). `inactive`: no engine was running it.
SELECT cron, time_zone, kind, queue, priority, args::text, max_attempts, timeout_ms,
       unique_key, missed, catch_up_max, grace_ms, active_until < now() AS inactive
FROM /* TEMPLATE: schema */schedules
WHERE name = $1::text
FOR UPDATE
