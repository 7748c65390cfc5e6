-- Writes a batch of run outcomes in one statement (one round trip, one commit).
--
-- Every row is fenced by id + lease token + state = 'running': a worker that lost its
-- lease (rescued after expiry, or timed out) can never overwrite a newer attempt, and an
-- outcome written twice is applied once. Returns the ids applied.
--
-- The state is tested as `<> 'available'` (the other live states are 'running' and
-- 'waiting', by the table's CHECK, and a waiting job holds no lease token): written `= 'running'`, it lets the planner drive the join from
-- jobs_lease_idx, whose predicate it matches. When the statistics were gathered with no
-- job running (autoanalyze after a bulk enqueue, typically) that index is estimated at
-- one row, so the plan put jobs outside and re-ran the unnest once per running job:
-- 3.4 s for 2,000 outcomes against 2,000 running jobs, measured, where the nested loop
-- from the unnested rows into the primary key takes 45 ms whatever the statistics say.
--
-- The arrays are unnested inside each statement, not in a shared CTE: the generic plan
-- is then a nested loop from the unnested rows into the primary key, linear in the
-- batch. A shared CTE is materialized, and the planner (guessing 10 rows for unnest, 1
-- for jobs) put jobs on the outside and rescanned the CTE once per job: quadratic,
-- measured at 1.5 s for 2,000 outcomes, which capped the engine near 1,000 jobs/s.
--
--   complete, fail        -> moved to jobs_finished (completed / failed); completed
--                            jobs only deleted when $7 is false (zero retention: the
--                            copy, its index entries and the later prune are saved)
--   retry                 -> available after the delay, error recorded
--   snooze                -> available after the delay, attempt given back
--   release               -> available at its old run_at, attempt given back
--   any, cancel requested -> moved to jobs_finished as cancelled, with who asked and why
--
-- A user's cancel request (`cancel_request`, set by the cancel() function under the
-- row's lock) wins over whatever the run answers: once it is recorded, the attempt ends
-- `cancelled` and is never retried. If this statement locks the row first, the cancel
-- waits for it and then finds the job finished (or requeued, and cancels it at once).
-- The two CTEs test the request on the row version they act on (a concurrent update is
-- re-checked by READ COMMITTED), so a row goes to exactly one of them.
WITH finished AS (
    DELETE FROM /* TEMPLATE: schema */jobs AS j
    USING unnest($1::bigint[], $2::bigint[], $3::text[], $5::text[], $6::text[])
        AS o(id, token, action, error, cause)
    WHERE j.id = o.id
      AND j.lease_token = o.token
      AND j.state <> 'available'
      AND (o.action IN ('complete', 'fail') OR j.cancel_request IS NOT NULL)
    RETURNING j.*, o.action, o.error, o.cause
),
moved AS (
    INSERT INTO /* TEMPLATE: schema */jobs_finished
        (id, kind, queue, priority, args, state, attempt, max_attempts, run_at, timeout_ms,
         unique_key, worker_id, rescues, errors, created_at, started_at, finished_at)
    SELECT id, kind, queue, priority, args,
           CASE WHEN cancel_request IS NOT NULL THEN 'cancelled'
                WHEN action = 'complete' THEN 'completed' ELSE 'failed' END,
           attempt, max_attempts, run_at, timeout_ms, unique_key, worker_id, rescues,
           CASE WHEN cancel_request IS NOT NULL
                THEN errors || /* TEMPLATE: schema */cancel_entry(cancel_request, attempt)
                WHEN action = 'fail'
                THEN errors || jsonb_build_array(jsonb_build_object(
                         'attempt', attempt, 'at', now(), 'error', error, 'cause', cause))
                ELSE errors END,
           created_at, started_at, now()
    FROM finished
    WHERE action <> 'complete' OR cancel_request IS NOT NULL OR $7::boolean
    RETURNING id
),
requeued AS (
    UPDATE /* TEMPLATE: schema */jobs AS j
    SET state       = 'available',
        -- A released job never really ran (shutdown or pause took it back), so it keeps
        -- its place in line instead of going behind every job of its priority since.
        run_at      = CASE WHEN o.action = 'release' THEN j.run_at
                           ELSE now() + o.delay_s * interval '1 second' END,
        attempt     = CASE WHEN o.action = 'retry' THEN j.attempt ELSE greatest(j.attempt - 1, 0) END,
        errors      = CASE WHEN o.action = 'retry'
                           THEN j.errors || jsonb_build_array(jsonb_build_object(
                                    'attempt', j.attempt, 'at', now(), 'error', o.error, 'cause', o.cause))
                           ELSE j.errors END,
        lease_token = NULL,
        lease_until = NULL,
        worker_id   = NULL
    FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::float8[], $5::text[], $6::text[])
        AS o(id, token, action, delay_s, error, cause)
    WHERE j.id = o.id
      AND j.lease_token = o.token
      AND j.state <> 'available'
      AND o.action IN ('retry', 'snooze', 'release')
      AND j.cancel_request IS NULL
    RETURNING j.id
)
-- `moved` runs whether or not it is read (data-modifying CTEs always run to completion);
-- the ids applied are those deleted, copied or not.
SELECT id FROM finished
UNION ALL
SELECT id FROM requeued
