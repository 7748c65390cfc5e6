-- Every schedule in the schema with the database clock, for stats and `pglane
-- schedules` (the next run is computed from the cron expression by the caller).
SELECT name, cron, time_zone, kind, queue, priority, missed, catch_up_max,
       active_until >= now() AS active, declared_at, declared_by, last_tick, last_run_at,
       runs, skipped, now()
FROM /* TEMPLATE: schema */schedules
ORDER BY name
