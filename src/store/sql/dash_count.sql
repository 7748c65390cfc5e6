-- How many jobs match the dashboard's filter, counted up to the cap $9 (so a
-- confirmation on a huge table reads at most $9 matching rows, and says "more than"
-- past it). The source is chosen as for the list (`dash_list_newest.sql`); $10, when
-- set, counts only ids from $10 up (the fallback when counting everything takes too
-- long).
SELECT count(*)
FROM (
    SELECT 1
    FROM /* SOURCE */jobs_any AS j
    WHERE ($1::text IS NULL OR state = $1::text)
      AND ($2::text IS NULL OR kind = $2::text)
      AND ($3::text IS NULL OR queue = $3::text)
      AND ($4::int IS NULL OR priority >= $4::int)
      AND ($5::int IS NULL OR priority <= $5::int)
      AND ($6::bigint IS NULL OR id = $6::bigint)
      AND ($7::text IS NULL OR unique_key = $7::text)
      AND ($8::jsonb IS NULL OR args @> $8::jsonb)
      AND ($10::bigint IS NULL OR id >= $10::bigint)
    LIMIT $9::bigint
) AS capped
