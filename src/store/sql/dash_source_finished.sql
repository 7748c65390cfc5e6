-- The dashboard's view of finished jobs, the other branch of the job list's source
-- (see `dash_source_live.sql`), with the same columns.
SELECT id, kind, queue, priority, state, attempt, max_attempts, run_at, created_at,
       finished_at, errors -> -1 ->> 'error' AS last_error, args, unique_key
FROM /* TEMPLATE: schema */jobs_finished
