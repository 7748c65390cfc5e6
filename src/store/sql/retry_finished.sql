-- Puts a failed or cancelled job back in the live table to run now with fresh attempts,
-- keeping its id and error history. If its unique key is live again the insert fails
-- with a unique violation and the whole statement (the delete too) is rolled back.
WITH back AS (
    DELETE FROM /* TEMPLATE: schema */jobs_finished
    WHERE id = $1::bigint AND state IN ('failed', 'cancelled')
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
