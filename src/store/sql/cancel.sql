-- Cancels a job that has not started: moves it to jobs_finished as `cancelled`.
-- A running job is left alone (its handler owns it until it finishes or its lease
-- expires); the caller learns nothing was cancelled.
WITH gone AS (
    DELETE FROM /* TEMPLATE: schema */jobs
    WHERE id = $1::bigint AND state = 'available'
    RETURNING *
)
INSERT INTO /* TEMPLATE: schema */jobs_finished
    (id, kind, queue, priority, args, state, attempt, max_attempts, run_at, timeout_ms,
     unique_key, worker_id, rescues, errors, created_at, started_at, finished_at)
SELECT id, kind, queue, priority, args, 'cancelled', attempt, max_attempts, run_at, timeout_ms,
       unique_key, worker_id, rescues, errors, created_at, started_at, now()
FROM gone
RETURNING id
