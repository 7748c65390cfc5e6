-- The dashboard's job list, most urgent first: live jobs only (finished ones have no
-- urgency), in the claim's order `priority, run_at, id`, one page after the keyset
-- cursor ($9, $10, $11) — the last row shown — never OFFSET. With the state filter
-- `available` this walks the claim index.
SELECT id, kind, queue, priority, state, attempt, max_attempts, run_at, created_at,
       finished_at, last_error
FROM (
    SELECT id, kind, queue, priority,
           CASE WHEN state = 'available' AND run_at > now() THEN 'scheduled' ELSE state END AS state,
           attempt, max_attempts, run_at, created_at, NULL::timestamptz AS finished_at,
           errors -> -1 ->> 'error' AS last_error, args, unique_key, state AS raw_state
    FROM /* TEMPLATE: schema */jobs
) AS j
WHERE ($1::text IS NULL OR state = $1::text)
  AND ($2::text IS NULL OR kind = $2::text)
  AND ($3::text IS NULL OR queue = $3::text)
  AND ($4::int IS NULL OR priority >= $4::int)
  AND ($5::int IS NULL OR priority <= $5::int)
  AND ($6::bigint IS NULL OR id = $6::bigint)
  AND ($7::text IS NULL OR unique_key = $7::text)
  AND ($8::jsonb IS NULL OR args @> $8::jsonb)
  AND ($9::int IS NULL OR (priority, run_at, id) > ($9::smallint, $10::timestamptz, $11::bigint))
ORDER BY priority, run_at, id
LIMIT $12::bigint
