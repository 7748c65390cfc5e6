-- Stores a changed definition of a schedule: the newest declaration wins. Its last
-- tick restarts at now, so ticks of the old definition that were never enqueued are
-- not caught up under the new one.
UPDATE /* TEMPLATE: schema */schedules
SET cron = $2::text, time_zone = $3::text, kind = $4::text, queue = $5::text,
    priority = $6::smallint, args = $7::text::jsonb, max_attempts = $8::integer,
    timeout_ms = $9::integer, unique_key = $10::text, missed = $11::text,
    catch_up_max = $12::integer, grace_ms = $13::integer, declared_by = $14::text,
    declared_at = now(),
    active_until = greatest(active_until, now() + $15::float8 * interval '1 millisecond'),
    last_tick = greatest(last_tick, now())
WHERE name = $1::text
