-- How many jobs match the dashboard's filter, counted up to the cap $9 (so a
-- confirmation on a huge table reads at most $9 rows, and says "more than" past it).
SELECT count(*)
FROM (
    SELECT 1
    FROM (
        SELECT id, kind, queue, priority,
               CASE WHEN state = 'available' AND run_at > now() THEN 'scheduled' ELSE state END AS state,
               args, unique_key
        FROM /* TEMPLATE: schema */jobs
        UNION ALL
        SELECT id, kind, queue, priority, state, args, unique_key
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
    LIMIT $9::bigint
) AS capped
