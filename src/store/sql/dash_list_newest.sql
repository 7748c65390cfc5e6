-- The dashboard's job list, newest first, live and finished alike, filtered by whichever
-- parameters are not NULL, one page after the keyset cursor $9 (the last id shown):
-- never OFFSET, which reads and drops every row before the page. Each parameter is
-- known when the (unnamed, so custom) plan is made, so `$n IS NULL OR …` folds away and
-- both branches walk their primary key backwards under a Merge Append.
SELECT id, kind, queue, priority, state, attempt, max_attempts, run_at, created_at,
       finished_at, last_error
FROM (
    SELECT id, kind, queue, priority,
           CASE WHEN state = 'available' AND run_at > now() THEN 'scheduled' ELSE state END AS state,
           attempt, max_attempts, run_at, created_at, NULL::timestamptz AS finished_at,
           errors -> -1 ->> 'error' AS last_error, args, unique_key
    FROM /* TEMPLATE: schema */jobs
    UNION ALL
    SELECT id, kind, queue, priority, state, attempt, max_attempts, run_at, created_at,
           finished_at, errors -> -1 ->> 'error', args, unique_key
    FROM /* TEMPLATE: schema */jobs_finished
) AS j
WHERE ($1::text IS NULL OR state = $1::text)
  AND ($2::text IS NULL OR kind = $2::text)
  AND ($3::text IS NULL OR queue = $3::text)
  AND ($4::int IS NULL OR priority >= $4::int)
  AND ($5::int IS NULL OR priority <= $5::int)
  AND ($6::bigint IS NULL OR id = $6::bigint)
  AND ($7::text IS NULL OR unique_key = $7::text)
  AND ($8::jsonb IS NULL OR args @> $8::jsonb)
  AND ($9::bigint IS NULL OR id < $9::bigint)
ORDER BY id DESC
LIMIT $10::bigint
