-- Deletes up to $3 finished jobs past their retention: completed ones after $1 seconds,
-- failed and cancelled ones after $2 seconds. Called in a loop, a batch at a time, so
-- pruning never holds long locks or keeps one transaction open (see Store::maintain).
WITH old AS (
    SELECT id
    FROM /* TEMPLATE: schema */jobs_finished
    WHERE (state = 'completed' AND finished_at < now() - $1::float8 * interval '1 second')
       OR (state <> 'completed' AND finished_at < now() - $2::float8 * interval '1 second')
    LIMIT $3::bigint
)
DELETE FROM /* TEMPLATE: schema */jobs_finished AS f
USING old
WHERE f.id = old.id
