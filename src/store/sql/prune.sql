-- Deletes up to $3 finished jobs past their retention: completed ones after $1 seconds,
-- failed and cancelled ones after $2 seconds. Called in a loop, a batch at a time, so
-- pruning never holds long locks or keeps one transaction open (see Store::maintain).
-- With a lock key $4 (engines' maintenance), the batch runs only if it gets that
-- transaction lock, so one engine prunes at a time and no lock outlives the statement
-- (see rescue.sql); without one (the operator's prune), it always runs.
-- Dependency edges go with the jobs they join: an edge whose parent or child is pruned
-- is resolved already (a child waits only on live parents), so only `pglane show`
-- loses it.
WITH leader AS MATERIALIZED (
    SELECT CASE WHEN $4::text IS NULL THEN true
                ELSE pg_try_advisory_xact_lock(hashtext($4::text)) END AS ok
),
old AS (
    SELECT id
    FROM /* TEMPLATE: schema */jobs_finished
    WHERE (SELECT ok FROM leader)
      AND ((state = 'completed' AND finished_at < now() - $1::float8 * interval '1 second')
        OR (state <> 'completed' AND finished_at < now() - $2::float8 * interval '1 second'))
    LIMIT $3::bigint
),
gone AS (
    DELETE FROM /* TEMPLATE: schema */jobs_finished AS f
    USING old
    WHERE f.id = old.id
    RETURNING f.id
),
as_parent AS (
    DELETE FROM /* TEMPLATE: schema */job_deps AS e USING gone WHERE e.parent = gone.id
),
as_child AS (
    DELETE FROM /* TEMPLATE: schema */job_deps AS e USING gone WHERE e.child = gone.id
)
SELECT count(*) FROM gone
