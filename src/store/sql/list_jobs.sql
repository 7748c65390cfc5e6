-- Jobs for operators, newest first, live and finished alike, optionally only those in
-- state $1 (NULL for every state). A live `available` job whose run_at is still ahead is
-- reported as `scheduled`. `last_error` is the text of the newest recorded failure;
-- `base_priority` the priority an aged job was enqueued with (see age_jobs.sql).
SELECT id, kind, queue, priority, state, attempt, max_attempts, run_at, created_at,
       finished_at, last_error, base_priority
FROM (
    SELECT id, kind, queue, priority,
           CASE WHEN state = 'available' AND run_at > now() THEN 'scheduled' ELSE state END AS state,
           attempt, max_attempts, run_at, created_at, finished_at,
           errors -> -1 ->> 'error' AS last_error, base_priority
    FROM /* TEMPLATE: schema */all_jobs
) AS j
WHERE $1::text IS NULL OR state = $1::text
ORDER BY id DESC
LIMIT $2::bigint
