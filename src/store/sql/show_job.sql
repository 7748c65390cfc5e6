-- One job, live or finished, for `pglane show` and `admin::show`: everything the
-- operator may need, args included (unlike list_jobs). A live `available` job whose
-- run_at is still ahead is reported as `scheduled`. The errors' timestamps are cast here
-- (the jsonb holds them as text), so the client needs no date parser.
SELECT id, kind, queue, priority,
       CASE WHEN state = 'available' AND run_at > now() THEN 'scheduled' ELSE state END AS state,
       attempt, max_attempts, run_at, created_at, started_at, finished_at,
       args, errors,
       ARRAY(SELECT (e ->> 'at')::timestamptz FROM jsonb_array_elements(errors) AS e) AS error_times,
       unique_key, worker_id, rescues, base_priority
FROM /* TEMPLATE: schema */all_jobs
WHERE id = $1::bigint
