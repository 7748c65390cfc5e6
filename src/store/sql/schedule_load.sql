-- The stored definition and last tick of the schedules an engine declares, with the
-- database clock: a pass computes which ticks are due from these (ticks are judged by
-- the database's time, never the worker's). `declared_at` goes back into the fire
-- statement's compare-and-set, so ticks are never computed from one definition and
-- enqueued under another.
SELECT name, cron, time_zone, missed, catch_up_max, grace_ms, declared_at, last_tick, now()
FROM /* TEMPLATE: schema */schedules
WHERE name = ANY($1::text[])
