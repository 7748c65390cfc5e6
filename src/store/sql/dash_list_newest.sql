-- The dashboard's job list, newest first, filtered by whichever parameters are not
-- NULL, one page after the keyset cursor $9 (the last id shown): never OFFSET, which
-- reads and drops every row before the page. The source is live jobs, finished jobs or
-- both (a state filter names one table: `store::dashboard::source`). Each parameter is
-- known when the (unnamed, so custom) plan is made, so `$n IS NULL OR …` folds away and
-- each table's primary key is walked backwards. $11, when set, bounds the walk to ids
-- from $11 up: a filter that matches few rows would otherwise read every row older than
-- its first match (an args filter on 11M rows: 0.8 s).
SELECT id, kind, queue, priority, state, attempt, max_attempts, run_at, created_at,
       finished_at, last_error
FROM /* SOURCE */jobs_any AS j
WHERE ($1::text IS NULL OR state = $1::text)
  AND ($2::text IS NULL OR kind = $2::text)
  AND ($3::text IS NULL OR queue = $3::text)
  AND ($4::int IS NULL OR priority >= $4::int)
  AND ($5::int IS NULL OR priority <= $5::int)
  AND ($6::bigint IS NULL OR id = $6::bigint)
  AND ($7::text IS NULL OR unique_key = $7::text)
  AND ($8::jsonb IS NULL OR args @> $8::jsonb)
  AND ($9::bigint IS NULL OR id < $9::bigint)
  AND ($11::bigint IS NULL OR id >= $11::bigint)
ORDER BY id DESC
LIMIT $10::bigint
