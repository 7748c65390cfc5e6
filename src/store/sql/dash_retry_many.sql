-- Puts the failed or cancelled jobs of $1 back to run now with fresh attempts (the
-- dashboard's bulk retry), like retry_finished.sql for one job. A live unique key fails
-- the whole statement; the caller then retries the batch one job at a time.
WITH back AS (
    DELETE FROM /* TEMPLATE: schema */jobs_finished
    WHERE id = ANY($1::bigint[]) AND state IN ('failed', 'cancelled')
    RETURNING *
)
INSERT INTO /* TEMPLATE: schema */jobs
    (id, kind, queue, priority, args, state, attempt, max_attempts, run_at, timeout_ms,
     unique_key, rescues, errors, created_at)
OVERRIDING SYSTEM VALUE
SELECT id, kind, queue, priority, args, 'available', 0, max_attempts, now(), timeout_ms,
       unique_key, 0, errors, created_at
FROM back
RETURNING id
