-- Writes a batch of run outcomes in one statement (one round trip, one commit).
--
-- Every row is fenced by id + lease token + state = 'running': a worker that lost its
-- lease (rescued after expiry, or timed out) can never overwrite a newer attempt, and an
-- outcome written twice is applied once. `j.id = ANY($1)` keeps the plan on the primary
-- key whatever the planner guesses about unnest's row count. Returns the ids applied.
--
--   complete, fail        -> moved to jobs_finished (completed / failed)
--   retry                 -> available after the delay, error recorded
--   snooze, release       -> available after the delay, attempt given back
WITH o AS (
    SELECT *
    FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::float8[], $5::text[], $6::text[])
        AS o(id, token, action, delay_s, error, cause)
),
finished AS (
    DELETE FROM /* TEMPLATE: schema */jobs AS j
    USING o
    WHERE j.id = ANY($1::bigint[])
      AND j.id = o.id
      AND j.lease_token = o.token
      AND j.state = 'running'
      AND o.action IN ('complete', 'fail')
    RETURNING j.*, o.action, o.error, o.cause
),
moved AS (
    INSERT INTO /* TEMPLATE: schema */jobs_finished
        (id, kind, queue, priority, args, state, attempt, max_attempts, run_at, timeout_ms,
         unique_key, worker_id, rescues, errors, created_at, started_at, finished_at)
    SELECT id, kind, queue, priority, args,
           CASE action WHEN 'complete' THEN 'completed' ELSE 'failed' END,
           attempt, max_attempts, run_at, timeout_ms, unique_key, worker_id, rescues,
           CASE WHEN action = 'fail'
                THEN errors || jsonb_build_array(jsonb_build_object(
                         'attempt', attempt, 'at', now(), 'error', error, 'cause', cause))
                ELSE errors END,
           created_at, started_at, now()
    FROM finished
    RETURNING id
),
requeued AS (
    UPDATE /* TEMPLATE: schema */jobs AS j
    SET state       = 'available',
        run_at      = now() + o.delay_s * interval '1 second',
        attempt     = CASE WHEN o.action = 'retry' THEN j.attempt ELSE greatest(j.attempt - 1, 0) END,
        errors      = CASE WHEN o.action = 'retry'
                           THEN j.errors || jsonb_build_array(jsonb_build_object(
                                    'attempt', j.attempt, 'at', now(), 'error', o.error, 'cause', o.cause))
                           ELSE j.errors END,
        lease_token = NULL,
        lease_until = NULL,
        worker_id   = NULL
    FROM o
    WHERE j.id = ANY($1::bigint[])
      AND j.id = o.id
      AND j.lease_token = o.token
      AND j.state = 'running'
      AND o.action IN ('retry', 'snooze', 'release')
    RETURNING j.id
)
SELECT id FROM moved
UNION ALL
SELECT id FROM requeued
