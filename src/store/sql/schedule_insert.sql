-- Declares a schedule that is not stored yet (the first engine to declare it). Its
-- last tick starts at the declaration, so the first run is its first tick after now.
-- Returns a row only when this call inserted it; an existing row is left to
-- schedule_lock.sql and schedule_redefine.sql, in the same transaction.
INSERT INTO /* TEMPLATE: schema */schedules
    (name, cron, time_zone, kind, queue, priority, args, max_attempts, timeout_ms,
     unique_key, missed, catch_up_max, grace_ms, declared_by, active_until, last_tick)
VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::smallint, $7::text::jsonb,
        $8::integer, $9::integer, $10::text, $11::text, $12::integer, $13::integer, $14::text,
        now() + $15::float8 * interval '1 millisecond', now())
ON CONFLICT (name) DO NOTHING
RETURNING name
