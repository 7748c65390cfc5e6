-- The dashboard's view of live jobs, one branch of the job list's source (see
-- `store::dashboard::source`): available jobs whose run_at is ahead show as scheduled.
-- No WHERE clause, so the planner can flatten the UNION ALL of both branches and walk
-- each primary key backwards under a Merge Append (a branch with a WHERE is planned on
-- its own: a parallel scan and a sort of every row).
SELECT id, kind, queue, priority,
       CASE WHEN state = 'available' AND run_at > now() THEN 'scheduled' ELSE state END AS state,
       attempt, max_attempts, run_at, created_at, NULL::timestamptz AS finished_at,
       errors -> -1 ->> 'error' AS last_error, args, unique_key
FROM /* TEMPLATE: schema */jobs
