-- Returns running jobs whose lease expired (their worker died, hung, or lost the
-- database) to `available`, giving back the interrupted attempt and counting a rescue.
-- A job on its $1-th rescue is failed instead: it keeps killing its worker (a poison
-- pill). Rows locked by a worker writing its outcome right now are skipped and looked
-- at again next pass. Lease expiry is judged by the database clock.
--
-- One engine per schema rescues at a time: the statement first takes the transaction
-- lock $3 (`pglane:maintenance:<schema>`) and does nothing when another engine holds it
-- (`leader` is then false). A transaction lock, held only while this one statement
-- runs: a session lock held across the pass stayed with a leader that was frozen
-- (SIGSTOP, a paused VM) between two statements, and blocked rescues on every engine
-- until its TCP connection died. The server commits the statement without waiting for
-- the client, so a frozen client cannot keep this lock either.
WITH leader AS MATERIALIZED (
    SELECT pg_try_advisory_xact_lock(hashtext($3::text)) AS ok
),
expired AS MATERIALIZED (
    SELECT id
    FROM /* TEMPLATE: schema */jobs
    WHERE (SELECT ok FROM leader) AND state = 'running' AND lease_until < now()
    ORDER BY lease_until
    LIMIT $2::bigint
    FOR UPDATE SKIP LOCKED
),
poisoned AS (
    DELETE FROM /* TEMPLATE: schema */jobs AS j
    USING expired AS e
    WHERE j.id = e.id AND (j.rescues + 1 >= $1::integer OR j.cancel_request IS NOT NULL)
    RETURNING j.*
),
moved AS (
    INSERT INTO /* TEMPLATE: schema */jobs_finished
        (id, kind, queue, priority, args, state, attempt, max_attempts, run_at, timeout_ms,
         unique_key, worker_id, rescues, errors, created_at, started_at, finished_at)
    SELECT id, kind, queue, priority, args,
           CASE WHEN cancel_request IS NOT NULL THEN 'cancelled' ELSE 'failed' END,
           attempt, max_attempts, run_at, timeout_ms, unique_key, worker_id, rescues + 1,
           CASE WHEN cancel_request IS NOT NULL
                THEN errors || /* TEMPLATE: schema */cancel_entry(cancel_request, attempt)
                ELSE errors || jsonb_build_array(jsonb_build_object(
               'attempt', attempt, 'at', now(), 'cause', 'rescue',
               'error', format('lease expired %s times (last worker %s): failed as a poison pill',
                               rescues + 1, coalesce(worker_id, '?')))) END,
           created_at, started_at, now()
    FROM poisoned
    RETURNING id, kind
),
back AS (
    UPDATE /* TEMPLATE: schema */jobs AS j
    SET state       = 'available',
        attempt     = greatest(j.attempt - 1, 0),
        rescues     = j.rescues + 1,
        errors      = j.errors || jsonb_build_array(jsonb_build_object(
                          'attempt', j.attempt, 'at', now(), 'cause', 'rescue',
                          'error', format('lease expired: worker %s stopped renewing it',
                                          coalesce(j.worker_id, '?')))),
        run_at      = now(),
        lease_token = NULL,
        lease_until = NULL,
        worker_id   = NULL
    FROM expired AS e
    WHERE j.id = e.id AND j.rescues + 1 < $1::integer AND j.cancel_request IS NULL
    RETURNING j.id
)
SELECT (SELECT count(*) FROM back) AS rescued, (SELECT count(*) FROM moved) AS failed,
       (SELECT ok FROM leader) AS leader,
       -- The poison pills, for the error line that names them (few: one per crash loop).
       (SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM moved) AS failed_ids,
       (SELECT coalesce(array_agg(kind ORDER BY id), '{}') FROM moved) AS failed_kinds
