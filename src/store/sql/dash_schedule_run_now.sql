-- Runs a periodic schedule's job once, now, by hand (the dashboard's "run now"): its
-- stored definition through the schema's enqueue function, which validates and wakes
-- the workers. The schedule's own ticks (last_tick) are left alone. No row: no such
-- schedule.
SELECT /* TEMPLATE: schema */enqueue(
    kind => s.kind, args => s.args, priority => s.priority, queue => s.queue,
    max_attempts => s.max_attempts, timeout_ms => s.timeout_ms, unique_key => s.unique_key)
FROM /* TEMPLATE: schema */schedules s
WHERE s.name = $1::text
