-- Cancels the jobs of $1 that have not started (the dashboard's bulk cancel): moves them
-- to jobs_finished as `cancelled`, like cancel.sql for one job. Running ones are left to
-- their handlers.
WITH gone AS (
    DELETE FROM /* TEMPLATE: schema */jobs
    WHERE id = ANY($1::bigint[]) AND state = 'available'
    RETURNING *
)
INSERT INTO /* TEMPLATE: schema */jobs_finished
    (id, kind, queue, priority, args, state, attempt, max_attempts, run_at, timeout_ms,
     unique_key, worker_id, rescues, errors, created_at, started_at, finished_at)
SELECT id, kind, queue, priority, args, 'cancelled', attempt, max_attempts, run_at, timeout_ms,
       unique_key, worker_id, rescues, errors, created_at, started_at, now()
FROM gone
RETURNING id
